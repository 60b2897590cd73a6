"""Turning a picture of a digit into an MNIST-like input, the way MNIST itself was made.

MNIST's digits were size-normalised to fit a 20x20 box keeping their aspect ratio
(anti-aliased, hence grey levels), then centred in a 28x28 field by their centre of mass,
white ink on black. :func:`prepare` does the same to any image:

1. read it (PNG, JPEG, ... any size and colour mode) as grey levels 0..255, transparency
   composited onto white paper;
2. decide which is ink: dark ink on light paper is inverted so ink is bright;
3. remove the paper's grey level and crop to the ink's bounding box;
4. scale to fit 20x20 keeping the aspect ratio;
5. paste into 28x28 so that the centre of mass lands on the centre.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitnet.errors import ImageError

MAX_PIXELS = 40_000_000  # refuse decompression bombs larger than this
DESKEW_CHUNK = 256  # images deskewed at a time
MIN_CONTRAST = 8.0  # ink must differ from the paper by at least this many grey levels


def read_grey(source: str | os.PathLike | bytes) -> np.ndarray:
    """Read an image file (or its bytes) as (h, w) float32 grey levels 0..255."""
    from PIL import Image, UnidentifiedImageError

    name = "image data" if isinstance(source, (bytes, bytearray)) else str(source)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
    except OSError as e:
        raise ImageError(f"Cannot open {name}: {e.strerror or e}.") from None
    try:
        with fp, Image.open(fp) as im:
            im.load()
            grey = flatten_transparency(im)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{name} is not an image digitnet can read ({e}). Use a PNG or JPEG file.") from None
    if grey.ndim != 2 or grey.size == 0:
        raise ImageError(f"{name} has no pixels.")
    return grey


def flatten_transparency(im) -> np.ndarray:
    """A Pillow image -> (h, w) float32 grey levels, transparency composited onto paper
    the ink stands out from: the opaque pixels are the drawing, so a light drawing goes onto
    black and a dark one onto white (a white digit on a transparent background is read,
    not taken for white on white)."""
    if not (im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)):
        return np.asarray(im.convert("L"), dtype=np.float32)
    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
    grey = np.asarray(rgba.convert("L"), dtype=np.float32)
    opaque = alpha > 0.5
    light = bool(opaque.any() and (~opaque).any() and np.median(grey[opaque]) > 127.5)
    paper = 0.0 if light else 255.0
    return (grey * alpha + paper * (1 - alpha)).astype(np.float32)


def ink_from_grey(grey: np.ndarray) -> np.ndarray:
    """(h, w) grey 0..255 -> (h, w) ink 0..255, bright ink on a black background.

    The paper is whatever the border of the image mostly is: if the border is lighter
    than the middle grey, the picture is dark ink on light paper and gets inverted.
    """
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    paper = float(np.median(border))
    ink = 255.0 - grey if paper > 127.5 else grey.copy()
    background = 255.0 - paper if paper > 127.5 else paper
    ink = np.clip(ink - background, 0, None)
    top = ink.max()
    if top < MIN_CONTRAST:
        raise ImageError("The image is blank: no ink stands out from the paper. Draw or scan a digit.")
    ink *= 255.0 / top
    return ink.astype(np.float32)


def centre_like_mnist(ink: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Crop ink (h, w) to its bounding box, fit into 20x20, centre by mass in 28x28.

    Returns (28, 28) float32 in 0..255. Raises :class:`ImageError` when there is no ink.
    """
    from PIL import Image

    mask = ink > threshold * 255
    if not mask.any():
        raise ImageError("The image is blank: no ink stands out from the paper. Draw or scan a digit.")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(
        Image.fromarray(crop.astype(np.float32), mode="F").resize((nw, nh), Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    small = np.clip(small, 0, 255)
    out = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - nh) // 2, (28 - nw) // 2
    out[top : top + nh, left : left + nw] = small
    return shift_to_centre(out)


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, col) of an image's centre of mass."""
    total = img.sum()
    r = np.arange(img.shape[0], dtype=np.float64)
    c = np.arange(img.shape[1], dtype=np.float64)
    return float(img.sum(axis=1) @ r / total), float(img.sum(axis=0) @ c / total)


# Where MNIST's digits have their centre of mass: pixel (14, 14), 0-based (measured over the
# training set: mean (13.995, 14.009), standard deviation 0.28).
MNIST_CENTRE = (14.0, 14.0)


def shift_to_centre(img: np.ndarray) -> np.ndarray:
    """Shift a (28, 28) image by whole pixels so its centre of mass lands on MNIST's, (14, 14)."""
    cr, cc = centre_of_mass(img)
    dr, dc = int(round(MNIST_CENTRE[0] - cr)), int(round(MNIST_CENTRE[1] - cc))
    out = np.zeros_like(img)
    h, w = img.shape
    src_r = slice(max(0, -dr), min(h, h - dr))
    src_c = slice(max(0, -dc), min(w, w - dc))
    dst_r = slice(max(0, dr), min(h, h + dr))
    dst_c = slice(max(0, dc), min(w, w + dc))
    out[dst_r, dst_c] = img[src_r, src_c]
    return out


@dataclass
class Prepared:
    """What :func:`examine` makes of a picture: ``x``, the network's input, (784,) float32
    in [0, 1]; ``problem``, ``None`` or a one-line reason why the picture does not look like
    one digit (several separate marks of similar size, the digit touching the border)."""

    x: np.ndarray
    problem: str | None


def _grey(source: str | os.PathLike | bytes | np.ndarray) -> np.ndarray:
    if isinstance(source, np.ndarray):
        grey = np.asarray(source, dtype=np.float64)
        if grey.ndim != 2 or grey.size == 0:
            raise ImageError(f"Expected a 2-D grey image; got an array of shape {grey.shape}.")
        if not np.isfinite(grey).all():
            raise ImageError("The image contains NaN or infinite values; grey levels must be 0..255.")
        return np.clip(grey, 0, 255).astype(np.float32)
    return read_grey(source)


def examine(source: str | os.PathLike | bytes | np.ndarray) -> Prepared:
    """Any picture of one digit -> :class:`Prepared`: the network's input and, when the
    picture does not look like one digit, why.

    The ink is found the way document scanners do (:func:`digitnet.ink.find_ink`: paper
    estimated and removed, a threshold from the picture, ruled lines and the table's edge
    dropped, the largest mark and the pieces near it kept), then prepared like MNIST
    (:func:`centre_like_mnist`). Raises :class:`ImageError` when the file cannot be read
    or no ink stands out from the paper.
    """
    from digitnet.ink import NoInk, find_ink

    grey = _grey(source)
    try:
        found = find_ink(grey)
    except NoInk:
        raise ImageError("The image is blank: no ink stands out from the paper. Draw or scan a digit.") from None
    x = (centre_like_mnist(found.ink) / 255.0).reshape(784).astype(np.float32)
    return Prepared(x, found.problem)


def prepare(source: str | os.PathLike | bytes | np.ndarray, strict: bool = False) -> np.ndarray:
    """Any picture of one digit -> the network's input, (784,) float32 in [0, 1].

    ``source`` is a file path, the bytes of an image file, or an (h, w) array of grey
    levels 0..255 (dark or light ink: it is detected). Photos work: grey or tinted paper,
    uneven light, shadows, noise, ruled lines, the table around the paper (see
    :func:`examine`). A picture that does not look like one digit (several separate marks
    of similar size, ink touching the border) is prepared anyway, unless ``strict``: then it
    raises :class:`ImageError` naming the reason (what ``digitnet predict`` reports).
    """
    found = examine(source)
    if strict and found.problem:
        what = "The drawing" if isinstance(source, np.ndarray) else (
            "The image" if isinstance(source, (bytes, bytearray)) else str(source))
        raise ImageError(f"{what} does not look like one digit: {found.problem}.")
    return found.x


def prepare_files(paths: list[str | os.PathLike]) -> np.ndarray:
    """Several image files -> (n, 784) float32 inputs."""
    return np.stack([prepare(Path(p)) for p in paths]) if paths else np.zeros((0, 784), np.float32)


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
    k = np.floor(shift)
    f = (shift - k)[:, :, None]  # (n, h, 1) interpolation weight
    # Gather from rows padded with zeros on both sides, through flat indices.
    pad = w + 1
    width = w + 2 * pad
    padded = np.zeros((n, h, width), dtype=np.float32)
    padded[:, :, pad : pad + w] = imgs
    start = (np.arange(n * h, dtype=np.int64).reshape(n, h) * width + pad + k.astype(np.int64))[:, :, None]
    idx = start + np.arange(w, dtype=np.int64)  # (n, h, w)
    flat = padded.reshape(-1)
    left = flat[idx]
    right = flat[idx + 1]
    return left * (1 - f) + right * f


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
