"""Your own data: a data set from arrays ``X`` (n, d) and labels ``y`` (n,).

``X`` may have any scale: its columns are standardised (minus the training mean, divided by
the training standard deviation) and the same transform is applied to every input the
model sees later: test rows, rows to predict, rows read back from a model file. The labels
may be of any hashable kind (strings, whole numbers, ...); the classes are their sorted
unique values, and the network's output neuron ``k`` stands for ``labels[k]``.

:class:`ArrayInput` holds the transform and the labels. A model file stores it (tensors
``input.mean`` and ``input.scale``, the labels in the ``input`` metadata), so a loaded model
predicts the original labels::

    data = from_arrays(X, y)                      # a Dataset with data.input set
    run_training(NetworkConfig((d, 16, 16, k)), TrainConfig(), "mine.safetensors", data)
    saved = load_model("mine.safetensors")
    saved.input.predict(saved.net, X_new)         # -> the original labels
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitnet.data.datasets import Dataset, Split
from digitnet.errors import ConfigError, DataError

KIND = "features"  # the ``input`` metadata's kind for array models
MAX_FEATURES = 100_000  # as a layer's size


def _check_x(X, what: str = "X", n_features: int | None = None) -> np.ndarray:
    """``X`` as a float64 (n, d) array; a one-line DataError for anything else."""
    try:
        x = np.asarray(X)
    except Exception:  # noqa: BLE001 - ragged lists etc.
        raise DataError(f"{what} is not a rectangular table of numbers: give an (n, d) array of floats.") from None
    if x.dtype == object or x.dtype.kind not in "biuf":
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{what} holds values that are not numbers ({x.dtype}): give an (n, d) array of floats; "
                            "encode text columns as numbers first.") from None
    if x.ndim != 2:
        hint = " (one example? write X.reshape(1, -1); one feature? X.reshape(-1, 1))" if x.ndim == 1 else ""
        raise DataError(f"{what} must be 2-D, (n examples, d features); got shape {x.shape}{hint}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{what} is empty (shape {x.shape}): give at least one example with at least one feature.")
    if x.shape[1] > MAX_FEATURES:
        raise DataError(f"{what} has {x.shape[1]} features; digitnet takes at most {MAX_FEATURES}.")
    if n_features is not None and x.shape[1] != n_features:
        raise DataError(f"{what} has {x.shape[1]} features per example but the model was trained on {n_features}: "
                        "give the same columns, in the same order.")
    x = x.astype(np.float64, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        kind = "NaN" if math.isnan(x[r, c]) else "infinite"
        raise DataError(f"{what} has {int(bad.sum())} NaN or infinite value(s), the first ({kind}) in row {r}, "
                        f"column {c}: drop those rows or fill them in (e.g. with the column's mean) first.")
    return x


def _check_y(y, n: int, what: str = "y") -> np.ndarray:
    labels = np.asarray(y, dtype=object) if not isinstance(y, np.ndarray) else y
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{what} must be 1-D, one label per example; got shape {labels.shape}.")
    if len(labels) != n:
        raise DataError(f"X has {n} examples but {what} has {len(labels)} labels: give one label per row of X.")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise DataError(f"{what} has NaN or infinite labels: drop those examples first.")
    return labels


def _python(label: Any) -> Any:
    """A NumPy scalar as the Python value (np.int64(3) -> 3, np.str_('a') -> 'a')."""
    return label.item() if isinstance(label, np.generic) else label


def classes_of(y) -> tuple:
    """The sorted unique labels of ``y``, as Python values."""
    labels = _check_y(y, len(y))
    try:
        unique = sorted({_python(v) for v in labels.tolist()})
    except TypeError:
        kinds = sorted({type(_python(v)).__name__ for v in labels.tolist()})
        raise DataError(f"The labels mix kinds that cannot be sorted ({', '.join(kinds)}): make them all strings "
                        "or all numbers.") from None
    for v in unique:
        if isinstance(v, float) and not math.isfinite(v):
            raise DataError("The labels include NaN or infinity: drop those examples first.")
    return tuple(unique)


@dataclass(frozen=True, eq=False)
class ArrayInput:
    """How raw feature rows become the network's input, and what its outputs stand for.

    ``mean`` and ``scale`` (d,) standardise each column: ``(X - mean) / scale``
    (``mean`` 0 and ``scale`` 1 when not standardising); ``labels`` are the original class
    labels, output neuron ``k`` standing for ``labels[k]``.
    """

    mean: np.ndarray
    scale: np.ndarray
    labels: tuple

    @classmethod
    def fit(cls, X, y, standardize: bool = True) -> "ArrayInput":
        """Learn the transform from training data ``X`` and the classes from its labels ``y``."""
        x = _check_x(X)
        labels = classes_of(_check_y(y, len(x)))
        if len(labels) < 2:
            raise DataError(f"The labels have only one class ({labels[0]!r}): a classifier needs examples of at "
                            "least two classes.")
        if standardize:
            mean, scale = x.mean(axis=0), x.std(axis=0)
            scale[scale < 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0  # constant columns: centre only
            scale[scale == 0] = 1.0
        else:
            mean, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        return cls(mean, scale, labels)

    @property
    def n_features(self) -> int:
        return len(self.mean)

    @property
    def classes(self) -> tuple[str, ...]:
        """The labels as text (how model files and reports name the classes)."""
        return tuple(str(c) for c in self.labels)

    def transform(self, X, what: str = "X") -> np.ndarray:
        """Rows of raw features -> the network's input, (n, d) float64, checked."""
        x = _check_x(X, what, self.n_features)
        return (x - self.mean) / self.scale

    def encode(self, y, n: int | None = None, what: str = "y") -> np.ndarray:
        """Original labels -> class indices (n,) int64; a label the model does not know is an error."""
        labels = _check_y(y, len(y) if n is None else n, what)
        index = {c: i for i, c in enumerate(self.labels)}
        # Text labels also match numbers written the same way (a CSV's "7" is read as 7).
        by_text = {str(c): i for i, c in enumerate(self.labels)} if all(isinstance(c, str) for c in self.labels) else {}
        out = np.empty(len(labels), np.int64)
        for i, v in enumerate(labels.tolist()):
            k = index.get(_python(v))
            if k is None and by_text and not isinstance(_python(v), float):
                k = by_text.get(str(_python(v)))
            if k is None:
                shown = ", ".join(map(repr, self.labels[:10])) + (", ..." if len(self.labels) > 10 else "")
                raise DataError(f"{what} has the label {_python(v)!r} (row {i}), which is not one of the model's "
                                f"classes ({shown}): use only those labels, or train a model that has it.")
            out[i] = k
        return out

    def decode(self, indices) -> np.ndarray:
        """Class indices -> the original labels."""
        return np.asarray(self.labels)[np.asarray(indices, dtype=np.int64)]

    def split(self, X, y, what: str = "X") -> Split:
        """A :class:`Split` of standardised inputs and class indices, for training or evaluating."""
        x = self.transform(X, what)
        return Split(x, self.encode(y, len(x)))

    def predict(self, net, X) -> np.ndarray:
        """The network's predictions for raw rows ``X``, as original labels."""
        return self.decode(net.predict(self.transform(X)))

    def predict_proba(self, net, X) -> np.ndarray:
        """The output activations for raw rows ``X``, each row scaled to sum to 1."""
        out = np.asarray(net.feedforward(self.transform(X)), dtype=np.float64)
        total = out.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(total > 0, out / np.where(total > 0, total, 1), 1.0 / out.shape[1])
        return p

    # --- the model file -------------------------------------------------------------
    def metadata(self) -> dict:
        """The ``input`` metadata of a model file (the tensors are :meth:`tensors`)."""
        labels = [_python(c) for c in self.labels]
        if not all(isinstance(c, (str, int, float, bool)) for c in labels):
            kinds = sorted({type(c).__name__ for c in labels if not isinstance(c, (str, int, float, bool))})
            raise DataError(f"Labels of kind {', '.join(kinds)} cannot be stored in a model file: use strings or "
                            "numbers as labels.")
        return {"kind": KIND, "size": self.n_features, "transform": "(x - mean) / scale", "labels": labels}

    def tensors(self) -> dict[str, np.ndarray]:
        return {"input.mean": np.asarray(self.mean, np.float64), "input.scale": np.asarray(self.scale, np.float64)}

    @classmethod
    def from_file(cls, meta: dict, tensors: dict[str, np.ndarray], n_inputs: int) -> "ArrayInput":
        """Rebuild it from a model file's ``input`` metadata and tensors (ValueError if invalid)."""
        labels = meta.get("labels")
        if not isinstance(labels, list) or not all(isinstance(c, (str, int, float, bool)) for c in labels):
            raise ValueError("'input.labels' must list strings or numbers")
        mean, scale = tensors.get("input.mean"), tensors.get("input.scale")
        for name, t in (("input.mean", mean), ("input.scale", scale)):
            if t is None or t.shape != (n_inputs,) or t.dtype.kind != "f" or not np.isfinite(t).all():
                raise ValueError(f"the tensor {name} must be {n_inputs} finite floats")
        if not (scale > 0).all():
            raise ValueError("the tensor input.scale must be positive")
        return cls(np.array(mean, np.float64), np.array(scale, np.float64), tuple(labels))


def from_arrays(
    X,
    y,
    *,
    test: tuple[Any, Any] | None = None,
    test_size: float = 0.2,
    standardize: bool = True,
    seed: int = 0,
    name: str = "arrays",
) -> Dataset:
    """A :class:`Dataset` from your own arrays: ``X`` (n, d) numbers of any scale, ``y`` (n,)
    labels of any hashable kind.

    ``test`` = ``(X_test, y_test)`` is the test split; without it a shuffled ``test_size``
    fraction of the examples (seeded by ``seed``; 0 for none) is held out. The transform
    (standardisation, unless ``standardize=False``) is learnt from the training split only
    and kept in ``dataset.input``; ``dataset.classes`` are the labels as text.
    """
    x = _check_x(X)
    labels = _check_y(y, len(x))
    if test is None:
        if not (isinstance(test_size, (int, float)) and 0 <= test_size < 1):
            raise DataError(f"test_size must be a fraction in [0, 1); got {test_size!r}.")
        n_test = int(round(len(x) * test_size))
        order = np.random.default_rng(seed).permutation(len(x))
        test_rows, train_rows = order[:n_test], order[n_test:]
        x_test, y_test = x[test_rows], labels[test_rows]
        x, labels = x[train_rows], labels[train_rows]
    else:
        try:
            X_test, Y_test = test
        except (TypeError, ValueError):
            raise DataError("test must be a pair (X_test, y_test).") from None
        x_test = _check_x(X_test, "X_test", x.shape[1])
        y_test = _check_y(Y_test, len(x_test), "y_test")
    inp = ArrayInput.fit(x, labels, standardize)
    train = Split(inp.transform(x), inp.encode(labels))
    if len(x_test):
        test_split = Split(inp.transform(x_test, "X_test"), inp.encode(y_test, what="y_test"))
    else:
        test_split = Split(np.empty((0, x.shape[1])), np.empty(0, np.int64))
    return Dataset(name, inp.classes, train, test_split, inp)


def hidden_layers(value, n_features: int, n_classes: int, what: str = "--layers") -> tuple[int, ...]:
    """The hidden layers' sizes for a network of your own data, from ``"16,16"`` or ``[16, 16]``:
    the data give the inputs (``n_features``) and the outputs (``n_classes``), so ``value`` names
    only the layers between. A ConfigError names ``what`` (the flag or the file's setting)."""
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    data = f"the {n_features} inputs and {n_classes} outputs come from the data"
    sizes = []
    for v in parts:
        try:
            n = int(v) if isinstance(v, str) or (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) \
                else None
        except ValueError:
            n = None
        if n is None or n < 1 or n > MAX_FEATURES:
            raise ConfigError(f"With --data, {what} gives the hidden layers' sizes only, whole numbers from 1 to "
                              f"{MAX_FEATURES} ({data}), e.g. {what} 16,16 or {what} 8; got {value!r}.",
                              setting="layers")
        sizes.append(n)
    if len(sizes) >= 3 and sizes[0] == n_features and sizes[-1] == n_classes:
        raise ConfigError(f"{what} {','.join(map(str, sizes))} looks like the whole network; with --data it gives "
                          f"the hidden layers only ({data}): write {what} {','.join(map(str, sizes[1:-1]))}.",
                          setting="layers")
    return tuple(sizes)


def read_data_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """Read ``FILE.npz`` (arrays ``X`` and ``y``, optionally ``X_test`` and ``y_test``) or
    ``FILE.csv`` (the last column is the label; the columns separated by ',', ';' or tabs, found from
    the first lines; a first line whose features are not numbers is a header).

    Returns ``(X, y, test)`` where ``test`` is ``(X_test, y_test)`` or None.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"No data file at {p}: give an .npz file with arrays X and y, or a .csv file whose last "
                        "column is the label.")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise DataError(f"{p} is not a readable .npz file ({str(e).splitlines()[0][:100]}): save it with "
                            "numpy.savez(path, X=X, y=y).") from None
        missing = [k for k in ("X", "y") if k not in arrays]
        if missing:
            raise DataError(f"{p} has no array named {' or '.join(missing)} (it has {', '.join(arrays) or 'none'}): "
                            "save it with numpy.savez(path, X=X, y=y).")
        test = None
        if ("X_test" in arrays) != ("y_test" in arrays):
            raise DataError(f"{p} has only one of X_test and y_test: give both, or neither.")
        if "X_test" in arrays:
            test = (arrays["X_test"], arrays["y_test"])
        return arrays["X"], arrays["y"], test
    if suffix == ".csv":
        return (*_read_csv(p), None)
    raise DataError(f"{p}: unknown data file type {suffix or '(none)'}; give an .npz file (arrays X and y) or a "
                    ".csv file (the label in the last column).")


DELIMITERS = (",", ";", "\t")  # in order of preference: a comma, then European Excel's ';', then tabs


def _float(text: str, decimal_comma: bool = False) -> float:
    """A CSV cell as a number; ValueError if it is not one. ``decimal_comma``: "1,5" is 1.5
    (European Excel writes ';'-separated files with decimal commas)."""
    text = text.strip()
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    return float(text)


def _number(text: str, decimal_comma: bool = False) -> bool:
    try:
        _float(text, decimal_comma)
        return True
    except ValueError:
        return False


def _sniff(lines: list[str]) -> str:
    """The delimiter of a CSV file from its first lines: the first of ',', ';', tab that splits
    every line into the same number (at least 2) of columns whose features (all but the last) are
    numbers after the first line (a header, perhaps); failing that, the first that splits them
    consistently; failing that, ','."""
    import csv

    sample = [ln for ln in lines[:50] if ln.strip()]
    consistent = []
    for d in DELIMITERS:
        rows = list(csv.reader(sample, delimiter=d))
        if len({len(r) for r in rows}) == 1 and len(rows[0]) >= 2:
            consistent.append(d)
            if all(_number(c, d != ",") for r in rows[1:] for c in r[:-1]):
                return d
    return consistent[0] if consistent else ","


def _read_csv(p: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CSV file's features and labels. The delimiter (',', ';' or tab) is sniffed from the
    first lines; with ';' or tab, decimal commas ("1,5") are read as numbers too. Errors name the
    file's line (1-based, as an editor shows it) and the column (its header, if there is one)."""
    import csv
    import io

    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            text = f.read()
        delimiter = _sniff(text.splitlines())
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows, lines = [], []
        for r in reader:
            if r and any(c.strip() for c in r):
                rows.append(r)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{p} is not a readable CSV file ({e}).") from None
    comma = delimiter != ","
    header = None
    # A header: a first line none of whose features is a number (a data line with one typo is data).
    if rows and not any(_number(c, comma) for c in rows[0][:-1]):
        header, rows, lines = [c.strip() for c in rows[0]], rows[1:], lines[1:]
    if not rows:
        raise DataError(f"{p} has no data rows: write one example a line, its features then its label.")
    width = len(rows[0])
    if width < 2:
        raise DataError(f"{p}: a row needs at least one feature and a label (the last column), separated by ',', "
                        f"';' or tabs; got {width} column.")
    for r, line in zip(rows, lines):
        if len(r) != width:
            raise DataError(f"{p}, line {line}: {len(r)} columns, but the first data line has {width}: every line "
                            "needs the same columns.")
    X = np.empty((len(rows), width - 1))
    for i, (r, line) in enumerate(zip(rows, lines)):
        for j, c in enumerate(r[:-1]):
            try:
                X[i, j] = _float(c, comma)
            except ValueError:
                column = f"column {j + 1} ({header[j]!r})" if header and header[j] else f"column {j + 1}"
                raise DataError(f"{p}, line {line}, {column}: {c.strip()!r} is not a number; every column but the "
                                "last (the label) must hold numbers.") from None
    return X, _labels([r[-1].strip() for r in rows], comma)


def _labels(texts: list[str], decimal_comma: bool = False) -> np.ndarray:
    """A CSV's label column with its type: whole numbers as ints, other numbers as floats, else text."""
    if all(_is_int(v) for v in texts):
        return np.array([int(v) for v in texts])
    if all(_number(v, decimal_comma) for v in texts):
        return np.array([_float(v, decimal_comma) for v in texts])
    return np.array(texts)


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False
