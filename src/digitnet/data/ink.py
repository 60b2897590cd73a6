"""Finding the ink of one digit in a photograph, the way document scanners do.

A photo of a digit on paper is not a clean scan: the paper is grey or tinted, the light is
uneven, there are shadows, sensor noise and JPEG blocks, ruled lines, the table around the
paper. :func:`find_ink` turns such a picture into a clean ink map, bright ink on black,
ready for MNIST's own preparation (:func:`digitnet.data.images.centre_like_mnist`):

1. shrink to at most :data:`WORK_SIDE` pixels a side (area averaging, which also averages
   the sensor noise away);
2. polarity: the paper is the bulk of the picture and the ink its tail, so the ink is
   dark when the picture's mean is below its median; when it says light ink on dark
   paper (or a shadow over most of the picture), steps 3 and 4 are done both ways round
   and the way that finds more ink wins (the paper estimate removes thin dark marks:
   the strokes one way round, only the gaps between them the other way);
3. estimate the paper's brightness everywhere (:func:`paper`): a morphological closing
   (local maximum, then local minimum, over 16% of the picture) of an area-averaged copy
   :data:`PAPER_SIDE` pixels a side removes the pen's strokes but keeps gradients,
   shadows and the table with their edges in place; smoothed and scaled back up;
4. ink = (paper - picture) / paper, times 255 (a shadow darkens ink and paper alike,
   by a factor); the threshold is Otsu's, but never below 4 times the noise
   (estimated from the paper by the median absolute deviation);
5. ruled lines (thin runs of ink across or down most of the picture) are removed;
6. connected pieces of ink (:func:`label`): specks, long thin pieces of ruled lines, and
   large pieces touching the picture's border (the table's edge, a shadow's edge) are
   dropped; the piece with the most ink and the pieces near it are the digit (if only
   pieces touching the border are left, those, and the problem says so);
7. the ink is cut out at the picture's own resolution, scaled so the digit's strokes
   reach 255.

The result says what it found (:class:`Ink`): ``problem`` is a one-line description when
the picture does not look like one digit (several separate marks of similar size, the
digit touching the border), ``None`` otherwise. Only NumPy and Pillow are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WORK_SIDE = 400  # larger pictures are shrunk to this many pixels on their long side
PAPER_SIDE = 200  # the paper is estimated on a copy this many pixels on its long side
PAPER_WINDOW = 0.16  # ... closed over a window this fraction of its long side (wider than strokes)
MIN_CONTRAST = 8.0  # ink must differ from the paper by at least this many grey levels
NOISE_FACTOR = 4.0  # the threshold is at least this many noise standard deviations
LINE_FRACTION = 0.7  # a run of ink longer than this fraction of the picture is a ruled line
LINE_THICKNESS = 0.012  # ... and at most this fraction of the picture thick
MIN_LINE_SIDE = 64  # pictures smaller than this (MNIST's 28x28, icons) have no ruled lines
SIMILAR_MASS = 0.3  # another mark with this fraction of the digit's ink is "a second mark"
JOIN_MARGIN = 0.12  # pieces within this fraction of the digit's size belong to it (a 5's flag)


@dataclass
class Ink:
    """What :func:`find_ink` found.

    ``ink``: (h, w) float32 0..255, bright ink on black, only the digit's pieces, the
    picture's size. ``problem``: a one-line reason why the picture does not look like
    one digit, or ``None``. ``dark_ink``: whether the ink was darker than the paper.
    ``pieces``: how many separate marks were found (the digit counts as one).
    """

    ink: np.ndarray
    problem: str | None
    dark_ink: bool
    pieces: int


class NoInk(Exception):
    """No ink stands out from the paper (raised by :func:`find_ink`)."""


def median(a: np.ndarray):
    """``np.median(a)`` of a non-empty array of finite numbers, the same number (the middle
    value, or the mean of the two middle values, in ``a``'s type), without np.median's check
    for NaN: that check imports numpy.ma, which takes 10-25 ms of a one-image ``digitnet predict``."""
    v = np.asarray(a).reshape(-1)
    k = v.size // 2
    if v.size % 2:
        return np.mean(np.partition(v, k)[k : k + 1])
    return np.mean(np.partition(v, [k - 1, k])[k - 1 : k + 1])


def percentile(a: np.ndarray, q: int):
    """``np.percentile(a, q)`` (linear interpolation) of a non-empty float array of finite
    numbers, the same number, without the import of numpy.ma that np.percentile makes (see
    :func:`median`): the two order statistics around ``(n - 1) * q / 100``, interpolated as
    NumPy does, in ``a``'s type."""
    v = np.asarray(a).reshape(-1)
    n = v.size
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        return v.max()  # NumPy takes the last order statistic: the largest value
    below = max(0, math.floor(virtual))
    part = np.partition(v, [below, below + 1])
    lo, hi = part[below], part[below + 1]
    t = virtual - below
    d = hi - lo
    return hi - d * (1 - t) if t >= 0.5 else lo + d * t


def dark_ink(grey: np.ndarray) -> bool:
    """Whether the ink is darker than the paper: the paper is the bulk of the picture, the
    ink its tail, so dark ink pulls the mean below the median. A tie (a picture with as much
    ink as paper) is decided by the border, as before: light border, dark ink."""
    middle, mean = float(median(grey)), float(grey.mean())
    if abs(mean - middle) > 0.5:
        return mean < middle
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return float(median(border)) > 127.5


def shrink(img: np.ndarray, side: int) -> np.ndarray:
    """Area-average an (h, w) float image down to at most ``side`` pixels on its long side."""
    from PIL import Image

    h, w = img.shape
    if max(h, w) <= side:
        return img.astype(np.float32)
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX),
                      dtype=np.float32)


def _running(img: np.ndarray, size: int, how: str, axis: int) -> np.ndarray:
    """Running max or min over ``size`` pixels along ``axis``, centred, edges replicated,
    in a few whole-picture operations whatever the size (a sparse table: the extreme over
    2k pixels is that of two overlapping runs of k, so log2(size) steps, then one step
    combining two overlapping runs of the largest power of two up to ``size``)."""
    f = np.maximum if how == "max" else np.minimum
    a = img if axis == 0 else img.T  # the window runs down the first axis of ``a``
    n, r = a.shape[0], size // 2
    m = np.concatenate([np.repeat(a[:1], r, 0), a, np.repeat(a[-1:], size - 1 - r, 0)])  # edges replicated
    k = 1
    while 2 * k <= size:
        m = f(m[:-k], m[k:])  # m[i] = the extreme of the padded run [i, i + 2k)
        k *= 2
    out = f(m[:n], m[size - k : size - k + n])  # [i, i + k) and [i + size - k, i + size): the window
    return out if axis == 0 else out.T


def _filter(img: np.ndarray, size: int, how: str) -> np.ndarray:
    """Local max or min over a size x size window (edges replicated)."""
    return _running(_running(img, size, how, 1), size, how, 0)


def paper(g: np.ndarray) -> np.ndarray:
    """The paper's brightness at every pixel of ``g`` (dark ink on light paper), (h, w).

    A copy at most :data:`PAPER_SIDE` pixels a side (area-averaged, which also averages
    noise away) is closed, a local maximum then a local minimum over a window of
    :data:`PAPER_WINDOW` of its long side: that removes anything darker than the paper and
    narrower than the window (the pen's strokes) but keeps larger regions (shadows, the
    table) with their edges in place. A 3x3 mean smooths it and it is scaled back up.
    Pictures under 48 pixels are taken to have flat paper: their brightest tenth.
    """
    h, w = g.shape
    if max(h, w) < 48:
        return np.full_like(g, percentile(g, 90), dtype=np.float32)
    small = shrink(g, PAPER_SIDE)
    size = max(5, int(round(PAPER_WINDOW * max(small.shape))) | 1)
    closed = _filter(_filter(small, size, "max"), size, "min")
    sh, sw = closed.shape
    p = np.empty((sh + 2, sw + 2), dtype=closed.dtype)  # edges replicated, as np.pad(mode="edge"), faster
    p[1:-1, 1:-1] = closed
    p[0, 1:-1], p[-1, 1:-1] = closed[0], closed[-1]
    p[:, 0], p[:, -1] = p[:, 1], p[:, -2]
    smooth = sum(p[i : i + sh, j : j + sw] for i in range(3) for j in range(3)) / 9.0
    return _resize(smooth, (h, w), "bilinear")


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a set of values: the split that maximises the between-class variance."""
    v = values.ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    p = hist.astype(np.float64) / hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m = np.cumsum(p * centres)
    mt = m[-1]
    w1 = 1 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = 0
    return float(edges[int(np.argmax(between)) + 1])


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (8-neighbours) of a boolean (h, w) mask: (labels, n).

    labels is 0 off the mask and 1..n on it, numbered in reading order. Union-find over
    the mask's pixels, vectorised: every round hooks each pair of touching pixels' trees
    onto the smaller root, then shortens every path to its root (pointer jumping), until
    all touching pixels share a root; a few rounds suffice.
    """
    h, w = mask.shape
    flat = mask.reshape(-1)
    on = np.flatnonzero(flat)
    k = len(on)
    labels = np.zeros((h, w), dtype=np.int64)
    if k == 0:
        return labels, 0
    pos = np.full(h * w, -1, dtype=np.int64)
    pos[on] = np.arange(k)
    r, c = np.divmod(on, w)
    pairs_a, pairs_b = [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbour pair once
        ok = (r + dr < h) & (c + dc >= 0) & (c + dc < w)
        nb = np.where(ok, on + dr * w + dc, 0)
        ok &= flat[nb]
        pairs_a.append(np.flatnonzero(ok))
        pairs_b.append(pos[nb[ok]])
    a, b = np.concatenate(pairs_a), np.concatenate(pairs_b)
    parent = np.arange(k)
    while True:
        pa, pb = parent[a], parent[b]
        differ = pa != pb
        if not differ.any():
            break
        lo, hi = np.minimum(pa[differ], pb[differ]), np.maximum(pa[differ], pb[differ])
        np.minimum.at(parent, hi, lo)
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots, inverse = np.unique(parent, return_inverse=True)
    labels.reshape(-1)[on] = inverse.reshape(-1) + 1
    return labels, int(len(roots))


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """For each pixel of a boolean (h, w) mask, the length of the run of True along its row."""
    h, w = mask.shape
    m = np.zeros((h, w + 1), dtype=bool)
    m[:, :w] = mask
    flat = m.reshape(-1)
    starts = flat & ~np.concatenate([[False], flat[:-1]])
    ids = np.cumsum(starts) * flat
    counts = np.bincount(ids)
    counts[0] = 0
    return counts[ids].reshape(h, w + 1)[:, :w]


def ruled_lines(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` on ruled lines: thin runs of ink across (lined paper) or down
    (squared paper) more than :data:`LINE_FRACTION` of the picture.

    A line slightly askew still makes long runs once the mask is thickened by a pixel on
    each side; "thin" is at most :data:`LINE_THICKNESS` of the picture (at least 2 pixels)
    measured across the line, so where a pen stroke crosses a line the stroke is kept.
    """
    h, w = mask.shape
    if min(h, w) < MIN_LINE_SIDE:
        return np.zeros_like(mask)
    tall = mask.copy()
    tall[1:] |= mask[:-1]
    tall[:-1] |= mask[1:]
    across = run_lengths(tall) >= LINE_FRACTION * w
    if across.any():  # the thickness only where there are long runs (most digits have none)
        across &= run_lengths(mask.T).T <= max(2.0, LINE_THICKNESS * h)
    wide = mask.copy()
    wide[:, 1:] |= mask[:, :-1]
    wide[:, :-1] |= mask[:, 1:]
    down = run_lengths(wide.T).T >= LINE_FRACTION * h
    if down.any():
        down &= run_lengths(mask) <= max(2.0, LINE_THICKNESS * w)
    return mask & (across | down)


def find_ink(grey: np.ndarray) -> Ink:
    """(h, w) grey levels 0..255 of a picture of one digit -> :class:`Ink`.

    Raises :class:`NoInk` when nothing stands out from the paper.
    """
    grey = np.asarray(grey, dtype=np.float32)
    small = shrink(grey, WORK_SIDE)

    def view(dark: bool):  # dark ink on light paper from here on (inverted if need be)
        g = small if dark else 255.0 - small
        page = paper(g)
        # Ink is how much darker than the paper a pixel is, relative to the paper: a photo's
        # pixel is the light falling there times what the paper or ink reflects, so in a
        # shadow both paper and ink are darker by the same factor.
        signed = (page - g) / np.maximum(page, 1.0) * 255.0
        # The noise: the paper is most of the picture, so the median absolute deviation of
        # the picture from the paper estimate is the noise's (x 1.4826: a standard deviation).
        sample = signed[::2, ::2]  # every fourth pixel is plenty for a median
        noise = 1.4826 * float(median(np.abs(sample - median(sample))))
        diff = np.clip(signed, 0, None)
        return g, page, diff, noise, float(np.clip(diff - NOISE_FACTOR * noise, 0, None).sum())

    dark = dark_ink(small)
    chosen = view(dark)
    if not dark and min(grey.shape) >= 48:
        # Light ink on dark paper, or a photo mostly in shadow? The paper estimate removes
        # thin marks darker than the paper: the right way round, those are the strokes,
        # and they leave more ink than the other way round (where only the gaps between
        # strokes and the edges of shadows are left). Dark ink is the usual case in photos.
        other = view(True)
        if other[4] > chosen[4]:
            dark, chosen = True, other
    g, page, diff, noise, _ = chosen
    full = grey if dark else 255.0 - grey
    if diff.max() < MIN_CONTRAST:
        raise NoInk
    threshold = max(otsu(diff), NOISE_FACTOR * noise, MIN_CONTRAST / 2)
    mask = diff > threshold
    lines = ruled_lines(mask)
    mask &= ~lines
    labels, n = label(mask)
    if n == 0:
        raise NoInk
    h, w = mask.shape
    area = np.bincount(labels.reshape(-1), minlength=n + 1)[1:]
    mass = np.bincount(labels.reshape(-1), weights=diff.reshape(-1), minlength=n + 1)[1:]
    # Bounding boxes of the pieces.
    rr, cc = np.nonzero(labels)
    ll = labels[rr, cc] - 1
    top = np.full(n, h)
    bottom = np.full(n, -1)
    left = np.full(n, w)
    right = np.full(n, -1)
    np.minimum.at(top, ll, rr)
    np.maximum.at(bottom, ll, rr)
    np.minimum.at(left, ll, cc)
    np.maximum.at(right, ll, cc)
    touches = (top == 0) | (left == 0) | (bottom == h - 1) | (right == w - 1)
    # Specks: too small to matter (noise, dust, JPEG blocks).
    speck = area < max(4, 0.0002 * h * w)
    # The table's edge, a shadow's edge: large pieces touching the border.
    spans = ((bottom - top + 1) > 0.6 * h) | ((right - left + 1) > 0.6 * w) | (area > 0.15 * h * w)
    # Pieces of ruled lines the line finder missed (broken by noise or a shadow): long,
    # thin, across or down.
    length = np.maximum(bottom - top + 1, right - left + 1)
    breadth = np.minimum(bottom - top + 1, right - left + 1)
    thin = area / length <= max(2.0, LINE_THICKNESS * min(h, w))
    line_piece = thin & (length >= 6 * breadth) & (length >= 0.2 * max(h, w))
    background = (touches & spans) | line_piece
    candidates = ~speck & ~background
    problem = None
    if not candidates.any():
        # Only large pieces touching the border: a digit cropped tightly or cut off, or
        # nothing but the table's edge. Take them all (as before this module) and say so.
        candidates = ~speck
        if not candidates.any():
            raise NoInk
    # The digit: the piece with the most ink away from the border, and the pieces near it.
    order = np.argsort(-np.where(candidates, mass, -1))
    main = order[0]
    box = [top[main], left[main], bottom[main], right[main]]
    group = np.zeros(n, dtype=bool)
    group[main] = True
    changed = True
    while changed:
        changed = False
        size = max(box[2] - box[0], box[3] - box[1]) + 1
        m = JOIN_MARGIN * size + 2
        near = (candidates & ~group & (top <= box[2] + m) & (bottom >= box[0] - m)
                & (left <= box[3] + m) & (right >= box[1] - m))
        if near.any():
            group |= near
            box = [min(box[0], top[near].min()), min(box[1], left[near].min()),
                   max(box[2], bottom[near].max()), max(box[3], right[near].max())]
            changed = True
    digit_mass = mass[group].sum()
    others = candidates & ~group & (mass >= SIMILAR_MASS * digit_mass)
    if others.any():
        problem = (f"it has {int(others.sum()) + 1} separate marks of similar size; "
                   "crop it to the one digit you want read")
    elif touches[group].any():
        problem = "the digit touches the edge of the picture, so part of it may be cut off; leave paper all round it"
    keep = group[labels - 1] & (labels > 0)
    # Keep the anti-aliased rim around the digit's pieces (one pixel out), minus ruled lines.
    rim = keep.copy()
    rim[1:] |= keep[:-1]
    rim[:-1] |= keep[1:]
    rim[:, 1:] |= rim[:, :-1].copy()
    rim[:, :-1] |= rim[:, 1:].copy()
    rim &= ~lines
    floor = min(threshold / 2, NOISE_FACTOR * noise)
    top_ink = float(percentile(diff[keep], 98)) if keep.any() else float(diff.max())
    if g.shape != full.shape:  # back to the picture's own resolution: the same crop as a scan
        rim = _resize(rim.astype(np.float32), full.shape, "nearest") > 0.5
        page = _resize(page, full.shape, "bilinear")
        diff = np.clip((page - full) / np.maximum(page, 1.0) * 255.0, 0, None)
    ink = np.clip((diff - floor) / max(top_ink - floor, 1e-6), 0, 1) * rim
    return Ink(ink=(ink * 255).astype(np.float32), problem=problem, dark_ink=dark, pieces=int(others.sum()) + 1)


def _resize(img: np.ndarray, shape: tuple[int, int], how: str) -> np.ndarray:
    from PIL import Image

    method = Image.Resampling.NEAREST if how == "nearest" else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize((shape[1], shape[0]), method),
                      dtype=np.float32)
