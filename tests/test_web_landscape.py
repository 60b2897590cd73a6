"""The web page's Landscape view: /api/landscape and /api/landscape/point over HTTP, and the
view in a real browser (Playwright with Debian's Chromium; skipped, with the reason, without).

Everything runs on the synthetic bar digits (tests/conftest.py) with a 784-16-10 network
trained here for 3 epochs, whose model file keeps its 4 weight snapshots.
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from digitnet.config import NetworkConfig, TrainConfig  # noqa: E402
from digitnet.data.datasets import DIGITS  # noqa: E402
from digitnet.explain.landscape import filter_normalized_direction, perturbed, slice_directions  # noqa: E402
from digitnet.io.model_io import load_model, save_model  # noqa: E402
from digitnet.nn.network import Network  # noqa: E402
from digitnet.training.train import Trainer  # noqa: E402
from digitnet.web import create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def models(bar_digits, tmp_path_factory):
    """A model folder: ``bars`` (trained 3 epochs, with its snapshots) and ``flat`` (the same
    weights without snapshots)."""
    d = tmp_path_factory.mktemp("models")
    net = Network.create((784, 16, 10), seed=1)
    initial = net.copy()
    config = TrainConfig(epochs=3, eta=3.0, batch_size=10)
    t = Trainer(net, bar_digits.train, config, test=bar_digits.test)
    t.measure_initial()
    while not t.done:
        t.run_epoch()
    t.finish()
    save_model(d / "flat.safetensors", net, t.history, config, initial, "synthetic", DIGITS)
    time.sleep(0.01)  # "bars" is the newest: the app starts with it
    save_model(d / "bars.safetensors", net, t.history, config, initial, "synthetic", DIGITS, snapshots=t.snapshots)
    return d, net, t.snapshots


@pytest.fixture
def client(models, bar_digits):
    app = create_app(models[0], dataset=bar_digits)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        c.lab = app.state.lab
        assert c.lab.job.name == "bars"
        yield c


# --- over HTTP ------------------------------------------------------------------------------
def test_the_landscape_follows_the_training_path_when_the_model_keeps_it(client, models, bar_digits):
    _, net, snapshots = models
    r = client.post("/api/landscape", json={"grid": 7})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["directions"] == "trajectory" and d["asked"] == "auto" and "training path" in d["note"]
    assert len(d["path"]) == len(snapshots) == 4 and d["path"][-1] == [0.0, 0.0]
    assert np.array(d["cost"]).shape == (7, 7) and np.array(d["accuracy"]).shape == (7, 7)
    x, y = bar_digits.train.x, bar_digits.train.y
    assert d["n"] == len(y) and d["center_cost"] == pytest.approx(net.cost(x, y), rel=1e-6)
    # the path fits the slice: the range is 1.25 times its reach along each direction
    path = np.abs(np.array(d["path"])).max(axis=0)
    assert d["alphas"][-1] == pytest.approx(1.25 * path[0]) and d["betas"][-1] == pytest.approx(1.25 * path[1])
    # a grid value is the cost of an independently built network at that point
    sd = slice_directions(net, snapshots, "trajectory")
    i, j = 1, 5
    moved = perturbed(net, [(d["alphas"][j], sd.d1), (d["betas"][i], sd.d2)])
    assert d["cost"][i][j] == pytest.approx(moved.cost(x, y), rel=1e-4)


def test_a_point_of_the_landscape_is_the_network_with_those_weights(client, models, bar_digits):
    _, net, snapshots = models
    d = client.post("/api/landscape", json={"grid": 5}).json()
    j, i = 3, 1
    r = client.post("/api/landscape/point", json={"alpha": d["alphas"][j], "beta": d["betas"][i]})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["directions"] == "trajectory" and p["n"] == d["n"]
    assert p["cost"] == pytest.approx(d["cost"][i][j], rel=1e-4)  # the grid says the same
    sd = slice_directions(net, snapshots, "trajectory")
    moved = perturbed(net, [(d["alphas"][j], sd.d1), (d["betas"][i], sd.d2)])
    test = bar_digits.test
    predicted = moved.predict(test.x)
    assert p["accuracy"] == pytest.approx(float((predicted == test.y).mean()))
    assert p["n_test"] == len(test.y) and p["distance"] > 0
    assert len(p["predictions"]) == 8
    for k, m in enumerate(p["predictions"]):
        assert m["index"] == k and m["label"] == int(test.y[k]) and m["predicted"] == int(predicted[k])
        assert len(m["pixels"]) == 4 * -(-28 * 28 // 3)  # base64 of the 784 grey bytes
    centre = client.post("/api/landscape/point", json={"alpha": 0, "beta": 0}).json()
    assert centre["cost"] == pytest.approx(d["center_cost"], rel=1e-6) and centre["distance"] == 0


def test_random_directions_on_request_and_when_the_model_keeps_no_path(client):
    r = client.post("/api/landscape", json={"directions": "random", "grid": 5, "range": 0.5, "seed": 3}).json()
    assert r["directions"] == "random" and r["path"] is None and r["alphas"] == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert "seed 3" in r["note"] and "Not the training path" not in r["note"]
    other = client.post("/api/landscape", json={"directions": "random", "grid": 5, "range": 0.5, "seed": 4}).json()
    assert other["cost"] != r["cost"]  # the seed picks the directions
    assert client.post("/api/models/load", json={"name": "flat"}).status_code == 200
    auto = client.post("/api/landscape", json={"grid": 5}).json()
    assert auto["directions"] == "random" and auto["path"] is None
    assert "Not the training path's: its model file holds no snapshots" in auto["note"]
    r = client.post("/api/landscape", json={"directions": "trajectory", "grid": 5})
    assert r.status_code == 400 and "Use random directions" in r.json()["error"]
    r = client.post("/api/landscape/point", json={"alpha": 0.1, "beta": 0, "directions": "trajectory"})
    assert r.status_code == 400 and "Use random directions" in r.json()["error"]


def test_a_network_trained_in_the_page_has_a_path_and_saves_it(client, models):
    body = {"hidden": [8], "epochs": 2, "train_size": 300, "batch_size": 10, "eta": 3.0}
    assert client.post("/api/train/config", json=body).status_code == 200
    assert client.post("/api/landscape", json={"grid": 5}).json()["directions"] == "random"  # not trained yet
    assert client.post("/api/train/start", json={}).status_code == 200
    deadline = time.monotonic() + 30
    while client.get("/api/train/status").json()["status"] != "done":
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.02)
    d = client.post("/api/landscape", json={"grid": 5}).json()
    assert d["directions"] == "trajectory" and len(d["path"]) == 3 and d["path"][-1] == [0.0, 0.0]
    assert client.post("/api/models/save", json={"name": "paged"}).status_code == 200
    saved = load_model(models[0] / "paged.safetensors")
    (models[0] / "paged.safetensors").unlink()  # the other tests start with "bars", the newest
    assert len(saved.snapshots) == 3
    assert all(np.array_equal(v, saved.net.params[l][k]) for l, p in enumerate(saved.snapshots[-1]) for k, v in p.items())


def test_the_answer_is_kept_until_the_weights_change(client):
    a = client.post("/api/landscape", json={"grid": 5}).json()
    assert client.post("/api/landscape", json={"grid": 5}).json() == a
    assert client.post("/api/landscape", json={"grid": 7}).json()["alphas"] != a["alphas"]
    assert client.post("/api/models/load", json={"name": "flat"}).status_code == 200
    b = client.post("/api/landscape", json={"grid": 5}).json()
    assert b["weights_version"] != a["weights_version"] and b["directions"] == "random"


@pytest.mark.parametrize("body, message", [
    ({"grid": 4}, "The 'grid' field must be a whole number from 5 to 61; got 4."),
    ({"grid": 62}, "The 'grid' field must be a whole number from 5 to 61; got 62."),
    ({"grid": 7.5}, "'grid' field must be a whole number"),
    ({"grid": "31"}, "'grid' field must be a whole number"),
    ({"grid": True}, "'grid' field must be a whole number"),
    ({"range": 0}, "The 'range' field must be a number from 0.001 to 1000; got 0."),
    ({"range": -1}, "'range' field must be a number from 0.001 to 1000"),
    ({"range": 1e9}, "'range' field must be a number from 0.001 to 1000"),
    ({"range": "big"}, "'range' field must be a number"),
    ({"directions": "pca"}, "The 'directions' field must be one of auto, trajectory, random; got 'pca'."),
    ({"seed": -1}, "The 'seed' field must be a whole number from 0 to 4294967295; got -1."),
    ({"grid": True}, "The 'grid' field must be a whole number from 5 to 61; got true."),
    ({"grid": None}, "The 'grid' field must be a whole number from 5 to 61; got null."),
    ({"seed": 10**30}, "The 'seed' field must be a whole number from 0 to 4294967295; got 1000000000000000000000000000000."),
    ({"seed": 10**100}, "The 'seed' field must be a whole number from 0 to 4294967295; got a number too large."),
    ({"size": 9}, "Unknown field(s): size. Known fields: directions, grid, range, seed."),
])
def test_bad_landscape_requests_get_one_clear_line(client, body, message):
    r = client.post("/api/landscape", json=body)
    assert r.status_code == 400 and message in r.json()["error"], r.text


@pytest.mark.parametrize("body, message", [
    ({"alpha": 0}, "Missing field(s): beta."),
    ({"alpha": 2e4, "beta": 0}, "The 'alpha' field must be a number from -10000 to 10000; got 20000.0."),
    ({"alpha": 0, "beta": "up"}, "The 'beta' field must be a number from -10000 to 10000; got 'up'."),
    ({"alpha": [1], "beta": 0}, "The 'alpha' field must be a number"),
    ({"alpha": 0, "beta": 0, "directions": "down"}, "The 'directions' field must be one of"),
    ({"alpha": 0, "beta": 0, "grid": 5}, "Unknown field(s): grid."),
])
def test_bad_points_get_one_clear_line(client, body, message):
    r = client.post("/api/landscape/point", json=body)
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_landscape_bodies_must_be_json_objects(client):
    r = client.post("/api/landscape", content=b'{"range": 1e999}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].endswith("got a number too large."), r.text
    r = client.post("/api/landscape", content=b'{"seed": ' + b"9" * 100_000 + b"}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and "too large" in r.json()["error"] and "sys." not in r.json()["error"], r.text
    r = client.post("/api/landscape", content=b"x" * (3 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "image" not in r.json()["error"] and "map request" in r.json()["error"], r.text
    for path in ("/api/landscape", "/api/landscape/point"):
        r = client.post(path, content=b"")  # no body, no content type: refused as /api/predict refuses it
        assert r.status_code == 415, r.text
        r = client.post(path, content=b"", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "empty" in r.json()["error"], r.text
    assert client.post("/api/landscape", json={}).status_code == 200  # {}: the defaults
    r = client.post("/api/landscape/point", content=b'{"alpha": NaN, "beta": 0}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "The 'alpha' field must be a number" in r.json()["error"]
    r = client.post("/api/landscape", content=b'{"range": Infinity}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "The 'range' field must be a number" in r.json()["error"]
    for path in ("/api/landscape", "/api/landscape/point"):
        r = client.post(path, content=b"grid=5", headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415 and "JSON" in r.json()["error"]
        r = client.post(path, content=b"[1, 2]", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "must be a JSON object" in r.json()["error"]
        r = client.post(path, content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        assert client.get(path).status_code == 405


def test_a_point_of_a_map_drawn_for_other_weights_is_refused(client):
    a = client.post("/api/landscape", json={"grid": 5}).json()
    point = {"alpha": 0.1, "beta": 0.1, "directions": a["asked"], "seed": 0, "weights_version": a["weights_version"]}
    assert client.post("/api/landscape/point", json=point).status_code == 200
    assert client.post("/api/models/load", json={"name": "flat"}).status_code == 200  # another model
    r = client.post("/api/landscape/point", json=point)
    assert r.status_code == 409 and r.json()["error"] == "The model changed since the map was drawn: draw it again."
    point["weights_version"] = client.post("/api/landscape", json={"grid": 5}).json()["weights_version"]
    assert client.post("/api/landscape/point", json=point).status_code == 200


def test_the_note_says_why_there_is_no_training_path(client):
    assert client.post("/api/models/load", json={"name": "flat"}).status_code == 200
    note = client.post("/api/landscape", json={"grid": 5}).json()["note"]
    assert "its model file holds no snapshots" in note and "not trained yet" not in note, note
    assert client.post("/api/train/reset", json={}).status_code == 200
    note = client.post("/api/landscape", json={"grid": 5}).json()["note"]
    assert "not trained yet" in note and "model file" not in note, note


def test_slow_maps_never_hold_up_the_other_requests(client, monkeypatch):
    """Maps in flight take one thread of their own: another map is refused at once (503), and
    /api/network, /api/evaluate and clicks on the map answer meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    release, started = threading.Event(), threading.Event()
    real = client.lab.landscape

    def slow_landscape(*args):
        started.set()
        release.wait(30)
        return real(*args)

    monkeypatch.setattr(client.lab, "landscape", slow_landscape)
    with ThreadPoolExecutor(12) as ex:
        try:
            first = ex.submit(client.post, "/api/landscape", json={"grid": 5})
            assert started.wait(10)
            others = [ex.submit(client.post, "/api/landscape", json={"grid": 5}) for _ in range(10)]
            refused = [f.result(timeout=10) for f in others]
            assert all(r.status_code == 503 and "busy drawing another map" in r.json()["error"] for r in refused)
            t = time.monotonic()
            assert client.get("/api/network").status_code == 200
            assert client.get("/api/evaluate").status_code == 200
            assert client.post("/api/landscape/point", json={"alpha": 0, "beta": 0}).status_code == 200
            assert time.monotonic() - t < 10  # none waited for the map (released only below)
            assert not first.done()
        finally:
            release.set()
        assert first.result(timeout=30).status_code == 200


def test_a_convolutional_model_is_refused_with_the_reason(client, models):
    net = Network.create(NetworkConfig(layers=(784, 8, 10), features=("conv:2:5", "pool:2"), activation="relu"))
    save_model(models[0] / "conv.safetensors", net)
    try:
        assert client.post("/api/models/load", json={"name": "conv"}).status_code == 200
        for path, body in (("/api/landscape", {}), ("/api/landscape/point", {"alpha": 0, "beta": 0})):
            r = client.post(path, json=body)
            error = r.json()["error"]
            assert r.status_code == 400 and "needs a fully connected network" in error, r.text
            assert "--" not in error and "interpolate" not in error  # the page has no flags or commands
    finally:
        (models[0] / "conv.safetensors").unlink()


def test_auto_directions_fall_back_to_random_when_the_path_is_a_line(models):
    _, net, snapshots = models
    sd = slice_directions(net, snapshots[:1], "auto", seed=5)  # the initial weights and the final: two points
    assert sd.kind == "random" and sd.extent == (1.0, 1.0) and "at least 3 snapshots" in sd.note
    again = filter_normalized_direction(net, np.random.default_rng(5))
    assert np.array_equal(sd.d1.vector(), again.vector())  # the same seed, the same directions


# --- in a browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(models, bar_digits, serve_app):
    with serve_app(create_app(models[0], dataset=bar_digits)) as url:  # browser, shots: tests/conftest.py
        yield url


def _open(browser, server, **context):
    ctx = browser.new_context(bypass_csp=True, **context)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server)
    pg.wait_for_selector("body[data-ready='1']", timeout=15_000)
    return ctx, pg, errors


COLOURS = """() => {  // distinct colours among the canvas's pixels, and its size on the page
  const c = document.getElementById('landscape-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  const r = c.getBoundingClientRect();
  return {colours: seen.size, width: r.width, height: r.height};
}"""


def _draw_and_click(pg, fx: float, fy: float) -> dict:
    pg.locator("#landscape").scroll_into_view_if_needed()
    assert pg.locator("#landscape-canvas").get_attribute("data-grid") == "0"
    assert "Draw the landscape" in pg.get_attribute("#landscape-canvas", "data-placeholder")  # words, not a black square
    assert pg.evaluate(COLOURS)["colours"] > 1
    pg.click("#landscape-draw")
    _wait_for(pg, "#landscape-canvas:not([data-grid='0'])")
    drawn = pg.evaluate(COLOURS)
    _click_map(pg, fx, fy)
    _wait_for(pg, "#landscape-point:not([data-cost=''])")
    return drawn


def _click_map(pg, fx: float, fy: float) -> None:
    """A click at (fx, fy) of the map, placed by Playwright when the map stands still: results
    arriving above it (the evaluation, the playground) may move it after it is measured."""
    canvas = pg.locator("#landscape-canvas")
    box = canvas.bounding_box()
    canvas.click(position={"x": fx * box["width"], "y": fy * box["height"]})


def _wait_for(pg, selector: str) -> None:
    """Wait for ``selector``; on a timeout, fail with what the page shows instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        pg.wait_for_selector(selector, timeout=20_000)
    except PlaywrightTimeout:
        seen = pg.evaluate("""() => ({toast: document.getElementById('toast').hidden ? null : document.getElementById('toast').textContent,
            grid: document.getElementById('landscape-canvas').dataset.grid,
            summary: document.getElementById('landscape-summary').textContent,
            point: document.getElementById('landscape-point').textContent})""")
        pytest.fail(f"{selector} did not appear in 20 s; the page shows {seen}")


def test_the_landscape_view_draws_the_slice_and_shows_a_clicked_point(browser, server, shots):
    ctx, pg, errors = _open(browser, server, viewport={"width": 1280, "height": 900})
    try:
        drawn = _draw_and_click(pg, 0.3, 0.7)
        assert drawn["width"] > 200 and drawn["height"] > 200 and drawn["colours"] > 20, drawn
        assert pg.locator("#landscape-canvas").get_attribute("data-grid") == "31"
        assert "principal directions of the training path" in pg.inner_text("#landscape-note")
        assert "cost at the trained weights" in pg.inner_text("#landscape-summary")
        # the colours are ranks: the legend says so, under a colour bar with the costs
        assert "rank, 16 bands of equal area" in pg.inner_text("#landscape-colors")
        assert pg.locator("#landscape-colorbar").is_visible()
        legend = pg.inner_text("#landscape-legend")
        assert "the point you clicked" in legend and "the trained weights" in legend and "training path" in legend
        assert "Euclidean norm of the weight change" in pg.inner_text("#landscape-point")
        assert "e-" not in pg.inner_text("#landscape-summary")  # no 1.137e-13 for a zero
        assert pg.locator("#toast").is_hidden(), pg.inner_text("#toast")  # no error on the page
        cost = float(pg.inner_text(".landscape-cost"))
        assert cost > 0 and float(pg.get_attribute("#landscape-point", "data-cost")) == pytest.approx(cost, rel=1e-3)
        assert pg.inner_text(".landscape-accuracy").endswith("%")
        figures = pg.locator("#landscape-digits figure")
        assert figures.count() == 8
        captions = [figures.nth(k).inner_text() for k in range(8)]
        assert all(c.startswith("→ ") for c in captions)
        wrong = pg.locator("#landscape-digits figure.wrong")
        assert all("✗" in wrong.nth(k).inner_text() for k in range(wrong.count()))
        # the thumbnails are drawn: a bar digit has bright pixels
        bright = pg.evaluate("""() => { const c = document.querySelector('#landscape-digits canvas');
            const d = c.getContext('2d').getImageData(0, 0, 28, 28).data; let m = 0;
            for (let i = 0; i < d.length; i += 4) m = Math.max(m, d[i]); return m; }""")
        assert bright == 255
        pg.locator(".landscape-card").screenshot(path=str(shots / "landscape.png"))
        # the trained weights themselves: the point in the middle is the model's own cost
        _click_map(pg, 0.5, 0.5)
        pg.wait_for_function("() => document.querySelector('#landscape-point dd').textContent.includes('α 0')",
                             timeout=20_000)
    finally:
        ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def test_the_landscape_view_fits_a_phone(browser, server, shots):
    ctx, pg, errors = _open(browser, server, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                            has_touch=True, is_mobile=True)
    try:
        pg.select_option("#landscape-directions", "random")
        pg.select_option("#landscape-grid", "21")
        drawn = _draw_and_click(pg, 0.5, 0.2)
        assert 250 < drawn["width"] <= 390 and drawn["height"] == pytest.approx(drawn["width"], abs=1)
        assert drawn["colours"] > 20
        assert "Two random directions" in pg.inner_text("#landscape-note")
        assert pg.locator("#landscape-digits figure").count() == 8
        overflow = pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than the phone"
        for sel in ("#landscape-canvas", "#landscape-digits", "#landscape-draw", "#landscape-directions"):
            b = pg.locator(sel).bounding_box()
            assert b["x"] >= 0 and b["x"] + b["width"] <= 390 + 0.5, (sel, b)
        # nothing of the form sticks out of its card (the directions' long options did)
        out = pg.evaluate("""() => { const card = document.querySelector('.landscape-card').getBoundingClientRect();
            return [...document.querySelectorAll('#landscape-form *, #landscape-colorbar, #landscape-legend')]
              .filter((e) => e.getClientRects().length)
              .map((e) => [e.id || e.tagName, e.getBoundingClientRect().left - card.left, card.right - e.getBoundingClientRect().right])
              .filter(([, l, r]) => l < -0.5 || r < -0.5); }""")
        assert out == [], f"sticking out of the card (left, right margins): {out}"
        pg.locator(".landscape-card").screenshot(path=str(shots / "landscape-phone.png"))
    finally:
        ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def test_a_flat_map_says_so_and_prints_rounding_errors_as_zero(browser, server, shots):
    """A slice where the cost is the same everywhere (an untrained or dead network) gets a
    remark, and a lowest point at 1.137e-13 reads 0."""
    import json

    ctx, pg, errors = _open(browser, server, viewport={"width": 1280, "height": 900})

    def flatten(route):
        d = route.fetch().json()
        n = len(d["alphas"])
        d["cost"] = [[0.5] * n for _ in range(n)]
        d["lowest"] = {"alpha": d["alphas"][-1], "beta": 1.137e-13, "cost": 0.5}
        d["center_cost"] = 0.5
        route.fulfill(status=200, content_type="application/json", body=json.dumps(d))

    try:
        pg.route("**/api/landscape", flatten)
        pg.locator("#landscape").scroll_into_view_if_needed()
        pg.click("#landscape-draw")
        _wait_for(pg, "#landscape-canvas:not([data-grid='0'])")
        summary = pg.inner_text("#landscape-summary")
        assert "the same everywhere on this slice: did the network learn?" in summary, summary
        assert "β 0." in summary and "e-13" not in summary, summary
        assert "0.5 everywhere" in pg.inner_text("#landscape-colors")
    finally:
        ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def _load(server: str, name: str) -> None:
    import json
    import urllib.request

    req = urllib.request.Request(server + "api/models/load", data=json.dumps({"name": name}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        assert r.status == 200


def test_a_map_that_arrives_after_a_model_switch_is_not_shown(browser, server, shots):
    """The map is computed for one model; the model changes before the answer reaches the page:
    the page does not show the old model's map as the new one's."""
    ctx, pg, errors = _open(browser, server, viewport={"width": 1280, "height": 900})

    def switch_then_answer(route):
        answer = route.fetch()  # the map of "bars", computed
        _load(server, "flat")  # another model, before the page sees the map
        route.fulfill(response=answer)

    try:
        pg.route("**/api/landscape", switch_then_answer)
        pg.locator("#landscape").scroll_into_view_if_needed()
        pg.click("#landscape-draw")
        pg.wait_for_function("() => document.getElementById('model-select').value === 'flat'", timeout=20_000)
        pg.wait_for_timeout(500)
        assert pg.get_attribute("#landscape-canvas", "data-grid") == "0"
        assert "draw" in pg.get_attribute("#landscape-canvas", "data-placeholder")
    finally:
        _load(server, "bars")
        ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def test_switching_models_clears_the_map(browser, server, shots):
    """An old map's points would mix two models: a model switch clears the map, the clicked
    point and its digits, and the canvas says to draw again. (Runs last: it changes the model.)"""
    ctx, pg, errors = _open(browser, server, viewport={"width": 1280, "height": 900})
    try:
        _draw_and_click(pg, 0.4, 0.4)
        assert pg.locator("#landscape-digits figure").count() == 8
        pg.select_option("#model-select", "flat")
        pg.wait_for_selector("#landscape-canvas[data-grid='0']", timeout=20_000)
        assert "draw its landscape" in pg.get_attribute("#landscape-canvas", "data-placeholder")
        assert pg.inner_text("#landscape-point") == "" and pg.locator("#landscape-digits figure").count() == 0
        assert pg.inner_text("#landscape-summary") == "" and not pg.locator("#landscape-colorbar").is_visible()
        pg.locator(".landscape-card").screenshot(path=str(shots / "landscape-cleared.png"))
        pg.click("#landscape-draw")  # the new model's map: random directions, and why
        _wait_for(pg, "#landscape-canvas:not([data-grid='0'])")
        assert "its model file holds no snapshots" in pg.inner_text("#landscape-note")
    finally:
        pg.evaluate("() => fetch('/api/models/load', {method: 'POST', headers: {'content-type': 'application/json'}, "
                    "body: JSON.stringify({name: 'bars'})}).then((r) => r.status)")
        ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
