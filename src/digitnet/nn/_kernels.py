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

Activation codes: 0 sigmoid, 1 tanh, 2 relu, 3 identity, 4 softmax.
Cost codes: 0 quadratic, 1 cross-entropy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SIGMOID, TANH, RELU, IDENTITY, SOFTMAX = 0, 1, 2, 3, 4
QUADRATIC, CROSS_ENTROPY = 0, 1


@njit(cache=True, nogil=True)
def _activate(z, code, half, one, zero):
    """a = sigma(z) in place, row by row; z is (m, n)."""
    m, n = z.shape
    if code == SIGMOID:
        for j in range(m):
            for o in range(n):
                # (1 + tanh(z/2)) / 2, as nn.activations.sigmoid: never overflows.
                z[j, o] = half * (one + np.tanh(half * z[j, o]))
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
def sgd_batches(x, pixels, y, order, start, n_batches, ws, bs, acts, deltas, grads, below,
                hidden, output, cost, consts, eta, decay, costs):
    """Run ``n_batches`` SGD steps of batch size m = ``acts[0].shape[0]``.

    Batch k is the examples ``order[start + k m : start + (k + 1) m]`` of ``x`` (n, n_in)
    with labels ``y`` (n,); or, where ``pixels`` (n, n_in) uint8 is given (``x`` then
    has no rows), of ``pixels / 255`` computed in the network's dtype, exactly as
    :attr:`digitnet.data.datasets.Split.x` computes it from a quarter of the bytes. ``ws[l]`` (n_out, n_in) and ``bs[l]`` (n_out,) are updated in
    place. Work buffers, allocated by the caller once per batch size: ``acts[0]`` (m, n_0)
    the gathered inputs and ``acts[l]`` (m, n_l) the activations; ``deltas[l]`` (m, n_{l+1});
    ``grads[l]`` shaped like ``ws[l]``; ``below[l]`` (m, n_l) for l >= 1 (``below[0]`` unused).
    ``consts`` = [1/2, 1, 0, clip low, clip high, 255] in the network's dtype.

    ``costs[k]`` gets batch k's average cost *before* its step. If that cost is not
    finite, the batch is not stepped and the function returns k; otherwise it returns
    ``n_batches``.
    """
    L = len(ws)
    half, one, zero, lo, hi, c255 = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
    from_pixels = x.shape[0] < pixels.shape[0]
    scale = consts[:1].copy()  # -eta / m in the network's dtype
    shrink = consts[:1].copy()
    m = acts[0].shape[0]
    n_in = acts[0].shape[1]
    k_out = acts[L].shape[1]
    scale[0] = -eta / m
    shrink[0] = 1.0 - eta * decay
    c = scale[0]
    for batch in range(n_batches):
        s0 = start + batch * m
        xb = acts[0]
        for j in range(m):
            row = order[s0 + j]
            if from_pixels:
                for i in range(n_in):
                    xb[j, i] = pixels[row, i]
                    xb[j, i] = xb[j, i] / c255
            else:
                for i in range(n_in):
                    xb[j, i] = x[row, i]
        # Forward.
        for l in range(L):
            z = acts[l + 1]
            np.dot(acts[l], ws[l].T, z)
            b = bs[l]
            for j in range(m):
                for o in range(z.shape[1]):
                    z[j, o] += b[o]
            _activate(z, hidden if l < L - 1 else output, half, one, zero)
        # Cost of the batch (before the step) and BP1.
        a = acts[L]
        d = deltas[L - 1]
        total = zero  # summed in the network's dtype, as the reference does: it overflows alike
        for j in range(m):
            label = y[order[s0 + j]]
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
            np.dot(d.T, acts[l], grads[l])
            if l > 0:
                g = below[l]
                np.dot(d, ws[l], g)
                _times_derivative(g, acts[l], hidden, one, zero, deltas[l - 1])
            w, gw, b = ws[l], grads[l], bs[l]
            if decay != 0.0:
                f = shrink[0]
                for o in range(w.shape[0]):
                    for i in range(w.shape[1]):
                        w[o, i] = w[o, i] * f + gw[o, i]
            else:
                for o in range(w.shape[0]):
                    for i in range(w.shape[1]):
                        w[o, i] += gw[o, i]
            for o in range(b.shape[0]):
                s = zero
                for j in range(m):
                    s += d[j, o]
                b[o] += s
    return n_batches
