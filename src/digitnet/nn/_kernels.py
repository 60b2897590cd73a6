"""Numba kernels of :mod:`digitnet.nn.compiled`: mini-batch SGD for dense networks,
many batches per call. Importing this module imports Numba; only
:mod:`digitnet.nn.compiled` does, and only when it is asked to train.

The math is :func:`digitnet.nn.network.backprop` followed by a plain SGD step, as in
:mod:`digitnet.nn.fast`:

* forward:  z^l = a^{l-1} w^l^T + b^l,  a^l = sigma(z^l)
* BP1:      delta^L = c dC/da^L (.) sigma'(z^L),  with c = -eta / m folded in
* BP2:      delta^l = (delta^{l+1} w^{l+1}) (.) sigma'(z^l)
* BP3, BP4: w^l += delta^l^T a^{l-1},  b^l += sum over the batch of delta^l

so each layer's update is ``-eta/m`` times its gradient. No BLAS (and so no SciPy): every
product is a loop over vectors of 64 bytes written in LLVM's terms (:func:`_rows_times`),
each number of it a chain of fused multiply-adds in the order of its terms, so the
results do not depend on the CPU or on how the work is split; the element-wise work is
plain loops, with no allocation and no per-call overhead.

Sparse inputs. Four in five MNIST pixels are 0, and the first layer's two products (the
forward pass and BP4) are 98% of the arithmetic. With the inputs as compressed rows
(:func:`csr_rows`: each example's nonzero pixels and their values), each product touches
only the pixels that are not 0:

* forward:  z^1_j = b^1 + sum over the pixels i of x_j that are not 0 of x_ji w^1[:, i]
* BP4:      w^1[:, i] += x_ji delta^1_j  for the same pixels

Both work on ``wt`` = w^1 transposed, (n_in, n_pad): row i is what pixel i feeds to the
layer, padded with zeros to whole 64-byte vectors, so that each term is one vector
multiply and add (:func:`_sparse_rows`, :func:`sparse_axpy`). No batch is gathered: the
rows are read where they are, two examples side by side. Pixel values come as uint8 codes
of a table of k/255, each with its column in a 3-byte record (:func:`_record`: one load).

Activation codes: 0 sigmoid, 1 tanh, 2 relu, 3 identity, 4 softmax.
Cost codes: 0 quadratic, 1 cross-entropy.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from digitnet.nn import _numba_cache  # noqa: F401 (where the kernels are cached: registers its locator)

SIGMOID, TANH, RELU, IDENTITY, SOFTMAX = 0, 1, 2, 3, 4
QUADRATIC, CROSS_ENTROPY = 0, 1
VECTOR_BYTES = 64  # one AVX-512 register; LLVM splits it where the CPU's are narrower


def vector_length(dtype) -> int:
    """How many numbers of ``dtype`` one vector of the kernels holds: 16 float32s, 8 float64s."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


def _element_at(context, builder, arr, arrty, index, indexty):
    """LLVM: the address of ``arr[index]`` of a 1-D contiguous array."""
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.gep(data, [context.cast(builder, index, indexty, types.intp)], inbounds=True)


@intrinsic
def prefetch(typingctx, arr, i):
    """Ask the CPU to bring the cache line holding ``arr[i]`` (1-D) to its fastest cache,
    without waiting for it: a hint (LLVM's ``llvm.prefetch``), never a fault."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        arr_, i_ = args
        arrty, ity = signature.args
        at = _element_at(context, builder, arr_, arrty, i_, ity)
        byte_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = builder.module.declare_intrinsic("llvm.prefetch", [byte_ptr],
                                              ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]))
        # read, keep in all cache levels, data (not instructions)
        builder.call(fn, [builder.bitcast(at, byte_ptr), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, i), codegen


@njit(cache=True, nogil=True)
def csr_rows(x, indices_dtype):
    """The rows of ``x`` (n, n_in) as compressed sparse rows: ``(indptr, indices, values)``.

    Row r's entries that are not 0 are ``values[indptr[r] : indptr[r + 1]]``, at columns
    ``indices[...]`` (ascending, of the dtype of ``indices_dtype``, a 0-length array).
    """
    n, n_in = x.shape
    indptr = np.zeros(n + 1, np.int64)
    for r in range(n):
        count = 0
        for i in range(n_in):
            if x[r, i] != 0:
                count += 1
        indptr[r + 1] = indptr[r] + count
    indices = np.empty(indptr[n], indices_dtype.dtype)
    values = np.empty(indptr[n], x.dtype)
    for r in range(n):
        p = indptr[r]
        for i in range(n_in):
            if x[r, i] != 0:
                indices[p] = i
                values[p] = x[r, i]
                p += 1
    return indptr, indices, values


@njit(cache=True, nogil=True)
def _activate(z, code, one, zero):
    """a = sigma(z) in place, row by row; z is (m, n)."""
    m, n = z.shape
    if code == SIGMOID:
        for j in range(m):
            for o in range(n):
                # For z < -88 in float32, exp(-z) is inf and a is 0, its limit: no NaN.
                # (nn.activations.sigmoid computes (1 + tanh(z/2)) / 2, the same number to
                # rounding; tanh is 2.5 times slower here.)
                z[j, o] = one / (one + np.exp(-z[j, o]))
    elif code == TANH:
        for j in range(m):
            for o in range(n):
                z[j, o] = np.tanh(z[j, o])
    elif code == RELU:
        for j in range(m):
            for o in range(n):
                if z[j, o] < zero:  # NaN stays NaN, as with np.maximum
                    z[j, o] = zero
    elif code == SOFTMAX:
        for j in range(m):
            top = z[j, 0]
            for o in range(1, n):
                if z[j, o] > top:
                    top = z[j, o]
            s = zero
            for o in range(n):
                z[j, o] = np.exp(z[j, o] - top)
                s += z[j, o]
            for o in range(n):
                z[j, o] = z[j, o] / s


@njit(cache=True, nogil=True)
def _times_derivative(g, a, code, one, zero, out):
    """out = g (.) sigma'(z), with sigma' computed from a = sigma(z); all (m, n)."""
    m, n = g.shape
    for j in range(m):
        for o in range(n):
            v = a[j, o]
            if code == SIGMOID:
                out[j, o] = g[j, o] * (v * (one - v))
            elif code == TANH:
                out[j, o] = g[j, o] * (one - v * v)
            elif code == RELU:
                out[j, o] = g[j, o] if v > zero else zero
            else:  # identity
                out[j, o] = g[j, o]


# --- products: one vector of V numbers of each of a few rows at a time ---------------------
#
# Every product of the kernel is ``out[r, o : o + V] (op)= sum over k of s[r, k] m[k, o : o + V]``
# for a few rows r at once, with m's rows padded to whole vectors. Each number of ``out`` is
# summed in the order k = 0, 1, 2, ... from 0, whatever the rows or vectors computed together,
# so the result does not depend on the machine or on how the work is split: the dense
# products use one fused multiply-add per term (llvm.fma, rounded once: the same on every CPU),
# the sparse first layer a multiply and an add (as it always has). The rows computed
# together are independent sums, so the CPU overlaps them instead of waiting for each add.

STORE, ADD, SCALE_ADD = 0, 1, 2
AHEAD = 8  # examples ahead whose row bounds and label are fetched (their rows: 2 ahead)  # out = acc;  out = out + acc;  out = out * f + acc


def _vector_type(context, dtype):
    fty = context.get_data_type(dtype)
    return fty, ir.VectorType(fty, VECTOR_BYTES * 8 // dtype.bitwidth)


def _splat(builder, scalar, vty):
    width = vty.count
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width))


def _data(context, builder, arr, arrty):
    return context.make_array(arrty)(context, builder, arr).data


def _vector_at(builder, data, index, vty):
    return builder.bitcast(builder.gep(data, [index], inbounds=True), vty.as_pointer())


def _is_c_array(t):
    """A 1-D contiguous array (what the intrinsics index by element, with nothing checked)."""
    return isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C"


def _is_vector_array(t, dtype=None):
    """A 1-D contiguous array of floats (of ``dtype``, if given)."""
    return _is_c_array(t) and isinstance(t.dtype, types.Float) and (dtype is None or t.dtype == dtype)


def _store_result(builder, out_ptr, acc, mode, f, align):
    if mode == STORE:
        builder.store(acc, out_ptr, align=align)
        return
    old = builder.load(out_ptr, align=align)
    if mode == SCALE_ADD:
        old = builder.fmul(old, f)
    builder.store(builder.fadd(old, acc), out_ptr, align=align)


def _rows_times(R: int, mode: int):
    """An intrinsic for R rows: ``rows_times(out, o0, o_stride, s, s0, s_row, s_k, mat, m0, m_k, K, f)``
    does, for r < R,

        out[o0 + r o_stride : ... + V] (op)= sum over k < K of s[s0 + r s_row + k s_k] * mat[m0 + k m_k : ... + V]

    (1-D contiguous arrays of one float dtype; ``(op)`` by ``mode``: :data:`STORE`, :data:`ADD`,
    :data:`SCALE_ADD` with the scalar f), each sum a chain of fused multiply-adds in k order
    from 0. Nothing is checked: the caller keeps every range inside its array."""

    @intrinsic
    def rows_times(typingctx, out, o0, o_stride, s, s0, s_row, s_k, mat, m0, m_k, k, f):
        if not (_is_vector_array(out) and _is_vector_array(s, out.dtype) and _is_vector_array(mat, out.dtype)):
            return None

        def codegen(context, builder, signature, args):
            tys = signature.args
            ints = [context.cast(builder, args[i], tys[i], types.intp) for i in (1, 2, 4, 5, 6, 8, 9, 10)]
            o0_, o_stride_, s0_, s_row_, s_k_, m0_, m_k_, k_ = ints
            fty, vty = _vector_type(context, tys[0].dtype)
            align = tys[0].dtype.bitwidth // 8
            name = f"llvm.fma.v{vty.count}f{tys[0].dtype.bitwidth}"
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]), name)
            out_d, s_d, m_d = (_data(context, builder, args[i], tys[i]) for i in (0, 3, 7))
            intp = o0_.type
            s_rows = [builder.add(s0_, builder.mul(s_row_, ir.Constant(intp, r))) for r in range(R)]
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vty, None)) for _ in range(R)]
            with cgutils.for_range(builder, k_) as loop:
                kk = loop.index
                mv = builder.load(_vector_at(builder, m_d, builder.add(m0_, builder.mul(kk, m_k_)), vty), align=align)
                sk = builder.mul(kk, s_k_)
                for r in range(R):
                    sv = builder.load(builder.gep(s_d, [builder.add(s_rows[r], sk)], inbounds=True))
                    builder.store(builder.call(fma, [_splat(builder, sv, vty), mv, builder.load(accs[r])]), accs[r])
            fv = _splat(builder, context.cast(builder, args[11], tys[11], tys[0].dtype), vty) if mode == SCALE_ADD else None
            for r in range(R):
                at = builder.add(o0_, builder.mul(o_stride_, ir.Constant(intp, r)))
                _store_result(builder, _vector_at(builder, out_d, at, vty), builder.load(accs[r]), mode, fv, align)
            return context.get_dummy_value()

        return types.void(out, o0, o_stride, s, s0, s_row, s_k, mat, m0, m_k, k, f), codegen

    return rows_times


rows4_store, rows1_store = _rows_times(4, STORE), _rows_times(1, STORE)
rows4_add, rows1_add = _rows_times(4, ADD), _rows_times(1, ADD)
rows4_scale_add, rows1_scale_add = _rows_times(4, SCALE_ADD), _rows_times(1, SCALE_ADD)


TABLE = 6  # where the table of coded values starts in ``consts`` (see sgd_batches)


def _is_values(values, table, dtype):
    """The values of compressed rows: floats of ``dtype``, or uint8 codes of ``table``'s."""
    if isinstance(values, types.Array) and values.dtype == types.uint8:
        return _is_vector_array(table, dtype) and values.ndim == 1 and values.layout == "C"
    return _is_vector_array(values, dtype)


def _value(context, builder, val_d, valty, tab_d, p):
    """LLVM: value p of compressed rows: ``values[p]``, or for uint8 codes ``table[TABLE + values[p]]``
    (one load from a table of 256 numbers that stays in the fastest cache)."""
    v = builder.load(builder.gep(val_d, [p], inbounds=True))
    if valty.dtype != types.uint8:
        return v
    at = builder.add(builder.zext(v, p.type), ir.Constant(p.type, TABLE))
    return builder.load(builder.gep(tab_d, [at], inbounds=True))


def _record(context, builder, rec_d, tab_d, p):
    """LLVM: (column, value) of record p of packed rows (:class:`digitnet.nn.compiled.SparseRows`'
    ``records``: 3 bytes each, the column in 2 little-endian bytes, then the code): one 4-byte
    load, and the value ``table[TABLE + code]``."""
    i32 = ir.IntType(32)
    at = builder.gep(rec_d, [builder.mul(p, ir.Constant(p.type, 3))], inbounds=True)
    word = builder.load(builder.bitcast(at, i32.as_pointer()), align=1)
    column = builder.zext(builder.and_(word, ir.Constant(i32, 0xFFFF)), p.type)
    code = builder.zext(builder.and_(builder.lshr(word, ir.Constant(i32, 16)), ir.Constant(i32, 0xFF)), p.type)
    return column, builder.load(builder.gep(tab_d, [builder.add(code, ir.Constant(p.type, TABLE))], inbounds=True))


def _is_records(indices):
    """Whether compressed rows come as packed records (uint8 ``indices``: see :func:`_record`)."""
    return isinstance(indices, types.Array) and indices.dtype == types.uint8


def _sparse_rows(R: int):
    """An intrinsic for R examples of compressed rows:
    ``sparse_rows(out, o0, o_stride, wt, o, n_pad, indices, values, indptr, order, r0, table)``: for r < R,
    with row = order[r0 + r],

        out[o0 + r o_stride : ... + V] = sum over p in indptr[row] .. indptr[row + 1] of values[p] * wt[indices[p] n_pad + o : ... + V]

    summed from 0 in the order of p, one multiply and one add per term. The R sums run side by
    side over their common length, then each finishes alone. Where ``values`` are uint8 codes,
    each value is ``table[TABLE + code]`` (:func:`_value`)."""

    @intrinsic
    def sparse_rows(typingctx, out, o0, o_stride, wt, o, n_pad, indices, values, indptr, order, r0, table):
        if not (_is_vector_array(out) and _is_vector_array(wt, out.dtype) and _is_values(values, table, out.dtype)
                and _is_c_array(indices) and _is_c_array(indptr) and _is_c_array(order)):
            return None

        def codegen(context, builder, signature, args):
            tys = signature.args
            o0_, o_stride_, o_, n_pad_, r0_ = (context.cast(builder, args[i], tys[i], types.intp) for i in (1, 2, 4, 5, 10))
            fty, vty = _vector_type(context, tys[0].dtype)
            align = tys[0].dtype.bitwidth // 8
            out_d, wt_d, idx_d, val_d, ptr_d, ord_d, tab_d = (_data(context, builder, args[i], tys[i])
                                                              for i in (0, 3, 6, 7, 8, 9, 11))
            intp = o0_.type
            one = ir.Constant(intp, 1)

            def load_int(data, at, ty):
                return context.cast(builder, builder.load(builder.gep(data, [at], inbounds=True)), ty.dtype, types.intp)

            starts, lengths = [], []
            for r in range(R):
                row = load_int(ord_d, builder.add(r0_, ir.Constant(intp, r)), tys[9])
                p0 = load_int(ptr_d, row, tys[8])
                starts.append(p0)
                lengths.append(builder.sub(load_int(ptr_d, builder.add(row, one), tys[8]), p0))
            common = lengths[0]
            for n in lengths[1:]:
                common = builder.select(builder.icmp_signed("<", n, common), n, common)
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vty, None)) for _ in range(R)]

            def term(r, p):
                if _is_records(tys[6]):
                    i, v = _record(context, builder, idx_d, tab_d, p)
                else:
                    i, v = load_int(idx_d, p, tys[6]), _value(context, builder, val_d, tys[7], tab_d, p)
                w = builder.load(_vector_at(builder, wt_d, builder.add(builder.mul(i, n_pad_), o_), vty), align=align)
                builder.store(builder.fadd(builder.load(accs[r]), builder.fmul(_splat(builder, v, vty), w)), accs[r])

            with cgutils.for_range(builder, common) as loop:
                for r in range(R):
                    term(r, builder.add(starts[r], loop.index))
            for r in range(R):
                with cgutils.for_range(builder, builder.sub(lengths[r], common)) as loop:
                    term(r, builder.add(builder.add(starts[r], common), loop.index))
            for r in range(R):
                at = builder.add(o0_, builder.mul(o_stride_, ir.Constant(intp, r)))
                builder.store(builder.load(accs[r]), _vector_at(builder, out_d, at, vty), align=align)
            return context.get_dummy_value()

        return types.void(out, o0, o_stride, wt, o, n_pad, indices, values, indptr, order, r0, table), codegen

    return sparse_rows


sparse_rows2, sparse_rows1 = _sparse_rows(2), _sparse_rows(1)


@intrinsic
def sparse_axpy(typingctx, wt, o, n_pad, indices, values, indptr, row, d, d0, table):
    """BP4 of one example of compressed rows: for p in indptr[row] .. indptr[row + 1],
    ``wt[indices[p] n_pad + o : ... + V] += values[p] * d[d0 : d0 + V]``, a multiply and an add
    (uint8 ``values``: codes of ``table``, as in :func:`_sparse_rows`)."""
    if not (_is_vector_array(wt) and _is_vector_array(d, wt.dtype) and _is_values(values, table, wt.dtype)
            and _is_c_array(indices) and _is_c_array(indptr)):
        return None

    def codegen(context, builder, signature, args):
        tys = signature.args
        o_, n_pad_, row_, d0_ = (context.cast(builder, args[i], tys[i], types.intp) for i in (1, 2, 6, 8))
        fty, vty = _vector_type(context, tys[0].dtype)
        align = tys[0].dtype.bitwidth // 8
        wt_d, idx_d, val_d, ptr_d, d_d, tab_d = (_data(context, builder, args[i], tys[i]) for i in (0, 3, 4, 5, 7, 9))
        intp = o_.type

        def load_int(data, at, ty):
            return context.cast(builder, builder.load(builder.gep(data, [at], inbounds=True)), ty.dtype, types.intp)

        p0 = load_int(ptr_d, row_, tys[5])
        p1 = load_int(ptr_d, builder.add(row_, ir.Constant(intp, 1)), tys[5])
        dv = builder.load(_vector_at(builder, d_d, d0_, vty), align=align)
        with cgutils.for_range(builder, builder.sub(p1, p0)) as loop:
            p = builder.add(p0, loop.index)
            if _is_records(tys[3]):
                i, v = _record(context, builder, idx_d, tab_d, p)
            else:
                i, v = load_int(idx_d, p, tys[3]), _value(context, builder, val_d, tys[4], tab_d, p)
            at = _vector_at(builder, wt_d, builder.add(builder.mul(i, n_pad_), o_), vty)
            builder.store(builder.fadd(builder.load(at, align=align), builder.fmul(_splat(builder, v, vty), dv)), at, align=align)
        return context.get_dummy_value()

    return types.void(wt, o, n_pad, indices, values, indptr, row, d, d0, table), codegen


@intrinsic
def add_rows(typingctx, out, o0, count, n_pad, vec):
    """``out[o0 + j n_pad : ... + n_pad] += vec[:n_pad]`` for j < count: the same vector added to
    each of ``count`` rows of ``n_pad`` numbers (whole vectors; each number one IEEE add)."""
    if not (_is_vector_array(out) and _is_vector_array(vec, out.dtype)):
        return None

    def codegen(context, builder, signature, args):
        tys = signature.args
        o0_, count_, n_pad_ = (context.cast(builder, args[i], tys[i], types.intp) for i in (1, 2, 3))
        fty, vty = _vector_type(context, tys[0].dtype)
        align = tys[0].dtype.bitwidth // 8
        out_d, vec_d = _data(context, builder, args[0], tys[0]), _data(context, builder, args[4], tys[4])
        intp = o0_.type
        width = ir.Constant(intp, vty.count)
        n_vec = builder.udiv(n_pad_, width)
        with cgutils.for_range(builder, count_) as rows:
            row0 = builder.add(o0_, builder.mul(rows.index, n_pad_))
            with cgutils.for_range(builder, n_vec) as cols:
                at = builder.mul(cols.index, width)
                b = builder.load(_vector_at(builder, vec_d, at, vty), align=align)
                ptr = _vector_at(builder, out_d, builder.add(row0, at), vty)
                builder.store(builder.fadd(builder.load(ptr, align=align), b), ptr, align=align)
        return context.get_dummy_value()

    return types.void(out, o0, count, n_pad, vec), codegen


# --- sigmoid: whole vectors at a time ------------------------------------------------------

# exp(x) in float32 (Cephes' expf): x = n ln 2 + r with |r| <= ln 2 / 2, exp(r) a polynomial,
# times 2^n. Each step a plain IEEE multiply or add (never fused, never reordered), so every
# CPU gives the same bits; within 2 ulp of exp (tests/test_compiled.py measures it).
_LOG2E, _LN2_HI, _LN2_LO = 1.44269504088896341, 0.693359375, -2.12194440e-4
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_ROUND = 12582912.0  # 1.5 * 2^23: x + _ROUND - _ROUND is x rounded to an integer (|x| < 2^22)
_EXP_LOW, _EXP_HIGH = -104.0, 89.0  # exp is 0 below (to float32 rounding), inf above


def _exp_f32(builder, x, vty):
    """LLVM: exp of each float32 of the vector ``x``; NaN stays NaN."""
    i32v = ir.VectorType(ir.IntType(32), vty.count)

    def c(value):
        return ir.Constant(vty, [float(value)] * vty.count) if not isinstance(value, ir.Value) else value

    def ci(value):
        return ir.Constant(i32v, [value] * vty.count)

    x = builder.select(builder.fcmp_ordered(">", x, c(_EXP_HIGH)), c(_EXP_HIGH), x)
    x = builder.select(builder.fcmp_ordered("<", x, c(_EXP_LOW)), c(_EXP_LOW), x)
    t = builder.fadd(builder.fmul(x, c(_LOG2E)), c(_ROUND))
    n = builder.fsub(t, c(_ROUND))  # round(x / ln 2), as a float
    r = builder.fsub(builder.fsub(x, builder.fmul(n, c(_LN2_HI))), builder.fmul(n, c(_LN2_LO)))
    p = c(_EXP_POLY[0])
    for k in _EXP_POLY[1:]:
        p = builder.fadd(builder.fmul(p, r), c(k))
    p = builder.fadd(builder.fadd(builder.fmul(builder.fmul(p, r), r), r), c(1.0))
    # 2^n as two powers of two, each a normal float for n in -150..129: p 2^n1 2^n2, exact until
    # the last multiply, which rounds once (to 0, a subnormal or inf where exp does).
    ni = builder.sub(builder.bitcast(t, i32v), builder.bitcast(c(_ROUND), i32v))
    n1 = builder.ashr(ni, ci(1))
    n2 = builder.sub(ni, n1)
    two = [builder.bitcast(builder.shl(builder.add(k, ci(127)), ci(23)), vty) for k in (n1, n2)]
    return builder.fmul(builder.fmul(p, two[0]), two[1])


@intrinsic
def sigmoid_rows(typingctx, z, z0, count, n_pad, n):
    """``z[z0 : z0 + count n_pad]``, rows of ``n_pad`` numbers of which the first ``n`` are a
    layer's inputs, replaced by their sigmoid 1 / (1 + exp(-z)), a vector at a time; the
    other ``n_pad - n`` of each row (the padding) set to 0. ``n_pad`` is a whole number of vectors.
    float32: :func:`_exp_f32`; float64: LLVM's exp (the C library's, as ``np.exp`` in Numba)."""
    if not _is_vector_array(z):
        return None

    def codegen(context, builder, signature, args):
        tys = signature.args
        z0_, count_, n_pad_, n_ = (context.cast(builder, args[i], tys[i], types.intp) for i in (1, 2, 3, 4))
        fty, vty = _vector_type(context, tys[0].dtype)
        align = tys[0].dtype.bitwidth // 8
        z_d = _data(context, builder, args[0], tys[0])
        intp = z0_.type
        width = ir.Constant(intp, vty.count)
        iv = ir.VectorType(intp, vty.count)
        lanes = ir.Constant(iv, list(range(vty.count)))
        one = ir.Constant(vty, [1.0] * vty.count)
        if tys[0].dtype == types.float32:
            def exp(x):
                return _exp_f32(builder, x, vty)
        else:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty]),
                                                f"llvm.exp.v{vty.count}f{tys[0].dtype.bitwidth}")

            def exp(x):
                return builder.call(fn, [x])

        n_vec = _splat(builder, n_, iv)
        with cgutils.for_range(builder, builder.mul(count_, builder.sdiv(n_pad_, width))) as loop:
            at = builder.add(z0_, builder.mul(loop.index, width))
            col0 = builder.srem(builder.mul(loop.index, width), n_pad_)
            ptr = _vector_at(builder, z_d, at, vty)
            x = builder.load(ptr, align=align)
            a = builder.fdiv(one, builder.fadd(one, exp(builder.fneg(x))))
            inside = builder.icmp_signed("<", builder.add(_splat(builder, col0, iv), lanes), n_vec)
            builder.store(builder.select(inside, a, ir.Constant(vty, None)), ptr, align=align)
        return context.get_dummy_value()

    return types.void(z, z0, count, n_pad, n), codegen


@intrinsic
def exp_vector(typingctx, x, out):
    """``out[:V] = exp(x[:V])`` by :func:`_exp_f32`, float32 only: for the tests."""
    if not (_is_vector_array(x, types.float32) and _is_vector_array(out, types.float32)):
        return None

    def codegen(context, builder, signature, args):
        fty, vty = _vector_type(context, types.float32)
        x_d, o_d = (_data(context, builder, args[i], signature.args[i]) for i in (0, 1))
        zero = ir.Constant(ir.IntType(64), 0)
        v = builder.load(_vector_at(builder, x_d, zero, vty), align=4)
        builder.store(_exp_f32(builder, v, vty), _vector_at(builder, o_d, zero, vty), align=4)
        return context.get_dummy_value()

    return types.void(x, out), codegen


@njit(cache=True, nogil=True)
def exp_f32(x, out):
    """``out = exp(x)`` (1-D float32, of a whole number of vectors) as the kernels compute it."""
    v = VECTOR_BYTES // 4
    for k in range(0, x.shape[0], v):
        exp_vector(x[k : k + v], out[k : k + v])


# --- the kernel ----------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def sgd_batches(x, pixels, sparse, y, order, start, n_batches, m, ws, bs, hidden, output, cost, consts, eta,
                decay, costs):
    """Run ``n_batches`` SGD steps of ``m`` examples.

    Batch k is the examples ``order[start + k m : start + (k + 1) m]`` of the inputs, which
    are one of:

    * ``sparse`` = (indptr, indices, values), the rows of x compressed (:func:`csr_rows`),
      when ``indptr`` is not empty;
    * else ``pixels`` (n, n_in) uint8, when ``x`` has fewer rows: the inputs are
      ``pixels / 255`` computed in the network's dtype, exactly as
      :attr:`digitnet.data.datasets.Split.x` computes them, from a quarter of the bytes;
    * else ``x`` (n, n_in).

    Labels are ``y`` (n,). ``ws[l]`` (n_out, n_in) and ``bs[l]`` (n_out,) are updated in
    place (at the end of the call). ``consts`` = [1/2, 1, 0, clip low, clip high, 255] in
    the network's dtype, then (from :data:`TABLE`), where the compressed ``values`` are uint8
    codes, the 256 numbers they stand for (:class:`digitnet.nn.compiled.SparseRows`).

    While the call runs, each layer's weights are kept transposed and padded to whole
    vectors, ``wt`` (n_in, n_out padded), for the forward pass and the update; the layers
    above the first also as they are, padded, ``wp`` (n_out, n_in padded), for BP2. Both
    get the same update, number for number. Work buffers are allocated once per call.

    ``costs[k]`` gets batch k's average cost *before* its step. If that cost is not
    finite, the batch is not stepped and the function returns k; otherwise it returns
    ``n_batches``.
    """
    L = len(ws)
    v = VECTOR_BYTES // consts.itemsize
    is_sparse = sparse[0].shape[0] > 0
    # lay: [sizes (L + 1) | padded sizes (L + 1) | act offsets (L + 2) | delta offsets (L + 1)
    #       | wt offsets (L + 1) | wp offsets (L + 1)]
    lay = np.zeros(6 * (L + 2), np.int64)
    sizes, pads = lay[0 : L + 1], lay[L + 1 : 2 * L + 2]
    aoff, doff = lay[2 * L + 2 : 3 * L + 4], lay[3 * L + 4 : 4 * L + 5]
    wtoff, wpoff = lay[4 * L + 5 : 5 * L + 6], lay[5 * L + 6 : 6 * L + 7]
    sizes[0] = ws[0].shape[1]
    for l in range(L):
        sizes[l + 1] = ws[l].shape[0]
    for l in range(L + 1):
        pads[l] = -(-sizes[l] // v) * v
    aoff[1] = 0 if is_sparse else m * pads[0]  # the gathered batch: none for sparse inputs
    for l in range(1, L + 1):
        aoff[l + 1] = aoff[l] + m * pads[l]
    for l in range(L):
        doff[l + 1] = doff[l] + m * pads[l + 1]
        wtoff[l + 1] = wtoff[l] + sizes[l] * pads[l + 1]
        wpoff[l + 1] = wpoff[l] + (sizes[l + 1] * pads[l] if l > 0 else 0)
    acts = np.zeros(aoff[L + 1], consts.dtype)
    deltas = np.zeros(doff[L], consts.dtype)
    wt = np.zeros(wtoff[L], consts.dtype)
    wp = np.zeros(wpoff[L], consts.dtype)
    for l in range(L):
        w = ws[l]
        _transpose_in(w, wt, wtoff[l], pads[l + 1])
        if l > 0:
            for o in range(sizes[l + 1]):
                for i in range(sizes[l]):
                    wp[wpoff[l] + o * pads[l] + i] = w[o, i]
    done = _steps(x, pixels, sparse, y, order, start, n_batches, m, bs, hidden, output, cost, consts, eta, decay,
                  costs, lay, acts, deltas, wt, wp)
    for l in range(L):
        w = ws[l]
        if l > 0:
            for o in range(sizes[l + 1]):
                for i in range(sizes[l]):
                    w[o, i] = wp[wpoff[l] + o * pads[l] + i]
        else:
            _transpose_out(wt, wtoff[l], pads[l + 1], w)
    return done


@njit(cache=True, nogil=True)
def _transpose_in(w, out, off, pad):
    """out[off + i pad + o] = w[o, i]: w's rows read side by side, out written in order (all in cache)."""
    n_out, n_in = w.shape
    for i in range(n_in):
        at = off + i * pad
        for o in range(n_out):
            out[at + o] = w[o, i]


@njit(cache=True, nogil=True)
def _transpose_out(src, off, pad, w):
    """w[o, i] = src[off + i pad + o], the inverse of :func:`_transpose_in`."""
    n_out, n_in = w.shape
    for i in range(n_in):
        at = off + i * pad
        for o in range(n_out):
            w[o, i] = src[at + o]


@njit(cache=True, nogil=True)
def _dense_forward(acts, a0, z0, k, p_in, p_out, wt, w0, m, v, one):
    """z (m, p_out) at acts[z0:] = a (m, p_in) at acts[a0:] times wt (k, p_out) at wt[w0:], the
    first k columns of a. One vector of columns at a time (k vectors of wt, read from cache
    for every row), rows four at a time."""
    for o in range(0, p_out, v):
        j = 0
        while j + 4 <= m:
            rows4_store(acts, z0 + j * p_out + o, p_out, acts, a0 + j * p_in, p_in, 1, wt, w0 + o, p_out, k, one)
            j += 4
        while j < m:
            rows1_store(acts, z0 + j * p_out + o, p_out, acts, a0 + j * p_in, p_in, 1, wt, w0 + o, p_out, k, one)
            j += 1


@njit(cache=True, nogil=True)
def _update(w, w0, n_rows, p_w, s, s0, s_row, s_k, mat, m0, p_m, m, v, scale, f):
    """w[r, :] (at w[w0:], rows of p_w) (+)= sum over the m examples j of s[s0 + r s_row + j s_k] * mat[m0 + j p_m :],
    for r < n_rows; ``scale``: w = w f + sum (weight decay), else w = w + sum. One vector of
    columns at a time, rows four at a time."""
    for o in range(0, p_w, v):
        r = 0
        while r + 4 <= n_rows:
            if scale:
                rows4_scale_add(w, w0 + r * p_w + o, p_w, s, s0 + r * s_row, s_row, s_k, mat, m0 + o, p_m, m, f)
            else:
                rows4_add(w, w0 + r * p_w + o, p_w, s, s0 + r * s_row, s_row, s_k, mat, m0 + o, p_m, m, f)
            r += 4
        while r < n_rows:
            if scale:
                rows1_scale_add(w, w0 + r * p_w + o, p_w, s, s0 + r * s_row, s_row, s_k, mat, m0 + o, p_m, m, f)
            else:
                rows1_add(w, w0 + r * p_w + o, p_w, s, s0 + r * s_row, s_row, s_k, mat, m0 + o, p_m, m, f)
            r += 1


@njit(cache=True, nogil=True)
def _steps(x, pixels, sparse, y, order, start, n_batches, m, bs, hidden, output, cost, consts, eta, decay, costs,
           lay, acts, deltas, wt, wp):
    """:func:`sgd_batches` on its buffers."""
    L = len(bs)
    v = VECTOR_BYTES // consts.itemsize
    sizes, pads = lay[0 : L + 1], lay[L + 1 : 2 * L + 2]
    aoff, doff = lay[2 * L + 2 : 3 * L + 4], lay[3 * L + 4 : 4 * L + 5]
    wtoff, wpoff = lay[4 * L + 5 : 5 * L + 6], lay[5 * L + 6 : 6 * L + 7]
    half, one, zero, lo, hi, c255 = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
    indptr, indices, values = sparse
    is_sparse = indptr.shape[0] > 0
    from_pixels = x.shape[0] < pixels.shape[0]
    scale = consts[:1].copy()  # -eta / m in the network's dtype
    shrink = consts[:1].copy()
    scale[0] = -eta / m
    shrink[0] = 1.0 - eta * decay
    c, f = scale[0], shrink[0]
    n_in, k_out = sizes[0], sizes[L]
    p1 = pads[1]
    bsum = np.zeros(pads.max(), consts.dtype)  # a layer's BP3 sums
    bpad = np.zeros(pads.max(), consts.dtype)  # a layer's biases, padded
    for batch in range(n_batches):
        s0 = start + batch * m
        rows = order[s0 : s0 + m]
        # Forward.
        if is_sparse:
            j = 0
            while j < m:
                if s0 + j + AHEAD + 1 < len(order):  # where the rows of examples further on start, and their labels
                    for q in range(2):
                        r = order[s0 + j + AHEAD + q]
                        prefetch(indptr, r + 1)
                        prefetch(y, r)
                if s0 + j + 3 < len(order):  # the rows are scattered in memory: ask for the next two now
                    for q in range(2):
                        r = order[s0 + j + 2 + q]
                        if indices.itemsize == 1:  # packed records, 3 bytes each
                            for p in range(3 * indptr[r], 3 * indptr[r + 1] + 1, VECTOR_BYTES):
                                prefetch(indices, p)
                        else:
                            for p in range(indptr[r], indptr[r + 1], VECTOR_BYTES // values.itemsize):
                                prefetch(values, p)
                            for p in range(indptr[r], indptr[r + 1], VECTOR_BYTES // indices.itemsize):
                                prefetch(indices, p)
                for o in range(0, p1, v):
                    if j + 2 <= m:
                        sparse_rows2(acts, aoff[1] + j * p1 + o, p1, wt, o, p1, indices, values, indptr, order, s0 + j,
                                     consts)
                    else:
                        sparse_rows1(acts, aoff[1] + j * p1 + o, p1, wt, o, p1, indices, values, indptr, order, s0 + j,
                                     consts)
                j += 2
        else:
            xb = acts[: m * pads[0]].reshape((m, pads[0]))
            for j in range(m):
                if from_pixels:
                    for i in range(n_in):
                        xb[j, i] = pixels[rows[j], i]
                        xb[j, i] = xb[j, i] / c255
                else:
                    for i in range(n_in):
                        xb[j, i] = x[rows[j], i]
        for l in range(L):
            if l > 0 or not is_sparse:
                _dense_forward(acts, aoff[l], aoff[l + 1], sizes[l], pads[l], pads[l + 1], wt, wtoff[l], m, v, one)
            z = acts[aoff[l + 1] : aoff[l + 2]].reshape((m, pads[l + 1]))[:, : sizes[l + 1]]
            bpad[: sizes[l + 1]] = bs[l]  # z^l += b^l: b^l padded with zeros to whole vectors, added to each row
            bpad[sizes[l + 1] :] = zero
            add_rows(acts, aoff[l + 1], m, pads[l + 1], bpad)
            code = hidden if l < L - 1 else output
            if code == SIGMOID:
                sigmoid_rows(acts, aoff[l + 1], m, pads[l + 1], sizes[l + 1])
            else:
                _activate(z, code, one, zero)
        # Cost of the batch (before the step) and BP1.
        a = acts[aoff[L] : aoff[L + 1]].reshape((m, pads[L]))
        d = deltas[doff[L - 1] : doff[L]].reshape((m, pads[L]))
        total = zero  # summed in the network's dtype, as the reference does: it overflows alike
        for j in range(m):
            label = y[rows[j]]
            ra = zero  # sum_k r_k a_k (softmax with the quadratic cost)
            for o in range(k_out):
                t = one if o == label else zero
                r = a[j, o] - t
                d[j, o] = r
                ra += r * a[j, o]
                if cost == QUADRATIC:
                    total += half * r * r
                elif output == SOFTMAX:
                    if o == label:
                        total -= np.log(max(a[j, o], lo))
                else:
                    vv = min(max(a[j, o], lo), hi)
                    total -= t * np.log(vv) + (one - t) * np.log1p(-vv)
            for o in range(k_out):
                vv = a[j, o]
                if cost == CROSS_ENTROPY or output == IDENTITY:
                    d[j, o] = d[j, o] * c
                elif output == SIGMOID:
                    d[j, o] = d[j, o] * (vv * (one - vv)) * c
                elif output == TANH:
                    d[j, o] = d[j, o] * (one - vv * vv) * c
                elif output == RELU:
                    d[j, o] = d[j, o] * c if vv > zero else zero
                else:  # softmax, quadratic cost: J^T r = a (r - sum_k r_k a_k)
                    d[j, o] = vv * (d[j, o] - ra) * c
        costs[batch] = total / m
        if not math.isfinite(costs[batch]):
            return batch
        # Backward, top layer first: BP2 uses w^l before it is updated.
        for l in range(L - 1, -1, -1):
            p_in, p_out = pads[l], pads[l + 1]
            if l > 0:  # BP2: delta^{l-1} = (delta^l w^l) (.) sigma'(z^{l-1}), into deltas[l - 1]
                _dense_forward(deltas, doff[l], doff[l - 1], sizes[l + 1], p_out, p_in, wp, wpoff[l], m, v, one)
                g = deltas[doff[l - 1] : doff[l]].reshape((m, p_in))[:, : sizes[l]]
                al = acts[aoff[l] : aoff[l + 1]].reshape((m, p_in))[:, : sizes[l]]
                _times_derivative(g, al, hidden, one, zero, g)
            if l == 0 and is_sparse:
                if decay != 0.0:
                    for i in range(wtoff[1]):
                        wt[i] *= f
                for j in range(m):
                    for o in range(0, p_out, v):
                        sparse_axpy(wt, o, p_out, indices, values, indptr, rows[j], deltas, doff[0] + j * p_out + o,
                                    consts)
            else:  # BP4 twice, number for number the same: wt[i, :] and (above the first layer) wp[o, :]
                _update(wt, wtoff[l], sizes[l], p_out, acts, aoff[l], 1, p_in, deltas, doff[l], p_out, m, v,
                        decay != 0.0, f)
                if l > 0:
                    _update(wp, wpoff[l], sizes[l + 1], p_in, deltas, doff[l], 1, p_out, acts, aoff[l], p_in, m, v,
                            decay != 0.0, f)
            # BP3: b^l += the sum over the batch of delta^l, a whole vector of outputs at a time
            # (1 * delta adds exactly: each number is summed in example order from 0)
            for o in range(0, p_out, v):
                rows1_store(bsum, o, 0, consts, 1, 0, 0, deltas, doff[l] + o, p_out, m, one)
            b = bs[l]
            for o in range(b.shape[0]):
                b[o] += bsum[o]
    return n_batches



@njit(cache=True, nogil=True)
def dense_rows(indptr, indices, values, start, out, zero):
    """Rows ``start : start + len(out)`` of compressed rows (:func:`csr_rows`' layout) written
    into ``out``: their values, at their columns; or, with ``zero``, 0 there (so that a
    buffer that held these rows holds zeros again). The other entries are left alone. For
    :class:`digitnet.nn.compiled.SparseRows`."""
    for j in range(out.shape[0]):
        row = out[j]
        for p in range(indptr[start + j], indptr[start + j + 1]):
            row[indices[p]] = 0 if zero else values[p]


@njit(cache=True, nogil=True)
def dense_coded_rows(indptr, indices, codes, table, start, out, zero):
    """:func:`dense_rows` of compressed rows whose values are uint8 codes: value p is ``table[codes[p]]``."""
    for j in range(out.shape[0]):
        row = out[j]
        for p in range(indptr[start + j], indptr[start + j + 1]):
            row[indices[p]] = 0 if zero else table[codes[p]]


@njit(cache=True, nogil=True)
def dense_packed_rows(indptr, records, table, start, out, zero):
    """:func:`dense_coded_rows` of packed records (:func:`_record`): record p is the column
    ``records[3p] + 256 records[3p + 1]`` and the code ``records[3p + 2]``."""
    for j in range(out.shape[0]):
        row = out[j]
        for p in range(indptr[start + j], indptr[start + j + 1]):
            column = np.int64(records[3 * p]) + (np.int64(records[3 * p + 1]) << 8)
            row[column] = 0 if zero else table[records[3 * p + 2]]


_numba_cache.harden(globals())  # a damaged or unwritable cache means compiling, never an error
