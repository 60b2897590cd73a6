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
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitnet.data.resample import DESKEW_CHUNK, deskew, deskew_images, deskew_inputs  # noqa: F401 (their home moved)
from digitnet.errors import ImageError

MAX_PIXELS = 40_000_000  # refuse decompression bombs larger than this
MIN_CONTRAST = 8.0  # ink must differ from the paper by at least this many grey levels
MAX_SIDE = 2000  # larger pictures are read scaled down to at most this many pixels across
_OPEN_LOCK = threading.Lock()  # read_grey changes the (process-wide) warnings filter while opening


def read_grey(source: str | os.PathLike | bytes) -> np.ndarray:
    """Read an image file (or its bytes) as (h, w) float32 grey levels 0..255."""
    from PIL import Image, UnidentifiedImageError

    name = "image data" if isinstance(source, (bytes, bytearray)) else str(source)
    too_large = (f"digitnet reads images of at most {MAX_PIXELS:,} pixels (for example 6000x6000); "
                 "scale it down (a digit needs no more than 1000x1000).")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        if not isinstance(source, (bytes, bytearray)) and os.path.exists(source) and not os.path.isfile(source):
            raise ImageError(f"{name} is not a file (a folder, a FIFO or a device); give an image file.")
        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
    except OSError as e:
        raise ImageError(f"Cannot open {name}: {e.strerror or e}.") from None
    try:
        with fp:
            # Pillow reads only the header on open: the size is checked here, before any pixel
            # is decoded (a 300 KB PNG can declare 8800x8800 and cost gigabytes: a decompression
            # bomb). Pillow's own check only warns below twice its limit; here it is an error.
            # The warnings filter is process-wide, hence the lock (opening reads a header: quick).
            with _OPEN_LOCK, warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(fp)
            with im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{name} is {w}x{h} = {w * h:,} pixels; {too_large}")
                # A digit needs no more than MAX_SIDE pixels across: a larger picture is read at
                # a fraction of its size (JPEG decodes at 1/2, 1/4 or 1/8 directly; others are
                # box-averaged), so a phone photo costs tens of MB, not a gigabyte.
                factor = -(-max(w, h) // MAX_SIDE)
                if factor > 1:
                    im.draft(im.mode, (w // factor, h // factor))  # JPEG only; others ignore it
                im.load()
                factor = -(-max(im.size) // MAX_SIDE)
                grey = flatten_transparency(im.reduce(factor) if factor > 1 else im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} has more than {MAX_PIXELS:,} pixels; {too_large}") from None
    except UnidentifiedImageError:  # Pillow's message names its file object, not the file
        raise ImageError(f"{name} is not an image digitnet can read (not a PNG or JPEG image).") from None
    except (OSError, ValueError, SyntaxError) as e:
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
    from digitnet.data.ink import median  # np.median's, without importing numpy.ma

    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
    grey = np.asarray(rgba.convert("L"), dtype=np.float32)
    opaque = alpha > 0.5
    light = bool(opaque.any() and (~opaque).any() and median(grey[opaque]) > 127.5)
    paper = 0.0 if light else 255.0
    return (grey * alpha + paper * (1 - alpha)).astype(np.float32)


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

    The ink is found the way document scanners do (:func:`digitnet.data.ink.find_ink`: paper
    estimated and removed, a threshold from the picture, ruled lines and the table's edge
    dropped, the largest mark and the pieces near it kept), then prepared like MNIST
    (:func:`centre_like_mnist`). Raises :class:`ImageError` when the file cannot be read
    or no ink stands out from the paper.
    """
    from digitnet.data.ink import NoInk, find_ink

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
