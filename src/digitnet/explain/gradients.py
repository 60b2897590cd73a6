"""Which weights matter: the gradient of the cost, component by component.

The video's gradient is one long vector (13,002 numbers for 784-16-16-10): the sign of a
component says which way to nudge that weight or bias, its *size* says how much the cost
cares. This module computes that vector for one training example or for the average cost
over a whole training set, and reports

* the magnitude of every weight's and bias's component, layer by layer;
* the first layer's |dC/dw| as one 28x28 image per neuron (row j of ``nabla_w[0]``);
* the top-k components by |dC/dw| and the share of the gradient's squared norm
  ||nabla C||^2 they carry ("which nudges matter most");
* each layer's share of that squared norm.

It also holds :func:`input_gradient`: the gradient with respect to the *input pixels*,
which the dream experiment ascends. Shapes follow :mod:`digitnet.nn.network`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from digitnet.errors import ConfigError
from digitnet.nn.activations import BACKWARD
from digitnet.nn.network import Gradient, Network, backprop, backward, feedforward_chunk, forward, output_delta


def image_shape(n: int) -> tuple[int, int]:
    """The (side, side) shape of ``n`` input values drawn as a square image (784 -> 28x28)."""
    side = math.isqrt(n)
    if side * side != n:
        raise ConfigError(
            f"The network's {n} inputs are not a square image, so its first-layer weights cannot be drawn "
            "as pictures. This works for networks whose inputs are square images such as MNIST's 28x28."
        )
    return side, side


def require_dense_first_layer(net: Network, what: str) -> None:
    """Raise a clear error if ``what`` needs a first layer with weights on the pixels
    (dense or convolutional) and the network starts with another kind."""
    if not net.kinds or net.kinds[0] not in ("dense", "conv"):
        kind = net.kinds[0] if net.kinds else "none"
        raise ConfigError(
            f"{what} needs a dense first layer (one weight per input pixel per neuron) or a convolutional one "
            f"(one small filter per channel); this network's first layer is {kind!r}."
        )


def first_layer_images(w: np.ndarray) -> np.ndarray:
    """A first layer's weights (or their gradient) as pictures, (n, h, w).

    Dense ``w`` (n_neurons, n_in): row j reshaped to (side, side), neuron j's weight on
    every pixel. Convolutional ``w`` (c_out, c_in, k, k): each filter's k x k slice.
    """
    if w.ndim == 2:
        return w.reshape(w.shape[0], *image_shape(w.shape[1]))  # (n_neurons, 28, 28): row j is neuron j
    if w.ndim == 4:
        return w.reshape(-1, w.shape[2], w.shape[3])  # (c_out c_in, k, k): one picture per filter slice
    raise ConfigError(f"The first layer's weights have shape {w.shape}; only dense (2-D) and convolutional (4-D) "
                      "weights can be drawn as images.")


# --- gradient with respect to the input -----------------------------------------------
def _backward_to_input(net: Network, fw, delta: np.ndarray) -> np.ndarray:
    """Carry the output error ``delta`` (n, n_out) back to the input: (n, n_in).

    The network's own backward pass (BP2 one layer at a time, see
    :func:`digitnet.nn.network.backward`); at the first layer g = delta^1 w^1 is dC/dx.
    """
    return backward(net, fw, delta, to_input=True)[1]


def input_gradient(
    net: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    output: int | np.ndarray | None = None,
    prepared: bool = False,
) -> np.ndarray:
    """The gradient with respect to the input, one row per example: (n, n_in).

    The input is what the first layer sees: ``net.prepare_input(x)`` (pixels / 255, and
    deskewed if the network's config asks for it); with ``prepared=True`` ``x`` is taken to
    be that already, (n, n_in) in the network's dtype.

    With labels ``y`` (n,) it is dC_x/dx, the gradient of each example's own cost; with
    ``output=j`` it is d a^L_j / dx, how each pixel would raise output neuron j's activation
    (what the dream experiment climbs); ``output`` may also be an array (n,) giving each
    example its own output neuron. Exactly one of ``y`` and ``output`` is given.
    """
    if (y is None) == (output is None):
        raise ConfigError("input_gradient needs either labels y (the cost's gradient) or output=j (an output's gradient).")
    if not prepared:
        x = net.prepare_input(x)
    fw = forward(net, x)
    z, a = fw.zs[-1], fw.activations[-1]
    if y is not None:
        delta = output_delta(net, z, a, np.asarray(y))  # BP1
    else:
        j = np.broadcast_to(np.asarray(output), (len(a),))
        if j.dtype.kind not in "iu" or j.min() < 0 or j.max() >= a.shape[1]:
            raise ConfigError(f"The network has {a.shape[1]} outputs (0..{a.shape[1] - 1}); got output={output!r}.")
        e = np.zeros_like(a)
        e[np.arange(len(a)), j] = 1  # d a_j / d a = the j-th unit vector
        delta = BACKWARD[net.config.output_activation](z, a, e)
    return _backward_to_input(net, fw, delta)


# --- gradient with respect to the parameters --------------------------------------------
def dataset_gradient(net: Network, x: np.ndarray, y: np.ndarray, chunk: int | None = None) -> Gradient:
    """The gradient of the *average* cost over all of ``x`` (n, n_in), ``y`` (n,).

    Computed in chunks of ``chunk`` examples (to bound memory; by default as many as
    :func:`~digitnet.nn.network.feedforward_chunk` runs at once: 10,000 for dense networks,
    fewer for conv nets, whose im2col patches are kept for backprop) and averaged with
    each chunk's size as its weight, so it equals ``net.gradient(x, y)`` up to rounding.
    """
    chunk = chunk or feedforward_chunk(net)
    x = net.prepare_input(x)
    y = np.asarray(y)
    n = len(x)
    if n == 0:
        raise ConfigError("Cannot average the gradient over no examples.")
    # Sum in float64 so that 60,000 examples do not lose digits to float32 rounding.
    sum_w = [np.zeros(w.shape, np.float64) for w in net.weights]
    sum_b = [np.zeros(b.shape, np.float64) for b in net.biases]
    cost = 0.0
    for i in range(0, n, chunk):
        g = backprop(net, x[i : i + chunk], y[i : i + chunk])
        m = len(x[i : i + chunk])
        for s, v in zip(sum_w, g.nabla_w):
            s += m * v.astype(np.float64)
        for s, v in zip(sum_b, g.nabla_b):
            s += m * v.astype(np.float64)
        cost += m * g.cost
    dtype = np.dtype(net.config.dtype)
    return Gradient([(s / n).astype(dtype) for s in sum_w], [(s / n).astype(dtype) for s in sum_b], cost / n)


def example_gradient(net: Network, x: np.ndarray, y: int) -> Gradient:
    """The gradient of one example's cost: ``x`` (n_in,), ``y`` its integer label."""
    return net.gradient(np.asarray(x).reshape(1, -1), np.asarray([int(y)]))


@dataclass
class Component:
    """One component of the gradient: a weight ``w[j, k]`` or a bias ``b[j]`` of layer ``layer``."""

    layer: int  # 0-based layer with weights (0 = the first hidden layer)
    param: str  # "w" or "b"
    index: tuple[int, ...]  # (j, k) for a weight, (j,) for a bias
    value: float  # dC/dw (signed)
    share: float  # value^2 / ||gradient||^2

    def name(self) -> str:
        """``w1[3,407]`` style, 1-based layer as in the video's w^(1)."""
        return f"{self.param}{self.layer + 1}[{','.join(map(str, self.index))}]"

    def to_dict(self) -> dict:
        return {"name": self.name(), "layer": self.layer, "param": self.param, "index": list(self.index),
                "value": self.value, "share": self.share}


@dataclass
class LayerShare:
    """How much of the squared gradient norm one layer's weights and biases carry."""

    layer: int
    n_weights: int
    n_biases: int
    weight_share: float  # sum (dC/dw)^2 over the layer's weights / ||gradient||^2
    bias_share: float
    mean_abs_w: float  # mean |dC/dw| over the layer's weights
    mean_abs_b: float
    max_abs_w: float
    max_abs_b: float

    @property
    def share(self) -> float:
        return self.weight_share + self.bias_share

    def to_dict(self) -> dict:
        return {"layer": self.layer, "n_weights": self.n_weights, "n_biases": self.n_biases,
                "share": self.share, "weight_share": self.weight_share, "bias_share": self.bias_share,
                "mean_abs_w": self.mean_abs_w, "mean_abs_b": self.mean_abs_b,
                "max_abs_w": self.max_abs_w, "max_abs_b": self.max_abs_b}


@dataclass
class GradientReport:
    """A gradient and what it says about which weights matter."""

    gradient: Gradient
    label: str  # what it is the gradient of, e.g. "training image 0 (label 5)"
    n_examples: int  # examples averaged over
    norm: float  # ||gradient||, all components together
    layers: list[LayerShare]
    top: list[Component]  # the top-k components by |value|, largest first
    top_share: float  # share of ||gradient||^2 carried by ``top`` together
    shares_sorted: np.ndarray  # every component's share, largest first (for the cumulative curve)

    @property
    def n_components(self) -> int:
        return int(self.shares_sorted.size)

    def components_for(self, fraction: float) -> int:
        """How many of the largest components carry ``fraction`` of the squared norm."""
        cum = np.cumsum(self.shares_sorted)
        return int(min(np.searchsorted(cum, fraction * cum[-1]) + 1, cum.size)) if cum.size and cum[-1] > 0 else 0

    def first_layer_images(self) -> np.ndarray:
        """|dC/dw| of the first layer, one image per neuron: (n_neurons, side, side)."""
        return gradient_images(self.gradient)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "n_examples": self.n_examples,
            "cost": self.gradient.cost,
            "norm": self.norm,
            "n_components": self.n_components,
            "components_for_half": self.components_for(0.5),
            "components_for_90_percent": self.components_for(0.9),
            "top_share": self.top_share,
            "top": [c.to_dict() for c in self.top],
            "layers": [s.to_dict() for s in self.layers],
        }


def gradient_images(grad: Gradient, absolute: bool = True) -> np.ndarray:
    """The first layer's dC/dw as images: row j of ``nabla_w[0]`` reshaped to (side, side)
    (for a convolutional first layer, each filter's k x k gradient).

    Returns (n_neurons, side, side); with ``absolute`` the magnitudes |dC/dw|.
    """
    g = first_layer_images(grad.nabla_w[0])
    return np.abs(g) if absolute else g.copy()


def analyse_gradient(grad: Gradient, top_k: int = 10, label: str = "", n_examples: int = 1) -> GradientReport:
    """Magnitudes, top-k components and per-layer shares of the squared norm of ``grad``."""
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0. Got {top_k}.")
    parts: list[tuple[int, str, np.ndarray]] = []
    for l, (gw, gb) in enumerate(zip(grad.nabla_w, grad.nabla_b)):
        parts += [(l, "w", gw.astype(np.float64)), (l, "b", gb.astype(np.float64))]
    flat = np.concatenate([p.ravel() for _, _, p in parts])
    sq = flat * flat
    total = float(sq.sum())
    inv = 1.0 / total if total > 0 else 0.0
    layers = []
    for l, (gw, gb) in enumerate(zip(grad.nabla_w, grad.nabla_b)):
        gw, gb = np.abs(gw.astype(np.float64)), np.abs(gb.astype(np.float64))
        layers.append(LayerShare(
            layer=l, n_weights=int(gw.size), n_biases=int(gb.size),
            weight_share=float((gw * gw).sum() * inv), bias_share=float((gb * gb).sum() * inv),
            mean_abs_w=float(gw.mean()) if gw.size else 0.0, mean_abs_b=float(gb.mean()) if gb.size else 0.0,
            max_abs_w=float(gw.max()) if gw.size else 0.0, max_abs_b=float(gb.max()) if gb.size else 0.0,
        ))
    k = min(top_k, flat.size)
    # A stable sort on -|g| keeps ties in parameter order, so the top-k is deterministic.
    order = np.argsort(-np.abs(flat), kind="stable")
    offsets = np.cumsum([0] + [p.size for _, _, p in parts])
    top = []
    for i in order[:k]:
        part = int(np.searchsorted(offsets, i, side="right") - 1)
        l, param, arr = parts[part]
        index = tuple(int(v) for v in np.unravel_index(int(i - offsets[part]), arr.shape))
        top.append(Component(l, param, index, float(flat[i]), float(sq[i] * inv)))
    shares_sorted = sq[order] * inv
    return GradientReport(
        gradient=grad, label=label, n_examples=n_examples, norm=math.sqrt(total), layers=layers, top=top,
        top_share=float(shares_sorted[:k].sum()), shares_sorted=shares_sorted,
    )
