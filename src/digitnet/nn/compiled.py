"""The training step of dense networks compiled with Numba: many mini-batches per call.

At batch size 10 the NumPy path (:mod:`digitnet.nn.fast`) spends most of a step in the
~1 us that each of its ~35 small NumPy calls costs. Here a whole run of batches is one
call into compiled code (:func:`digitnet.nn._kernels.sgd_batches`): the batch is gathered,
the products and the element-wise work are loops, with no Python in between.
Where most inputs are 0 (four in five MNIST pixels are), the first layer's products skip
them: the inputs are kept as compressed rows and no batch is gathered at all.

This is the ``numba`` engine of :mod:`digitnet.training.engines`. ``pip install digitnet``
installs Numba where it has wheels (no BLAS, hence no SciPy); where it is missing, or fails to
import, ``auto`` picks the NumPy engine (:func:`missing` says why). Networks with a layer above
the first wider than :data:`WIDEST` weights are left to the NumPy engine (:func:`too_wide`).
``tests/test_engines.py`` checks that every
engine agrees with the reference, and ``tests/test_compiled.py`` the kernels themselves.

The kernels are compiled when the package is built (``setup.py``), for this CPU, and
loaded from there; what that cache lacks (another CPU or Numba version, float64, another
number of layers) compiles on first use into the user's cache directory, and loads from
there afterwards: :mod:`digitnet.nn._numba_cache` (``$NUMBA_CACHE_DIR``, else
``~/.cache/digitnet/numba`` on Linux), even where the package is read-only.

Memory: the inputs are held once, in the form the kernels read. :class:`SparseRows` builds
the compressed rows a few thousand examples at a time (never the whole float array, when
the :class:`~digitnet.training.train.Trainer` streams them) and gives back dense rows for
the per-epoch measurements.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from typing import Iterable

import numpy as np

from digitnet.config import NetworkConfig
from digitnet.errors import ConfigError
from digitnet.nn.network import Network

SPARSE_BELOW = 0.3  # inputs this dense or less (the fraction not 0) use the sparse first layer
_ACT = {"sigmoid": 0, "tanh": 1, "relu": 2, "identity": 3, "softmax": 4}
_COST = {"quadratic": 0, "cross-entropy": 1}


def missing() -> str | None:
    """Why the compiled engine cannot run here, or None if it can: Numba is not installed,
    fails to import (e.g. a NumPy newer than it supports), is switched off
    (``NUMBA_DISABLE_JIT``), or the kernels' module fails to load."""
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed"
    return _import_error()


@functools.lru_cache(maxsize=None)
def _import_error() -> str | None:
    try:
        import numba
    except Exception as e:  # an ImportError, or whatever a broken install raises
        return f"Numba fails to import ({_first_line(e)})"
    if numba.config.DISABLE_JIT:  # the kernels' intrinsics cannot run as Python
        return "NUMBA_DISABLE_JIT is set"
    try:
        from digitnet.nn import _kernels  # noqa: F401
    except Exception as e:  # e.g. llvmlite broken, or Numba refusing to set up the kernels
        return f"its kernels fail to load ({_first_line(e)})"
    return None


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"


def _index_dtype(n_in: int) -> np.dtype:
    return np.dtype(np.uint16 if n_in <= 2**16 else np.int64)


def pixel_table(dtype) -> np.ndarray:
    """The 256 numbers ``k / 255`` as the inputs hold them: computed in float32, as
    :attr:`digitnet.data.datasets.Split.x` does, then cast to ``dtype``."""
    return (np.arange(256, dtype=np.float32) / np.float32(255)).astype(dtype)


def _cache_misses(kernel) -> int:
    """How many times Numba found no cached code for a call of ``kernel`` and compiled it."""
    return sum(kernel.stats.cache_misses.values())


class SparseRows:
    """Inputs (n, n_in) compressed by rows: row r's values that are not 0 are
    ``values[indptr[r] : indptr[r + 1]]``, at the columns ``indices[...]`` (ascending;
    uint16 where ``n_in`` allows). About a quarter of the dense array's bytes for MNIST.

    Where every value is one of :func:`pixel_table`'s (inputs that are pixels / 255, bit for
    bit), ``values`` are uint8 codes and ``table`` the numbers they stand for: value p is
    ``table[values[p]]``, exactly the number compressed, in a quarter of the bytes (MNIST:
    27 MB in all instead of 54, which the kernels read twice an epoch). Otherwise ``table``
    is None and ``values`` are the numbers themselves.

    Codes with uint16 columns are stored as one record of 3 bytes per value, ``records``:
    the column (2 bytes, little-endian), then the code. The kernels then read a value's
    column and code with one load instead of two (about a tenth of an epoch);
    ``indices`` and ``values`` are views of the records. Otherwise ``records`` is None."""

    BLOCK = 4096  # rows compressed at a time: bounds the temporaries (mask, column numbers)

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, n_in: int,
                 table: np.ndarray | None = None, records: np.ndarray | None = None):
        indptr = np.ascontiguousarray(indptr)
        if records is None:  # the kernels read them as contiguous arrays, uint8 columns as packed records
            columns = np.uint16 if np.asarray(indices).dtype == np.uint8 else None
            indices, values = np.ascontiguousarray(indices, dtype=columns), np.ascontiguousarray(values)
            if not (len(indptr) >= 1 and indptr[0] == 0 and indptr[-1] == len(indices) == len(values)):
                raise ValueError("indptr must run from 0 to the number of values, as many as the columns")
            if len(indices) and int(indices.max()) >= int(n_in):
                raise ValueError(f"a column number is {int(indices.max())}, outside the {int(n_in)} columns")
        self.indptr, self.indices, self.values, self.n_in = indptr, indices, values, int(n_in)
        self.table = table
        self.records = records

    @classmethod
    def packed(cls, indptr: np.ndarray, records: np.ndarray, n_in: int, table: np.ndarray) -> "SparseRows":
        """Rows whose values are codes of ``table``, as ``records`` (3 bytes a value, and one
        byte more at the end, which the kernels' 4-byte loads may read)."""
        n = int(indptr[-1])
        if len(records) != 3 * n + 1:
            raise ValueError(f"{n} values need {3 * n + 1} bytes of records, not {len(records)}")
        return cls(indptr, *_record_views(records, n), n_in, table, records)

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, indices, values) as the kernels take them: for records, (indptr, records, records)."""
        if self.records is not None:
            return self.indptr, self.records, self.records
        return self.indptr, self.indices, self.values

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.n_in

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype if self.table is None else self.table.dtype

    @property
    def nbytes(self) -> int:
        held = self.records.nbytes if self.records is not None else self.indices.nbytes + self.values.nbytes
        return self.indptr.nbytes + held

    def numbers(self, lo: int, hi: int) -> np.ndarray:
        """``values[lo:hi]`` as the numbers they are (decoded where they are codes)."""
        return self.values[lo:hi] if self.table is None else self.table[self.values[lo:hi]]

    @classmethod
    def of(cls, x: np.ndarray, most: int | None = None) -> "SparseRows | None":
        """``x`` (n, n_in) compressed, or None if more than ``most`` of its values are not 0."""
        n, n_in = x.shape
        return cls.compress(((i, x[i : i + cls.BLOCK]) for i in range(0, n, cls.BLOCK)), n, n_in, x.dtype, most)

    @classmethod
    def compress(cls, blocks: Iterable[tuple[int, np.ndarray]], n: int, n_in: int, dtype,
                 most: int | None = None) -> "SparseRows | None":
        """The rows given as ``blocks`` of ``(start, rows)`` (in order, covering 0..n) compressed,
        or None as soon as more than ``most`` values are not 0. Only the compressed arrays
        and one block's temporaries are held: the space for ``most`` values is reserved,
        written as it fills, and the rest given back at the end. The values are kept as
        uint8 codes while every one so far is :func:`pixel_table`'s, else as numbers."""
        dtype = np.dtype(dtype)
        cap = n * n_in if most is None else min(n * n_in, int(most))
        indptr = np.zeros(n + 1, np.int64)
        table = pixel_table(dtype)
        # While every value is a code of the table: records (column, code), where the columns
        # fit 2 bytes (on a little-endian CPU, as the kernels read them); else two arrays.
        packed = _index_dtype(n_in) == np.uint16 and sys.byteorder == "little"
        records = np.empty(3 * cap + 1, np.uint8) if packed else None
        indices = None if packed else np.empty(cap, _index_dtype(n_in))
        values = None if packed else np.empty(cap, np.uint8)  # codes of table, until a value is not one of its numbers
        p = r = 0
        for start, block in blocks:
            block = np.asarray(block)
            if start != r or block.ndim != 2 or block.shape[1] != n_in or block.dtype != dtype:
                raise ValueError(f"block at {start} of shape {block.shape} ({block.dtype}) does not continue "
                                 f"row {r} of ({n}, {n_in}) {dtype} rows")
            mask = block != 0
            counts = np.count_nonzero(mask, axis=1)
            k = int(counts.sum())
            if p + k > cap:
                return None
            indptr[r + 1 : r + 1 + len(block)] = counts
            columns = np.nonzero(mask)[1]
            numbers = block[mask]
            codes = _codes(numbers, table) if table is not None else None
            if table is not None and codes is None:  # not all pixels / 255: from here on the numbers themselves
                if records is not None:
                    indices, coded = np.empty(cap, _index_dtype(n_in)), np.empty(cap, np.uint8)
                    indices[:p], coded[:p] = _record_views(records, p)
                    records = None
                else:
                    coded = values
                values = np.empty(cap, dtype)
                np.take(table, coded[:p], out=values[:p])
                del coded
                table = None
            if records is not None:
                at = records[3 * p : 3 * (p + k)].reshape(k, 3)
                at[:, 0], at[:, 1], at[:, 2] = columns & 0xFF, columns >> 8, codes
            else:
                indices[p : p + k] = columns
                values[p : p + k] = codes if table is not None else numbers
            p, r = p + k, r + len(block)
        if r != n:
            raise ValueError(f"the blocks end at row {r}, not {n}")
        np.cumsum(indptr, out=indptr)
        if records is not None:
            records.resize(3 * p + 1, refcheck=False)  # in place: the unwritten tail is returned, not copied
            records[3 * p] = 0
            return cls.packed(indptr, records, n_in, table)
        indices.resize(p, refcheck=False)
        values.resize(p, refcheck=False)
        return cls(indptr, indices, values, n_in, table)

    def dense(self, start: int, stop: int, out: np.ndarray | None = None, held: tuple | None = None) -> np.ndarray:
        """Rows ``start:stop`` as a dense (stop - start, n_in) array, exactly the rows compressed.

        ``out``, optional, is a buffer to write them into (its first rows are returned); it
        must hold zeros except where ``held`` = ``(rows, start, stop)`` says it holds rows
        of a :class:`SparseRows` (those entries are cleared first): a buffer reused this way
        costs neither a fresh allocation nor a pass of zeros."""
        if start < 0:
            raise ValueError(f"rows start at 0, not {start}")
        stop = min(stop, len(self))
        m = max(stop - start, 0)
        if _import_error() is not None:  # no Numba: NumPy's scattered writes, into a new array
            return self._dense_numpy(start, stop)
        if out is None or out.shape[0] < m or out.shape[1] != self.n_in or out.dtype != self.dtype:
            out = np.zeros((m, self.n_in), self.dtype)
        elif held is not None:
            rows, a, b = held
            rows._write(a, out[: b - a], zero=True)
        self._write(start, out[:m])
        return out[:m]

    def _write(self, start: int, out: np.ndarray, zero: bool = False) -> None:
        """Rows ``start : start + len(out)`` written into ``out`` (or, with ``zero``, 0 where they are not 0)."""
        from digitnet.nn._kernels import dense_coded_rows, dense_packed_rows, dense_rows

        if self.records is not None:
            dense_packed_rows(self.indptr, self.records, self.table, start, out, zero)
        elif self.table is None:
            dense_rows(self.indptr, self.indices, self.values, start, out, zero)
        else:
            dense_coded_rows(self.indptr, self.indices, self.values, self.table, start, out, zero)

    def _dense_numpy(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((max(stop - start, 0), self.n_in), self.dtype)
        flat = out.reshape(-1)
        for i in range(start, stop, 1024):  # bounded temporaries
            j = min(i + 1024, stop)
            lo, hi = self.indptr[i], self.indptr[j]
            at = np.repeat(np.arange(i - start, j - start, dtype=np.int64) * self.n_in, np.diff(self.indptr[i : j + 1]))
            at += self.indices[lo:hi]
            flat[at] = self.numbers(lo, hi)
        return out


def _record_views(records: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The columns (little-endian uint16) and the codes of the first ``n`` 3-byte records, as views."""
    if n == 0:
        return np.zeros(0, np.dtype("<u2")), np.zeros(0, np.uint8)
    return np.ndarray((n,), np.dtype("<u2"), records, 0, (3,)), np.ndarray((n,), np.uint8, records, 2, (3,))


def _codes(numbers: np.ndarray, table: np.ndarray) -> np.ndarray | None:
    """``numbers`` as uint8 codes of ``table`` (``table[codes]`` gives them back bit for bit), or None
    if one of them is not in it. ``table`` is :func:`pixel_table`'s: increasing, k / 255."""
    with np.errstate(invalid="ignore"):
        codes = np.rint(np.clip(numbers * 255.0, 0, 255)).astype(np.uint8)  # NaN: any code, refused below
    # Equal as numbers is equal bit for bit here: no value is 0 (so neither -0) and NaN is never equal.
    return codes if np.array_equal(table[codes], numbers) else None


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

    ``x`` may also be the inputs already compressed (:class:`SparseRows`), or None when
    ``pixels`` are given and the first layer is dense: the inputs are then read from the
    pixels alone.

    ``sparse``: whether the first layer works only on the inputs that are not 0, from ``x``
    compressed by rows (:class:`SparseRows`). ``None`` (the default)
    decides by ``x``: sparse where at most :data:`SPARSE_BELOW` of it is not 0, as for
    MNIST (19% of the pixels, 22% deskewed); Fashion-MNIST (50%) stays dense. The two
    ways sum the same terms in a different order, so they agree to float rounding.

    ``pixels``, optional, are the uint8 images that ``x`` was computed from as
    ``pixels / 255`` in float32 (:attr:`digitnet.data.datasets.Split.x`, no preprocessing).
    Dense batches are then gathered from them, a quarter of the memory traffic, and
    converted the same way, so the inputs are bit for bit the same.
    """

    def __init__(self, net: Network, x: np.ndarray | SparseRows | None, y: np.ndarray,
                 pixels: np.ndarray | None = None, sparse: bool | None = None):
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
        n_in = self.sizes[0]
        rows: SparseRows | None = None
        if isinstance(x, SparseRows):
            if sparse is False or x.dtype != self.dtype or x.n_in != n_in:
                raise ConfigError(f"Compressed inputs must be {self.dtype} rows of {n_in} values, for a sparse first layer.")
            rows, n = x, len(x)
            self.x = np.zeros((0, n_in), self.dtype)
        elif x is None:
            if pixels is None or sparse:
                raise ConfigError("Without inputs x, the compiled path needs the pixels and a dense first layer.")
            n = len(pixels)
            self.x = np.zeros((0, n_in), self.dtype)
        else:
            self.x = np.ascontiguousarray(x, dtype=self.dtype)
            n = len(self.x)
            if sparse is not False and n > 0:
                most = None if sparse else int(SPARSE_BELOW * self.x.size)
                rows = SparseRows.of(self.x, most)
        if pixels is not None:
            pixels = np.asarray(pixels)
            if (pixels.dtype != np.uint8 or self.dtype != np.float32 or len(pixels) != n
                    or pixels[:1].size != n_in):
                raise ConfigError("pixels must be the uint8 images behind float32 inputs x.")
        self.sparse = rows is not None
        self.rows = rows  # the compressed inputs, when sparse
        self.pixels = np.zeros((0, 0), np.uint8)
        self.csr = (np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, self.dtype))  # (indptr, indices, values)
        table = np.zeros(256, self.dtype)
        if rows is not None:
            self.csr = rows.kernel_arrays()
            if rows.table is not None:
                table = rows.table
            self.x = self.x[:0]  # not read: the rows come from the compressed copy
        elif pixels is not None:
            self.pixels = np.ascontiguousarray(pixels.reshape(len(pixels), -1))
            self.x = self.x[:0]  # not read: batches come from the pixels
        self.y = np.ascontiguousarray(y, dtype=np.int64)
        if len(self.y) != n or (n and (self.y.min() < 0 or self.y.max() >= self.sizes[-1])):
            raise ConfigError(f"The labels must be {n} class numbers from 0 to {self.sizes[-1] - 1}.")
        self.codes = (_ACT[cfg.activation], _ACT[cfg.output_activation], _COST[cfg.cost])
        from digitnet.nn.costs import EPS

        # [1/2, 1, 0, clip low, clip high, 255], then the numbers of coded values (_kernels.TABLE)
        self.consts = np.concatenate([np.array([0.5, 1, 0, EPS, 1 - EPS, 255], self.dtype), table])
        misses = _cache_misses(self._kernel)
        self._call(np.zeros(0, np.int64), 0, 0, 1, 0.0, 0.0)  # compile, or load from the cache, now
        # Whether that compiled: the first time on this machine for these arrays' types (the
        # number of layers, the dtype, the form of the inputs); seconds to a minute.
        self.compiled = _cache_misses(self._kernel) > misses

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
        used = order[start : start + n_batches * m]  # the kernels index the examples unchecked
        if used.min() < 0 or used.max() >= len(self.y):
            raise ConfigError(f"The order names examples {used.min()}..{used.max()}; there are {len(self.y)}.")
        done, costs = self._call(order, start, n_batches, m, eta, decay)
        return costs[: min(done + 1, n_batches)]

    def step(self, idx: np.ndarray, eta: float, decay: float = 0.0) -> float:
        """One SGD step on the examples ``idx``; returns their average cost before it."""
        return float(self.steps(idx, 0, 1, len(idx), eta, decay)[0])
