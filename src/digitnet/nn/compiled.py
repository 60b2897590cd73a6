"""The training step of dense networks compiled with Numba: many mini-batches per call.

At batch size 10 the NumPy path (:mod:`digitnet.nn.fast`) spends most of a step in the
~1 us that each of its ~35 small NumPy calls costs. Here a whole run of batches is one
call into compiled code (:func:`digitnet.nn._kernels.sgd_batches`): the batch is gathered,
the products and the element-wise work are loops, with no Python in between.
Where most inputs are 0 (four in five MNIST pixels are), the first layer's products skip
them: the inputs are kept as compressed rows and no batch is gathered at all.

This is the ``numba`` engine of :mod:`digitnet.training.engines`. It is optional: it needs Numba
(no BLAS, hence no SciPy): ``pip install 'digitnet[fast]'``. Networks with a layer above
the first wider than :data:`WIDEST` weights are left to the NumPy engine (:func:`too_wide`).
Without them ``auto`` picks the NumPy engine; ``tests/test_engines.py`` checks that every
engine agrees with the reference, and ``tests/test_compiled.py`` the kernels themselves.

The first use compiles the kernels (a few seconds) and caches them on disk beside this
file, so later runs start at once.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from digitnet.config import NetworkConfig
from digitnet.errors import ConfigError
from digitnet.nn.network import Network

SPARSE_BELOW = 0.3  # inputs this dense or less (the fraction not 0) use the sparse first layer
_ACT = {"sigmoid": 0, "tanh": 1, "relu": 2, "identity": 3, "softmax": 4}
_COST = {"quadratic": 0, "cross-entropy": 1}


def missing() -> str | None:
    """Why the compiled engine cannot run here, or None if it can."""
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed (pip install 'digitnet[fast]')"
    return None


WIDEST = 256 * 256  # weights of the largest layer above the first that this engine takes


def too_wide(sizes) -> str | None:
    """Why the compiled engine leaves a network with these layer sizes to the numpy engine,
    or None. Its products are loops written for the video's narrow layers; from about
    512 x 512 weights a layer, BLAS (the numpy engine) multiplies faster."""
    for l, (n_in, n_out) in enumerate(zip(sizes[1:-1], sizes[2:]), start=2):
        if n_in * n_out > WIDEST:
            return (f"layer {l} has {n_in} x {n_out} weights, more than the {WIDEST:,} it is fast for "
                    "(the numpy engine's BLAS is faster there)")
    return None


class CompiledSGD:
    """Plain mini-batch SGD of a dense ``net`` on ``x`` (n, n_in), ``y`` (n,), compiled.

    The same interface as :class:`digitnet.nn.fast.FastSGD`:

    >>> path = CompiledSGD(net, train.x, train.y)
    >>> costs = path.steps(order, 0, 600, 10, eta=3.0)   # 600 batches of 10, one call
    >>> cost = path.step(order[:10], eta=3.0)

    The network's ``params`` are updated in place (made C-contiguous in the network's
    dtype first, if they are not).

    ``sparse``: whether the first layer works only on the inputs that are not 0, from ``x``
    compressed by rows (:func:`digitnet.nn._kernels.csr_rows`). ``None`` (the default)
    decides by ``x``: sparse where at most :data:`SPARSE_BELOW` of it is not 0, as for
    MNIST (19% of the pixels, 22% deskewed); Fashion-MNIST (50%) stays dense. The two
    ways sum the same terms in a different order, so they agree to float rounding.

    ``pixels``, optional, are the uint8 images that ``x`` was computed from as
    ``pixels / 255`` in float32 (:attr:`digitnet.data.datasets.Split.x`, no preprocessing).
    Dense batches are then gathered from them, a quarter of the memory traffic, and
    converted the same way, so the inputs are bit for bit the same.
    """

    def __init__(self, net: Network, x: np.ndarray, y: np.ndarray, pixels: np.ndarray | None = None,
                 sparse: bool | None = None):
        if any(kind != "dense" for kind in net.kinds):
            raise ConfigError("The compiled training path handles dense layers only.")
        cfg: NetworkConfig = net.config
        if cfg.activation not in ("sigmoid", "tanh", "relu") or cfg.output_activation not in _ACT:
            raise ConfigError(
                f"The compiled training path does not know the activations {cfg.activation!r} / "
                f"{cfg.output_activation!r}."
            )
        if cfg.cost == "cross-entropy" and cfg.output_activation not in ("sigmoid", "softmax"):
            raise ConfigError("The cross-entropy cost needs sigmoid or softmax outputs.")
        if (why := missing()) is not None:
            raise ConfigError(f"The compiled training path cannot run: {why}.")
        from digitnet.nn import _kernels

        self._kernel = _kernels.sgd_batches
        self.net = net
        self.dtype = np.dtype(cfg.dtype)
        self.sizes = cfg.layers
        self.x = np.ascontiguousarray(x, dtype=self.dtype)
        if pixels is not None:
            pixels = np.asarray(pixels)
            if (pixels.dtype != np.uint8 or self.dtype != np.float32 or len(pixels) != len(self.x)
                    or pixels[:1].size != self.x[:1].size):
                raise ConfigError("pixels must be the uint8 images behind float32 inputs x.")
        if sparse is None:
            sparse = np.count_nonzero(self.x) <= SPARSE_BELOW * self.x.size
        self.sparse = bool(sparse) and len(self.x) > 0
        self.pixels = np.zeros((0, 0), np.uint8)
        self.csr = (np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, self.dtype))  # (indptr, indices, values)
        if self.sparse:
            index = np.zeros(0, np.uint16 if self.sizes[0] <= 2**16 else np.int64)
            self.csr = _kernels.csr_rows(self.x, index)
            self.x = self.x[:0]  # not read: the rows come from the compressed copy
        elif pixels is not None:
            self.pixels = np.ascontiguousarray(pixels.reshape(len(pixels), -1))
            self.x = self.x[:0]  # not read: batches come from the pixels
        self.y = np.ascontiguousarray(y, dtype=np.int64)
        self.codes = (_ACT[cfg.activation], _ACT[cfg.output_activation], _COST[cfg.cost])
        from digitnet.nn.costs import EPS

        self.consts = np.array([0.5, 1, 0, EPS, 1 - EPS, 255], self.dtype)
        self._call(np.zeros(0, np.int64), 0, 0, 1, 0.0, 0.0)  # compile, or load from the cache, now

    def _call(self, order, start, n_batches, m, eta, decay) -> tuple[int, np.ndarray]:
        ws, bs = self._params()
        costs = np.empty(n_batches)
        hidden, output, cost = self.codes
        return self._kernel(self.x, self.pixels, self.csr, self.y, order, start, n_batches, m, ws, bs, hidden, output,
                            cost, self.consts, float(eta), float(decay), costs), costs

    def _params(self) -> tuple[tuple, tuple]:
        params = self.net.params
        if len(params) != len(self.sizes) - 1:
            raise ConfigError("The network's layers changed during training; start a new Trainer.")
        for p in params:
            for key in ("w", "b"):
                v = p[key]
                if v.dtype != self.dtype or not v.flags.c_contiguous or not v.flags.writeable:
                    p[key] = np.array(v, dtype=self.dtype, order="C")
        return tuple(p["w"] for p in params), tuple(p["b"] for p in params)

    def steps(self, order: np.ndarray, start: int, n_batches: int, m: int, eta: float, decay: float = 0.0) -> np.ndarray:
        """``n_batches`` SGD steps on batches of ``m``: batch k is ``order[start + k m :][:m]``.

        Returns the costs of the batches stepped, each *before* its step. If a batch's
        cost is not finite, it is the last one returned and its step was not taken.
        ``decay`` is L2 weight decay per step, as in :class:`~digitnet.nn.fast.FastSGD`.
        """
        order = np.ascontiguousarray(order, dtype=np.int64)
        if n_batches < 1 or m < 1 or start < 0 or start + n_batches * m > len(order):
            raise ConfigError(f"Batches {start}..{start + n_batches * m} do not fit an order of {len(order)}.")
        done, costs = self._call(order, start, n_batches, m, eta, decay)
        return costs[: min(done + 1, n_batches)]

    def step(self, idx: np.ndarray, eta: float, decay: float = 0.0) -> float:
        """One SGD step on the examples ``idx``; returns their average cost before it."""
        return float(self.steps(idx, 0, 1, len(idx), eta, decay)[0])
