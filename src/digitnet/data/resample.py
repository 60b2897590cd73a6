"""Reading images between their pixels: the one bilinear sampler, and deskewing built on it.

:func:`bilinear` reads a stack of images at fractional positions, with black (0) outside
the picture. Data augmentation (:mod:`digitnet.training.augment`), the robustness curves
(:mod:`digitnet.tasks.robustness`) and deskewing (:func:`deskew`, which a network applies to its
input when its config says ``preprocess="deskew"``) all move pixels through it.
"""

from __future__ import annotations

import os

import numpy as np

from digitnet.errors import ImageError

DESKEW_CHUNK = 256  # images deskewed at a time


def _corners(pos, own: np.ndarray, size: int, origin: int, relative: bool):
    """Padded-frame indices of the two neighbours along one axis, and the weight of the second.

    ``pos`` None: every output pixel reads its own row (or column), no interpolation.
    """
    if pos is None:
        return own + 1, None, None
    p0 = np.floor(pos)
    f = pos - p0  # exact: the fractional part of a float is a float
    lim = size + 2 + abs(origin)  # beyond this, every read falls outside the picture anyway
    i = np.clip(p0, -lim, lim).astype(np.intp) - origin
    if relative:
        i = i + own
    # Everything outside 0..size-1 reads the black frame at padded index 0 or size + 1.
    return np.clip(i, -1, size) + 1, np.clip(i + 1, -1, size) + 1, f


def bilinear(
    images: np.ndarray,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    *,
    origin: int = 0,
    relative: bool = False,
) -> np.ndarray:
    """``images`` (n, h, w) read at fractional positions, by bilinear interpolation; 0 outside.

    Output pixel (k, i, j) reads image k at row ``rows[k, i, j]`` and column ``cols[k, i, j]``
    (arrays broadcastable to (n, h, w)): between the four nearest pixels, weighted by how near
    each is. ``rows=None`` reads each output pixel's own row (interpolating along rows
    only), likewise ``cols=None``. ``origin`` says where pixel 0 is in the positions given
    (1: the coordinates of the picture framed by one black pixel); with ``relative`` the
    positions are offsets from each output pixel's own place. Returns (n, h, w).
    """
    images = np.asarray(images)
    n, h, w = images.shape
    padded = np.zeros((n, h + 2, w + 2), images.dtype)  # a black frame: reads outside give 0
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(-1)
    base = (np.arange(n, dtype=np.intp) * ((h + 2) * (w + 2)))[:, None, None]
    r0, r1, fy = _corners(rows, np.arange(h, dtype=np.intp)[None, :, None], h, origin, relative)
    c0, c1, fx = _corners(cols, np.arange(w, dtype=np.intp)[None, None, :], w, origin, relative)

    def row(r: np.ndarray) -> np.ndarray:
        at = base + r * (w + 2)
        if fx is None:
            return flat[np.broadcast_to(at + c0, (n, h, w))]
        return flat[at + c0] * (1 - fx) + flat[at + c1] * fx

    top = row(r0)
    if fy is None:
        return top
    return top * (1 - fy) + row(r1) * fy


def deskew(images: np.ndarray) -> np.ndarray:
    """Straighten slanted digits: (n, h, w) -> (n, h, w) float32, vectorised over the batch.

    Each image is sheared along its rows so that the principal axis of its ink becomes
    vertical: with the ink's centre (r0, c0) and second moments, the slant is
    ``alpha = cov(r, c) / var(r)`` and output pixel (r, c) takes the input at
    (r, c + alpha (r - r0)), linearly interpolated along the row. This is the "deskewing"
    of LeCun's MNIST results table; the centre of mass stays where it was.
    """
    if np.ndim(images) != 3:
        raise ImageError(f"deskew takes a stack of images (n, rows, cols); got shape {np.shape(images)}.")
    n = len(images)
    if n > DESKEW_CHUNK:  # bound the temporaries' memory (and keep them in cache)
        return np.concatenate([deskew(images[i : i + DESKEW_CHUNK]) for i in range(0, n, DESKEW_CHUNK)])
    imgs = np.asarray(images, dtype=np.float32)
    n, h, w = imgs.shape
    r = np.arange(h, dtype=np.float32)
    c = np.arange(w, dtype=np.float32)
    row_mass = imgs.sum(axis=2)  # (n, h)
    col_mass = imgs.sum(axis=1)  # (n, w)
    total = row_mass.sum(axis=1)
    empty = total <= 0
    total[empty] = 1
    r0 = row_mass @ r / total
    c0 = col_mass @ c / total
    var_r = row_mass @ (r * r) / total - r0 * r0
    cov_rc = imgs.reshape(n, h * w) @ np.outer(r, c).ravel() / total - r0 * c0
    alpha = np.where((var_r > 1e-3) & ~empty, cov_rc / np.maximum(var_r, 1e-3), 0).astype(np.float32)
    shift = np.clip(alpha[:, None] * (r[None, :] - r0[:, None]), -w, w)  # (n, h) column offset per row
    return bilinear(imgs, cols=shift[:, :, None], relative=True)


def _deskew_into(stack: np.ndarray, scale: float, dtype) -> np.ndarray:
    """Deskew a stack (n, h, w) chunk by chunk straight into one (n, h*w) array, times ``scale``."""
    n = len(stack)
    d = int(np.prod(stack.shape[1:]))
    out = np.empty((n, d), dtype)

    def work(i: int) -> None:
        chunk = deskew(stack[i : i + DESKEW_CHUNK])
        np.multiply(chunk.reshape(len(chunk), d), scale, out=out[i : i + DESKEW_CHUNK])

    starts = range(0, n, DESKEW_CHUNK)
    if len(starts) > 1:
        # NumPy releases the interpreter lock in these large array operations, so chunks
        # deskew in parallel on the machine's cores.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(work, starts))
    else:
        work(0)
    return out


_DESKEW_CACHE: list[tuple[np.ndarray, np.ndarray]] = []


def _remembered(src: np.ndarray, make) -> np.ndarray:
    """``make()``, remembered for large arrays (a whole data set), so that a data set used
    every epoch is deskewed once per process."""
    for seen, out in _DESKEW_CACHE:
        if seen is src:
            return out
    out = make()
    if len(src) >= 1000:
        _DESKEW_CACHE.append((src, out))
        del _DESKEW_CACHE[:-6]
    return out


def deskew_images(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, h, w) -> deskewed network inputs (n, h*w) float32 in [0, 1].

    A whole data set costs one float32 copy, and its result is remembered.
    """
    return _remembered(images, lambda: _deskew_into(images, np.float32(1 / 255), np.float32))


def deskew_inputs(x: np.ndarray) -> np.ndarray:
    """Deskew network inputs (n, 784) -> (n, 784) in the same dtype (remembered for a data set)."""
    n, d = x.shape
    side = int(round(d**0.5))
    if side * side != d:
        raise ImageError(f"Deskewing needs square images; the inputs have {d} values each.")
    return _remembered(x, lambda: _deskew_into(x.reshape(n, side, side), x.dtype.type(1), x.dtype))
