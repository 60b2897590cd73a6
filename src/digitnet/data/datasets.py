"""Data sets as arrays: MNIST (shipped with the package, checksummed) and its splits.

Images are kept as they are stored, ``(n, 28, 28)`` uint8, white ink on black; the
network's input ``x`` is ``(n, 784)`` float32 in [0, 1] (pixel / 255), one row per image.
Labels are integers 0..9 everywhere; one-hot vectors exist only inside the cost.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitnet.data.idx import parse_idx, read_idx_bytes
from digitnet.errors import DataError

DIGITS = tuple(str(d) for d in range(10))
# Zalando's names for Fashion-MNIST's labels 0..9 (its README's table).
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}  # data set name -> how messages write it
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
VALIDATION_SIZE = 10_000  # the last 10,000 training images, as in Nielsen's book


@dataclass(frozen=True)
class Split:
    """One part of a data set: ``images`` (n, 28, 28) uint8 and ``labels`` (n,) int64.

    A data set of your own arrays (:mod:`digitnet.data.arrays`) holds its inputs, already
    standardised, as float ``images`` (n, d): ``x`` gives them as they are.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @functools.cached_property
    def x(self) -> np.ndarray:
        """The network's input: (n, 784) float32, pixel / 255 (float inputs as they are)."""
        n = len(self.images)
        if np.asarray(self.images).dtype.kind == "f":
            return np.asarray(self.images).reshape(n, int(np.prod(self.images.shape[1:])))
        # One pass into one new array (astype then / would allocate and traverse twice).
        x = np.empty((n, int(np.prod(self.images.shape[1:]))), np.float32)
        return np.divide(self.images.reshape(x.shape), np.float32(255), out=x, dtype=np.float32)

    @property
    def y(self) -> np.ndarray:
        """The labels, (n,) int64."""
        return self.labels

    def subset(self, n: int) -> "Split":
        """The first ``n`` examples."""
        return Split(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class Dataset:
    """A labelled image data set with a training and a test split."""

    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    # Your own arrays: how raw rows become inputs and the original labels (digitnet.data.arrays.ArrayInput).
    input: Any = None

    def with_validation(self, size: int = VALIDATION_SIZE) -> tuple[Split, Split]:
        """Split the training set into (train, validation): the last ``size`` images validate."""
        n = len(self.train)
        if not 0 < size < n:
            raise DataError(f"A validation split of {size} needs more than {size} training images; there are {n}.")
        t = self.train
        return Split(t.images[: n - size], t.labels[: n - size]), Split(t.images[n - size :], t.labels[n - size :])


def _shipped_dir() -> Path:
    # The package's own folder (not importlib.resources: importing it costs more than a
    # `digitnet predict` of one image does otherwise).
    return Path(__file__).resolve().parent / "mnist"


def _read_sums(directory: Path) -> dict[str, str]:
    """Read ``SHA256SUMS.raw`` (checksums of the decompressed files) if present."""
    f = directory / "SHA256SUMS.raw"
    sums: dict[str, str] = {}
    if f.is_file():
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                sums[parts[1]] = parts[0].lower()
    return sums


# The decompressed SHA-256 of the canonical MNIST files; a user's copy must match too.
MNIST_SHA256 = _read_sums(_shipped_dir())


def _read_file(directory: Path, stem: str, sha256: str | None, what: str = "MNIST") -> np.ndarray:
    gz, raw = directory / f"{stem}.gz", directory / stem
    if gz.is_file() or raw.is_file():
        path = gz if gz.is_file() else raw
        data = read_idx_bytes(path)  # sizes checked against the header before reading
    else:
        raise DataError(
            f"Missing data file: neither {gz} nor {raw} exists. Put the four MNIST files there, or "
            "unset DIGITNET_DATA / --data-dir to use the copy shipped with digitnet."
        )
    if sha256 is not None:
        import hashlib  # here, not at the top: import digitnet stays quick

        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise DataError(
                f"{path}: checksum mismatch (SHA-256 of the decompressed bytes is {got[:16]}..., expected "
                f"{sha256[:16]}...). The file is corrupted or not the {what} one: copy it again."
            )
    return parse_idx(data, str(path))


def _make_split(images: np.ndarray, labels: np.ndarray, where: str, n_classes: int) -> Split:
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{where}: expected images of shape (n, rows, cols) and labels of shape (n,); "
                        f"got {images.shape} and {labels.shape}.")
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels. One of the files is wrong.")
    if images.dtype != np.uint8:
        raise DataError(f"{where}: images must be unsigned bytes (IDX type 0x08); got {images.dtype}.")
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{where}: labels must be 0..{n_classes - 1}; found {labels.min()}..{labels.max()}.")
    return Split(images, labels)


def load_idx_dataset(
    directory: str | os.PathLike,
    name: str = "mnist",
    classes: tuple[str, ...] = DIGITS,
    checksums: dict[str, str] | None = None,
) -> Dataset:
    """Load the four IDX files (``.gz`` or not) of an MNIST-layout data set from ``directory``.

    ``checksums`` maps file names (without ``.gz``) to the SHA-256 of their decompressed
    bytes; files without an entry are not checked.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"Data directory {directory} does not exist. Give a directory holding the four IDX files.")
    sums = checksums or {}
    what = TITLES.get(name, name)
    # zlib and hashlib release the GIL: the four files decompress and hash in parallel.
    from concurrent.futures import ThreadPoolExecutor  # here, not at the top: import digitnet stays quick

    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = {key: pool.submit(_read_file, directory, stem, sums.get(stem), what) for key, stem in FILES.items()}
        arrays = {key: job.result() for key, job in jobs.items()}
    train = _make_split(arrays["train_images"], arrays["train_labels"], f"{directory} (training files)", len(classes))
    test = _make_split(arrays["test_images"], arrays["test_labels"], f"{directory} (test files)", len(classes))
    return Dataset(name, classes, train, test)


@functools.lru_cache(maxsize=4)
def _load_mnist_cached(directory: str) -> Dataset:
    return load_idx_dataset(directory, "mnist", DIGITS, MNIST_SHA256)


def load_mnist(data_dir: str | os.PathLike | None = None, *, cache: bool = True) -> Dataset:
    """Load MNIST: 60,000 training and 10,000 test digits, checked against their SHA-256.

    The copy shipped with digitnet is used unless ``data_dir`` (or the ``DIGITNET_DATA``
    environment variable) names another directory holding the same four files. The
    arrays are read-only and cached, so loading twice is free; ``cache=False`` loads a copy
    that the cache does not keep, freed when the caller lets it go.

    >>> mnist = load_mnist()
    >>> mnist.train.x.shape, mnist.train.y[:5]
    ((60000, 784), array([5, 0, 4, 1, 9]))
    """
    chosen = data_dir if data_dir is not None else os.environ.get("DIGITNET_DATA") or _shipped_dir()
    load = _load_mnist_cached if cache else _load_mnist_cached.__wrapped__
    return load(str(Path(chosen).resolve()))


# The decompressed SHA-256 of Zalando's Fashion-MNIST files. Debian's dataset-fashion-mnist
# re-gzips them (so the .gz bytes differ from upstream's MD5s) but the contents are these.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # where `apt-get install dataset-fashion-mnist` puts it
FASHION_MNIST_HELP = (
    "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; it goes to "
    f"{FASHION_MNIST_DIR}), or download the four .gz files from https://github.com/zalandoresearch/fashion-mnist "
    "and pass their directory with --data-dir (or DIGITNET_FASHION_MNIST)."
)


@functools.lru_cache(maxsize=4)
def _load_fashion_cached(directory: str) -> Dataset:
    return load_idx_dataset(directory, "fashion-mnist", FASHION_CLASSES, FASHION_MNIST_SHA256)


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, *, cache: bool = True) -> Dataset:
    """Load Zalando's Fashion-MNIST: 60,000 + 10,000 28x28 pictures of clothes in 10 classes.

    Same layout and checks as :func:`load_mnist`. The files are looked for in ``data_dir``,
    else the ``DIGITNET_FASHION_MNIST`` environment variable, else where Debian's
    ``dataset-fashion-mnist`` package installs them (:data:`FASHION_MNIST_DIR`).
    """
    chosen = Path(data_dir if data_dir is not None else os.environ.get("DIGITNET_FASHION_MNIST") or FASHION_MNIST_DIR)
    if not chosen.is_dir():
        raise DataError(f"Fashion-MNIST not found: {chosen} does not exist. {FASHION_MNIST_HELP}")
    for stem in FILES.values():
        if not (chosen / f"{stem}.gz").is_file() and not (chosen / stem).is_file():
            raise DataError(f"Fashion-MNIST file {stem}(.gz) is missing from {chosen}. {FASHION_MNIST_HELP}")
    load = _load_fashion_cached if cache else _load_fashion_cached.__wrapped__
    return load(str(chosen.resolve()))


def load_dataset(name: str = "mnist", data_dir: str | os.PathLike | None = None, *, cache: bool = True) -> Dataset:
    """Load a data set by name: one of :data:`DATASETS` (``mnist``, ``fashion-mnist``).

    ``cache=False``: a copy of its own (a fresh load, which the cache does not keep), so that
    its arrays are freed once the caller lets them go, as a training run does that holds the
    inputs in another form (the compiled engine's compressed rows)."""
    loaders = DATASETS
    if name not in loaders:
        raise DataError(f"Unknown data set {name!r}; choose one of: {', '.join(loaders)}.")
    return loaders[name](data_dir, cache=cache)


DATASETS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}
