"""The network: its parameters, and pure forward and backpropagation functions over them.

Shapes follow :mod:`digitnet.nn.layers`: a batch is rows, ``a`` is ``(n, n_in)``, a dense
layer's ``w`` is ``(n_out, n_in)`` so that ``w[j, k]`` connects neuron k to neuron j.
Layer ``l = 0`` is the first layer *with weights* (the video's first hidden layer);
``activations[0]`` is the input ``x`` itself.

Backpropagation implements the four equations of Nielsen's chapter 2:

* BP1  delta^L = dC/da^L (.) sigma'(z^L)                 (the output error)
* BP2  delta^l = (delta^{l+1} w^{l+1}) (.) sigma'(z^l)  (the error moved back a layer)
* BP3  dC/db^l = delta^l                                  (summed over the batch)
* BP4  dC/dw^l = delta^l^T a^{l-1}                        (summed over the batch)

and returns the gradient of the batch's *average* cost, the quantity the video descends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitnet.config import NetworkConfig
from digitnet.data.resample import deskew_images, deskew_inputs
from digitnet.errors import ConfigError
from digitnet.nn.activations import ACTIVATIONS, BACKWARD
from digitnet.nn.costs import COSTS
from digitnet.nn.layers import LAYERS, Dense


@dataclass
class Forward:
    """Everything a forward pass computed: ``zs[l]`` (n, size of layer l+1) are the weighted
    inputs of each layer with weights, ``activations[l]`` the activations, with
    ``activations[0] = x`` (n, 784) and ``activations[-1]`` the output (n, 10)."""

    zs: list[np.ndarray]
    activations: list[np.ndarray]
    # With dropout: masks[l] is 0 for dropped and 1/(1-p) for kept neurons of layer l's input,
    # inputs[l] = activations[l] * masks[l] what layer l actually saw; None where nothing was dropped.
    masks: list[np.ndarray | None] | None = None
    inputs: list[np.ndarray | None] | None = None
    # cols[l] is a conv layer's im2col patches of its input (see Conv2D.im2col), kept because
    # BP3 and BP4 need them again; None for other layers.
    cols: list[np.ndarray | None] | None = None
    # pooled_first[l] is True for a max-pool layer l whose input layer's ReLU was applied after
    # the pooling instead of before (see :func:`_pool_before_relu`): then activations[l] is the
    # input layer's z (not ReLU'd), zs[l] the pool of it, and activations[l + 1] = ReLU(zs[l]).
    pooled_first: list[bool] | None = None

    @property
    def output(self) -> np.ndarray:
        return self.activations[-1]


@dataclass
class Gradient:
    """The gradient of the batch's average cost: ``nabla_w[l]`` has the shape of
    ``weights[l]`` and ``nabla_b[l]`` that of ``biases[l]``; ``cost`` is the average cost."""

    nabla_w: list[np.ndarray]
    nabla_b: list[np.ndarray]
    cost: float
    layers: list[dict[str, np.ndarray]] | None = None  # the same arrays, one dict per entry of net.params

    def vector(self) -> np.ndarray:
        """All components in one flat vector (the video's 13,002-long gradient)."""
        return np.concatenate([g.ravel() for pair in zip(self.nabla_w, self.nabla_b) for g in pair])


@dataclass
class Network:
    """A feed-forward network: its config and its parameters (one dict per layer).

    ``params[l]`` holds ``"w"`` and ``"b"`` for a dense layer; ``weights`` and ``biases``
    are the lists Nielsen's code calls by those names. With ``config.features`` the network
    starts with conv (``w`` (c_out, c_in, k, k)), pool and flatten layers (no parameters:
    ``params[l]`` is ``{}``); ``kinds[l]`` names each layer's kind and ``modules[l]`` is the
    layer object that does its math (see :mod:`digitnet.nn.layers`).
    """

    config: NetworkConfig
    params: list[dict[str, np.ndarray]]
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.modules, acts = build_layers(self.config)
        kinds = [m.kind for m in self.modules]
        if self.kinds and list(self.kinds) != kinds:
            raise ConfigError(f"Layer kinds {self.kinds} do not match the network config, which needs {kinds}.")
        self.kinds = kinds
        self._activation_names = acts

    # --- construction -------------------------------------------------------------
    @classmethod
    def create(cls, config: NetworkConfig | tuple[int, ...] | list[int] | None = None, seed: int = 0, **kw: Any) -> "Network":
        """A new network with random initial weights drawn from ``default_rng(seed)``.

        ``Network.create((784, 16, 16, 10))`` is the video's network; keyword arguments
        override :class:`NetworkConfig` fields (``activation="relu"``, ...).
        """
        if config is None:
            config = NetworkConfig(**kw)
        elif not isinstance(config, NetworkConfig):
            config = NetworkConfig(layers=tuple(config), **kw)
        elif kw:
            config = NetworkConfig.from_dict({**config.to_dict(), **kw})
        rng = np.random.default_rng(seed)
        dtype = np.dtype(config.dtype)
        params = [
            Dense.init(rng, layer.n_in, layer.n_out, config.init, dtype)
            if isinstance(layer, _DenseShape)
            else layer.init(rng, config.init, dtype)
            for layer in build_layers(config)[0]
        ]
        return cls(config, params)

    def copy(self) -> "Network":
        return Network(self.config, [{k: v.copy() for k, v in p.items()} for p in self.params], list(self.kinds))

    def astype(self, dtype) -> "Network":
        """A copy with parameters (and config) in another float dtype, e.g. float64 for gradient checks."""
        dtype = np.dtype(dtype)
        cfg = NetworkConfig.from_dict({**self.config.to_dict(), "dtype": dtype.name})
        return Network(cfg, [{k: v.astype(dtype) for k, v in p.items()} for p in self.params], list(self.kinds))

    # --- views --------------------------------------------------------------------
    @property
    def weights(self) -> list[np.ndarray]:
        return [p["w"] for p in self.params if "w" in p]

    @property
    def biases(self) -> list[np.ndarray]:
        return [p["b"] for p in self.params if "b" in p]

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.config.layers

    @property
    def activation_names(self) -> list[str]:
        """Each layer's activation; pool and flatten layers have none ("identity")."""
        return list(self._activation_names)

    @property
    def n_params(self) -> int:
        return sum(v.size for p in self.params for v in p.values())

    # --- display (a notebook shows _repr_html_) ----------------------------------------
    def _layer_rows(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for l, (kind, act, p) in enumerate(zip(self.kinds, self._activation_names, self.params)):
            shape = " x ".join(map(str, p["w"].shape)) if "w" in p else "-"
            rows.append((str(l + 1), kind, shape, act if kind not in _NO_ACTIVATION else "-",
                         f"{sum(v.size for v in p.values()):,}"))
        return rows

    def __repr__(self) -> str:
        c = self.config
        shape = "-".join(map(str, c.layers))
        if c.features:
            shape = f"{','.join(c.features)} then {shape}"
        extra = "" if c.preprocess == "none" else f", {c.preprocess}ed input"
        return (f"Network({shape}, {c.activation} hidden, {c.output_activation} output, {c.cost} cost, "
                f"{self.n_params:,} parameters, {c.dtype}{extra})")

    def _repr_html_(self) -> str:
        from digitnet._display import html_table

        c = self.config
        note = (f"{c.cost} cost, {c.init} initial weights, {c.dtype}"
                + ("" if c.preprocess == "none" else f", inputs {c.preprocess}ed"))
        return html_table(f"Network {'-'.join(map(str, c.layers))}: {self.n_params:,} weights and biases",
                          ["layer", "kind", "weights", "activation", "parameters"], self._layer_rows(), note)

    # --- math ---------------------------------------------------------------------
    def _input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.config.layers[0]:
            raise ConfigError(
                f"The network takes inputs of {self.config.layers[0]} values per example (rows of a "
                f"(n, {self.config.layers[0]}) array); got an array of shape {x.shape}."
            )
        return self._preprocess(x.astype(self.config.dtype, copy=False))

    def _preprocess(self, x: np.ndarray) -> np.ndarray:
        if self.config.preprocess == "deskew":
            return deskew_inputs(x)
        return x

    def prepare_split(self, split) -> np.ndarray:
        """A data set split's inputs as the first layer sees them, (n, n_in).

        Like ``prepare_input(split.x)``, but a deskewing network works straight from the
        split's uint8 images, so a whole data set costs one float32 copy, not two.
        """
        if self.config.preprocess == "deskew" and np.asarray(split.images).dtype == np.uint8:
            n_in = int(np.prod(split.images.shape[1:]))
            if n_in != self.config.layers[0]:
                raise ConfigError(
                    f"The network takes inputs of {self.config.layers[0]} values per example; the images "
                    f"have {n_in} pixels."
                )
            return deskew_images(split.images).astype(self.config.dtype, copy=False)
        return self.prepare_input(split.x)

    def prepare_input(self, x: np.ndarray) -> np.ndarray:
        """Pixels / 255, (n, 784) -> what the first layer sees: checked, in the network's
        dtype, and preprocessed (deskewed) if the config says so.

        The methods of this class call it on their input; the pure functions below
        (:func:`forward`, :func:`backprop`, ...) take inputs that are already prepared.
        """
        return self._input(x)

    def forward(self, x: np.ndarray) -> Forward:
        """Run ``x`` (n, 784) through the network, keeping every z and a."""
        return forward(self, self._input(x))

    def feedforward(self, x: np.ndarray) -> np.ndarray:
        """The output activations (n, 10) for inputs ``x`` (n, 784), in chunks to bound memory."""
        return feedforward_batched(self, self._input(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The predicted label (n,) int64: the most active output neuron."""
        return self.feedforward(x).argmax(axis=1)

    def cost(self, x: np.ndarray, y: np.ndarray) -> float:
        """The average cost over the examples ``x`` (n, 784) with labels ``y`` (n,)."""
        y = np.asarray(y)
        return total_cost(self, self.feedforward(x), y) / max(len(y), 1)

    def gradient(self, x: np.ndarray, y: np.ndarray) -> Gradient:
        """The gradient of the average cost over the batch, by backpropagation."""
        return backprop(self, self._input(x), np.asarray(y))


class _DenseShape:
    """A dense layer's place in a network: the :class:`Dense` math with its sizes attached."""

    kind = "dense"
    forward = staticmethod(Dense.forward)
    backward = staticmethod(Dense.backward)

    def __init__(self, n_in: int, n_out: int):
        self.n_in, self.n_out = n_in, n_out
        self.out_shape = (n_out,)


_NO_ACTIVATION = ("pool", "flatten")


def build_layers(config: NetworkConfig) -> tuple[list[Any], list[str]]:
    """The layer objects of ``config`` (see :meth:`NetworkConfig.plan`) and their activations.

    Hidden layers with weights use ``config.activation``, the last layer
    ``config.output_activation``; pool and flatten layers pass values through ("identity").
    """
    if not config.features:
        modules: list[Any] = [_DenseShape(n_in, n_out) for n_in, n_out in zip(config.layers[:-1], config.layers[1:])]
    else:
        modules = []
        for kind, args, in_shape, _ in config.plan():
            if kind == "dense":
                modules.append(_DenseShape(in_shape[0], args[0]))
            else:
                modules.append(LAYERS[kind](in_shape, *args))
    acts = ["identity" if m.kind in _NO_ACTIVATION else config.activation for m in modules]
    acts[-1] = config.output_activation
    return modules, acts


def param_shapes(config: NetworkConfig) -> list[dict[str, tuple[int, ...]]]:
    """The shape of every parameter array, one dict per layer (what a model file must hold)."""
    shapes: list[dict[str, tuple[int, ...]]] = []
    for m in build_layers(config)[0]:
        if m.kind == "dense":
            shapes.append({"w": (m.n_out, m.n_in), "b": (m.n_out,)})
        elif m.kind == "conv":
            shapes.append({"w": (m.channels, m.in_shape[2], m.k, m.k), "b": (m.channels,)})
        else:
            shapes.append({})
    return shapes


def feedforward_chunk(net: Network) -> int:
    """Examples per chunk when running many inputs. For conv nets, about 24 MB of im2col
    patches per chunk: larger chunks measured slower (each fresh 64 MB array is page-faulted in)."""
    per_example = max(
        (m.out_shape[0] * m.out_shape[1] * m.k * m.k * m.in_shape[2] for m in net.modules if m.kind == "conv"),
        default=0,
    )
    return 10_000 if not per_example else max(1, min(10_000, 6_000_000 // per_example))


def feedforward_batched(net: Network, x: np.ndarray) -> np.ndarray:
    """:func:`feedforward` of many prepared inputs, in chunks to bound memory."""
    chunk = feedforward_chunk(net)
    if len(x) <= chunk:
        return feedforward(net, x)
    return np.concatenate([feedforward(net, x[i : i + chunk]) for i in range(0, len(x), chunk)])


def _pool_before_relu(net: Network) -> list[bool]:
    """For each layer: True for a max-pool layer whose input layer has the ReLU activation.

    There the ReLU can be applied after the pooling, to a quarter of the values (for 2 x 2
    blocks), with the same numbers bit for bit: ReLU is non-decreasing, so the block maximum
    of the ReLU'd values is the ReLU of the block maximum m, the very same float (where m <= 0
    both are +0: z is a matrix product plus a bias, never -0). Backward, where m > 0 the
    positions with z = m are those with ReLU(z) = m, so the same maxima share the same
    gradient (delta * 1) / ties == (delta / ties) * 1; where m <= 0 both give zeros of
    delta's sign, at every position of the block. Sigmoid and tanh would not do: they can
    round different z to the same value, which the pool counts as ties.
    """
    acts, mods = net.activation_names, net.modules
    return [l > 0 and m.kind == "pool" and mods[l - 1].kind not in _NO_ACTIVATION and acts[l - 1] == "relu"
            for l, m in enumerate(mods)]


def feedforward(net: Network, x: np.ndarray) -> np.ndarray:
    """The output activations only, (n, n_out); ReLUs before max-pools are applied after
    them (:func:`_pool_before_relu`: the same numbers)."""
    a = x
    pooled_first = _pool_before_relu(net)
    for l, (layer, p, act) in enumerate(zip(net.modules, net.params, net.activation_names)):
        z = layer.forward(p, a)
        if pooled_first[l]:
            a = ACTIVATIONS["relu"](z)
        elif layer.kind in _NO_ACTIVATION or (l + 1 < len(pooled_first) and pooled_first[l + 1]):
            a = z
        else:
            a = ACTIVATIONS[act](z)
    return a


def forward(
    net: Network, x: np.ndarray, dropout: float = 0.0, rng: np.random.Generator | None = None,
    pool_first: bool = False,
) -> Forward:
    """The forward pass, keeping z and a of every layer (what backprop needs).

    With ``dropout`` p > 0 (training only), every hidden neuron that feeds a dense layer is
    dropped with probability p, drawn from ``rng``, and the survivors are scaled by
    1/(1 - p) ("inverted dropout"), so the expected input is unchanged and the trained
    network is used as is.

    With ``pool_first`` (what :func:`backprop` uses), a ReLU layer followed by a max-pool
    keeps its z as its activation and the ReLU is applied after the pool (see
    :func:`_pool_before_relu` and :attr:`Forward.pooled_first`): the same output and
    gradients, faster, but that layer's activation is not the ReLU'd feature map.
    """
    zs: list[np.ndarray] = []
    activations = [x]
    masks: list[np.ndarray | None] | None = [None] * len(net.params) if dropout else None
    inputs: list[np.ndarray | None] | None = [None] * len(net.params) if dropout else None
    cols: list[np.ndarray | None] = [None] * len(net.params)
    pooled_first = _pool_before_relu(net) if pool_first else [False] * len(net.params)
    for l, (layer, p, act) in enumerate(zip(net.modules, net.params, net.activation_names)):
        a = activations[-1]
        if masks is not None and l > 0 and layer.kind == "dense":
            u = rng.random(a.shape, dtype=a.dtype)
            keep = u >= dropout
            masks[l] = np.multiply(keep, np.asarray(1 / (1 - dropout), a.dtype), out=u)  # 0 or 1/(1-p), in u's place
            a = inputs[l] = a * masks[l]
        if layer.kind == "conv":
            cols[l] = layer.im2col(a)
            z = layer.forward(p, a, cols[l])
        else:
            z = layer.forward(p, a)
        zs.append(z)
        if pooled_first[l]:
            activations.append(ACTIVATIONS["relu"](z))
        elif layer.kind in _NO_ACTIVATION or (l + 1 < len(pooled_first) and pooled_first[l + 1]):
            activations.append(z)
        else:
            activations.append(ACTIVATIONS[act](z))
    return Forward(zs, activations, masks, inputs, cols, pooled_first if any(pooled_first) else None)


def total_cost(net: Network, a: np.ndarray, y: np.ndarray) -> float:
    """The cost of output ``a`` (n, k) for labels ``y`` (n,), *summed* over the batch."""
    return COSTS[net.config.cost].total(a, y, net.config.output_activation)


def output_delta(net: Network, z: np.ndarray, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """BP1: delta^L = dC_x/dz^L for every example, (n, k)."""
    return COSTS[net.config.cost].delta(z, a, y, net.config.output_activation)


def _kept(fw: Forward, kind: str, l: int) -> dict[str, np.ndarray]:
    """What layer l's backward pass would otherwise compute again: a conv layer's patches, a pool layer's output."""
    if kind == "conv":
        return {"cols": fw.cols[l]}
    if kind == "pool":
        return {"z": fw.zs[l]}
    return {}


def backward(
    net: Network, fw: Forward, delta: np.ndarray, to_input: bool = False
) -> tuple[list[dict[str, np.ndarray]], np.ndarray | None]:
    """Carry the output error ``delta`` = delta^L back through the network of forward pass ``fw``.

    Returns every layer's gradients of the *summed* cost (BP3, BP4: one dict per entry of
    ``net.params``) and, with ``to_input``, dC/dx (n, n_in), the gradient with respect to the
    input (else None). Each layer object supplies its own BP3, BP4 and dC/da of its input;
    BP2 turns that into the previous layer's delta.
    """
    acts = net.activation_names
    grads: list[dict[str, np.ndarray]] = [{} for _ in net.params]
    g = None
    pooled_first = fw.pooled_first or [False] * len(net.params)
    for l in range(len(net.params) - 1, -1, -1):
        layer = net.modules[l]
        mask = None if fw.masks is None else fw.masks[l]
        a_in = fw.activations[l] if mask is None else fw.inputs[l]
        if pooled_first[l]:  # BP2 of the ReLU applied after this pool: dC/dz of the pooled values
            delta = BACKWARD["relu"](fw.zs[l], fw.activations[l + 1], delta)
        grads[l], g = layer.backward(net.params[l], a_in, delta, l > 0 or to_input, **_kept(fw, layer.kind, l))  # BP3, BP4
        if l > 0:
            if mask is not None:
                g *= mask  # the input was a * mask, so dC/da = dC/d(input) * mask (g is the layer's new array)
            if net.modules[l - 1].kind in _NO_ACTIVATION or pooled_first[l]:
                delta = g
            else:
                delta = BACKWARD[acts[l - 1]](fw.zs[l - 1], fw.activations[l], g)  # BP2
    return grads, g


def backprop(
    net: Network, x: np.ndarray, y: np.ndarray, dropout: float = 0.0, rng: np.random.Generator | None = None
) -> Gradient:
    """The gradient of the average cost of the batch ``x`` (n, n_in), ``y`` (n,).

    With ``dropout`` > 0 the gradient is that of the thinned network drawn from ``rng``
    (see :func:`forward`): dropped neurons pass no gradient back.
    """
    fw = forward(net, x, dropout, rng, pool_first=True)
    n = len(x)
    delta = output_delta(net, fw.zs[-1], fw.activations[-1], y)  # BP1
    grads, _ = backward(net, fw, delta)
    inv_n = np.asarray(1.0 / n, dtype=x.dtype)
    for gr in grads:
        for v in gr.values():
            v *= inv_n  # in place: the layers' backward passes made every one of these arrays
    nabla_w = [gr["w"] for gr in grads if "w" in gr]
    nabla_b = [gr["b"] for gr in grads if "b" in gr]
    cost = total_cost(net, fw.activations[-1], y) / n
    return Gradient(nabla_w, nabla_b, cost, grads)
