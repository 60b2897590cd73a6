"""Short reprs and rich notebook displays: what a notebook cell shows for digitnet's objects.

repr() is a line or two with the key numbers (a Network's was 122 lines of arrays);
_repr_html_ is a small table; _repr_png_ is a real PNG where a picture says more. None of it
imports matplotlib until a picture is asked for.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import digitnet as dn
from digitnet.playground import descend, descend_many
from digitnet.training.history import EpochRecord, History

PNG = b"\x89PNG\r\n\x1a\n"


def _short(text: str, chars: int = 200) -> None:
    assert len(text) <= chars and text.count("\n") <= 1, text


@pytest.fixture(scope="module")
def trained():
    mnist = dn.load_mnist()
    net = dn.Network.create((784, 16, 16, 10), seed=0)
    history = dn.train(net, mnist.train.subset(1000), dn.TrainConfig(epochs=2, engine="numpy"),
                       test=mnist.test.subset(1000))
    return net, history, dn.evaluate(net, mnist.test.subset(1000))


def test_network_repr_is_one_line_with_layers_activation_and_parameters():
    net = dn.Network.create((784, 16, 16, 10))
    text = repr(net)
    _short(text)
    assert text == ("Network(784-16-16-10, sigmoid hidden, sigmoid output, quadratic cost, 13,002 parameters, "
                    "float32)")
    assert "array" not in text
    html = net._repr_html_()
    assert html.count("<tr>") == 1 + 3 and "12,560" in html and "16 x 784" in html and "13,002" in html
    conv = dn.Network.create((784, 32, 10), features=("conv:8:5", "pool:2"), preprocess="deskew", activation="relu")
    _short(repr(conv))
    assert "conv:8:5,pool:2" in repr(conv) and "relu" in repr(conv) and "deskewed" in repr(conv)
    assert f"{conv.n_params:,}" in repr(conv)


def test_history_repr_html_and_cost_curve(trained):
    _, history, _ = trained
    last = history.epochs[-1]
    text = repr(history)
    _short(text)
    assert text.startswith("History(2 epochs: final cost ")
    assert f"train {last.train_accuracy:.1%}" in text and f"test {last.test_accuracy:.1%}" in text
    html = history._repr_html_()
    assert html.count("<tr>") == 1 + 1 + 2  # header, the start, two epochs
    assert f"{100 * last.test_accuracy:.1f}%" in html
    assert history._repr_png_().startswith(PNG)
    assert "<img src='data:image/png;base64," in html  # a notebook shows the HTML: the curve is in it too


def test_long_and_empty_histories():
    recs = [EpochRecord(e, 1.0 / e, 0.5, None, None, 0.1, 3.0) for e in range(1, 101)]
    h = History(recs, stopped_epoch=100)
    _short(repr(h))
    assert "100 epochs" in repr(h) and "stopped early after epoch 100" in repr(h)
    assert h._repr_html_().count("<tr>") == 1 + 21  # the first 10, a gap row, the last 10
    assert repr(History()) == "History(no epochs)" and History()._repr_png_() is None
    assert "<img" not in History()._repr_html_()


def test_evaluation_repr_and_table(trained):
    _, _, ev = trained
    text = repr(ev)
    _short(text)
    assert text.startswith(f"Evaluation(accuracy {ev.accuracy:.2%}: {int(np.trace(ev.confusion)):,} of 1,000 right")
    worst = int(np.argmin(ev.per_class))
    assert f"weakest class {worst}: {ev.per_class[worst]:.1%}" in text
    html = ev._repr_html_()
    assert html.count("<tr>") == 1 + 10 and "most often mistaken for" in html


def test_descent_runs_repr_table_and_picture():
    run = descend("x^2 + 3*y^2", [1, 1])
    text = repr(run)
    _short(text)
    assert text.startswith("Descent(C = x^2 + 3*y^2: (1, 1) -> (") and "converged at a minimum" in text
    assert f"{run.steps:,} steps" in text
    html = run._repr_html_()
    assert "<table>" in html and "Stopped: converged" in html and html.count("<tr>") == 3
    assert "data:image/png;base64," in html
    assert run._repr_png_().startswith(PNG)
    assert "oscillating" in repr(descend("x^2", 1.0, eta=1.0))
    many = descend_many("(x^2 - 1)^2 + y^2", np.array([[-2.0, 1.0], [2.0, -1.0], [1.5, 0.5]]))
    _short(repr(many))
    assert "3 starts (3 converged), 2 distinct minima" in repr(many)
    assert many._repr_html_().count("<tr>") == 1 + 2
    assert many._repr_png_().startswith(PNG)


def test_figures_show_themselves_as_png():
    from digitnet.plots import weights_figure

    assert weights_figure(np.zeros((4, 28, 28)))._repr_png_().startswith(PNG)


def test_reprs_do_not_import_matplotlib():
    code = ("import sys, numpy as np, digitnet as dn\n"
            "from digitnet.playground import descend\n"
            "net = dn.Network.create((784, 16, 10)); repr(net); net._repr_html_()\n"
            "run = descend('x^2', 1.0); repr(run)\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
