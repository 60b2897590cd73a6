"""A fused mini-batch SGD step for dense networks: the same math as
:func:`digitnet.nn.network.backprop` followed by :class:`digitnet.training.optim.SGD`, with the
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
  gradients (BP3, BP4) are linear in it, so they come out already scaled; all layers'
  ``W`` live in one flat array, so the update of the whole network is one ``W += nabla_W``;
* keeps one-hot targets of the whole training set, so a batch's targets are one gather;
* computes activation derivatives from the activations (a(1 - a), 1 - a^2, a > 0), so
  the weighted inputs z need not be kept;
* writes the step out once per batch size as a list of NumPy calls with bound arguments
  (positional ``out``, 0-d array constants: the cheapest way to call a ufunc);
* runs the BLAS calls of a step on one thread where BLAS would otherwise split them
  (see :class:`_BlasThreads`).

At batch size 10 a step of the video's network is then about 35 NumPy calls and, by
callgrind's count, 0.48 million instructions against 0.71 million for
:func:`~digitnet.nn.network.backprop` + :class:`~digitnet.training.optim.SGD`; at batch 100 and
for wider networks the time is in the matrix products, which both paths share.

The network's ``params[l]["w"]`` and ``["b"]`` become views into ``W`` (``w`` is
``W[:, :n_in]``, ``b`` is ``W[:, n_in]``): code that reads them, or writes into them in
place, sees the same numbers as ever; code that *replaces* them (``params[:] = ...``)
is noticed at the next step, whose values are then copied in.

The results agree with the reference path to float rounding (the sums are reordered),
not bit for bit; they are bit-reproducible for a seed. ``tests/test_fast.py`` checks
both for every activation and cost this path supports. It is the ``numpy`` engine of
:mod:`digitnet.training.engines`, which says which networks and settings it trains.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from digitnet.config import NetworkConfig
from digitnet.errors import ConfigError
from digitnet.nn.network import Network, total_cost

# OpenBLAS splits a matrix product over threads once m * n * k reaches about 4 * 65536
# multiply-adds; below that it uses one thread anyway.
BLAS_THREADING_THRESHOLD = 4 * 65536


@functools.lru_cache(maxsize=1)
def _blas_controllers() -> tuple:
    """The BLAS libraries loaded in this process, as threadpoolctl controllers (none
    without threadpoolctl). Looked up once: it scans the loaded shared libraries."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    return tuple(c for c in ThreadpoolController().lib_controllers if c.user_api == "blas")


class _BlasThreads:
    """Runs a step's BLAS calls on ``n`` threads and puts the previous count back after.

    Products of this size are too small to share: on a 2-core machine shared with other
    work, two BLAS threads spin-waiting for each other made a batch-100 epoch of the
    video's network 6-8x slower than one thread (README, "Speed"). Setting the count is
    a function call into the library (about 1 us), so it is done around every step.
    """

    def __init__(self, n: int):
        self.n = n
        self.libs = _blas_controllers()
        self.saved: list[int] = []

    def __enter__(self) -> None:
        self.saved = [lib.get_num_threads() for lib in self.libs]
        for lib, k in zip(self.libs, self.saved):
            if k != self.n:
                lib.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        for lib, k in zip(self.libs, self.saved):
            if k != self.n:
                lib.set_num_threads(k)


def blas_threads(n: int) -> _BlasThreads:
    """``with blas_threads(n):`` BLAS calls inside run on ``n`` threads (nothing changes
    without threadpoolctl)."""
    return _BlasThreads(n)


class _BlasLimited:
    """The thread rule of both training engines (this one and :mod:`digitnet.nn.compiled`):
    BLAS calls of a step run on ``blas_threads`` threads (1; None leaves the library's
    setting alone), limited only for batches large enough that BLAS would otherwise split
    the widest product."""

    def _init_blas_limit(self, sizes) -> None:
        self._blas_threads: _BlasThreads | None = None
        self._widest = max(n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.blas_threads: int | None = 1

    def _threads_for(self, m: int) -> "_BlasThreads | None":
        """The thread limit for batches of ``m``: only where BLAS would otherwise use threads."""
        if self.blas_threads is None or m * self._widest < BLAS_THREADING_THRESHOLD:
            return None
        if self._blas_threads is None or self._blas_threads.n != self.blas_threads:
            self._blas_threads = _BlasThreads(self.blas_threads)
        return self._blas_threads


class _Plan:
    """Everything one batch size ``m`` needs: buffers allocated once, and the step written
    out as two lists of NumPy calls with their arguments bound (``forward`` and
    ``backward``), so a step is little more than ``for f, args in ops: f(*args)``.

    Positional ``out`` arguments and 0-d array constants are used throughout: they are
    the cheapest ways to call a ufunc on a small array.
    """

    def __init__(self, fast: "FastSGD", m: int):
        sizes, dtype, L = fast.sizes, fast.dtype, len(fast.sizes) - 1
        const = lambda v: np.array(v, dtype)  # noqa: E731
        one, half, zero = const(1), const(0.5), const(0)
        self.c = const(0)  # -eta / m, set before each backward pass
        # acts[l] = [a^l | 1], (m, n_l + 1), for every layer that feeds another one.
        acts = [np.ones((m, n + 1), dtype) for n in sizes[:-1]]
        a_views = [a[:, :-1] for a in acts]  # (m, n_l)
        zs = [np.empty((m, n), dtype) for n in sizes[1:]]  # z^{l+1}
        self.x_in = a_views[0]
        self.out = zs[-1]  # the output layer works in place: a^L overwrites z^L
        self.targets = np.empty((m, sizes[-1]), dtype)  # one-hot targets of the batch
        self.r = np.empty((m, sizes[-1]), dtype)  # a^L - y
        deltas = [np.empty((m, n), dtype) for n in sizes[1:]]  # delta^{l+1}
        # dC/da of each hidden layer with one extra column: delta [w | b] is one BLAS call
        # on the contiguous W (a strided view of w would be copied first); the extra
        # column is never read.
        gs = [np.empty((m, n + 1), dtype) for n in sizes[1:-1]]
        scratch = [np.empty((m, n), dtype) for n in sizes[1:]]
        masks = [np.empty((m, n), bool) for n in sizes[1:]]
        rowsum = np.empty((m, 1), dtype)
        f: list = []
        for l in range(L):
            z = zs[l]
            f.append((np.dot, (acts[l], fast.W[l].T, z)))  # z = [a | 1] [w | b]^T = a w^T + b
            a, act = (a_views[l + 1], fast.hidden) if l < L - 1 else (z, fast.output)
            if act == "sigmoid":
                # (1 + tanh(z/2)) / 2, as nn.activations.sigmoid computes it: never overflows.
                f += [(np.multiply, (z, half, z)), (np.tanh, (z, z)), (np.add, (z, one, z)),
                      (np.multiply, (z, half, a))]
            elif act == "tanh":
                f.append((np.tanh, (z, a)))
            elif act == "relu":
                f.append((functools.partial(np.maximum, out=a), (z, zero)))  # out= by keyword for maximum
            elif act == "softmax":
                # The row maximum is subtracted first so exp never overflows.
                f += [(np.maximum.reduce, (z, 1, None, rowsum, True)), (np.subtract, (z, rowsum, z)),
                      (np.exp, (z, z)), (np.add.reduce, (z, 1, None, rowsum, True)), (np.divide, (z, rowsum, z))]
            elif act == "identity":
                if a is not z:
                    f.append((np.copyto, (a, z)))
            else:
                raise ConfigError(f"The fast training path does not know the activation {act!r}.")
        self.forward = f

        b: list = []
        out, r, c, d, s = self.out, self.r, self.c, deltas[-1], scratch[-1]
        # BP1: delta^L = c dC/dz^L with c = -eta/m: every gradient below comes out scaled.
        if fast.cost_name == "cross-entropy":
            b.append((np.multiply, (r, c, d)))  # sigmoid or softmax outputs: sigma' cancels, delta = a - y
        elif fast.output == "sigmoid":
            b += [(np.subtract, (one, out, s)), (np.multiply, (s, out, s)),  # sigma'(z) = a (1 - a)
                  (np.multiply, (s, c, s)), (np.multiply, (r, s, d))]
        elif fast.output == "tanh":
            b += [(np.multiply, (out, out, s)), (np.subtract, (one, s, s)),  # 1 - a^2
                  (np.multiply, (s, c, s)), (np.multiply, (r, s, d))]
        elif fast.output == "relu":
            b += [(np.greater, (out, zero, masks[-1])),  # a > 0 exactly where z > 0
                  (np.multiply, (r, c, d)), (np.multiply, (d, masks[-1], d))]
        elif fast.output == "identity":
            b.append((np.multiply, (r, c, d)))
        elif fast.output == "softmax":
            # J^T g = a (g - sum_k g_k a_k), row by row.
            b += [(np.multiply, (r, out, s)), (np.add.reduce, (s, 1, None, rowsum, True)),
                  (np.subtract, (r, rowsum, d)), (np.multiply, (d, out, d)), (np.multiply, (d, c, d))]
        for l in range(L - 1, -1, -1):
            d = deltas[l]
            b.append((np.dot, (d.T, acts[l], fast.grads[l])))  # BP3 + BP4: delta^T [a | 1]
            if l == 0:
                break
            g, a, below, s = gs[l - 1], a_views[l], deltas[l - 1], scratch[l - 1]
            b.append((np.dot, (d, fast.W[l], g)))  # dC/da^l = delta^{l+1} [w | b]: the w part
            g = g[:, :-1]
            # BP2: delta^l = (delta^{l+1} w^{l+1}) (.) sigma'(z^l), sigma' from a^l.
            if fast.hidden == "sigmoid":
                b += [(np.subtract, (one, a, s)), (np.multiply, (s, a, s)), (np.multiply, (g, s, below))]
            elif fast.hidden == "tanh":
                b += [(np.multiply, (a, a, s)), (np.subtract, (one, s, s)), (np.multiply, (g, s, below))]
            else:  # relu
                b += [(np.greater, (a, zero, masks[l - 1])), (np.multiply, (g, masks[l - 1], below))]
        self.backward = b


class FastSGD(_BlasLimited):
    """Trains ``net`` on ``x`` (n, n_in), ``y`` (n,) one mini-batch at a time by plain SGD.

    >>> fast = FastSGD(net, train.x, train.y)
    >>> cost = fast.step(order[:10], eta=3.0)   # the batch's average cost before the step

    ``decay`` is L2 weight decay per step (``lmbda / n_train``, see :mod:`digitnet.training.engines`):
    ``w <- (1 - eta decay) w - eta nabla_w``.
    """

    def __init__(self, net: Network, x: np.ndarray, y: np.ndarray):
        if any(kind != "dense" for kind in net.kinds):
            raise ConfigError("The fast training path handles dense layers only.")
        cfg: NetworkConfig = net.config
        if cfg.activation not in ("sigmoid", "tanh", "relu"):
            raise ConfigError(f"The fast training path does not know the activation {cfg.activation!r}.")
        self.net = net
        self.dtype = np.dtype(cfg.dtype)
        self.sizes = cfg.layers
        self.hidden = cfg.activation
        self.output = cfg.output_activation
        self.cost_name = cfg.cost
        self.x = np.ascontiguousarray(x, dtype=self.dtype)  # no copy for Trainer.x
        self.y = np.asarray(y)
        # One-hot targets of every training example, so a batch's are one gather.
        self.onehot = np.zeros((len(self.y), self.sizes[-1]), self.dtype)
        self.onehot[np.arange(len(self.y)), self.y] = 1
        # W[l] = [w | b], (n_out, n_in + 1), all in one flat array so that the update of
        # every layer is one call; net.params[l] holds views into it.
        shapes = [(n_out, n_in + 1) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]
        total = sum(a * b for a, b in shapes)
        self.W_flat = np.empty(total, self.dtype)
        self.grads_flat = np.empty(total, self.dtype)  # -eta nabla_W of every layer
        self.W, self.grads, off = [], [], 0
        for shape in shapes:
            size = shape[0] * shape[1]
            self.W.append(self.W_flat[off : off + size].reshape(shape))
            self.grads.append(self.grads_flat[off : off + size].reshape(shape))
            off += size
        self.w_views = [W[:, :-1] for W in self.W]
        self.b_views = [W[:, -1] for W in self.W]
        self._bound: list[tuple[dict, np.ndarray, np.ndarray]] = []
        self._adopt()
        self._plans: dict[int, _Plan] = {}
        self._init_blas_limit(self.sizes)

    # --- the parameters ---------------------------------------------------------
    def _adopt(self) -> None:
        """Copy the network's current parameters into W and point the network at views of W."""
        if len(self.net.params) != len(self.W):
            raise ConfigError("The network's layers changed during training; start a new Trainer.")
        for wv, bv, p in zip(self.w_views, self.b_views, self.net.params):
            wv[...] = p["w"]
            bv[...] = p["b"]
            p["w"], p["b"] = wv, bv
        self._bound = [(p, p["w"], p["b"]) for p in self.net.params]

    def _check_bound(self) -> None:
        params = self.net.params
        if len(params) != len(self._bound):
            self._adopt()
            return
        for p, (q, w, b) in zip(params, self._bound):
            if p is not q or p.get("w") is not w or p.get("b") is not b:
                self._adopt()
                return

    # --- one step -----------------------------------------------------------------
    def forward(self, idx: np.ndarray) -> _Plan:
        """Gather the batch ``idx`` and run it forward; the output is ``plan.out``."""
        self._check_bound()
        m = len(idx)
        plan = self._plans.get(m)
        if plan is None:
            plan = self._plans[m] = _Plan(self, m)
        # 'clip' skips the bounds-checked (buffered) path of take: idx comes from a permutation.
        np.take(self.x, idx, 0, plan.x_in, "clip")
        np.take(self.onehot, idx, 0, plan.targets, "clip")
        for f, args in plan.forward:
            f(*args)
        return plan

    def step(self, idx: np.ndarray, eta: float, decay: float = 0.0) -> float:
        """One SGD step on the examples ``idx``; returns their average cost *before* the step.

        If that cost is not finite, nothing is changed and the cost (NaN or inf) is
        returned: the caller decides what divergence means.
        """
        limit = self._threads_for(len(idx))
        if limit is None:
            return self._step(idx, eta, decay)
        with limit:
            return self._step(idx, eta, decay)

    def _step(self, idx: np.ndarray, eta: float, decay: float) -> float:
        plan = self.forward(idx)
        m = len(idx)
        r = plan.r
        np.subtract(plan.out, plan.targets, r)  # a^L - y
        if self.cost_name == "quadratic":
            cost = 0.5 * float(np.vdot(r, r)) / m  # as nn.costs.QuadraticCost.fn
        else:
            cost = total_cost(self.net, plan.out, self.y[idx]) / m
        if not math.isfinite(cost):
            return cost
        plan.c[...] = -eta / m
        for f, args in plan.backward:
            f(*args)
        if decay:
            shrink = self.dtype.type(1 - eta * decay)
            for wv in self.w_views:
                np.multiply(wv, shrink, out=wv)
        np.add(self.W_flat, self.grads_flat, self.W_flat)  # W <- W - eta nabla_W, every layer
        return cost
