"""The one bilinear sampler gives, bit for bit, what each of the three it replaced gave.

The ``_old_*`` functions are the implementations as they were in augment.py, robustness.py
and images.py before they were merged into :func:`digitnet.data.resample.bilinear`
(commit b704ed7), kept here as the reference.
"""

import numpy as np
import pytest

from digitnet.data.resample import bilinear, deskew
from digitnet.tasks.robustness import _warp
from digitnet.training.augment import augment


def _old_augment_bilinear(img, sy, sx):
    n, h, w = img.shape
    padded = np.zeros((n, h + 2, w + 2), img.dtype)
    padded[:, 1:-1, 1:-1] = img
    flat = padded.reshape(n, -1)
    sy = np.clip(sy + 1, 0, h + 1)
    sx = np.clip(sx + 1, 0, w + 1)
    y0 = np.minimum(np.floor(sy), h).astype(np.intp)
    x0 = np.minimum(np.floor(sx), w).astype(np.intp)
    fy = (sy - y0).astype(img.dtype)
    fx = (sx - x0).astype(img.dtype)
    i00 = (y0 * (w + 2) + x0).reshape(n, -1)

    def at(offset):
        return np.take_along_axis(flat, i00 + offset, axis=1).reshape(n, h, w)

    top = at(0) * (1 - fx) + at(1) * fx
    bottom = at(w + 2) * (1 - fx) + at(w + 3) * fx
    return top * (1 - fy) + bottom * fy


_CENTRE = np.float32(13.5)


def _old_warp(images, m, t):
    n = len(images)
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float32)
    pr, pc = rows.ravel() - _CENTRE, cols.ravel() - _CENTRE
    m, t = m.astype(np.float32), t.astype(np.float32)
    r = m[:, 0, 0, None] * pr + m[:, 0, 1, None] * pc + (_CENTRE - t[:, 0, None])
    c = m[:, 1, 0, None] * pr + m[:, 1, 1, None] * pc + (_CENTRE - t[:, 1, None])
    r0, c0 = np.floor(r), np.floor(c)
    fr, fc = r - r0, c - c0
    padded = np.pad(images.astype(np.float32), ((0, 0), (1, 1), (1, 1))).ravel()
    top = (np.clip(r0, -2, 28).astype(np.int32) + 1) * 30
    bottom = np.minimum(top + 30, 29 * 30)
    top = np.maximum(top, 0)
    left = np.clip(c0, -2, 28).astype(np.int32) + 1
    right = np.minimum(left + 1, 29)
    left = np.maximum(left, 0)
    base = (900 * np.arange(n, dtype=np.int64))[:, None]
    top, bottom = top + base, bottom + base
    out = ((1 - fr) * ((1 - fc) * padded[top + left] + fc * padded[top + right])
           + fr * ((1 - fc) * padded[bottom + left] + fc * padded[bottom + right]))
    return out.reshape(n, 28, 28).astype(np.float32)


def _old_deskew(images):
    imgs = np.asarray(images, dtype=np.float32)
    n, h, w = imgs.shape
    r = np.arange(h, dtype=np.float32)
    c = np.arange(w, dtype=np.float32)
    row_mass = imgs.sum(axis=2)
    col_mass = imgs.sum(axis=1)
    total = row_mass.sum(axis=1)
    empty = total <= 0
    total[empty] = 1
    r0 = row_mass @ r / total
    c0 = col_mass @ c / total
    var_r = row_mass @ (r * r) / total - r0 * r0
    cov_rc = imgs.reshape(n, h * w) @ np.outer(r, c).ravel() / total - r0 * c0
    alpha = np.where((var_r > 1e-3) & ~empty, cov_rc / np.maximum(var_r, 1e-3), 0).astype(np.float32)
    shift = np.clip(alpha[:, None] * (r[None, :] - r0[:, None]), -w, w)
    k = np.floor(shift)
    f = (shift - k)[:, :, None]
    pad = w + 1
    width = w + 2 * pad
    padded = np.zeros((n, h, width), dtype=np.float32)
    padded[:, :, pad : pad + w] = imgs
    start = (np.arange(n * h, dtype=np.int64).reshape(n, h) * width + pad + k.astype(np.int64))[:, :, None]
    idx = start + np.arange(w, dtype=np.int64)
    flat = padded.reshape(-1)
    return flat[idx] * (1 - f) + flat[idx + 1] * f


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b), f"largest difference {np.abs(a - b).max()}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spread", [3.0, 40.0])  # a little off the picture, and far off it
def test_same_as_augments_old_sampler(dtype, spread):
    rng = np.random.default_rng(1)
    img = rng.random((50, 28, 28)).astype(dtype)
    base = np.arange(28, dtype=dtype)
    sy = (base[None, :, None] + rng.uniform(-spread, spread, (50, 28, 28))).astype(dtype)
    sx = (base[None, None, :] + rng.uniform(-spread, spread, (50, 28, 28))).astype(dtype)
    _same(bilinear(img, sy + 1, sx + 1, origin=1), _old_augment_bilinear(img, sy, sx))


def test_augment_gives_what_it_gave():
    rng = np.random.default_rng(2)
    x = rng.random((64, 784)).astype(np.float32)
    new = augment(x, np.random.default_rng(5), shift=3, rotation=30, elastic_alpha=8.0)
    n = len(x)
    # The same positions as augment draws them, read by the old sampler.
    r = np.random.default_rng(5)
    d = r.uniform(-3, 3, (n, 2))
    theta = np.deg2rad(r.uniform(-30, 30, n))
    dt = np.dtype(np.float32)
    cos, sin = np.cos(theta).astype(dt), np.sin(theta).astype(dt)
    g = np.arange(28, dtype=dt) - dt.type(13.5)
    yy, xx = g[:, None], g[None, :]
    sy = cos[:, None, None] * yy - sin[:, None, None] * xx + (13.5 - d[:, 0]).astype(dt)[:, None, None]
    sx = sin[:, None, None] * yy + cos[:, None, None] * xx + (13.5 - d[:, 1]).astype(dt)[:, None, None]
    from digitnet.training.augment import _gaussian_matrix

    gm = _gaussian_matrix(28, 4.0, "float32")
    field = gm @ r.uniform(-1.0, 1.0, (2, n, 28, 28)).astype(dt) @ gm.T
    sy += dt.type(8.0) * field[0]
    sx += dt.type(8.0) * field[1]
    _same(new, _old_augment_bilinear(x.reshape(n, 28, 28), sy, sx).reshape(n, 784))


@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_same_as_robustness_old_warp(scale):
    rng = np.random.default_rng(3)
    images = rng.random((40, 28, 28)).astype(np.float32)
    m = rng.normal(0, 1, (40, 2, 2)) + np.eye(2)
    t = rng.uniform(-scale, scale, (40, 2))
    _same(_warp(images, m, t), _old_warp(images, m, t))


def test_same_as_old_deskew():
    rng = np.random.default_rng(4)
    imgs = (rng.random((30, 28, 28)) ** 4 * 255).astype(np.float32)
    imgs[0] = 0  # an empty image
    imgs[1, :, :3] = 255  # ink at the border, shifted off the picture
    _same(deskew(imgs), _old_deskew(imgs))


def test_whole_pixel_moves_are_exact_and_outside_is_black():
    img = np.arange(2 * 5 * 6, dtype=np.float64).reshape(2, 5, 6)
    rows = np.arange(5.0)[None, :, None] - 1  # every output row reads the row above it
    out = bilinear(img, np.broadcast_to(rows, img.shape), np.broadcast_to(np.arange(6.0), img.shape))
    assert np.array_equal(out[:, 1:], img[:, :-1]) and not out[:, 0].any()
    half = bilinear(img, None, np.full((2, 5, 6), 0.5), relative=True)
    assert np.array_equal(half[:, :, :-1], (img[:, :, :-1] + img[:, :, 1:]) / 2)
    assert np.array_equal(half[:, :, -1], img[:, :, -1] / 2)
