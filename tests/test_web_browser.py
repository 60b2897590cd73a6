"""The web page in a real browser: Playwright drives Debian's Chromium against ``digitnet serve``'s app.

The server runs in a thread on a free 127.0.0.1 port with a model trained here for one
epoch on MNIST. Digits are drawn with mouse strokes that replay the ink of MNIST test
images, row by row; training is started from the page and its cost curve watched; the
descent playground is clicked. Screenshots go to ``$DIGITNET_SCREENSHOTS`` (or a temporary
folder). Skipped, with the reason, when Playwright or Chromium is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"Chromium is not at {CHROMIUM}: apt-get install -y chromium", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    """A model directory holding one model trained for one epoch (about 90% right)."""
    from digitnet.config import TrainConfig
    from digitnet.io.model_io import save_model
    from digitnet.nn.network import Network
    from digitnet.training.train import train

    models = tmp_path_factory.mktemp("models")
    net = Network.create((784, 30, 10), seed=1)
    initial = net.copy()
    config = TrainConfig(epochs=1, eta=3.0)
    history = train(net, mnist.train, config, test=mnist.test)
    save_model(models / "quick.safetensors", net, history, config, initial)
    return models, net


@pytest.fixture(scope="module")
def server(trained, mnist, serve_app):
    from digitnet.web import create_app

    models, _ = trained
    app = create_app(models, dataset=mnist)
    with serve_app(app) as url:  # browser, shots: tests/conftest.py
        yield url, app


@pytest.fixture
def page(browser, server):
    url, _ = server
    # bypass_csp lets Playwright evaluate its wait conditions; the policy itself is tested over HTTP.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    pg.wait_for_selector("body[data-ready='1']", timeout=15_000)
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def draw(page, image: np.ndarray, threshold: int = 100) -> None:
    """Replay an MNIST image's ink as mouse strokes: one stroke per run of inked pixels in every
    other row (the pen is two pixels wide)."""
    box = page.locator("#pad").bounding_box()
    s = box["width"] / image.shape[1]
    for r in range(0, image.shape[0], 2):
        row = np.maximum(image[r], image[r + 1]) if r + 1 < image.shape[0] else image[r]
        c = 0
        while c < len(row):
            if row[c] <= threshold:
                c += 1
                continue
            start = c
            while c < len(row) and row[c] > threshold:
                c += 1
            y = box["y"] + (r + 1.0) * s
            page.mouse.move(box["x"] + (start + 0.5) * s, y)
            page.mouse.down()
            page.mouse.move(box["x"] + (c - 0.5) * s, y)
            page.mouse.up()
    page.wait_for_selector("#pad[data-pending='0']", timeout=10_000)


def test_drawn_digits_are_read_and_shown(page, trained, mnist, shots):
    _, net = trained
    out = net.feedforward(mnist.test.x[:200])
    confident = [i for i in range(200) if out[i].argmax() == mnist.test.y[i] and out[i].max() > 0.8]
    chosen, seen = [], set()
    for i in confident:  # five different digits the model reads with confidence
        if int(mnist.test.y[i]) not in seen:
            chosen.append(i)
            seen.add(int(mnist.test.y[i]))
        if len(chosen) == 5:
            break
    answers = []
    for i in chosen:
        page.click("#clear")
        draw(page, mnist.test.images[i])
        answers.append(int(page.get_attribute("#answer", "data-digit")))
    labels = [int(mnist.test.y[i]) for i in chosen]
    right = sum(a == y for a, y in zip(answers, labels))
    assert right >= 4, f"read {answers} for drawn {labels}"
    # The prepared 28x28 is shown, the output bars follow the answer, the neurons are lit.
    ink = page.evaluate("() => { const c = document.getElementById('prepared');"
                        " const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;"
                        " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; }")
    assert ink > 255 * 20
    best = page.locator("#bars .bar.best").get_attribute("data-digit")
    assert best == page.get_attribute("#answer", "data-digit")
    assert page.locator("#net-svg circle.neuron").count() == 30 + 10
    page.locator("#net-svg circle.clickable").nth(2).click()
    assert "Hidden neuron 3 of 30" in page.inner_text("#neuron-text")
    page.screenshot(path=str(shots / "draw.png"))
    page.click("#clear")
    assert page.get_attribute("#answer", "data-digit") == ""


def test_a_random_test_digit_and_a_mistake_from_the_gallery(page):
    page.click("#random-test")
    page.wait_for_selector("#pad[data-pending='0']")
    assert "Test image #" in page.inner_text("#pad-note")
    assert page.get_attribute("#answer", "data-digit") != ""
    page.wait_for_selector("#gallery button")
    page.locator("#gallery button").first.click()
    page.wait_for_function("document.getElementById('answer-note').textContent.includes('wrong')")
    assert "Evaluate" in page.inner_text(".confusion-card")
    assert page.locator("#confusion td").count() == 100
    assert "Test accuracy" in page.inner_text("#eval-summary")


def test_training_from_the_page_grows_the_cost_curve(page, shots):
    page.fill("#hidden", "16")
    page.fill("#epochs", "2")
    page.fill("#train_size", "20000")
    page.click("#new-network")
    page.wait_for_function("document.getElementById('train-status').dataset.status === 'ready'"
                           " && document.getElementById('cost-chart').dataset.points === '1'")
    page.click("#train-step")
    page.wait_for_function("document.getElementById('cost-chart').dataset.points === '2'")
    page.click("#train-run")
    page.wait_for_function("Number(document.getElementById('cost-chart').dataset.points) > 40", timeout=20_000)
    page.wait_for_function("Number(document.getElementById('cost-chart').dataset.accuracy) > 1", timeout=20_000)
    assert page.locator("#weight-grid canvas").count() == 16
    page.locator("#learn").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "learn.png"))
    if page.get_attribute("#train-status", "data-status") == "running":
        page.click("#train-run")  # pause
    page.wait_for_function("document.getElementById('train-status').dataset.status !== 'running'")
    page.fill("#save-name", "from-the-page")
    page.click("#save-model")
    page.wait_for_function("[...document.querySelectorAll('#model-select option')].some(o => o.value === 'from-the-page')")
    page.once("dialog", lambda d: d.accept())  # Reset asks first: the network has been trained
    page.click("#train-reset")
    page.wait_for_function("document.getElementById('cost-chart').dataset.points === '1'")


def test_the_descent_playground(page, shots):
    page.fill("#formula", "3/2x^2 + 1/2y^2")
    page.click("#descent-form button[type=submit]")
    contour = page.locator("#contour")  # clicked where Playwright finds it still: the page may move
    box = contour.bounding_box()
    contour.click(position={"x": box["width"] * 0.8, "y": box["height"] * 0.25})
    page.wait_for_selector("#descent-result[data-stop='converged']")
    assert "x matters" in page.inner_text("#descent-result") or "matter" in page.inner_text("#descent-result")
    page.fill("#formula", "3/2x^2 + ½y")
    page.click("#descent-form button[type=submit]")
    page.wait_for_selector("#descent-result[data-stop='unbounded']")
    page.click("#descent-result .suggest button")
    page.wait_for_selector("#descent-result[data-stop='converged']")
    page.locator(".playground-card").screenshot(path=str(shots / "playground.png"))
    page.fill("#formula", "x + import(y)")
    page.click("#descent-form button[type=submit]")
    page.wait_for_selector("#toast:not([hidden])")
    assert "unknown name" in page.inner_text("#toast")


def test_the_page_fits_a_phone(browser, server, shots, mnist):
    url, _ = server
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True,
                                  bypass_csp=True)
    pg = context.new_page()
    pg.goto(url)
    pg.wait_for_selector("body[data-ready='1']", timeout=15_000)
    draw(pg, mnist.test.images[0])
    assert pg.get_attribute("#answer", "data-digit") != ""
    overflow = pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    pg.screenshot(path=str(shots / "phone.png"))
    context.close()


# --- what renders: bars, colours, confirmations, conv nets, phones ----------------------------
def _load(page, name: str, handle_dialog: bool = True) -> None:
    """Make the saved model ``name`` current from the page (accepting a confirmation if one is
    asked) and wait until the page shows its weights."""
    def accept(dialog):
        dialog.accept()

    if handle_dialog:
        page.on("dialog", accept)
    page.select_option("#model-select", name)
    page.wait_for_function(f"document.getElementById('model-badge').textContent.startsWith({name!r})")
    page.wait_for_function("document.getElementById('net-shape').dataset.version"
                           " === document.getElementById('train-status').dataset.version")
    if handle_dialog:
        page.remove_listener("dialog", accept)


def test_the_output_bars_fill_in_proportion_to_the_outputs(page, mnist):
    _load(page, "quick")
    draw(page, mnist.test.images[0])  # a 7 the trained model reads with confidence
    page.wait_for_timeout(300)  # the bars' width transition is 0.12 s
    widths = []
    for d in range(10):
        row = page.locator(f"#bars .bar[data-digit='{d}']")
        fill, track = row.locator(".fill").bounding_box(), row.locator(".track").bounding_box()
        widths.append((fill["width"] if fill else 0.0, track["width"], float(row.locator(".value").inner_text())))
    best = int(page.get_attribute("#answer", "data-digit"))
    fill, track, value = widths[best]
    assert value > 0.5 and fill > 0.5 * track > 40, f"the answer's bar is {fill:.1f} px of {track:.1f} px"
    for d, (fill, track, value) in enumerate(widths):  # every bar is its output's share of the track
        assert abs(fill - value * track) <= 2.5, f"bar {d}: {fill:.1f} px for output {value} of {track:.1f} px"
    painted = page.evaluate("getComputedStyle(document.querySelector('#bars .bar.best .fill')).backgroundColor")
    assert painted not in ("rgba(0, 0, 0, 0)", "transparent")


def test_positive_weights_are_blue_and_negative_red(page):
    """The one convention (as plots.py's RdBu): blue positive, red negative."""
    _load(page, "quick")
    page.locator("#net-svg circle.clickable").nth(0).click()
    colours = page.evaluate("""async () => {
        const net = await (await fetch('/api/network')).json();
        const raw = atob(net.first.weights), bytes = new Uint8Array(raw.length);
        for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
        const w = new Float32Array(bytes.buffer).slice(0, 784);
        let hi = 0, lo = 0;
        for (let i = 0; i < 784; i++) { if (w[i] > w[hi]) hi = i; if (w[i] < w[lo]) lo = i; }
        const d = document.getElementById('neuron-canvas').getContext('2d').getImageData(0, 0, 28, 28).data;
        return { pos: [...d.slice(4 * hi, 4 * hi + 3)], neg: [...d.slice(4 * lo, 4 * lo + 3)] };
    }""")
    pos, neg = colours["pos"], colours["neg"]
    assert pos[2] > pos[0] + 40 and neg[0] > neg[2] + 40, colours
    assert "blue" in page.inner_text("#neuron-text") and "blue positive" in page.inner_text(".weights-card .card-title")


def test_the_page_asks_before_it_discards_a_trained_network(page):
    _load(page, "quick")
    status = "document.getElementById('train-status').dataset.status"
    page.wait_for_function(f"{status} === 'done'")
    assert page.locator("#train-run").is_enabled()  # a finished model can train on
    asked, answer = [], {"accept": False}

    def on_dialog(d):
        asked.append(d.message)
        d.accept() if answer["accept"] else d.dismiss()

    page.on("dialog", on_dialog)
    page.click("#train-reset")  # dismissed: nothing happens
    page.wait_for_timeout(300)
    assert len(asked) == 1 and "Reset" in asked[0] and page.evaluate(status) == "done"
    assert "quick" in page.inner_text("#draw-net")
    answer["accept"] = True
    page.click("#train-reset")
    page.wait_for_function(f"{status} === 'ready'")
    text = page.inner_text("#train-status")
    assert len(asked) == 2 and "Done" not in text and "Ready" in text and "epoch 0 of 1" in text, text
    assert "untrained" in page.inner_text("#draw-net")  # Draw says it now reads with the reset network
    # One mini-batch is unsaved work: New network and switching models ask first.
    page.click("#train-step")
    page.wait_for_function("document.getElementById('cost-chart').dataset.points === '2'")
    answer["accept"] = False
    page.click("#new-network")
    page.wait_for_timeout(300)
    assert len(asked) == 3 and "not saved" in asked[-1]
    assert "mini-batch 1 of" in page.inner_text("#train-status")
    page.select_option("#model-select", "quick")
    page.wait_for_timeout(300)
    assert len(asked) == 4 and "not saved" in asked[-1] and page.input_value("#model-select") == "(unsaved network)"
    assert "mini-batch 1 of" in page.inner_text("#train-status")
    answer["accept"] = True
    _load(page, "quick", handle_dialog=False)
    assert len(asked) == 5 and page.evaluate(status) == "done"


def test_a_finished_model_trains_one_more_epoch(page):
    _load(page, "quick")
    page.wait_for_function("document.getElementById('train-status').dataset.status === 'done'")
    assert "more" in page.inner_text("#train-run")
    page.click("#train-run")
    page.wait_for_function("document.getElementById('train-status').textContent.includes('of 2')", timeout=20_000)
    page.click("#train-run") if page.get_attribute("#train-status", "data-status") == "running" else None
    page.wait_for_function("document.getElementById('train-status').dataset.status !== 'running'", timeout=20_000)


def test_a_conv_model_is_described_and_shows_its_filters(page, trained):
    from digitnet.config import NetworkConfig
    from digitnet.io.model_io import save_model
    from digitnet.nn.network import Network

    models, _ = trained
    net = Network.create(NetworkConfig(layers=(784, 12, 10), features=("conv:6:5", "pool:2"), activation="relu"), seed=2)
    save_model(models / "conv.safetensors", net)
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    _load(page, "conv")
    shape = page.inner_text("#net-shape")
    assert "conv 6 of 5x5" in shape and f"{net.n_params:,}" in shape and "784-12-10" not in shape, shape
    assert page.locator("#net-svg circle.clickable").count() == 0  # its neurons see features, not pixels
    assert "784" not in page.inner_text("#neuron-text")
    grid = page.locator("#weight-grid canvas")
    assert grid.count() == 6 and grid.first.evaluate("c => c.width") == 5
    assert "filters" in page.inner_text(".weights-card .card-title")
    box = grid.first.bounding_box()
    assert box["width"] > 20  # drawn large enough to see
    _load(page, "quick")


def test_the_model_menu_fits_a_phone(browser, server, shots, trained):
    """At 375 px the model menu, the badge and the training buttons lie inside the viewport,
    also when a saved model has a long name (the menu is as wide as its widest option)."""
    url, _ = server
    models, net = trained
    shutil.copy(models / "quick.safetensors", models / "handwriting-of-the-whole-class-week-3.safetensors")
    context = browser.new_context(viewport={"width": 375, "height": 667}, device_scale_factor=2, has_touch=True,
                                  bypass_csp=True)
    pg = context.new_page()
    pg.goto(url)
    pg.wait_for_selector("body[data-ready='1']", timeout=15_000)
    _load(pg, "handwriting-of-the-whole-class-week-3")
    for sel in ("#model-select", "#model-badge", "#train-run", "#train-reset"):
        box = pg.locator(sel).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375 + 0.5, f"{sel}: {box}"
    assert pg.locator("#model-select").bounding_box()["width"] >= 120
    pg.screenshot(path=str(shots / "phone-top.png"))
    context.close()
