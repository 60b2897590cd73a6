"""How accuracy falls when the test images are shifted, rotated, thickened or noised.

A network that reads MNIST has only ever seen digits that were scaled into a 20x20 box
and centred by their centre of mass in a 28x28 field. Move the same digits a few pixels,
turn them, make their strokes fatter or add noise, and its accuracy drops: one curve per
transformation, accuracy against how strong it is. It shows why a digit drawn on the web
page must be cropped and centred like MNIST (:func:`digitnet.data.images.prepare`) before the
network sees it.

Every transformation works on a whole batch at once, ``(n, 28, 28)`` float32 in [0, 1]
(bright ink on black), and its randomness comes from the ``rng`` passed in. In
:func:`robustness` each transformation gets its own generator seeded by ``(seed, name)``
and the same draws are reused at every level (the same direction of shift for an image,
the same noise pattern scaled up), so a curve moves only because the level does.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from digitnet.data.datasets import DIGITS, Split
from digitnet.data.resample import bilinear
from digitnet.errors import ConfigError
from digitnet.files import write_figure
from digitnet.nn.network import Network

_CENTRE = np.float32(13.5)  # the middle of a 28x28 field, between pixels 13 and 14
CHUNK = 2000  # images transformed at a time: bounds memory (a few (n, 784) float32 arrays)


def _warp(images: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Affine resampling with bilinear interpolation, black outside the field.

    images (n, 28, 28); m (n, 2, 2); t (n, 2). Output pixel p = (row, col) takes the input
    at ``m @ (p - c) + c - t`` (c the field's centre): ``m = I`` moves the content by ``t``,
    a rotation matrix turns it about the centre.
    """
    n = len(images)
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float32)
    pr, pc = rows.ravel() - _CENTRE, cols.ravel() - _CENTRE  # (784,) each
    m, t = m.astype(np.float32), t.astype(np.float32)
    # The 2x2 product written out: einsum over (n, 2, 2) x (784, 2) is ten times slower.
    r = m[:, 0, 0, None] * pr + m[:, 0, 1, None] * pc + (_CENTRE - t[:, 0, None])  # (n, 784)
    c = m[:, 1, 0, None] * pr + m[:, 1, 1, None] * pc + (_CENTRE - t[:, 1, None])  # (n, 784)
    return bilinear(images.astype(np.float32), r.reshape(n, 28, 28), c.reshape(n, 28, 28))


def shift(images: np.ndarray, pixels: float, rng: np.random.Generator) -> np.ndarray:
    """Move each image ``pixels`` in its own random direction (bilinear, black fill)."""
    n = len(images)
    angle = rng.uniform(0, 2 * math.pi, n)
    t = pixels * np.stack([np.sin(angle), np.cos(angle)], axis=1)  # (n, 2) rows, cols
    return _warp(images, np.broadcast_to(np.eye(2, dtype=np.float32), (n, 2, 2)), t)


def rotate(images: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Turn each image by ``degrees`` about the field's centre, clockwise or not at random."""
    n = len(images)
    theta = np.radians(degrees) * rng.choice(np.array([-1.0, 1.0]), n)
    cos, sin = np.cos(theta), np.sin(theta)
    m = np.stack([np.stack([cos, -sin], axis=1), np.stack([sin, cos], axis=1)], axis=1)  # (n, 2, 2)
    return _warp(images, m, np.zeros((n, 2)))


def thicken(images: np.ndarray, steps: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Grey dilation (``steps`` > 0: fatter strokes) or erosion (< 0: thinner) by a 3x3 cross.

    Each step widens (or narrows) every stroke by one pixel on each side. ``rng`` is unused:
    the transformation is not random.
    """
    k = int(round(steps))
    if k != steps:
        raise ConfigError(f"thicken takes whole steps; got {steps}.")
    pick = np.maximum if k > 0 else np.minimum
    out = images.astype(np.float32, copy=True)
    for _ in range(abs(k)):
        p = np.pad(out, ((0, 0), (1, 1), (1, 1)))  # black outside: erosion eats strokes at the border too
        out = pick.reduce([p[:, 1:-1, 1:-1], p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]])
    return out


def noise(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``sigma`` to every pixel, clipped to [0, 1]."""
    z = rng.standard_normal(images.shape, dtype=np.float32)
    return np.clip(images + np.float32(sigma) * z, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class Transform:
    name: str
    fn: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
    levels: tuple[float, ...]  # the default x values of its curve; the first is "unchanged"
    unit: str  # what a level measures, for axis labels and tables
    done: str  # the past participle, for captions: "shifted"


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform("shift", shift, (0, 1, 2, 3, 4, 5, 6), "pixels moved", "shifted"),
        Transform("rotate", rotate, (0, 10, 20, 30, 45, 60, 90), "degrees turned", "rotated"),
        Transform("thicken", thicken, (-1, 0, 1, 2, 3), "pixels added to each side of a stroke", "thickened"),
        Transform("noise", noise, (0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0), "noise standard deviation", "noised"),
    )
}


def transform(name: str, images: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Apply the transformation ``name`` at ``level`` to (n, 28, 28) or (n, 784) images in [0, 1]."""
    if name not in TRANSFORMS:
        raise ConfigError(f"Unknown transformation {name!r}; choose from {', '.join(TRANSFORMS)}.")
    a = np.asarray(images, dtype=np.float32)
    flat = a.ndim == 2
    out = TRANSFORMS[name].fn(a.reshape(len(a), 28, 28), level, rng)
    return out.reshape(len(a), 784) if flat else out


@dataclass
class RobustnessCurve:
    """Accuracy at each level of one transformation."""

    transform: str
    unit: str
    levels: np.ndarray  # (m,)
    accuracy: np.ndarray  # (m,) 0..1
    example: np.ndarray  # (m, 28, 28) float32: the first test image at each level


@dataclass
class Robustness:
    curves: list[RobustnessCurve]
    n: int  # test images used
    seed: int
    classes: tuple[str, ...]
    accuracy: float  # on the unchanged images

    def rows(self) -> list[tuple[str, float, float]]:
        """``(transform, level, accuracy)`` for every point, for a table."""
        return [(c.transform, float(lv), float(a)) for c in self.curves for lv, a in zip(c.levels, c.accuracy)]


def _rng(seed: int, name: str) -> np.random.Generator:
    # Seeded by the name, not the position, so a curve does not depend on which others are asked for.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def robustness(
    net: Network,
    split: Split,
    transforms: list[str] | tuple[str, ...] | None = None,
    levels: dict[str, tuple[float, ...]] | None = None,
    *,
    seed: int = 0,
    n: int | None = None,
    classes: tuple[str, ...] = DIGITS,
) -> Robustness:
    """Accuracy of ``net`` on ``split`` (its first ``n`` examples) as each transformation grows.

    ``transforms`` defaults to all of :data:`TRANSFORMS`; ``levels`` overrides a
    transformation's default levels.
    """
    names = list(TRANSFORMS) if transforms is None else list(transforms)
    for name in names:
        if name not in TRANSFORMS:
            raise ConfigError(f"Unknown transformation {name!r}; choose from {', '.join(TRANSFORMS)}.")
    levels = levels or {}
    if n is not None and n < 1:
        raise ConfigError(f"Robustness needs at least one test image; got n={n}.")
    if len(split) == 0:
        raise ConfigError("Robustness needs at least one test image; the split is empty.")
    x = split.x if n is None else split.x[:n]
    y = split.y if n is None else split.y[:n]
    images = x.reshape(len(x), 28, 28)
    base = float((net.predict(x) == y).mean())
    curves = []
    for name in names:
        t = TRANSFORMS[name]
        lv = np.asarray(levels.get(name, t.levels), dtype=np.float64)
        acc = np.empty(len(lv))
        example = np.empty((len(lv), 28, 28), dtype=np.float32)
        for j, level in enumerate(lv):
            rng = _rng(seed, name)  # the same draws at every level
            right = 0
            for start in range(0, len(images), CHUNK):
                moved = t.fn(images[start : start + CHUNK], float(level), rng)  # (k, 28, 28)
                if start == 0:
                    example[j] = moved[0]
                right += int((net.predict(moved.reshape(len(moved), 784)) == y[start : start + CHUNK]).sum())
            acc[j] = right / len(images)
        curves.append(RobustnessCurve(name, t.unit, lv, acc, example))
    return Robustness(curves, len(images), seed, tuple(classes), base)


def robustness_figure(result: Robustness, title: str | None = None):
    """A matplotlib Figure: per transformation, its accuracy curve and one test image at each level."""
    from matplotlib.figure import Figure

    k = len(result.curves)
    fig = Figure(figsize=(11, 2.6 * k + 1.0), layout="constrained")
    axes = fig.subplots(k, 2, squeeze=False, width_ratios=[1, 1.6])
    chance = 100 / len(result.classes)
    for (ax, strip_ax), c in zip(axes, result.curves):
        ax.plot(c.levels, 100 * c.accuracy, "o-", color="tab:blue", label="accuracy")
        ax.axhline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.0f}%)")
        ax.set_ylim(0, 100)
        ax.set_xlabel(c.unit)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{c.transform}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
        gap = np.full((28, 2), np.nan, dtype=np.float32)  # a thin gap between tiles
        tiles = [t for e in c.example for t in (e, gap)][:-1]
        im = strip_ax.imshow(np.hstack(tiles), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        strip_ax.set_xticks([14 + 30 * i for i in range(len(c.levels))], [f"{lv:g}" for lv in c.levels])
        strip_ax.set_yticks([])
        strip_ax.set_xlabel(c.unit)
        strip_ax.set_title(f"the first test image, {TRANSFORMS[c.transform].done}")
        fig.colorbar(im, ax=strip_ax, shrink=0.8, label="pixel value")
    fig.suptitle(title or "How accuracy falls as the test images change")
    fig.supxlabel(f"{result.n} test images, seed {result.seed}; unchanged accuracy {100 * result.accuracy:.2f}%. "
                  "Each image is moved in its own random direction and turned either way at random.", fontsize="small")
    return fig


def save_robustness_png(result: Robustness, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw :func:`robustness_figure` into a PNG file, written atomically."""
    return write_figure(robustness_figure(result, title), path, dpi=100)
