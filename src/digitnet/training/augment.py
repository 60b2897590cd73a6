"""Data augmentation: small random distortions of training images, made on the fly.

Each mini-batch is distorted afresh as it is drawn, so the network never sees exactly the
same image twice and no distorted copies of the data set are stored. Three distortions,
each drawn independently per example from the ``rng`` passed in:

* shift:   a translation by up to ``shift`` pixels in x and in y (uniform, sub-pixel);
* rotate:  a rotation about the image centre by up to ``rotation`` degrees either way;
* elastic: Simard, Steinkraus & Platt (2003): every pixel moves by ``alpha`` times a
  random field, uniform in [-1, 1] per pixel, smoothed by a Gaussian of width ``sigma``,
  which bends strokes the way different hands do.

All three are one mapping from each output pixel to a (fractional) source position in its
input image, so they are applied together in one pass: the source positions of the whole
batch are computed as arrays (n, h, w), and the image is read there by bilinear
interpolation, with black (0) outside the picture. Nothing loops over examples.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from digitnet.config import TrainConfig
from digitnet.data.resample import bilinear
from digitnet.errors import ConfigError


@functools.lru_cache(maxsize=16)
def _gaussian_matrix(size: int, sigma: float, dtype: str) -> np.ndarray:
    """G (size, size) with G @ f the Gaussian smoothing of f along its first axis.

    Rows are normalised to sum to 1, so a constant field stays constant at the borders too.
    """
    i = np.arange(size)
    g = np.exp(-((i[:, None] - i[None, :]) ** 2) / (2.0 * sigma**2))
    return (g / g.sum(axis=1, keepdims=True)).astype(dtype)


def augment(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    shift: float = 2.0,
    rotation: float = 10.0,
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 4.0,
) -> np.ndarray:
    """Randomly distorted copies of the square images ``x`` (n, h*w): a new (n, h*w) array.

    ``shift`` in pixels, ``rotation`` in degrees (0 turns each off), ``elastic_alpha`` the
    strength of the elastic distortion (0: off) and ``elastic_sigma`` its smoothness in
    pixels. The same ``rng`` state gives the same distortions.
    """
    x = np.asarray(x)
    n, m = x.shape
    side = math.isqrt(m)
    if side * side != m:
        raise ConfigError(f"Augmentation needs square images; got {m} values per example.")
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    c = (side - 1) / 2.0
    # Output pixel (i, j) (row i down, column j right) reads the input at
    # (c, c) + R(theta) ((i, j) - (c, c)) - (dy, dx): the picture turns clockwise by theta
    # about its centre (c, c) and moves dy pixels down and dx right.
    d = rng.uniform(-shift, shift, (n, 2)) if shift else np.zeros((n, 2))
    theta = np.deg2rad(rng.uniform(-rotation, rotation, n)) if rotation else np.zeros(n)
    cos, sin = np.cos(theta).astype(dtype), np.sin(theta).astype(dtype)
    r = np.arange(side, dtype=dtype) - dtype.type(c)
    yy, xx = r[:, None], r[None, :]  # (h, 1), (1, w)
    sy = cos[:, None, None] * yy - sin[:, None, None] * xx + (c - d[:, 0]).astype(dtype)[:, None, None]  # (n, h, w)
    sx = sin[:, None, None] * yy + cos[:, None, None] * xx + (c - d[:, 1]).astype(dtype)[:, None, None]
    if elastic_alpha:
        g = _gaussian_matrix(side, float(elastic_sigma), dtype.name)
        field = rng.uniform(-1.0, 1.0, (2, n, side, side)).astype(dtype)
        field = g @ field @ g.T  # separable Gaussian smoothing of every field at once: (2, n, h, w)
        sy += dtype.type(elastic_alpha) * field[0]
        sx += dtype.type(elastic_alpha) * field[1]
    # Positions in the picture framed by one black pixel (origin 1), as this module always computed them.
    return bilinear(x.reshape(n, side, side).astype(dtype, copy=False), sy + 1, sx + 1, origin=1).reshape(n, m)


def distort(x: np.ndarray, rng: np.random.Generator, config: TrainConfig) -> np.ndarray:
    """:func:`augment` with the distortions named in ``config.augment`` and its sizes."""
    kinds = config.augment
    return augment(
        x,
        rng,
        shift=config.max_shift if "shift" in kinds else 0.0,
        rotation=config.max_rotation if "rotate" in kinds else 0.0,
        elastic_alpha=config.elastic_alpha if "elastic" in kinds else 0.0,
        elastic_sigma=config.elastic_sigma,
    )
