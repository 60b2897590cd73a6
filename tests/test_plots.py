"""Tests for digitnet.plots: every figure builds from small arrays, is labelled, and saves as a PNG."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet import plots
from digitnet.errors import ModelFileError
from digitnet.explain import analyse_gradient
from digitnet.nn.network import Network
from digitnet.training.train import EpochRecord, History

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(n_epochs=3, batches=20, base=0.5):
    h = History(initial_cost=base * 2, initial_test_accuracy=0.1)
    for e in range(1, n_epochs + 1):
        h.epochs.append(EpochRecord(e, base / e, 0.5 + 0.1 * e, 0.45 + 0.1 * e, None, 0.1, 3.0))
    h.batch_costs = list(np.linspace(base * 2, base / n_epochs, n_epochs * batches))
    return h


def _texts(fig) -> str:
    """Every title, label and text of a figure, joined: what a reader sees."""
    parts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and callable(a.get_text))]
    return " ".join(p for p in parts if isinstance(p, str))


def _check(fig, *phrases):
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    text = _texts(fig)
    for p in phrases:
        assert p in text, f"{p!r} not in the figure's text"
    axes = [a for a in fig.get_axes() if a.get_visible()]
    assert axes and any(a.get_title() for a in axes)


def test_mosaic_tiles_images_with_blank_gaps():
    imgs = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)
    m = plots.mosaic(imgs, cols=3)
    assert m.shape == (2 * 2 + 1, 3 * 3 + 2)
    np.testing.assert_array_equal(m[0:2, 0:3], imgs[0])
    np.testing.assert_array_equal(m[3:5, 4:7], imgs[4])
    assert np.isnan(m[2]).all() and np.isnan(m[:, 3]).all()
    assert np.isnan(m[3:5, 8:11]).all()  # the sixth tile is empty


def test_smooth_is_a_trailing_moving_average():
    np.testing.assert_allclose(plots._smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_array_equal(plots._smooth(np.array([1.0, 2.0]), 1), [1.0, 2.0])


def test_save_figure_writes_a_png_atomically(tmp_path):
    fig = plots.training_figure(_history())
    path = plots.save_figure(fig, tmp_path / "t.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]  # no temporary file left behind
    with pytest.raises(ModelFileError, match="directory .* does not exist"):
        plots.save_figure(fig, tmp_path / "missing" / "t.png")


def test_training_figure():
    fig = plots.training_figure(_history(), title="Training 784-16-10")
    _check(fig, "Training 784-16-10", "epoch", "cost", "test images", "After 3 epochs")
    ax_cost = fig.get_axes()[0]
    assert len(ax_cost.lines) == 3  # raw mini-batch costs, their moving average, the per-epoch cost


def test_weights_figure_with_and_without_initial():
    rng = np.random.default_rng(0)
    learned, initial = rng.standard_normal((16, 28, 28)), 0.1 * rng.standard_normal((16, 28, 28))
    fig = plots.weights_figure(learned, initial, initial_source="stored in the model file")
    _check(fig, "Learned weights", "Initial weights", "How far each weight moved", "stored in the model file",
           "16 neurons' 784 weights")
    assert len([a for a in fig.get_axes() if a.get_label() == "<colorbar>"]) == 3
    fig1 = plots.weights_figure(learned[:4])
    _check(fig1, "Learned weights")
    assert "Initial weights" not in _texts(fig1)


def test_errors_figure():
    conf = np.diag([50, 40, 30]) + np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0]])
    imgs = np.zeros((3, 28, 28), np.uint8)
    fig = plots.errors_figure(conf, imgs, np.array([0, 0, 1]), np.array([1, 1, 0]), np.array([0.9, 0.8, 0.7]),
                              classes=("a", "b", "c"))
    _check(fig, "Confusion matrix: 3 of 123 wrong", "true a, said b", "output 0.900", "predicted digit", "true digit")
    _check(plots.errors_figure(np.eye(3, dtype=int), imgs[:0], [], [], [], classes=("a", "b", "c")), "No mistakes")


def test_gradient_figure():
    net = Network.create((16, 5, 3), seed=0)
    x = np.random.default_rng(0).random((4, 16)).astype(np.float32)
    rep = analyse_gradient(net.gradient(x, np.array([0, 1, 2, 0])), top_k=5, label="Average over 4", n_examples=4)
    fig = plots.gradient_figure([rep, rep])
    _check(fig, "Average over 4", "top 5 components carry", "first layer |dC/dw|", "cumulative share", "w1\n(80)")


def test_activations_figure():
    net = Network.create((16, 6, 4), seed=0)
    x = np.linspace(0, 1, 16)
    fw = net.forward(x[None, :])
    layers = [a[0] for a in fw.activations[1:]]
    fig = plots.activations_figure(x, layers, net.weights, classes=("w", "x", "y", "z"), title="Activations for t")
    k = int(np.argmax(layers[-1]))
    _check(fig, "Activations for t", "hidden layer 1", "output", f"reads this input as {'wxyz'[k]}", "16\ninputs")


def test_noise_figure():
    rng = np.random.default_rng(0)
    noise = rng.random((20, 784))
    out = rng.random((20, 10))
    fig = plots.noise_figure(noise, out, rng.random((30, 10)))
    _check(fig, "Random noise", "confidence", "What it calls the noise", "20 images")


def test_dream_figure():
    rng = np.random.default_rng(0)
    fig = plots.dream_figure(rng.random((3, 784)), [0, 4, 9], np.array([0.1, 0.2, 0.3]), np.array([0.9, 0.8, 0.95]),
                             rng.random((11, 3)), rng.random((10, 784)), np.array([0.1, 0.2, 0.3]))
    _check(fig, "4: 0.20 -> 0.80", "average 9", "r = 0.30", "gradient-ascent step", "rose from 0.20 to 0.88")


def test_shuffled_figure():
    normal, shuffled = _history(), _history(base=0.9)
    fig = plots.shuffled_figure(normal, shuffled, 0.1, n_train=300)
    _check(fig, "300 training images", "chance (10%)", "shuffled labels: test accuracy", "true labels: training accuracy")


# --- issue 16: one colour convention, legible colour bars, legends, captions that fit ---------


def _overlapping_tick_labels(fig) -> list[str]:
    """Horizontal colour-bar tick labels that run into their neighbour, after drawing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    clashes = []
    for ax in fig.get_axes():
        if ax.get_label() != "<colorbar>":
            continue
        labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        boxes = sorted((t.get_window_extent(renderer).x0, t.get_window_extent(renderer).x1, t.get_text())
                       for t in labels)
        for (a0, a1, ta), (b0, b1, tb) in zip(boxes, boxes[1:]):
            if b0 < a1 + 2:  # fewer than 2 pixels apart
                clashes.append(f"{ta} / {tb}")
    return clashes


def test_weights_colour_bar_labels_do_not_overlap():
    rng = np.random.default_rng(0)
    learned = 0.5 * rng.standard_normal((16, 28, 28))
    initial = 0.035 * rng.standard_normal((16, 28, 28))  # the video's initial weights: +-0.1, many decimals
    fig = plots.weights_figure(learned, initial, initial_source="stored in the model file")
    assert _overlapping_tick_labels(fig) == []


def test_weights_figure_says_blue_is_positive_and_draws_it_so():
    from matplotlib import colormaps

    fig = plots.weights_figure(np.ones((4, 28, 28)))
    text = _texts(fig)
    assert "blue +, red -" in text and "Blue pixels push the neuron's weighted sum up" in text
    cmap = colormaps[plots.DIVERGING]
    r, g, b, _ = cmap(1.0)  # the colour of the largest positive weight
    assert b > r
    r, g, b, _ = cmap(0.0)
    assert r > b


def test_activation_lines_are_blue_for_positive_weights():
    from matplotlib.collections import LineCollection

    x = np.linspace(0, 1, 16)
    w_hidden = np.ones((3, 16))
    w_out = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])  # output 0: all positive, output 1: all negative
    fig = plots.activations_figure(x, [np.full(3, 0.5), np.array([0.7, 0.2])], [w_hidden, w_out],
                                   classes=("p", "n"))
    ax = fig.get_axes()[1]
    weight_lines = [c for c in ax.collections if isinstance(c, LineCollection)][1]
    colors = weight_lines.get_colors()  # segments in order (j, k): output 0 first
    assert all(c[2] > c[0] for c in colors[:3])  # positive: blue
    assert all(c[0] > c[2] for c in colors[3:])  # negative: red
    assert "blue +, red -" in _texts(fig)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["positive weight (blue)", "negative weight (red)"]


def test_activations_figure_of_a_conv_net_draws_its_dense_layers():
    fig = plots.activations_figure(np.linspace(0, 1, 784), [np.full(12, 0.5), np.linspace(0, 1, 10)],
                                   [np.ones((12, 288)), np.ones((10, 12))],
                                   features="288 features from conv:2:5, pool:2")
    _check(fig, "288 features\nfrom conv:2:5, pool:2", "hidden layer 1", "turn the input into 288 features")


def test_gradient_figure_has_a_weight_and_bias_legend_not_in_the_sign_colours():
    net = Network.create((16, 5, 3), seed=0)
    x = np.random.default_rng(0).random((4, 16)).astype(np.float32)
    rep = analyse_gradient(net.gradient(x, np.array([0, 1, 2, 0])), top_k=5, label="Average over 4", n_examples=4)
    fig = plots.gradient_figure([rep])
    legends = [[t.get_text() for t in a.get_legend().get_texts()] for a in fig.get_axes() if a.get_legend()]
    assert sum(leg == ["weight (w)", "bias (b)"] for leg in legends) == 2  # the dots and the bars
    assert {plots.C_WEIGHT, plots.C_BIAS}.isdisjoint({"tab:red", "tab:blue", "red", "blue"})
    assert "one image per neuron" in _texts(fig)
    assert "one image per convolution filter" in _texts(plots.gradient_figure([rep], filters=True))


def test_conv_filters_get_their_own_caption():
    rng = np.random.default_rng(0)
    fig = plots.weights_figure(rng.standard_normal((8, 5, 5)), filters=True, title="First-layer filters")
    text = _texts(fig)
    assert "blotchy" not in text and "8 convolution filters' 25 weights as a 5x5 image" in text
    assert "blotchy" in _texts(plots.weights_figure(rng.standard_normal((4, 28, 28))))


def test_surface_figure_leaves_no_wide_blank_band(tmp_path):
    from PIL import Image

    from digitnet.playground import descend_many, plot_descent, random_starts, save_png

    run = descend_many("x^4 - 3x^2 + y^2", random_starts(np.random.default_rng(0), 20, 2, (-2, 2)))
    path = save_png(plot_descent("x^4 - 3x^2 + y^2", run, surface=True), tmp_path / "s.png")
    a = np.asarray(Image.open(path).convert("L"))
    blank_columns = (a[: int(0.9 * a.shape[0])] >= 250).all(axis=0).mean()
    assert blank_columns < 0.15  # it was 0.195: a band between the map and the surface


def test_red_and_blue_mean_a_sign_only_in_the_activations_picture():
    # The winning output is highlighted in a colour that is neither the positive blue nor the negative red.
    from matplotlib.colors import to_rgb

    net = Network.create((16, 6, 4), seed=0)
    x = np.linspace(0, 1, 16)
    layers = [a[0] for a in net.forward(x[None, :]).activations[1:]]
    fig = plots.activations_figure(x, layers, net.weights, classes=("w", "x", "y", "z"))
    colours = {tuple(round(c, 2) for c in p.get_facecolor()[:3]) for ax in fig.axes for p in ax.patches}
    assert colours, "the output bars are drawn"
    for sign in (plots.C_POSITIVE, plots.C_NEGATIVE, to_rgb("firebrick"), to_rgb("tab:red")):
        assert tuple(round(c, 2) for c in to_rgb(sign)) not in colours


def test_interpolation_caption_says_no_barrier_in_words():
    """The caption used to say "rises at most 0 above the straight chord" for a convex line."""
    from digitnet.plots import interpolation_figure

    alphas = np.linspace(0, 1, 11)
    cost = 0.5 - 0.4 * alphas  # exactly on the straight line: no barrier at all
    fig = interpolation_figure(alphas, cost, np.full(11, 0.9), labels=("A", "B"), title="t")
    words = " ".join(t.get_text() for t in fig.texts)
    assert "never rises above the straight line" in words and "at most 0 " not in words
