"""A fused mini-batch SGD step for dense networks: the same math as
:func:`digitnet.nn.network.backprop` followed by :class:`digitnet.optim.SGD`, with the
per-step overhead taken out.

At batch size 10 the video's network spends most of its time not in arithmetic but in
the ~1 us that every small NumPy call costs (allocating, type-resolving, dispatching).
So this path

* allocates every buffer once per batch size and works in place (ufuncs with ``out=``);
* folds each layer's bias into its weight matrix: the parameters live in one array
  ``W = [w | b]`` of shape (n_out, n_in + 1), and every activation buffer carries a
  trailing column of ones, so ``z = [a | 1] W^T`` is one BLAS call, and BP3 + BP4
  together are one more: ``nabla_W = delta^T [a | 1]``;
* folds the step ``-eta / n`` into the output delta: the deltas below it (BP2) and the
  gradients (BP3, BP4) are linear in it, so they come out already scaled and the update
  is a single ``W += nabla_W`` per layer;
* keeps one-hot targets of the whole training set, so a batch's targets are one gather;
* computes activation derivatives from the activations (a(1 - a), 1 - a^2, a > 0), so
  the weighted inputs z need not be kept.

The network's ``params[l]["w"]`` and ``["b"]`` become views into ``W`` (``w`` is
``W[:, :n_in]``, ``b`` is ``W[:, n_in]``): code that reads them, or writes into them in
place, sees the same numbers as ever; code that *replaces* them (``params[:] = ...``)
is noticed at the next step, whose values are then copied in.

The results agree with the reference path to float rounding (the sums are reordered),
not bit for bit; they are bit-reproducible for a seed. ``tests/test_fast.py`` checks
both for every activation and cost this path supports.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.errors import ConfigError
from digitnet.nn.network import Network, total_cost

# TrainConfig fields this path implements, or that do not change a step; every *other*
# field must keep its default, so dropout, augmentation, early stopping and options added
# later turn the fast path off until it learns them.
_HANDLED = frozenset(
    {
        "epochs", "batch_size", "eta", "seed", "schedule", "eta_min", "step_every", "step_factor",
        "warmup_epochs", "lmbda", "validation", "keep_best", "record_batch_cost", "train_size",
        "optimizer", "momentum", "beta2",
        # read only when `augment` names a distortion, and `augment` itself turns this path off
        "max_shift", "max_rotation", "elastic_alpha", "elastic_sigma",
    }
)


def unsupported_reason(net: Network, config: TrainConfig) -> str | None:
    """Why the fast path cannot train ``net`` with ``config``, or None if it can."""
    if any(kind != "dense" for kind in net.kinds):
        return "the network has layers other than dense ones"
    if config.optimizer != "sgd":
        return f"the optimizer is {config.optimizer!r}, not plain 'sgd'"
    for f in dataclasses.fields(config):
        if f.name in _HANDLED:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
        )
        if getattr(config, f.name) != default:
            return f"the option {f.name!r} is set"
    if len(net.params) != len(net.config.layers) - 1:
        return "the network's parameters do not match its layer sizes"
    return None


def supports(net: Network, config: TrainConfig) -> bool:
    """Whether :class:`FastSGD` can train ``net`` with ``config``."""
    return unsupported_reason(net, config) is None


class _Plan:
    """The buffers for one batch size ``m``: activations with a ones column, deltas,
    gradients and scratch space, all allocated once."""

    def __init__(self, sizes: tuple[int, ...], m: int, dtype: np.dtype):
        L = len(sizes) - 1
        # acts[l] is [a^l | 1], (m, n_l + 1), for every layer that feeds another one.
        self.acts = [np.ones((m, n + 1), dtype) for n in sizes[:-1]]
        self.a_views = [a[:, :-1] for a in self.acts]  # (m, n_l)
        self.zs = [np.empty((m, n), dtype) for n in sizes[1:]]  # z^{l+1}, (m, n_{l+1})
        self.out = self.zs[-1]  # the output layer works in place: a^L overwrites z^L
        self.targets = np.empty((m, sizes[-1]), dtype)  # one-hot targets of the batch
        self.r = np.empty((m, sizes[-1]), dtype)  # a^L - y
        self.deltas = [np.empty((m, n), dtype) for n in sizes[1:]]  # delta^{l+1}
        # dC/da of each hidden layer, with one extra column: it is delta [w | b], one BLAS
        # call on the contiguous W (a strided view of w would be copied first); the last
        # column is never read.
        self.gs = [np.empty((m, n + 1), dtype) for n in sizes[1:-1]]
        self.g_views = [g[:, :-1] for g in self.gs]
        self.scratch = [np.empty((m, n), dtype) for n in sizes[1:]]
        self.masks = [np.empty((m, n), bool) for n in sizes[1:]]
        self.rowsum = np.empty((m, 1), dtype)  # softmax's per-row sums
        self.L = L


class FastSGD:
    """Trains ``net`` on ``x`` (n, n_in), ``y`` (n,) one mini-batch at a time by plain SGD.

    >>> fast = FastSGD(net, train.x, train.y)
    >>> cost = fast.step(order[:10], eta=3.0)   # the batch's average cost before the step

    ``decay`` is L2 weight decay per step as :class:`digitnet.train.Trainer` applies it
    (``lmbda / n_train``): ``w <- (1 - eta decay) w - eta nabla_w``.
    """

    def __init__(self, net: Network, x: np.ndarray, y: np.ndarray):
        if any(kind != "dense" for kind in net.kinds):
            raise ConfigError("The fast training path handles dense layers only.")
        cfg: NetworkConfig = net.config
        self.net = net
        self.dtype = np.dtype(cfg.dtype)
        self.sizes = cfg.layers
        self.x = np.ascontiguousarray(x, dtype=self.dtype)
        self.y = np.asarray(y)
        k = self.sizes[-1]
        # One-hot targets of every training example, so a batch's are one gather.
        self.onehot = np.zeros((len(self.y), k), self.dtype)
        self.onehot[np.arange(len(self.y)), self.y] = 1
        # W[l] = [w | b], (n_out, n_in + 1); net.params[l] holds views into it.
        self.W = [np.empty((n_out, n_in + 1), self.dtype) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]
        self.w_views = [W[:, :-1] for W in self.W]
        self.b_views = [W[:, -1] for W in self.W]
        self.grads = [np.empty_like(W) for W in self.W]  # -eta nabla_W, (n_out, n_in + 1)
        self._bound: list[tuple[dict, np.ndarray, np.ndarray]] = []
        self._adopt()
        self._plans: dict[int, _Plan] = {}
        self.hidden = cfg.activation
        self.output = cfg.output_activation
        self.cost_name = cfg.cost
        self.one = self.dtype.type(1)
        self.half = self.dtype.type(0.5)
        self.zero = self.dtype.type(0)

    # --- the parameters ---------------------------------------------------------
    def _adopt(self) -> None:
        """Copy the network's current parameters into W and point the network at views of W."""
        for W, wv, bv, p in zip(self.W, self.w_views, self.b_views, self.net.params):
            wv[...] = p["w"]
            bv[...] = p["b"]
            p["w"], p["b"] = wv, bv
        self._bound = [(p, p["w"], p["b"]) for p in self.net.params]

    def _check_bound(self) -> None:
        params = self.net.params
        if len(params) != len(self._bound):
            raise ConfigError("The network's layers changed during training; start a new Trainer.")
        for p, (q, w, b) in zip(params, self._bound):
            if p is not q or p.get("w") is not w or p.get("b") is not b:
                self._adopt()
                return

    def _plan(self, m: int) -> _Plan:
        plan = self._plans.get(m)
        if plan is None:
            plan = self._plans[m] = _Plan(self.sizes, m, self.dtype)
        return plan

    # --- one step -----------------------------------------------------------------
    def forward(self, idx: np.ndarray) -> _Plan:
        """Gather the batch ``idx`` and run it forward; the output is ``plan.out``."""
        self._check_bound()
        plan = self._plan(len(idx))
        # 'clip' skips the bounds-checked (buffered) path of take: idx comes from a permutation.
        np.take(self.x, idx, 0, plan.a_views[0], "clip")
        np.take(self.onehot, idx, 0, plan.targets, "clip")
        L = plan.L
        one, half = self.one, self.half
        for l in range(L):
            z = plan.zs[l]
            np.dot(plan.acts[l], self.W[l].T, out=z)  # z = [a | 1] [w | b]^T = a w^T + b
            if l < L - 1:
                a = plan.a_views[l + 1]
                act = self.hidden
            else:
                a = z  # the output layer's activation overwrites its z
                act = self.output
            if act == "sigmoid":
                # (1 + tanh(z/2)) / 2, as in nn.activations.sigmoid: never overflows.
                np.multiply(z, half, out=z)
                np.tanh(z, out=z)
                np.add(z, one, out=z)
                np.multiply(z, half, out=a)
            elif act == "tanh":
                np.tanh(z, out=a)
            elif act == "relu":
                np.maximum(z, self.zero, out=a)
            elif act == "softmax":
                # The row maximum is subtracted first so exp never overflows.
                s = plan.rowsum
                np.max(z, axis=1, keepdims=True, out=s)
                np.subtract(z, s, out=z)
                np.exp(z, out=z)
                np.sum(z, axis=1, keepdims=True, out=s)
                np.divide(z, s, out=z)
            elif act != "identity":
                raise ConfigError(f"The fast training path does not know the activation {act!r}.")
            elif a is not z:
                np.copyto(a, z)
        return plan

    def step(self, idx: np.ndarray, eta: float, decay: float = 0.0) -> float:
        """One SGD step on the examples ``idx``; returns their average cost *before* the step.

        If that cost is not finite, nothing is changed and the cost (NaN or inf) is
        returned: the caller decides what divergence means.
        """
        plan = self.forward(idx)
        m = len(idx)
        a_out = plan.out
        r = plan.r
        np.subtract(a_out, plan.targets, out=r)  # a^L - y
        if self.cost_name == "quadratic":
            cost = 0.5 * float(np.vdot(r, r)) / m  # as nn.costs.QuadraticCost.fn
        else:
            cost = total_cost(self.net, a_out, self.y[idx]) / m
        if not math.isfinite(cost):
            return cost
        c = self.dtype.type(-eta / m)  # the step, folded into delta^L
        self._backward(plan, c)
        if decay:
            shrink = self.dtype.type(1 - eta * decay)
            for wv in self.w_views:
                np.multiply(wv, shrink, out=wv)
        for W, G in zip(self.W, self.grads):
            np.add(W, G, out=W)  # W <- W - eta nabla_W
        return cost

    def _backward(self, plan: _Plan, c) -> None:
        """Fill ``self.grads`` with -eta nabla_W of every layer (BP1-BP4); W is not touched."""
        L = plan.L
        one = self.one
        a_out, r = plan.out, plan.r
        d = plan.deltas[L - 1]
        s = plan.scratch[L - 1]
        # BP1: delta^L = c dC/dz^L.
        if self.cost_name == "cross-entropy":
            # Sigmoid or softmax outputs: sigma'(z) cancels and delta = a - y.
            np.multiply(r, c, out=d)
        elif self.output == "sigmoid":
            np.subtract(one, a_out, out=s)
            np.multiply(s, a_out, out=s)  # sigma'(z) = a (1 - a)
            np.multiply(s, c, out=s)
            np.multiply(r, s, out=d)
        elif self.output == "tanh":
            np.multiply(a_out, a_out, out=s)
            np.subtract(one, s, out=s)  # 1 - a^2
            np.multiply(s, c, out=s)
            np.multiply(r, s, out=d)
        elif self.output == "relu":
            mask = plan.masks[L - 1]
            np.greater(a_out, self.zero, out=mask)  # a > 0 exactly where z > 0
            np.multiply(r, c, out=d)
            np.multiply(d, mask, out=d)
        elif self.output == "identity":
            np.multiply(r, c, out=d)
        elif self.output == "softmax":
            # J^T g = a (g - sum_k g_k a_k), row by row.
            np.multiply(r, a_out, out=s)
            np.sum(s, axis=1, keepdims=True, out=plan.rowsum)
            np.subtract(r, plan.rowsum, out=d)
            np.multiply(d, a_out, out=d)
            np.multiply(d, c, out=d)
        for l in range(L - 1, -1, -1):
            d = plan.deltas[l]
            np.dot(d.T, plan.acts[l], out=self.grads[l])  # BP3 + BP4: delta^T [a | 1]
            if l == 0:
                break
            np.dot(d, self.W[l], out=plan.gs[l - 1])  # dC/da^l = delta^{l+1} w^{l+1}
            g = plan.g_views[l - 1]
            a = plan.a_views[l]
            d_below = plan.deltas[l - 1]
            s = plan.scratch[l - 1]
            # BP2: delta^l = (delta^{l+1} w^{l+1}) (.) sigma'(z^l), sigma' from a^l.
            if self.hidden == "sigmoid":
                np.subtract(one, a, out=s)
                np.multiply(s, a, out=s)
                np.multiply(g, s, out=d_below)
            elif self.hidden == "tanh":
                np.multiply(a, a, out=s)
                np.subtract(one, s, out=s)
                np.multiply(g, s, out=d_below)
            else:  # relu
                mask = plan.masks[l - 1]
                np.greater(a, self.zero, out=mask)
                np.multiply(g, mask, out=d_below)
