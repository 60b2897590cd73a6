"""A folder of labelled images as a data set: your own digits, drawn or scanned.

The layout is one sub-folder per label, named by the label's number::

    DIR/0/*.png   pictures of zeros
    DIR/1/*.png   pictures of ones
    ...
    DIR/9/*.png

Any size and any colour mode will do (PNG, JPEG, BMP, GIF, WebP, TIFF): every picture is
turned into an MNIST-like 28x28 input by :func:`digitnet.data.images.prepare`, the way MNIST
itself was made, so a network trained on MNIST can be tested on it. Entries whose name
starts with a dot (``.DS_Store``, half-written temporary files) are ignored; anything
else out of place is an error that names it, so a mislabelled digit is never read
silently.

:func:`save_labelled_image` adds one picture to such a folder (the web page uses it to
keep the digits a user draws, with the label they give).
"""

from __future__ import annotations

import io
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitnet.data.datasets import Dataset, Split
from digitnet.errors import DataError, ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
N_CLASSES = 10


@dataclass(frozen=True)
class ImageFolder:
    """The images of a labelled folder, prepared like MNIST.

    ``split.images[i]`` (28, 28) uint8 is the picture in ``paths[i]``, labelled ``split.labels[i]``.
    """

    directory: Path
    split: Split
    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self, n_classes: int = N_CLASSES) -> np.ndarray:
        """(n_classes,) how many images each label has."""
        return np.bincount(self.split.labels, minlength=n_classes)


def _hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _layout_help(directory: Path, n_classes: int) -> str:
    return (f"Put each picture in the sub-folder named after its label: {directory}/0/*.png ... "
            f"{directory}/{n_classes - 1}/*.png.")


def list_labelled_images(directory: str | os.PathLike, n_classes: int = N_CLASSES) -> list[tuple[Path, int]]:
    """The ``(path, label)`` of every image under ``directory``, sorted by label then name.

    Raises :class:`DataError` when the folder does not exist, holds no image, has a file
    or folder where a label folder should be, or a label folder holds something that is
    not an image file.
    """
    directory = Path(directory)
    if not directory.exists():
        raise DataError(f"Image folder {directory} does not exist. {_layout_help(directory, n_classes)}")
    if not directory.is_dir():
        raise DataError(f"{directory} is a file, not a folder. {_layout_help(directory, n_classes)}")
    labels = {str(k): k for k in range(n_classes)}
    found: list[tuple[Path, int]] = []
    for entry in sorted(directory.iterdir()):
        if _hidden(entry):
            continue
        if entry.name not in labels:
            kind = "folder" if entry.is_dir() else "file"
            raise DataError(
                f"Wrong layout: {entry} is a {kind} where only label folders 0..{n_classes - 1} belong. "
                + _layout_help(directory, n_classes)
            )
        if not entry.is_dir():
            raise DataError(f"Wrong layout: {entry} is a file; it must be a folder of images labelled {entry.name}.")
        label = labels[entry.name]
        for f in sorted(entry.iterdir()):
            if _hidden(f):
                continue
            if f.is_dir():
                raise DataError(f"Wrong layout: {f} is a folder inside label folder {entry}; put the images "
                                "directly in the label folder.")
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{f} is not an image file (expected one of {', '.join(IMAGE_SUFFIXES)}). "
                                f"Move it out of {directory}.")
            found.append((f, label))
    if not found:
        raise DataError(f"No images in {directory}. {_layout_help(directory, n_classes)}")
    return found


def read_image_folder(directory: str | os.PathLike, n_classes: int = N_CLASSES) -> ImageFolder:
    """Read and prepare every image of a labelled folder (see the module docstring)."""
    from digitnet.data.images import prepare

    found = list_labelled_images(directory, n_classes)
    images = np.empty((len(found), 28, 28), dtype=np.uint8)
    for i, (path, _) in enumerate(found):
        try:
            x = prepare(path)  # (784,) float32 in [0, 1]
        except ImageError as e:
            msg = str(e)
            raise ImageError(msg if str(path) in msg else f"{path}: {msg}") from None
        # Stored as bytes like MNIST's own images, so Split.x = pixel / 255 reads it back.
        images[i] = np.rint(x.reshape(28, 28) * 255)
    labels = np.array([label for _, label in found], dtype=np.int64)
    return ImageFolder(Path(directory), Split(images, labels), tuple(p for p, _ in found))


def load_folder(directory: str | os.PathLike, n_classes: int = N_CLASSES) -> Split:
    """A labelled folder ``DIR/0/*.png ... DIR/9/*.png`` as a :class:`Split`, prepared like MNIST.

    >>> split = load_folder("my-digits")          # doctest: +SKIP
    >>> split.x.shape, split.y[:3]                # doctest: +SKIP
    ((37, 784), array([0, 0, 1]))
    """
    return read_image_folder(directory, n_classes).split


def _check_label(label, n_classes: int) -> int:
    if isinstance(label, str) and label.strip().isdigit():
        label = int(label.strip())
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes:
        raise DataError(f"The label must be a whole number 0..{n_classes - 1}; got {label!r}.")
    return int(label)


def _grey_from_array(a: np.ndarray) -> np.ndarray:
    """A 28x28 picture (uint8 0..255, or floats 0..1 like the network's input) -> (28, 28) uint8."""
    a = np.asarray(a)
    if a.shape == (784,):
        a = a.reshape(28, 28)
    if a.shape != (28, 28):
        raise ImageError(f"Expected a 28x28 picture (or 784 values); got an array of shape {a.shape}.")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ImageError("A float picture must hold values 0..1 (like the network's input); "
                             f"got {a.min()}..{a.max()}. Pass uint8 0..255 or divide by 255.")
        return np.rint(a * 255).astype(np.uint8)
    if a.dtype.kind in "iu":
        if a.min() < 0 or a.max() > 255:
            raise ImageError(f"An integer picture must hold grey levels 0..255; got {a.min()}..{a.max()}.")
        return a.astype(np.uint8)
    raise ImageError(f"A picture must be an array of numbers; got dtype {a.dtype}.")


def save_labelled_image(
    directory: str | os.PathLike, label, image: np.ndarray | bytes, n_classes: int = N_CLASSES
) -> Path:
    """Save one labelled picture into ``directory/<label>/`` as a grey PNG; return its path.

    ``image`` is a 28x28 (or 784-long) array, uint8 grey levels 0..255 or floats 0..1
    (the network's input, bright ink on black), or the bytes of an image file of any
    size and format. It is checked first: a picture :func:`~digitnet.data.images.prepare`
    cannot read, or one without ink, raises :class:`ImageError` and nothing is written.
    ``label`` is 0..9 (an int or a digit string); anything else raises :class:`DataError`.

    The file name is made here, never taken from the caller (``20250101T120000Z-<random>.png``),
    and the write is atomic (temporary dot-file, then rename), so a folder being read
    never sees half a picture and two saves never overwrite each other.
    """
    from PIL import Image

    from digitnet.data.images import prepare, read_grey
    from digitnet.files import atomic_write_bytes

    label = _check_label(label, n_classes)
    if isinstance(image, (bytes, bytearray, memoryview)):
        grey = np.clip(np.rint(read_grey(bytes(image))), 0, 255).astype(np.uint8)  # composites transparency on white
    elif isinstance(image, np.ndarray):
        grey = _grey_from_array(image)
    else:
        raise ImageError(f"Expected a 28x28 array or the bytes of an image file; got {type(image).__name__}.")
    prepare(grey)  # raises ImageError for a blank picture, before anything is written
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DataError(f"Cannot save into {directory}: it is a file, not a folder.")
    folder = directory / str(label)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"Cannot create {folder}: {e.strerror or e}. Check the path and that it is writable.") from None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    while True:
        path = folder / f"{stamp}-{secrets.token_hex(4)}.png"
        if not path.exists():  # 32 random bits per second: a clash is astronomically rare, and retried
            break
    return atomic_write_bytes(path, buf.getvalue())


def add_to_training(dataset: Dataset, extra: Split) -> Dataset:
    """``dataset`` with ``extra`` added to its training split (the test split unchanged).

    The extra images go first, so :meth:`Dataset.with_validation` still holds out the same
    last 10,000 training images and ``train_size`` keeps the user's images.
    """
    if len(extra) and extra.labels.max() >= len(dataset.classes):
        raise DataError(f"The extra images have label {extra.labels.max()} but {dataset.name} has only "
                        f"{len(dataset.classes)} classes.")
    t = dataset.train
    train = Split(np.concatenate([extra.images, t.images]), np.concatenate([extra.labels, t.labels]))
    return Dataset(dataset.name, dataset.classes, train, dataset.test)


def worst_mistakes(outputs: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Indices of the (at most ``k``) wrong answers the network was surest of, surest first.

    ``outputs`` (n, classes) are the output activations, ``labels`` (n,) the true classes.
    "Surest" is the margin by which the chosen output beat the true class's output.
    """
    outputs, labels = np.asarray(outputs), np.asarray(labels)
    pred = outputs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    rows = np.arange(len(labels))
    margin = outputs[rows, pred] - outputs[rows, labels]  # (n,) how far the wrong answer beat the right one
    return wrong[np.argsort(-margin[wrong], kind="stable")][:k]
