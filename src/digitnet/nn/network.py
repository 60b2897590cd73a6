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
from digitnet.errors import ConfigError
from digitnet.nn.activations import ACTIVATIONS, BACKWARD
from digitnet.nn.costs import COSTS, one_hot
from digitnet.nn.layers import LAYERS


@dataclass
class Forward:
    """Everything a forward pass computed: ``zs[l]`` (n, size of layer l+1) are the weighted
    inputs of each layer with weights, ``activations[l]`` the activations, with
    ``activations[0] = x`` (n, 784) and ``activations[-1]`` the output (n, 10)."""

    zs: list[np.ndarray]
    activations: list[np.ndarray]

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

    def vector(self) -> np.ndarray:
        """All components in one flat vector (the video's 13,002-long gradient)."""
        return np.concatenate([g.ravel() for pair in zip(self.nabla_w, self.nabla_b) for g in pair])


@dataclass
class Network:
    """A feed-forward network: its config and its parameters (one dict per layer).

    ``params[l]`` holds ``"w"`` and ``"b"`` for a dense layer; ``weights`` and ``biases``
    are the lists Nielsen's code calls by those names.
    """

    config: NetworkConfig
    params: list[dict[str, np.ndarray]]
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.kinds:
            self.kinds = ["dense"] * (len(self.config.layers) - 1)

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
            LAYERS["dense"].init(rng, n_in, n_out, config.init, dtype)
            for n_in, n_out in zip(config.layers[:-1], config.layers[1:])
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
        n = len(self.params)
        return [self.config.activation] * (n - 1) + [self.config.output_activation]

    @property
    def n_params(self) -> int:
        return sum(v.size for p in self.params for v in p.values())

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
        return x.astype(self.config.dtype, copy=False)

    def forward(self, x: np.ndarray) -> Forward:
        """Run ``x`` (n, 784) through the network, keeping every z and a."""
        return forward(self, self._input(x))

    def feedforward(self, x: np.ndarray) -> np.ndarray:
        """The output activations (n, 10) for inputs ``x`` (n, 784), in chunks to bound memory."""
        x = self._input(x)
        chunk = 10_000
        if len(x) <= chunk:
            return feedforward(self, x)
        return np.concatenate([feedforward(self, x[i : i + chunk]) for i in range(0, len(x), chunk)])

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


def feedforward(net: Network, x: np.ndarray) -> np.ndarray:
    """The output activations only, (n, n_out)."""
    a = x
    for kind, p, act in zip(net.kinds, net.params, net.activation_names):
        a = ACTIVATIONS[act](LAYERS[kind].forward(p, a))
    return a


def forward(net: Network, x: np.ndarray) -> Forward:
    """The forward pass, keeping z and a of every layer (what backprop needs)."""
    zs: list[np.ndarray] = []
    activations = [x]
    for kind, p, act in zip(net.kinds, net.params, net.activation_names):
        z = LAYERS[kind].forward(p, activations[-1])
        zs.append(z)
        activations.append(ACTIVATIONS[act](z))
    return Forward(zs, activations)


def total_cost(net: Network, a: np.ndarray, y: np.ndarray) -> float:
    """The cost of output ``a`` (n, k) for labels ``y`` (n,), *summed* over the batch."""
    cfg = net.config
    if cfg.cost == "cross-entropy":
        return COSTS["cross-entropy"].fn(a, y, softmax=cfg.output_activation == "softmax")
    return COSTS["quadratic"].fn(a, y)


def output_delta(net: Network, z: np.ndarray, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """BP1: delta^L = dC_x/dz^L for every example, (n, k)."""
    cfg = net.config
    if cfg.cost == "cross-entropy":
        # For sigmoid and softmax outputs the sigma'(z) cancels: delta = a - y. This is
        # both cheaper and exact where a saturates (no division by a (1 - a)).
        return a - one_hot(y, a.shape[1], a.dtype)
    g = COSTS["quadratic"].grad_a(a, y)
    return BACKWARD[cfg.output_activation](z, a, g)


def backprop(net: Network, x: np.ndarray, y: np.ndarray) -> Gradient:
    """The gradient of the average cost of the batch ``x`` (n, n_in), ``y`` (n,)."""
    fw = forward(net, x)
    n = len(x)
    acts = net.activation_names
    delta = output_delta(net, fw.zs[-1], fw.activations[-1], y)  # BP1
    grads: list[dict[str, np.ndarray]] = [{} for _ in net.params]
    for l in range(len(net.params) - 1, -1, -1):
        layer = LAYERS[net.kinds[l]]
        grads[l], g = layer.backward(net.params[l], fw.activations[l], delta, need_input_grad=l > 0)  # BP3, BP4
        if l > 0:
            delta = BACKWARD[acts[l - 1]](fw.zs[l - 1], fw.activations[l], g)  # BP2
    inv_n = np.asarray(1.0 / n, dtype=x.dtype)
    nabla_w = [gr["w"] * inv_n for gr in grads if "w" in gr]
    nabla_b = [gr["b"] * inv_n for gr in grads if "b" in gr]
    cost = total_cost(net, fw.activations[-1], y) / n
    return Gradient(nabla_w, nabla_b, cost)
