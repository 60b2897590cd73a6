"""Figures for looking inside the network, drawn with matplotlib from arrays and History.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot, no global
state, never shown) and returns it; :func:`save_figure` writes it as a PNG atomically.
matplotlib is imported inside the functions so that ``import digitnet`` stays fast.
Each figure has a title, labelled axes, colour bars where colour carries a number, and a
caption line that says what to look at.

Input images are drawn as ink on paper (dark = 1, white = 0); weights and gradients that
can be negative use a diverging map centred on 0 (blue positive, red negative, as on
the web page).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from digitnet.files import write_figure

INK = "gray_r"  # input pixels: 0 white paper, 1 black ink
C_WEIGHT, C_BIAS = "0.35", "tab:orange"  # weights vs biases in the gradient picture (not a sign: red/blue is)
# One colour convention for signs everywhere (colour bars, lines, captions, help texts):
# blue positive, red negative.
DIVERGING = "RdBu"  # signed values: red negative, white 0, blue positive (as on the web page)
C_POSITIVE, C_NEGATIVE = (0.13, 0.40, 0.67), (0.70, 0.09, 0.17)  # the two ends of RdBu
C_HIGHLIGHT = "#d9822b"  # the answer, a count: orange, so that red and blue only ever mean a sign
MAGNITUDE = "viridis"  # non-negative magnitudes
C_TRAIN, C_TEST, C_VAL = "tab:blue", "tab:orange", "tab:green"


# --- helpers -----------------------------------------------------------------------
def _figure(width: float, height: float):
    from digitnet._figure import Figure  # a matplotlib Figure that shows itself in a notebook

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _caption(fig, text: str) -> None:
    """A grey caption under the axes, wrapped to the figure's width; the layout keeps room for it."""
    import textwrap

    width = max(40, int(fig.get_figwidth() * 100 / 7.0))  # about 7 pixels per character at 9.5 pt
    text = "\n".join(textwrap.fill(part, width) for part in text.split("\n"))
    lines = text.count("\n") + 1
    h = fig.get_figheight()
    bottom = min(0.3, (0.22 * lines + 0.12) / h)
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
    fig.text(0.01, bottom * 0.45, text, ha="left", va="center", fontsize=9.5, color="0.25")


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically (temporary file, then rename)."""
    return write_figure(fig, path, dpi=dpi, facecolor="white")


def mosaic(images: np.ndarray, cols: int | None = None, gap: int = 1) -> np.ndarray:
    """Tile images (n, h, w) into one array, ``gap`` NaN pixels between them (drawn blank).

    Returns (rows * (h + gap) - gap, cols * (w + gap) - gap) float64.
    """
    images = np.asarray(images, dtype=np.float64)
    n, h, w = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = img
    return out


def _cmap(name: str, bad: str = "white"):
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=bad)


def _symmetric_limit(*arrays: np.ndarray, q: float = 99.5) -> float:
    """A colour limit m for a diverging map on [-m, m]: the q-th percentile of |values|,
    so that a handful of outliers does not wash out everything else."""
    v = np.concatenate([np.abs(np.asarray(a, np.float64)).ravel() for a in arrays if a is not None])
    v = v[np.isfinite(v)]
    m = float(np.percentile(v, q)) if v.size else 1.0
    return m if m > 0 else 1.0


def _mosaic_panel(ax, images: np.ndarray, cmap: str, vmin: float, vmax: float, title: str, number: bool = True,
                  cols: int | None = None):
    """Draw a mosaic of images on ``ax``, neuron numbers in the corners; returns the image artist."""
    n, h, w = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    im = ax.imshow(mosaic(images, cols), cmap=_cmap(cmap), vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if number and n <= 64:
        for i in range(n):
            r, c = divmod(i, cols)
            ax.text(c * (w + 1) + 0.5, r * (h + 1) + 0.5, str(i), fontsize=7, color="0.15", ha="left", va="top")
    return im


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` values (shorter at the start), same length."""
    values = np.asarray(values, np.float64)
    if window <= 1 or values.size == 0:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _pct_axis(ax) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0))


# --- training ----------------------------------------------------------------------
def training_figure(history, title: str = "Training", smooth_window: int | None = None):
    """The cost and the accuracies per epoch, and the mini-batch cost smoothed.

    ``history`` is a :class:`digitnet.training.train.History`. The mini-batch costs are smoothed
    with a moving average over ``smooth_window`` batches (default: a tenth of an epoch).
    """
    fig = _figure(12, 4.8)
    ax_cost, ax_acc = fig.subplots(1, 2)
    epochs = np.array([e.epoch for e in history.epochs], dtype=float)
    n_ep = len(epochs)
    batch = np.asarray(history.batch_costs, np.float64)
    window = 1
    if batch.size and n_ep:
        per_epoch = batch.size / n_ep
        window = smooth_window or max(1, int(per_epoch // 10))
        xb = np.arange(1, batch.size + 1) / per_epoch
        if batch.size <= 3000:  # beyond that the raw costs are a solid grey band that hides the trend
            ax_cost.plot(xb, batch, color="0.8", lw=0.5, label="mini-batch cost", rasterized=True)
        ax_cost.plot(xb, _smooth(batch, window), color=C_TRAIN, lw=1.2, alpha=0.8,
                     label=f"mini-batch cost, moving average of {window} batches")
    ex, ey = list(epochs), [e.cost for e in history.epochs]
    if history.initial_cost is not None:
        ex, ey = [0.0] + ex, [history.initial_cost] + ey
    ax_cost.plot(ex, ey, "o-", color="black", ms=4, lw=1.5, label="average cost over all training images")
    ax_cost.set_xlabel("epoch (passes over the training set)")
    ax_cost.set_ylabel("cost")
    positive = [v for v in ey if v and v > 0] + list(_smooth(batch, window)[batch > 0])
    if positive and max(positive) / min(positive) > 20:
        ax_cost.set_yscale("log")
    ax_cost.set_title("Cost falls as gradient descent steps downhill")
    ax_cost.legend(fontsize=8)
    ax_cost.grid(alpha=0.3)

    def series(attr, initial=None):
        xs, ys = [], []
        if initial is not None:
            xs.append(0.0)
            ys.append(initial)
        for e in history.epochs:
            v = getattr(e, attr)
            if v is not None:
                xs.append(float(e.epoch))
                ys.append(v)
        return xs, ys

    for attr, label, color, initial in (
        ("train_accuracy", "training images", C_TRAIN, None),
        ("test_accuracy", "test images", C_TEST, history.initial_test_accuracy),
        ("validation_accuracy", "validation images", C_VAL, None),
    ):
        xs, ys = series(attr, initial)
        if ys:
            ax_acc.plot(xs, ys, "o-", color=color, ms=4, label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (share classified right)")
    _pct_axis(ax_acc)
    ax_acc.set_title("Accuracy per epoch")
    ax_acc.grid(alpha=0.3)
    if ax_acc.lines:
        ax_acc.legend(fontsize=8)
    for ax in (ax_cost, ax_acc):
        ax.set_xlim(left=0)
    fig.suptitle(title, fontweight="bold")
    last = history.epochs[-1] if history.epochs else None
    if last is not None:
        test = f", test accuracy {last.test_accuracy:.2%}" if last.test_accuracy is not None else ""
        cap = (f"After {n_ep} epochs: average cost {last.cost:.4f}, training accuracy {last.train_accuracy:.2%}{test}. "
               "Each mini-batch's cost is noisy; its moving average and the full-set cost fall together.")
    else:
        cap = "No epochs recorded."
    _caption(fig, cap)
    return fig


# --- weights -----------------------------------------------------------------------
def weights_figure(learned: np.ndarray, initial: np.ndarray | None = None, *, title: str = "First-layer weights",
                   initial_source: str = "", caption: str | None = None, filters: bool = False):
    """Each first-layer neuron's weights as an image, beside the initial weights and the change.

    ``learned`` and ``initial`` are (n_neurons, h, w). Each panel has its own colour scale
    centred on 0 (the initial weights are often far smaller than the learned ones); the
    colour bars give the numbers. ``filters``: the images are a convolutional layer's
    filters (k x k), not dense neurons' 28x28 weights; the titles and caption say so.
    """
    n = learned.shape[0]
    cols = max(1, math.ceil(math.sqrt(n)))
    panels = [(learned, "Learned weights (after training)", "weight")]
    if initial is not None:
        panels.append((initial, "Initial weights (before training)" + (f"\n{initial_source}" if initial_source else ""),
                       "initial weight"))
        panels.append((learned - initial, "How far each weight moved\n(learned - initial)", "change in weight"))
    fig = _figure(5.2 * len(panels) + 0.6, 6.0)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    from matplotlib.ticker import MaxNLocator

    for ax, (images, name, label) in zip(axes, panels):
        m = _symmetric_limit(images)
        im = _mosaic_panel(ax, images, DIVERGING, -m, m, name, cols=cols)
        # At most 5 ticks: the initial weights' small numbers (-0.075) would run into each other.
        fig.colorbar(im, ax=ax, shrink=0.8, extend="both", label=f"{label} (blue +, red -)", location="bottom",
                     ticks=MaxNLocator(nbins=4, symmetric=True))
    side = f"{learned.shape[1]}x{learned.shape[2]}"
    if filters:
        fig.suptitle(f"{title}: each of the {n} convolution filters' {learned.shape[1] * learned.shape[2]} weights "
                     f"as a {side} image", fontweight="bold")
    else:
        fig.suptitle(f"{title}: each of the {n} neurons' {learned.shape[1] * learned.shape[2]} weights as a "
                     f"{side} image", fontweight="bold")
    if caption is None and filters:
        caption = ("Blue weights respond to ink, red to paper, at each position of the filter as it slides over "
                   "the image: each filter detects one small local pattern (an edge, a stroke end) wherever it is.")
    elif caption is None:
        caption = ("Blue pixels push the neuron's weighted sum up, red pull it down. The learned patterns are "
                   "blotchy and noisy, not the clean edges and loops one might hope for.")
    _caption(fig, caption)
    return fig


# --- errors ------------------------------------------------------------------------
def errors_figure(confusion: np.ndarray, images: np.ndarray, true: np.ndarray, predicted: np.ndarray,
                  confidence: np.ndarray, classes: Sequence[str] = tuple("0123456789"), *, n_total: int | None = None,
                  title: str = "Mistakes on the test set"):
    """The confusion matrix beside a gallery of misclassified images (most confident first).

    ``confusion`` (k, k) rows true, columns predicted; ``images`` (m, h, w) the mistakes
    to show with their ``true`` and ``predicted`` labels and ``confidence`` (m,).
    """
    from matplotlib.colors import LogNorm

    confusion = np.asarray(confusion)
    k = confusion.shape[0]
    m = len(images)
    gcols = 6 if m > 12 else max(1, min(m, 4))
    grows = max(1, math.ceil(m / gcols))
    fig = _figure(14, max(6.0, 1.45 * grows + 1.8))
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 1.05])
    ax = left.subplots()
    im = ax.imshow(np.maximum(confusion, 0.5), cmap="Blues", norm=LogNorm(vmin=0.5, vmax=max(confusion.max(), 1)))
    for i in range(k):
        for j in range(k):
            v = confusion[i, j]
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8 if k <= 10 else 6,
                    color="white" if v > confusion.max() ** 0.75 else ("0.1" if v else "0.7"))
    ax.set_xticks(range(k), classes)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    total = int(confusion.sum())
    wrong = total - int(np.trace(confusion))
    ax.set_title(f"Confusion matrix: {wrong} of {total} wrong ({wrong / max(total, 1):.2%})")
    left.colorbar(im, ax=ax, shrink=0.8, label="number of test images (log scale)")
    right.suptitle(f"The {m} most confident mistakes" if m else "No mistakes", fontsize=11)
    if m:
        axes = np.atleast_1d(right.subplots(grows, gcols)).ravel()
        for a in axes:
            a.set_axis_off()
        for i in range(m):
            a = axes[i]
            a.imshow(images[i], cmap=INK, vmin=0, vmax=255 if images.dtype == np.uint8 else 1)
            a.set_title(f"true {classes[true[i]]}, said {classes[predicted[i]]}\noutput {confidence[i]:.3f}", fontsize=8,
                        color=C_HIGHLIGHT)
            a.set_axis_on()
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(title, fontweight="bold")
    n_total = n_total if n_total is not None else total
    _caption(fig, f"Rows: the true digit; columns: the network's answer; the diagonal is right. "
                  f"Gallery: wrongly read test images, sorted by the activation of the wrong answer "
                  f"(its 'confidence'); {n_total} test images in all.")
    return fig


# --- gradient ----------------------------------------------------------------------
def _gradient_row(fig, axes, report, show_colorbar_label: str, filters: bool = False) -> None:
    from matplotlib.ticker import PercentFormatter

    ax_img, ax_strip, ax_top, ax_cum = axes
    imgs = report.first_layer_images()
    vmax = float(np.percentile(imgs, 99.5)) or float(imgs.max()) or 1.0
    im = _mosaic_panel(ax_img, imgs, MAGNITUDE, 0.0, vmax,
                       f"first layer |dC/dw|, one image per {'convolution filter' if filters else 'neuron'}")
    fig.colorbar(im, ax=ax_img, shrink=0.85, extend="max", label=show_colorbar_label)

    # Every component's magnitude, one column per layer's weights and biases.
    labels, pos = [], 0
    rng = np.random.default_rng(0)  # jitter only: fixed so the picture is the same every time
    grad = report.gradient
    ymin = np.inf
    for ls, gw, gb in zip(report.layers, grad.nabla_w, grad.nabla_b):
        for param, g, share, color in (("w", gw, ls.weight_share, C_WEIGHT), ("b", gb, ls.bias_share, C_BIAS)):
            v = np.abs(np.asarray(g, np.float64)).ravel()
            v = v[v > 0]
            if v.size:
                ymin = min(ymin, float(np.percentile(v, 0.5)))
                ax_strip.scatter(pos + rng.uniform(-0.3, 0.3, v.size), v, s=2, alpha=0.35 if v.size > 1000 else 0.7,
                                 color=color, rasterized=True, lw=0)
            labels.append(f"{param}{ls.layer + 1}\n({g.size})\n{share:.1%}")
            pos += 1
    ax_strip.set_yscale("log")
    if np.isfinite(ymin):
        top_value = max(max(ls.max_abs_w, ls.max_abs_b) for ls in report.layers)
        ax_strip.set_ylim(bottom=max(ymin, top_value * 1e-9))  # nine decades are plenty to see the spread
    ax_strip.set_xticks(range(len(labels)), labels, fontsize=8)
    ax_strip.set_xlabel("w = weights, b = biases of layer 1, 2, ...: (count), share of ||gradient||^2")
    ax_strip.set_ylabel("|dC/d parameter| (log scale)")
    ax_strip.set_title("every component's magnitude, per layer", fontsize=10)
    ax_strip.grid(alpha=0.3, axis="y")
    ax_strip.legend(handles=_weight_bias_handles(), fontsize=8, loc="lower left", framealpha=0.85)

    top = report.top[::-1]
    if top:
        ax_top.barh(range(len(top)), [c.share for c in top],
                    color=[C_BIAS if c.param == "b" else C_WEIGHT for c in top])
        ax_top.set_yticks(range(len(top)), [f"{c.name()}  {c.value:+.2g}" for c in top], fontsize=8)
    ax_top.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax_top.set_xlabel("share of the gradient's squared norm")
    ax_top.set_title(f"top {len(report.top)} components carry {report.top_share:.1%}", fontsize=10)
    ax_top.grid(alpha=0.3, axis="x")
    ax_top.legend(handles=_weight_bias_handles(), fontsize=8, loc="lower right", framealpha=0.85)

    cum = np.cumsum(report.shares_sorted)
    x = np.arange(1, cum.size + 1)
    ax_cum.plot(x, cum, color="black")
    ax_cum.set_xscale("log")
    ax_cum.yaxis.set_major_formatter(PercentFormatter(1.0))
    for frac, color in ((0.5, "tab:green"), (0.9, "tab:purple")):
        kf = report.components_for(frac)
        if kf:
            ax_cum.axvline(kf, color=color, ls="--", lw=1,
                           label=f"{kf} of {cum.size} ({kf / cum.size:.1%}) carry {frac:.0%}")
    ax_cum.set_xlabel("number of largest components (log scale)")
    ax_cum.set_ylabel("cumulative share of ||gradient||^2")
    ax_cum.set_title("a few nudges matter most", fontsize=10)
    ax_cum.legend(fontsize=8, loc="lower right")
    ax_cum.grid(alpha=0.3)


def _weight_bias_handles():
    from matplotlib.patches import Patch

    return [Patch(color=C_WEIGHT, label="weight (w)"), Patch(color=C_BIAS, label="bias (b)")]


def gradient_figure(reports: Sequence, title: str = "Which weights matter: the gradient of the cost", *,
                    filters: bool = False):
    """One row per :class:`~digitnet.explain.GradientReport` (e.g. one example, then the
    training-set average): first-layer |dC/dw| images, every component's magnitude per
    layer, the top-k components and the cumulative share of the squared norm. ``filters``:
    the first layer is convolutional (its images are filters, not neurons' 28x28 weights)."""
    reports = list(reports)
    fig = _figure(21, 5.2 * len(reports) + 0.4)
    rows = fig.subfigures(len(reports), 1, squeeze=False)[:, 0]
    for sub, rep in zip(rows, reports):
        axes = sub.subplots(1, 4, width_ratios=[1.15, 1.25, 1.0, 1.0])
        _gradient_row(sub, axes, rep, "|dC/dw|", filters=filters)
        sub.suptitle(f"{rep.label}: cost {rep.gradient.cost:.4f}, ||gradient|| = {rep.norm:.3g} over "
                     f"{rep.n_components} components", fontsize=11, fontweight="bold")
    fig.suptitle(title, fontsize=13, fontweight="bold")
    _caption(fig, "The gradient says how much the cost changes per unit nudge of each weight and bias. Its squared "
                  "components add up to ||gradient||^2; the bars and curve show how few of them carry most of it.")
    return fig


# --- activations -------------------------------------------------------------------
def activations_figure(x: np.ndarray, layers: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None,
                       classes: Sequence[str] = tuple("0123456789"), title: str = "Activations", *,
                       features: str | None = None):
    """The input image and every layer's activations as the video's columns of neurons.

    ``x`` (n_in,) the input, ``layers[l]`` (n_l,) each layer's activations (the last one
    the output), ``weights[l]`` (n_l, n_{l-1}) to draw the connections between the
    columns (omitted for the input, which would be a solid block of lines). For a network
    with convolution layers, ``layers`` are its dense layers only and ``features`` says
    what feeds the first of them (e.g. "288 features from conv:2:5, pool:2").
    """
    from matplotlib.lines import Line2D

    x = np.asarray(x, np.float64)
    side = math.isqrt(x.size)
    fig = _figure(14, 7.5)
    ax_in, ax_net, ax_out = fig.subplots(1, 3, width_ratios=[1.0, 2.6, 1.1])
    if side * side == x.size:
        ax_in.imshow(x.reshape(side, side), cmap=INK, vmin=0, vmax=1)
        ax_in.set_title(f"input: {side}x{side} = {x.size} pixels (dark = 1)")
    else:
        ax_in.imshow(x[:, None], cmap=INK, vmin=0, vmax=1, aspect="auto")
        ax_in.set_title(f"input: {x.size} values")
    ax_in.set_xticks([])
    ax_in.set_yticks([])

    n_layers = len(layers)
    pos = []
    for l, a in enumerate(layers):
        n = len(a)
        ys = np.linspace(1, 0, n) if n > 1 else np.array([0.5])
        if n < 12:  # short columns stay compact around the middle, as in the video
            ys = 0.5 + (ys - 0.5) * (n / 12)
        pos.append(ys)
    xs = np.arange(n_layers, dtype=float)
    # A fan from the input (drawn on the left) into the first column: every pixel feeds every neuron.
    fan = [[(-0.45, 0.5), (xs[0], y)] for y in pos[0]]
    from matplotlib.collections import LineCollection

    ax_net.add_collection(LineCollection(fan, colors="0.75", linewidths=0.8, zorder=1))
    fan_label = f"{x.size}\ninputs" if features is None else features.replace(" from ", "\nfrom ", 1)
    ax_net.text(-0.47, 0.5, fan_label, ha="right", va="center", fontsize=9)
    if weights is not None:
        for l in range(1, n_layers):
            w = np.asarray(weights[l], np.float64)  # (n_l, n_{l-1})
            wmax = float(np.abs(w).max()) or 1.0
            segs, colors = [], []
            for j in range(w.shape[0]):
                for k in range(w.shape[1]):
                    segs.append([(xs[l - 1], pos[l - 1][k]), (xs[l], pos[l][j])])
                    c = C_POSITIVE if w[j, k] > 0 else C_NEGATIVE
                    colors.append((*c, 0.08 + 0.5 * abs(w[j, k]) / wmax))
            ax_net.add_collection(LineCollection(segs, colors=colors, linewidths=0.6, zorder=1))
    size = None
    for l, a in enumerate(layers):
        n = len(a)
        size = float(np.clip(9000 / max(n, 1) ** 1.6, 8, 260))
        sc = ax_net.scatter(np.full(n, xs[l]), pos[l], c=a, cmap="gray", vmin=0, vmax=1, s=size, edgecolors="0.3",
                            linewidths=0.8, zorder=2)
        last = l == n_layers - 1
        name = "output" if last else f"hidden layer {l + 1}"
        ax_net.text(xs[l], -0.08, f"{name}\n{n} neurons", ha="center", va="top", fontsize=9)
        if last:
            k = int(np.argmax(a))
            for i, (yy, v) in enumerate(zip(pos[l], a)):
                ax_net.text(xs[l] + 0.12, yy, f"{classes[i] if i < len(classes) else i}", va="center", fontsize=10,
                            fontweight="bold" if i == k else None, color=C_HIGHLIGHT if i == k else "0.2")
            ax_net.scatter([xs[l]], [pos[l][k]], s=size * 1.9, facecolors="none", edgecolors=C_HIGHLIGHT,
                           linewidths=2, zorder=3)
    ax_net.set_xlim(-0.75, n_layers - 0.5)
    ax_net.set_ylim(-0.3, 1.05)
    ax_net.set_axis_off()
    ax_net.set_title("neurons: black 0 ... white 1" + ("; lines: weights (blue +, red -)" if weights is not None else ""))
    fig.colorbar(sc, ax=ax_net, shrink=0.6, label="neuron activation", location="right")
    if weights is not None:
        ax_net.legend(handles=[Line2D([], [], color=C_POSITIVE, label="positive weight (blue)"),
                               Line2D([], [], color=C_NEGATIVE, label="negative weight (red)")],
                      loc="lower center", ncol=2, fontsize=8, frameon=False)

    out = np.asarray(layers[-1], np.float64)
    k = int(out.argmax())
    ax_out.barh(range(len(out)), out, color=[C_HIGHLIGHT if i == k else "0.55" for i in range(len(out))])
    ax_out.set_yticks(range(len(out)), [classes[i] if i < len(classes) else str(i) for i in range(len(out))])
    ax_out.invert_yaxis()
    ax_out.set_xlim(0, max(1.0, float(out.max())) * 1.2)
    for i, v in enumerate(out):
        ax_out.text(min(v, 1.0) + 0.02, i, f"{v:.3f}", va="center", fontsize=8)
    ax_out.set_xlabel("output activation")
    ax_out.set_ylabel("digit")
    ax_out.set_title("the outputs")
    fig.suptitle(title, fontweight="bold")
    note = "" if features is None else (f" The convolution layers turn the input into {features.split(' from ')[0]}; "
                                        "the columns are the dense layers after them.")
    _caption(fig, f"The network reads this input as {classes[k] if k < len(classes) else k} "
                  f"(output {out[k]:.3f}). Each column is a layer; each circle a neuron, brighter = more active."
                  + note)
    return fig


# --- noise -------------------------------------------------------------------------
def noise_figure(noise: np.ndarray, noise_outputs: np.ndarray, real_outputs: np.ndarray,
                 classes: Sequence[str] = tuple("0123456789"), n_show: int = 8, title: str = "Random noise"):
    """Sample noise images with the network's answers, and its confidence on noise vs real digits."""
    noise_conf = noise_outputs.max(axis=1)
    real_conf = real_outputs.max(axis=1) if len(real_outputs) else np.zeros(0)
    pred = noise_outputs.argmax(axis=1)
    k = noise_outputs.shape[1]
    n_show = min(n_show, len(noise))
    fig = _figure(16, 5.6)
    left, mid, right = fig.subfigures(1, 3, width_ratios=[1.1, 1.2, 1.0])
    side = math.isqrt(noise.shape[1])
    cols = 4
    axes = np.atleast_1d(left.subplots(max(1, math.ceil(n_show / cols)), cols)).ravel()
    for a in axes:
        a.set_axis_off()
    im = None
    for i in range(n_show):
        a = axes[i]
        a.set_axis_on()
        im = a.imshow(noise[i].reshape(side, side), cmap=INK, vmin=0, vmax=1)
        a.set_title(f"says {classes[pred[i]]}, {noise_conf[i]:.0%}", fontsize=9)
        a.set_xticks([])
        a.set_yticks([])
    left.suptitle("Noise images and the network's answer", fontsize=11)
    if im is not None:
        left.colorbar(im, ax=axes.tolist(), shrink=0.6, location="bottom", label="pixel value")

    ax = mid.subplots()
    bins = np.linspace(0, 1, 41)
    if len(real_conf):
        ax.hist(real_conf, bins=bins, density=True, alpha=0.55, color=C_TRAIN,
                label=f"real test digits (mean {real_conf.mean():.2f})")
    ax.hist(noise_conf, bins=bins, density=True, alpha=0.55, color=C_HIGHLIGHT,
            label=f"random noise (mean {noise_conf.mean():.2f})")
    ax.set_xlabel("confidence: activation of the most active output")
    ax.set_ylabel("density (share of images per unit)")
    ax.set_title("How sure the network is")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)

    ax2 = right.subplots()
    counts = np.bincount(pred, minlength=k)
    ax2.bar(range(k), counts / max(len(pred), 1), color=C_HIGHLIGHT)
    ax2.set_xticks(range(k), [classes[i] if i < len(classes) else str(i) for i in range(k)])
    ax2.set_xlabel("digit the network answers")
    ax2.set_ylabel("share of noise images")
    _pct_axis(ax2)
    ax2.set_title("What it calls the noise")
    ax2.grid(alpha=0.3, axis="y")
    fig.suptitle(title + ": the network has no way to say 'this is not a digit'", fontweight="bold")
    _caption(fig, f"{len(noise)} images with every pixel uniform in [0, 1]: the network's most active output is above "
                  f"0.5 for {(noise_conf > 0.5).mean():.0%} of them"
                  + (f" (real digits: {(real_conf > 0.5).mean():.0%})." if len(real_conf) else "."))
    return fig


# --- dream -------------------------------------------------------------------------
def _image_row(subfig, images: np.ndarray, side: int, titles: Sequence[str], ylabel: str, suptitle: str) -> None:
    """One row of ink pictures (m, side*side) in a subfigure, titled each, with a shared colour bar."""
    axes = np.atleast_1d(subfig.subplots(1, len(images)))
    for a, img, t in zip(axes, images, titles):
        im = a.imshow(img.reshape(side, side), cmap=INK, vmin=0, vmax=1)
        a.set_title(t, fontsize=9)
        a.set_xticks([])
        a.set_yticks([])
    axes[0].set_ylabel(ylabel, fontsize=10)
    subfig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="pixel")
    subfig.suptitle(suptitle, fontsize=10)


def dream_figure(images: np.ndarray, digits: Sequence[int], start_activation: np.ndarray, final_activation: np.ndarray,
                 trace: np.ndarray | None = None, class_means: np.ndarray | None = None,
                 similarity: np.ndarray | None = None, classes: Sequence[str] = tuple("0123456789"),
                 title: str = "What the network thinks each digit looks like"):
    """The input images found by gradient ascent for each digit, side by side.

    ``images`` (m, n_in) pixels in [0, 1]; ``start_activation``/``final_activation`` (m,)
    the target output before and after; ``trace`` (steps + 1, m) its climb;
    ``class_means`` (k, n_in) the average real images, drawn underneath for comparison.
    """
    m = len(images)
    side = math.isqrt(images.shape[1])
    nrows = 1 + (class_means is not None)
    fig = _figure(max(12, 1.5 * m + 1), 2.2 * nrows + (3.2 if trace is not None else 0) + 1.2)
    ratios = [1.0] * nrows + ([1.5] if trace is not None else [])
    sub = fig.subfigures(len(ratios), 1, height_ratios=ratios, squeeze=False)[:, 0]
    _image_row(sub[0], images, side, [f"{classes[d]}: {s:.2f} -> {f:.2f}" for d, s, f in
                                      zip(digits, start_activation, final_activation)],
               "dream", "Found by gradient ascent on the input (title: digit: its output at the start -> at the end)")
    if class_means is not None:
        titles = [f"average {classes[d]}" + ("" if similarity is None else f"\nr = {similarity[i]:.2f}")
                  for i, d in enumerate(digits)]
        _image_row(sub[1], class_means[list(digits)], side, titles, "real",
                   "The average real training image of each digit (r: its correlation with the dream above)")
    if trace is not None:
        import matplotlib

        ax = sub[-1].subplots()
        cmap = matplotlib.colormaps["tab10"]
        for i in range(m):
            ax.plot(np.arange(trace.shape[0]), trace[:, i], color=cmap(i % 10), label=classes[digits[i]])
        ax.set_xlabel("gradient-ascent step")
        ax.set_ylabel("target output's activation")
        ax.set_title("The climb: each digit's output while its image is optimised", fontsize=10)
        ax.legend(ncol=min(m, 10), fontsize=8, title="digit", loc="lower right")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontweight="bold")
    resemblance = ""
    if similarity is not None and np.isfinite(similarity).any():
        resemblance = f" (correlation with the average digit r = {np.nanmean(similarity):.2f} on average)"
    _caption(fig, f"Each output rose from {np.mean(start_activation):.2f} to {np.mean(final_activation):.2f} on "
                  f"average, yet the images are scattered specks, at best a faint hint of the digit's "
                  f"shape{resemblance}:\nthe network responds to pixels here and there, not to the strokes a person sees.")
    return fig


# --- shuffled labels ---------------------------------------------------------------
def shuffled_figure(normal, shuffled, chance: float = 0.1, *, n_train: int | None = None,
                    title: str = "Memorising random labels"):
    """Training and test accuracy per epoch for a run on true labels and one on shuffled labels.

    ``normal`` and ``shuffled`` are :class:`digitnet.training.train.History` objects.
    """
    fig = _figure(13, 5.2)
    ax, ax_cost = fig.subplots(1, 2, width_ratios=[1.5, 1.0])
    for h, color, name in ((normal, C_TRAIN, "true labels"), (shuffled, C_HIGHLIGHT, "shuffled labels")):
        ep = [0] + [e.epoch for e in h.epochs]
        ax.plot(ep[1:], [e.train_accuracy for e in h.epochs], "-", color=color, lw=2,
                label=f"{name}: training accuracy")
        ax.plot(ep, [h.initial_test_accuracy] + [e.test_accuracy for e in h.epochs], "--", color=color, lw=1.5,
                label=f"{name}: test accuracy")
        ax_cost.plot(ep, [h.initial_cost] + [e.cost for e in h.epochs], color=color, label=name)
    ax.axhline(chance, color="0.3", ls=":", lw=1.5, label=f"chance ({chance:.0%})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    _pct_axis(ax)
    ax.set_title("Accuracy: solid on the training images, dashed on the test images")
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.1, 0.34))
    ax.grid(alpha=0.3)
    ax_cost.set_xlabel("epoch")
    ax_cost.set_ylabel("average training cost")
    ax_cost.set_title("Cost on each run's own training labels")
    ax_cost.legend(fontsize=8)
    ax_cost.grid(alpha=0.3)
    fig.suptitle(title + (f" ({n_train} training images)" if n_train else ""), fontweight="bold")
    ls, ln = shuffled.epochs[-1], normal.epochs[-1]
    _caption(fig, f"With shuffled labels the network still fits its training set ({ls.train_accuracy:.0%} right after "
                  f"{ls.epoch} epochs) by memorising it, but its test accuracy stays near chance "
                  f"({ls.test_accuracy:.1%}); the same network on the true labels reaches {ln.test_accuracy:.1%}.")
    return fig


# --- the cost landscape ----------------------------------------------------------------
# Cost and accuracy surfaces use MAGNITUDE (viridis) throughout: dark is low, bright is high.


def _cost_levels(cost: np.ndarray, n: int = 24) -> np.ndarray:
    """Contour levels for a cost surface at its quantiles, so that the colours spread over the
    low valley as much as over the steep walls (the colour bar shows the values)."""
    levels = np.unique(np.quantile(cost[np.isfinite(cost)], np.linspace(0, 1, n)))
    if len(levels) < 3:
        lo, hi = float(np.nanmin(cost)), float(np.nanmax(cost))
        levels = np.linspace(lo, hi, 3) if hi > lo else np.array([lo - 1e-12, lo, lo + 1e-12])
    return levels


def landscape_figure(result, path: np.ndarray | None = None, *, directions: str = "random", surface: bool = False,
                     explained: Sequence[float] | None = None, test=None, title: str = "The cost landscape"):
    """Contour maps of the cost and the accuracy on a 2-D slice of weight space (a
    :class:`~digitnet.explain.landscape.Landscape`), the trained weights at the centre.

    ``path`` (n_snapshots, 2): the training trajectory projected onto the slice, drawn from the
    start (a circle) through every epoch (dots) to the end (a star, at [0, 0]). ``surface``: a third
    panel with the cost as a 3-D surface. ``test``: a Landscape of the same grid over test images,
    whose accuracy the second panel shows (else the accuracy on ``result``'s images).
    """
    from matplotlib.colors import BoundaryNorm

    a, b, cost = result.alphas, result.betas, result.cost
    acc = (test if test is not None else result).accuracy
    acc_title = (f"Accuracy on {test.n} test images" if test is not None
                 else f"Accuracy on the same {result.n} training images")
    fig = _figure(17 if surface else 12, 5.6)
    if surface:
        sub = fig.subfigures(1, 2, width_ratios=[2, 1])
        ax_cost, ax_acc = sub[0].subplots(1, 2)
        ax3 = sub[1].add_subplot(projection="3d")
    else:
        ax_cost, ax_acc = fig.subplots(1, 2)
        ax3 = None
    levels = _cost_levels(cost)
    cs = ax_cost.contourf(a, b, cost, levels=levels, cmap=MAGNITUDE, norm=BoundaryNorm(levels, 256))
    ax_cost.contour(a, b, cost, levels=levels[::3], colors="white", linewidths=0.4, alpha=0.6)
    fig.colorbar(cs, ax=ax_cost, label="average cost (colours at its quantiles)", format="%.3g")
    ca = ax_acc.contourf(a, b, acc, levels=np.linspace(0, 1, 21), cmap=MAGNITUDE)
    fig.colorbar(ca, ax=ax_acc, label="accuracy", format=lambda v, _: f"{v:.0%}")
    if directions == "trajectory":
        xl = "alpha: first principal direction of the trajectory" + (
            f" ({explained[0]:.0%} of its variance)" if explained is not None else "")
        yl = "beta: second principal direction" + (f" ({explained[1]:.0%})" if explained is not None else "")
    else:
        xl, yl = "alpha: random direction 1 (filter-normalised)", "beta: random direction 2 (filter-normalised)"
    for ax, what in ((ax_cost, "Cost"), (ax_acc, acc_title)):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(what)
        if path is not None:
            ax.plot(path[:, 0], path[:, 1], "-", color="white", lw=2.2)
            ax.plot(path[:, 0], path[:, 1], "-", color="tab:red", lw=1.2)
            ax.plot(path[1:-1, 0], path[1:-1, 1], "o", color="tab:red", ms=4, mec="white", mew=0.6, label="each epoch")
            ax.plot(path[0, 0], path[0, 1], "o", color="white", ms=8, mec="tab:red", mew=2, label="start")
        ax.plot(0, 0, "*", color="tab:red", ms=14, mec="white", mew=1, label="trained weights")
        ax.legend(fontsize=8, loc="upper right")
    if ax3 is not None:
        aa, bb = np.meshgrid(a, b)
        ax3.plot_surface(aa, bb, cost, cmap=MAGNITUDE, norm=BoundaryNorm(levels, 256), linewidth=0, antialiased=True)
        ax3.set_xlabel("alpha")
        ax3.set_ylabel("beta")
        ax3.set_zlabel("cost")
        ax3.set_title("Cost as a surface")
    fig.suptitle(title, fontweight="bold")
    la, lb, lc = result.lowest
    text = (f"The cost on the plane W + alpha D1 + beta D2 through the trained weights (the star, cost "
            f"{result.center_cost:.4g}), over {result.n} training images; dark is low. The grid's lowest point is "
            f"at alpha {la:.3g}, beta {lb:.3g} (cost {lc:.4g}).")
    if path is not None:
        text += " The red line is the path of gradient descent projected onto the plane: start, every epoch, end."
    _caption(fig, text)
    return fig


def barrier_sentence(barrier: float, c0: float, c1: float) -> str:
    """What an interpolation's barrier (>= 0: how far the cost climbs above the straight line
    between the two ends' costs ``c0``, ``c1``, at worst) says, in words; the CLI and the
    figure's caption both use it."""
    if not barrier > 0:
        return "the cost never rises above the straight line between the two ends' costs: no barrier."
    if barrier < 1e-3 * max(abs(c0), abs(c1), 1e-12):
        return (f"the cost rises at most {barrier:.2g} above the straight line between the two ends' costs, "
                "too little to count: no barrier.")
    return f"the cost rises as much as {barrier:.4g} above the straight line between the two ends' costs: a barrier."


def interpolation_figure(alphas: np.ndarray, cost: np.ndarray, accuracy: np.ndarray, *,
                         labels: tuple[str, str] = ("initial weights", "trained weights"),
                         title: str = "The straight line between two networks"):
    """The cost and the accuracy at (1 - alpha) W_a + alpha W_b, with the two networks marked."""
    fig = _figure(12, 5)
    ax_cost, ax_acc = fig.subplots(1, 2)
    ax_cost.plot(alphas, cost, color=C_TRAIN, lw=2)
    ax_acc.plot(alphas, accuracy, color=C_TRAIN, lw=2)
    for ax in (ax_cost, ax_acc):
        for x, name, ls in ((0.0, labels[0], "--"), (1.0, labels[1], ":")):
            ax.axvline(x, color="0.3", ls=ls, lw=1.2, label=f"alpha = {x:g}: {name}")
        ax.set_xlabel("alpha: W = (1 - alpha) W_a + alpha W_b")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_cost.set_ylabel("average cost")
    ax_cost.set_title("Cost along the line")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.02)
    _pct_axis(ax_acc)
    ax_acc.set_title("Accuracy along the line")
    fig.suptitle(title, fontweight="bold")
    inside = (alphas >= 0) & (alphas <= 1)
    c0, c1 = cost[np.argmin(np.abs(alphas))], cost[np.argmin(np.abs(alphas - 1))]
    chord = (1 - alphas[inside]) * c0 + alphas[inside] * c1
    bump = float(max(0.0, (cost[inside] - chord).max())) if inside.any() else float("nan")
    _caption(fig, f"From {labels[0]} (cost {c0:.4g}) to {labels[1]} (cost {c1:.4g}): {barrier_sentence(bump, c0, c1)}")
    return fig


def smoothness_figure(weight: np.ndarray, sigmoid_cost: np.ndarray, step_cost: np.ndarray, original: float,
                      sigmoid_flat: float, step_flat: float, *, name: str = "w",
                      title: str = "Why sigmoids and not on/off steps"):
    """The cost as one weight sweeps a range: the sigmoid network (smooth) and the same network
    with step neurons (flat almost everywhere, with jumps)."""
    fig = _figure(12, 5)
    ax_s, ax_t = fig.subplots(1, 2)
    ax_s.plot(weight, sigmoid_cost, color=C_TRAIN, lw=2)
    ax_t.plot(weight, step_cost, color="tab:red", lw=1.5, drawstyle="steps-mid")
    for ax, what, flat in ((ax_s, "sigmoid neurons", sigmoid_flat), (ax_t, "step neurons (1 if z >= 0 else 0)", step_flat)):
        ax.axvline(original, color="0.3", ls="--", lw=1.2, label=f"trained value {original:.3g}")
        ax.set_xlabel(f"the weight {name}")
        ax.set_ylabel("average cost")
        ax.set_title(f"{what}: flat on {flat:.0%} of the sweep")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontweight="bold")
    _caption(fig, f"Sweeping one weight: with sigmoids the cost changes smoothly, so its slope tells gradient "
                  f"descent which way is down; with steps it is flat on {step_flat:.0%} of the sweep and jumps in "
                  f"between, so the gradient is zero almost everywhere and says nothing.")
    return fig


def curvature_figure(eigenvalues: np.ndarray, random_curvatures: np.ndarray, eta: float | None, *,
                     title: str = "How curved the cost is"):
    """The Hessian's largest eigenvalues against 2/eta, and the curvature of random directions."""
    fig = _figure(12, 5)
    ax_e, ax_r = fig.subplots(1, 2)
    k = np.arange(1, len(eigenvalues) + 1)
    ax_e.bar(k, eigenvalues, color=C_TRAIN, label="Hessian eigenvalue")
    if eta is not None:
        ax_e.axhline(2 / eta, color="tab:red", ls="--", lw=1.5, label=f"2 / eta = {2 / eta:.3g} (eta = {eta:g})")
    ax_e.set_xlabel("rank")
    ax_e.set_ylabel("curvature (eigenvalue)")
    ax_e.set_xticks(k)
    ax_e.set_title("The most curved directions")
    ax_e.legend(fontsize=8)
    ax_e.grid(alpha=0.3, axis="y")
    jitter = np.linspace(-0.15, 0.15, len(random_curvatures)) if len(random_curvatures) > 1 else np.zeros(1)
    ax_r.plot(np.zeros(len(eigenvalues)), eigenvalues, "o", color=C_TRAIN, label="largest eigenvalues")
    ax_r.plot(1 + jitter, random_curvatures, "o", color="0.45", label="random directions")
    top = float(np.abs(np.concatenate([eigenvalues, random_curvatures])).max()) or 1.0
    ax_r.set_yscale("symlog", linthresh=top * 1e-4)  # both ends visible, negatives too
    ax_r.set_xticks([0, 1], ["the most curved", "random"])
    ax_r.set_xlim(-0.6, 1.6)
    ax_r.set_ylabel("curvature v^T H v / v^T v (symmetric log scale)")
    ax_r.set_title("Most curved against typical directions")
    ax_r.legend(fontsize=8)
    ax_r.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontweight="bold")
    med = float(np.median(random_curvatures))
    text = (f"The most curved direction has curvature {eigenvalues[0]:.3g}, "
            + (f"{eigenvalues[0] / med:.3g} times a typical random direction's ({med:.3g}): " if med > 0 else "")
            + "some directions matter far more than others (the notes' \"x matters more\").")
    if eta is not None:
        text += (f" Gradient descent with step eta diverges along a direction of curvature above 2/eta = {2 / eta:.3g}"
                 f"; here {'all are below' if eigenvalues[0] < 2 / eta else 'the top one is above'} it.")
    _caption(fig, text)
    return fig


# --- sweeps ------------------------------------------------------------------------
def sweep_figure(rows: Sequence[dict], title: str = "Sweep", *, caption: str | None = None):
    """Test accuracy against training time, one point per configuration of a sweep.

    ``rows`` are :func:`digitnet.tasks.sweep.summarise`'s: each point is the median over the
    seeds, its vertical bar the lowest to the highest seed; configurations with no run done
    are left out. The best median is ringed (chosen by validation accuracy when the runs had
    one, else by test accuracy, which the caption says).
    """
    done = [r for r in rows if r.get("test_accuracy_median") is not None]
    fig = _figure(10, 6)
    ax = fig.subplots()
    if not done:
        ax.text(0.5, 0.5, "no run done yet", ha="center", va="center", transform=ax.transAxes)
        fig.suptitle(title, fontweight="bold")
        return fig
    x = np.array([r["seconds_median"] or 0.0 for r in done])
    y = np.array([r["test_accuracy_median"] for r in done])
    lo = y - np.array([r["test_accuracy_min"] for r in done])
    hi = np.array([r["test_accuracy_max"] for r in done]) - y
    ax.errorbar(x, y, yerr=[lo, hi], fmt="o", color=C_TEST, ecolor="0.5", capsize=3, ms=6,
                label="median test accuracy over the seeds (bar: lowest to highest)")
    by_val = all(r.get("validation_accuracy_median") is not None for r in done)
    score = [r["validation_accuracy_median"] if by_val else r["test_accuracy_median"] for r in done]
    best = int(np.argmax(score))
    ax.plot(x[best], y[best], "o", ms=16, mfc="none", mec=C_HIGHLIGHT, mew=2,
            label=f"best by {'validation' if by_val else 'test'} accuracy")
    if x.max() > 0 and x.max() / max(x.min(), 1e-9) > 30:
        ax.set_xscale("log")
    ax.margins(x=0.08, y=0.12)
    # a label on the right half of the axes goes to its point's left, so that none runs past the edge
    xs = np.log(np.maximum(x, 1e-9)) if ax.get_xscale() == "log" else x
    mid = (xs.min() + xs.max()) / 2
    for xi, yi, xsi, r in zip(x, y, xs, done):
        right = len(done) > 1 and xsi > mid
        ax.annotate(r["label"][:40], (xi, yi), xytext=(-6 if right else 6, 4), textcoords="offset points",
                    ha="right" if right else "left", fontsize=8, color="0.2", annotation_clip=True)
    ax.set_xlabel("training time per run (median over the seeds, s)")
    ax.set_ylabel("test accuracy")
    _pct_axis(ax)
    ax.grid(alpha=0.3)
    # the legend above the axes, outside them: it never covers a point or its bar
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.01), ncols=2, frameon=False, borderaxespad=0)
    fig.suptitle(title, fontweight="bold")
    seeds = sorted({len(r["seeds"]) for r in done})
    text = caption or (f"{len(done)} configurations, {'/'.join(map(str, seeds))} seed(s) each. Up and to the left is "
                       f"better. Best by {'validation' if by_val else 'test'} accuracy: {done[best]['label']}, "
                       f"{y[best]:.2%} on the test set."
                       + ("" if by_val else " These runs held out no validation set: to choose a configuration, "
                          "sweep with validation = true and choose by its accuracy, not by the test set's."))
    _caption(fig, text)
    return fig
