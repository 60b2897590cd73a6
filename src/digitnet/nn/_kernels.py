"""Numba kernels of :mod:`digitnet.nn.compiled`: mini-batch SGD for dense networks,
many batches per call. Importing this module imports Numba; only
:mod:`digitnet.nn.compiled` does, and only when it is asked to train.

The math is :func:`digitnet.nn.network.backprop` followed by a plain SGD step, as in
:mod:`digitnet.nn.fast`:

* forward:  z^l = a^{l-1} w^l^T + b^l,  a^l = sigma(z^l)                (one BLAS call + a loop)
* BP1:      delta^L = c dC/da^L (.) sigma'(z^L),  with c = -eta / m folded in
* BP2:      delta^l = (delta^{l+1} w^{l+1}) (.) sigma'(z^l)             (one BLAS call + a loop)
* BP3, BP4: w^l += delta^l^T a^{l-1},  b^l += sum over the batch of delta^l

so each layer's update is ``-eta/m`` times its gradient. The products go to BLAS through
``np.dot`` (Numba calls SciPy's BLAS for it); the element-wise work is plain loops, with
no allocation and no per-call overhead.

Sparse inputs. Four in five MNIST pixels are 0, and the first layer's two products (the
forward pass and BP4) are 98% of the arithmetic. With the inputs as compressed rows
(:func:`csr_rows`: each example's nonzero pixels and their values), each product touches
only the pixels that are not 0:

* forward:  z^1_j = b^1 + sum over the pixels i of x_j that are not 0 of x_ji w^1[:, i]
* BP4:      w^1[:, i] += x_ji delta^1_j  for the same pixels

Both work on ``wt`` = w^1 transposed, (n_in, n_pad): row i is what pixel i feeds to the
layer, padded with zeros to whole 64-byte vectors, so that each term is one vector
multiply-add (:func:`axpy`). No batch is gathered: the rows are read where they are.

Activation codes: 0 sigmoid, 1 tanh, 2 relu, 3 identity, 4 softmax.
Cost codes: 0 quadratic, 1 cross-entropy.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

SIGMOID, TANH, RELU, IDENTITY, SOFTMAX = 0, 1, 2, 3, 4
QUADRATIC, CROSS_ENTROPY = 0, 1
VECTOR_BYTES = 64  # one AVX-512 register; LLVM splits it where the CPU's are narrower


def vector_length(dtype) -> int:
    """How many numbers of ``dtype`` one :func:`axpy` moves: 16 float32s, 8 float64s."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


def _element_at(context, builder, arr, arrty, index, indexty):
    """LLVM: the address of ``arr[index]`` of a 1-D contiguous array."""
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.gep(data, [context.cast(builder, index, indexty, types.intp)], inbounds=True)


@intrinsic
def axpy(typingctx, y, i, a, x, k):
    """``y[i : i + V] += a * x[k : k + V]`` as one vector multiply and add, V =
    :func:`vector_length`, for 1-D contiguous ``y`` and ``x`` of one float dtype.

    Numba's loops over 16 numbers vectorise poorly (every index is checked for
    wraparound, and ``y`` may alias ``x``), so this one operation is written in LLVM's
    terms. Nothing is checked: the caller keeps both ranges inside their arrays.
    """
    if not (isinstance(y, types.Array) and isinstance(x, types.Array) and y.dtype == x.dtype
            and isinstance(y.dtype, types.Float) and y.ndim == x.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        y_, i_, a_, x_, k_ = args
        yty, ity, aty, xty, kty = signature.args
        width = VECTOR_BYTES * 8 // yty.dtype.bitwidth
        vty = ir.VectorType(context.get_data_type(yty.dtype), width)

        yp = builder.bitcast(_element_at(context, builder, y_, yty, i_, ity), vty.as_pointer())
        xp = builder.bitcast(_element_at(context, builder, x_, xty, k_, kty), vty.as_pointer())
        scalar = context.cast(builder, a_, aty, yty.dtype)
        av = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
        av = builder.shuffle_vector(av, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width))
        yv, xv = builder.load(yp, align=1), builder.load(xp, align=1)
        builder.store(builder.fadd(yv, builder.fmul(av, xv)), yp, align=1)
        return context.get_dummy_value()

    return types.void(y, i, a, x, k), codegen


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


@njit(cache=True, nogil=True)
def _sparse_forward(indptr, indices, values, order, s0, wt, b, zpad, z):
    """z = x[rows] w^T + b (m, n_out) for sparse x and the m rows ``order[s0 : s0 + m]``,
    from wt = w^T padded (n_in, n_pad); ``zpad`` (m, n_pad) is work space."""
    m, n_out = z.shape
    n_pad = wt.shape[1]
    v = VECTOR_BYTES // wt.itemsize
    zf, wf = zpad.reshape(-1), wt.reshape(-1)
    for j in range(m):
        if s0 + j + 2 < len(order):  # the rows are scattered in memory: ask for one two rows ahead
            r = order[s0 + j + 2]
            for p in range(indptr[r], indptr[r + 1], VECTOR_BYTES // values.itemsize):
                prefetch(values, p)
            for p in range(indptr[r], indptr[r + 1], VECTOR_BYTES // indices.itemsize):
                prefetch(indices, p)
        r = order[s0 + j]
        # One vector of the row of z at a time, which then stays in a register over the pixels.
        for o in range(0, n_pad, v):
            zf[j * n_pad + o : j * n_pad + o + v] = 0
            for p in range(indptr[r], indptr[r + 1]):
                axpy(zf, j * n_pad + o, values[p], wf, np.int64(indices[p]) * n_pad + o)
        for o in range(n_out):
            z[j, o] = zpad[j, o] + b[o]


@njit(cache=True, nogil=True)
def _sparse_update(indptr, indices, values, rows, delta, dpad, wt):
    """wt += x[rows]^T delta for sparse x: BP4 with the step size folded into delta
    (m, n_out). ``dpad`` (m, n_pad) is work space whose padding columns are 0."""
    m, n_out = delta.shape
    n_pad = wt.shape[1]
    v = VECTOR_BYTES // wt.itemsize
    df, wf = dpad.reshape(-1), wt.reshape(-1)
    for j in range(m):
        for o in range(n_out):
            dpad[j, o] = delta[j, o]
    for j in range(m):
        r = rows[j]
        for o in range(0, n_pad, v):
            for p in range(indptr[r], indptr[r + 1]):
                axpy(wf, np.int64(indices[p]) * n_pad + o, values[p], df, j * n_pad + o)


@njit(cache=True, nogil=True)
def sgd_batches(x, pixels, sparse, y, order, start, n_batches, ws, bs, acts, deltas, grads, below, pads,
                hidden, output, cost, consts, eta, decay, costs):
    """Run ``n_batches`` SGD steps of batch size m = ``acts[1].shape[0]``.

    Batch k is the examples ``order[start + k m : start + (k + 1) m]`` of the inputs, which
    are one of:

    * ``sparse`` = (indptr, indices, values), the rows of x compressed (:func:`csr_rows`),
      when ``indptr`` is not empty; ``pads`` = (wt, zpad, dpad) is then the first layer's
      work space (see :func:`_sparse_forward`), with ``wt`` (n_in, n_pad) zeros beyond w's;
    * else ``pixels`` (n, n_in) uint8, when ``x`` has fewer rows: the inputs are
      ``pixels / 255`` computed in the network's dtype, exactly as
      :attr:`digitnet.data.datasets.Split.x` computes them, from a quarter of the bytes;
    * else ``x`` (n, n_in).

    Labels are ``y`` (n,). ``ws[l]`` (n_out, n_in) and ``bs[l]`` (n_out,) are updated in
    place. Work buffers, allocated by the caller once per batch size: ``acts[0]`` (m, n_0)
    the gathered inputs (not used with sparse inputs) and ``acts[l]`` (m, n_l) the
    activations; ``deltas[l]`` (m, n_{l+1}); ``grads[l]`` shaped like ``ws[l]``;
    ``below[l]`` (m, n_l) for l >= 1 (``below[0]`` unused).
    ``consts`` = [1/2, 1, 0, clip low, clip high, 255] in the network's dtype.

    ``costs[k]`` gets batch k's average cost *before* its step. If that cost is not
    finite, the batch is not stepped and the function returns k; otherwise it returns
    ``n_batches``.
    """
    indptr = sparse[0]
    wt = pads[0]
    is_sparse = indptr.shape[0] > 0
    if is_sparse:  # the first layer's weights, transposed, while these batches run
        for o in range(ws[0].shape[0]):
            for i in range(ws[0].shape[1]):
                wt[i, o] = ws[0][o, i]
    done = _steps(x, pixels, sparse, y, order, start, n_batches, ws, bs, acts, deltas, grads, below, pads,
                  hidden, output, cost, consts, eta, decay, costs)
    if is_sparse:
        for o in range(ws[0].shape[0]):
            for i in range(ws[0].shape[1]):
                ws[0][o, i] = wt[i, o]
    return done


@njit(cache=True, nogil=True)
def _steps(x, pixels, sparse, y, order, start, n_batches, ws, bs, acts, deltas, grads, below, pads,
           hidden, output, cost, consts, eta, decay, costs):
    """:func:`sgd_batches`, with the first layer's weights in ``pads[0]`` for sparse inputs."""
    L = len(ws)
    half, one, zero, lo, hi, c255 = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
    indptr, indices, values = sparse
    wt, zpad, dpad = pads
    is_sparse = indptr.shape[0] > 0
    from_pixels = x.shape[0] < pixels.shape[0]
    scale = consts[:1].copy()  # -eta / m in the network's dtype
    shrink = consts[:1].copy()
    m = acts[1].shape[0]
    n_in = acts[0].shape[1]
    k_out = acts[L].shape[1]
    scale[0] = -eta / m
    shrink[0] = 1.0 - eta * decay
    c = scale[0]
    for batch in range(n_batches):
        s0 = start + batch * m
        rows = order[s0 : s0 + m]
        # Forward.
        if is_sparse:
            _sparse_forward(indptr, indices, values, order, s0, wt, bs[0], zpad, acts[1])
            _activate(acts[1], hidden if L > 1 else output, one, zero)
        else:
            xb = acts[0]
            for j in range(m):
                if from_pixels:
                    for i in range(n_in):
                        xb[j, i] = pixels[rows[j], i]
                        xb[j, i] = xb[j, i] / c255
                else:
                    for i in range(n_in):
                        xb[j, i] = x[rows[j], i]
        for l in range(1 if is_sparse else 0, L):
            z = acts[l + 1]
            np.dot(acts[l], ws[l].T, z)
            b = bs[l]
            for j in range(m):
                for o in range(z.shape[1]):
                    z[j, o] += b[o]
            _activate(z, hidden if l < L - 1 else output, one, zero)
        # Cost of the batch (before the step) and BP1.
        a = acts[L]
        d = deltas[L - 1]
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
                    v = min(max(a[j, o], lo), hi)
                    total -= t * np.log(v) + (one - t) * np.log1p(-v)
            for o in range(k_out):
                v = a[j, o]
                if cost == CROSS_ENTROPY or output == IDENTITY:
                    d[j, o] = d[j, o] * c
                elif output == SIGMOID:
                    d[j, o] = d[j, o] * (v * (one - v)) * c
                elif output == TANH:
                    d[j, o] = d[j, o] * (one - v * v) * c
                elif output == RELU:
                    d[j, o] = d[j, o] * c if v > zero else zero
                else:  # softmax, quadratic cost: J^T r = a (r - sum_k r_k a_k)
                    d[j, o] = v * (d[j, o] - ra) * c
        costs[batch] = total / m
        if not math.isfinite(costs[batch]):
            return batch
        # Backward, top layer first: BP3/BP4 and BP2 use w^l before it is updated.
        for l in range(L - 1, -1, -1):
            d = deltas[l]
            if l > 0:
                g = below[l]
                np.dot(d, ws[l], g)
                _times_derivative(g, acts[l], hidden, one, zero, deltas[l - 1])
            if l == 0 and is_sparse:
                if decay != 0.0:
                    wt *= shrink[0]
                _sparse_update(indptr, indices, values, rows, d, dpad, wt)
            else:
                np.dot(d.T, acts[l], grads[l])
                w, gw = ws[l], grads[l]
                if decay != 0.0:
                    f = shrink[0]
                    for o in range(w.shape[0]):
                        for i in range(w.shape[1]):
                            w[o, i] = w[o, i] * f + gw[o, i]
                else:
                    for o in range(w.shape[0]):
                        for i in range(w.shape[1]):
                            w[o, i] += gw[o, i]
            b = bs[l]
            for o in range(b.shape[0]):
                s = zero
                for j in range(m):
                    s += d[j, o]
                b[o] += s
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
