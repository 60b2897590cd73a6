"""Model files: safetensors weights plus the config that built them. Never pickle.

A digitnet model file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file:

* tensors ``layers.{l}.w`` (n_out, n_in) and ``layers.{l}.b`` (n_out,) for each dense layer
  ``l``, ``layers.{l}.w`` (c_out, c_in, k, k) and ``layers.{l}.b`` (c_out,) for a conv layer
  (pool and flatten layers have none; ``l`` counts them all, as ``kinds`` lists them);
  ``initial.layers.{l}.*`` the same before training (for ``show weights``);
  ``snapshots.{k}.layers.{l}.*`` the weights' trajectory, k = 0 the initial weights and k = e
  after epoch e (kept by training for small networks: see
  :func:`digitnet.training.train.snapshot_budget`; files without them load with none);
  ``history.batch_cost`` (number of mini-batches,) the cost of every mini-batch; a
  checkpoint adds ``optimizer.*`` tensors (the optimiser's state).
* text metadata: ``format`` (``digitnet-model`` or ``digitnet-checkpoint``), ``format_version``,
  ``network`` (the :class:`~digitnet.config.NetworkConfig` as JSON), ``train`` (the
  :class:`~digitnet.config.TrainConfig`), ``history`` (per-epoch records), ``input`` (how
  pixels become inputs: ``x = pixel / 255``, 28x28, white ink on black), ``dataset`` and
  ``classes``, ``epoch`` (for checkpoints), ``provenance`` (the versions of digitnet, Python, NumPy
  and Numba that wrote the file, Numba ``null`` where it was not installed; the engine that
  trained is in ``train``), and ``sha256``: a digest of every tensor's name,
  dtype, shape and bytes, so that an altered file is rejected, not silently used.

Writes are atomic: the file is written under a temporary name in the same directory,
flushed to disk, then renamed over the target, so an interrupted save never leaves a
broken file behind and the previous file stays intact until the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import DIGITS
from digitnet.errors import ConfigError, ModelFileError
from digitnet.files import atomic_write_bytes
from digitnet.nn.network import Network, param_shapes
from digitnet.training.history import EpochRecord, History

FORMAT = "digitnet-model"
CHECKPOINT_FORMAT = "digitnet-checkpoint"
FORMAT_VERSION = "1"
INPUT = {"size": 784, "shape": [28, 28], "scale": 255, "ink": "white on black"}


@dataclass
class SavedModel:
    """What a model file holds, loaded."""

    net: Network
    history: History | None = None
    train_config: TrainConfig | None = None
    initial: Network | None = None  # the weights before training, if stored
    dataset: str = "mnist"
    classes: tuple[str, ...] = DIGITS
    epoch: int = 0  # epochs completed (checkpoints)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. optimiser state
    metadata: dict[str, str] = field(default_factory=dict)
    snapshots: list[list[dict[str, np.ndarray]]] = field(default_factory=list)  # params lists, initial first
    # What wrote the file: {"digitnet": "0.5.0", "python": "3.12.3", "numpy": "2.2.6", "numba": "0.61.2"
    # or None}; None for files saved before digitnet recorded it.
    provenance: dict[str, str | None] | None = None
    # A model of your own arrays: its input transform and original labels (digitnet.data.arrays.ArrayInput).
    input: Any = None

    @property
    def engine(self) -> str | None:
        """The engine that trained the network (``train_config.engine``), None if not recorded."""
        return self.train_config.engine if self.train_config is not None else None

    def __repr__(self) -> str:
        made = ", ".join(f"{k} {v}" for k, v in (self.provenance or {}).items() if v) or "versions not recorded"
        epochs = f", {len(self.history.epochs)} epochs" if self.history is not None else ""
        return f"SavedModel({self.net!r}, {self.dataset}{epochs}; made with {made})"


PROVENANCE_KEYS = ("digitnet", "python", "numpy", "numba")


def provenance() -> dict[str, str | None]:
    """The versions of digitnet, Python, NumPy and Numba running now (Numba None if not installed).

    Numba's version is read from its package metadata, so this never imports Numba."""
    import platform
    import sys
    from importlib import metadata

    from digitnet._version import __version__

    numba = sys.modules.get("numba")
    version = getattr(numba, "__version__", None)
    if version is None:
        try:
            version = metadata.version("numba")
        except metadata.PackageNotFoundError:
            version = None
    return {"digitnet": __version__, "python": platform.python_version(), "numpy": np.__version__, "numba": version}


def _digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{t.dtype.str}|{t.shape}|".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def _pack(net: Network, prefix: str = "") -> dict[str, np.ndarray]:
    return {f"{prefix}layers.{l}.{k}": v for l, p in enumerate(net.params) for k, v in p.items()}


def save_model(
    path: str | os.PathLike,
    net: Network,
    history: History | None = None,
    train_config: TrainConfig | None = None,
    initial: Network | None = None,
    dataset: str = "mnist",
    classes: tuple[str, ...] = DIGITS,
    *,
    checkpoint: bool = False,
    epoch: int = 0,
    extra: dict[str, np.ndarray] | None = None,
    run: dict[str, Any] | None = None,
    snapshots: list[list[dict[str, np.ndarray]]] | None = None,
    input: Any = None,
) -> Path:
    """Save ``net`` (and what else is given) to ``path`` atomically; returns the path.

    ``run``: what else a resumed run needs (extra image folders and their digests, the data
    folder: :func:`digitnet.tasks.run.run_training`), stored as the ``run`` metadata. The engine
    that trained is ``train_config.engine``. ``snapshots``: the weights' trajectory (params
    lists shaped like ``net.params``, initial first), stored as ``snapshots.{k}.*`` tensors.
    ``input``: the :class:`~digitnet.data.arrays.ArrayInput` of a model of your own arrays (its
    tensors ``input.mean``, ``input.scale``; labels in ``input``)."""
    from safetensors.numpy import save

    tensors = _pack(net)
    if initial is not None:
        tensors.update(_pack(initial, "initial."))
    for k, params in enumerate(snapshots or ()):
        tensors.update({f"snapshots.{k}.layers.{l}.{n}": v for l, p in enumerate(params) for n, v in p.items()})
    if history is not None and history.batch_costs:
        tensors["history.batch_cost"] = np.asarray(history.batch_costs, dtype=np.float32)
    for k, v in (extra or {}).items():
        tensors[f"optimizer.{k}"] = np.asarray(v)
    if input is not None:
        tensors.update(input.tensors())
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    meta = {
        "format": CHECKPOINT_FORMAT if checkpoint else FORMAT,
        "format_version": FORMAT_VERSION,
        "network": json.dumps(net.config.to_dict()),
        "kinds": json.dumps(net.kinds),
        "input": json.dumps(INPUT if input is None else input.metadata()),
        "dataset": dataset,
        "classes": json.dumps(list(classes)),
        "epoch": str(epoch),
        "provenance": json.dumps(provenance()),
        "sha256": _digest(tensors),
    }
    if train_config is not None:
        meta["train"] = json.dumps(train_config.to_dict())
    if history is not None:
        meta["history"] = json.dumps(history.to_dict())
    if run is not None:
        meta["run"] = json.dumps(run)
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def _unpack(tensors: dict[str, np.ndarray], config: NetworkConfig, kinds: list[str], prefix: str, where: str) -> Network:
    dtype = np.dtype(config.dtype)
    params = []
    for l, want in enumerate(param_shapes(config)):
        p = {}
        for k, shape in want.items():
            name = f"{prefix}layers.{l}.{k}"
            if name not in tensors:
                raise ModelFileError(f"{where}: the tensor {name} is missing. The file is incomplete or not a digitnet model.")
            t = tensors[name]
            if t.shape != shape or t.dtype != dtype:
                raise ModelFileError(
                    f"{where}: tensor {name} has shape {t.shape} and dtype {t.dtype}; the network config "
                    f"needs {shape} {dtype}. The file was altered."
                )
            p[k] = np.array(t)  # a writable copy
        params.append(p)
    try:
        return Network(config, params, kinds)
    except ConfigError as e:
        raise ModelFileError(f"{where}: {e} The file was altered.") from None


# --- what the metadata may hold --------------------------------------------------------
# The digest is a checksum, not a signature: anyone can write a file with a valid digest and
# any metadata. So every field is checked for type, shape and size before it is used, and
# any file either loads or gives one clean "not a valid digitnet model" error.
MAX_META_CHARS = {"network": 100_000, "train": 100_000, "kinds": 100_000, "classes": 100_000,
                  "input": 1_000_000, "history": 20_000_000, "provenance": 10_000}
_JSON_FIELDS = ("network", "kinds", "classes", "train", "input", "history", "provenance", "run")
MAX_META_DEPTH = 6  # nesting of lists and objects in any field
MAX_EPOCHS = 100_000  # epoch records in a history
MAX_BATCH_COSTS = 10_000_000  # mini-batch costs (30 MNIST epochs at batch 10 are 180,000)
_LAYER_KINDS = {"dense", "conv", "pool", "flatten"}


def _depth(value) -> int:
    """How deeply lists and objects nest in ``value`` (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            if d > MAX_META_DEPTH:
                return d
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _json_field(meta: dict, key: str, kind: type | tuple[type, ...], default=None):
    text = meta.get(key)
    if text is None:
        return default
    if not isinstance(text, str) or len(text) > MAX_META_CHARS.get(key, 100_000):
        raise ValueError(f"'{key}' is too long")
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"'{key}' is nested too deeply") from None
    if _depth(value) > MAX_META_DEPTH:
        raise ValueError(f"'{key}' is nested too deeply")
    _check_text(key, value)
    if not isinstance(value, kind):
        raise ValueError(f"'{key}' is a {type(value).__name__}")
    return value


# Characters that must not reach a terminal from a file: C0 and C1 controls (ESC starts the
# escape sequences that clear a screen or retitle a window, BEL ends some) and the bidi
# overrides that make text read other than it is. Class names, versions, folder names: none
# of them needs one, so a file whose metadata holds one is refused at load, before any
# command or the web page shows it.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _check_text(key: str, value) -> None:
    """Refuse control characters in any string (or object key) inside ``value`` (iterative)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            m = _CONTROL.search(v)
            if m:
                raise ValueError(f"'{key}' holds the control character U+{ord(m.group()):04X}, which could take "
                                 "over a terminal")
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _is_number(v, *, none: bool = False) -> bool:
    return (v is None and none) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _check_known(d: dict, allowed, what: str) -> None:
    unknown = set(d) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {', '.join(sorted(map(str, unknown)))[:80]}")


def _check_settings(d: dict, cls, what: str) -> None:
    """Keys of the dataclass ``cls``, each value of its default's type (numbers for floats)."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_known(d, fields, what)
    for k, v in d.items():
        f = fields[k]
        default = f.default if f.default is not dataclasses.MISSING else None
        ok = (v is None or isinstance(v, (str, int, float, bool, list))) if default is None else \
            isinstance(v, bool) if isinstance(default, bool) else \
            (isinstance(v, int) and not isinstance(v, bool)) if isinstance(default, int) else \
            _is_number(v) if isinstance(default, float) else \
            isinstance(v, str) if isinstance(default, str) else \
            isinstance(v, (list, str)) if isinstance(default, tuple) else True
        if not ok:
            raise ValueError(f"{what} setting '{k}' is a {type(v).__name__}")
        if isinstance(v, int) and not -2**63 <= v < 2**63 or isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{what} setting '{k}' is out of range")


def _read_metadata(meta: dict, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    """The metadata's fields, parsed and checked (raises ValueError naming the bad field)."""
    for key, value in meta.items():  # JSON fields are checked for control characters as parsed
        _check_text(_CONTROL.sub("?", str(key))[:40], [key] if key in _JSON_FIELDS else [key, value])
    network = _json_field(meta, "network", dict)
    if network is None:
        raise ValueError("'network' is missing")
    _check_settings(network, NetworkConfig, "network")
    layers = network.get("layers")
    if not isinstance(layers, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in layers):
        raise ValueError("'network.layers' must list whole numbers")
    kinds = _json_field(meta, "kinds", list, [])
    if not all(isinstance(k, str) and k in _LAYER_KINDS for k in kinds):
        raise ValueError("'kinds' must list layer kinds (dense, conv, pool, flatten)")
    classes = _json_field(meta, "classes", list, list(DIGITS))
    if not 1 <= len(classes) <= 10_000 or not all(isinstance(c, str) and len(c) <= 100 for c in classes):
        raise ValueError("'classes' must list 1 to 10,000 names")
    train = _json_field(meta, "train", dict)
    if train is not None:
        _check_settings(train, TrainConfig, "train")
    input_meta = _json_field(meta, "input", dict)
    history = _json_field(meta, "history", dict)
    if history is not None:
        _check_known(history, ("epochs", "initial_cost", "initial_test_accuracy", "best_epoch", "stopped_epoch"),
                     "history")
        epochs = history.get("epochs", [])
        if not isinstance(epochs, list) or len(epochs) > MAX_EPOCHS:
            raise ValueError("'history.epochs' must be a list of epoch records")
        record_fields = set(EpochRecord.__dataclass_fields__)
        for rec in epochs:
            if not isinstance(rec, dict) or set(rec) != record_fields:
                raise ValueError(f"an epoch record must have exactly the keys {', '.join(sorted(record_fields))}")
            if not isinstance(rec["epoch"], int) or isinstance(rec["epoch"], bool):
                raise ValueError("an epoch record's 'epoch' must be a whole number")
            for k in ("cost", "train_accuracy", "seconds", "eta"):
                if not _is_number(rec[k]):
                    raise ValueError(f"an epoch record's '{k}' must be a number")
            for k in ("test_accuracy", "validation_accuracy"):
                if not _is_number(rec[k], none=True):
                    raise ValueError(f"an epoch record's '{k}' must be a number or null")
        for k in ("initial_cost", "initial_test_accuracy"):
            if not _is_number(history.get(k), none=True):
                raise ValueError(f"'history.{k}' must be a number or null")
        for k in ("best_epoch", "stopped_epoch"):
            v = history.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"'history.{k}' must be a whole number or null")
        if (history.get("best_epoch") or 0) > len(epochs):
            raise ValueError("'history.best_epoch' must be one of the epochs recorded")
    costs = tensors.get("history.batch_cost")
    if costs is not None and (costs.ndim != 1 or costs.dtype.kind != "f"):
        raise ValueError("the tensor history.batch_cost must be a 1-d array of floats")
    if costs is not None and costs.size > MAX_BATCH_COSTS:
        raise ValueError(f"the tensor history.batch_cost holds more than {MAX_BATCH_COSTS:,} costs")
    epoch_text = meta.get("epoch", "0")
    if not isinstance(epoch_text, str) or not epoch_text.isdigit() or len(epoch_text) > 7:
        raise ValueError("'epoch' must be a whole number")
    dataset = meta.get("dataset", "mnist")
    if not isinstance(dataset, str) or len(dataset) > 100:
        raise ValueError("'dataset' must be a short name")
    # Files from before provenance was recorded have none. Later versions may record more
    # programs: any short name with a short version (or null) is accepted.
    made_by = _json_field(meta, "provenance", dict)
    if made_by is not None and (len(made_by) > 20 or not all(
            isinstance(k, str) and len(k) <= 40 and (v is None or isinstance(v, str) and len(v) <= 100)
            for k, v in made_by.items())):
        raise ValueError("'provenance' must map program names to version strings or null")
    _json_field(meta, "run", dict)  # (its folders are checked by digitnet.tasks.run)
    array_input = None
    if input_meta is not None and input_meta.get("kind") == "features":
        from digitnet.data.arrays import ArrayInput

        array_input = ArrayInput.from_file(input_meta, tensors, layers[0] if layers else 0)
        if len(array_input.labels) != len(classes):
            raise ValueError("'input.labels' and 'classes' differ in length")
    return {"network": network, "kinds": kinds, "classes": classes, "train": train, "history": history,
            "epoch": int(epoch_text), "provenance": made_by, "input": array_input}


def load_model(path: str | os.PathLike, *, checkpoint: bool | None = None) -> SavedModel:
    """Load a model (or checkpoint) file, checking its format, version, shapes and digest."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"No model file at {path}. Check the name, or train a model and save it there.")
    where = str(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError, OverflowError) as e:
        raise ModelFileError(
            f"{where} is not a readable digitnet model file ({str(e).splitlines()[0] if str(e) else type(e).__name__}). "
            "It may be truncated or of another format; train or copy it again."
        ) from None
    fmt = meta.get("format")
    if fmt not in (FORMAT, CHECKPOINT_FORMAT):
        raise ModelFileError(f"{where} is a safetensors file but not a digitnet model (format {fmt!r}).")
    if checkpoint is True and fmt != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{where} is a model, not a training checkpoint; resuming needs the checkpoint "
                             "(MODEL.ckpt.safetensors) that an unfinished run left next to its model.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{where} has format version {meta.get('format_version')!r}; this digitnet reads version "
            f"{FORMAT_VERSION}. Upgrade digitnet or retrain the model."
        )
    if meta.get("sha256") != _digest(tensors):
        raise ModelFileError(f"{where}: the weights do not match the file's checksum. The file was altered or damaged.")
    try:
        fields = _read_metadata(meta, tensors)
        config = NetworkConfig.from_dict(fields["network"])
        kinds = fields["kinds"]
        classes = tuple(fields["classes"])
        train_config = TrainConfig.from_dict(fields["train"]) if fields["train"] is not None else None
        hist_meta: dict[str, Any] | None = fields["history"]
        epoch = fields["epoch"]
        history = History.from_dict(hist_meta, tensors.get("history.batch_cost", ())) if hist_meta is not None else None
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, RecursionError, ConfigError) as e:
        raise ModelFileError(f"{where} is not a valid digitnet model: the model description in the file is "
                             f"invalid ({_CONTROL.sub('?', str(e))[:200]}). The file was altered.") from None
    net = _unpack(tensors, config, kinds, "", where)
    if len(classes) < config.layers[-1]:  # (more is allowed: a 2-output network saved with the ten digits)
        raise ModelFileError(f"{where} is not a valid digitnet model: it names {len(classes)} classes for "
                             f"{config.layers[-1]} outputs. The file was altered.")
    if not all(np.isfinite(v).all() for p in net.params for v in p.values()):
        raise ModelFileError(
            f"{where}: the weights contain NaN or infinite values, so the model cannot predict anything. "
            "Its training diverged: retrain with a smaller learning rate ({eta}).", setting="eta"
        )
    # Initial weights, snapshots, optimiser state and input transform are used too (show weights,
    # the page's reset, --resume): digitnet never writes NaN or inf in them (a diverged run keeps
    # its last good values), so a file that holds any was altered or damaged.
    for name in sorted(tensors):
        t = tensors[name]
        if name != "history.batch_cost" and t.dtype.kind in "fc" and not np.isfinite(t).all():
            raise ModelFileError(f"{where}: the tensor {name} holds NaN or infinite values, which digitnet never "
                                 "writes. The file was altered or damaged: train or copy it again.")
    has_initial = any(k.startswith("initial.layers.") for k in tensors)
    initial = _unpack(tensors, config, kinds, "initial.", where) if has_initial else None
    extra = {k[len("optimizer."):]: v for k, v in tensors.items() if k.startswith("optimizer.")}
    snapshots = _snapshots(tensors, config, kinds, where)
    return SavedModel(net, history, train_config, initial, meta.get("dataset", "mnist"), classes, epoch, extra, meta,
                      snapshots=snapshots, provenance=fields["provenance"], input=fields["input"])


def _snapshots(tensors: dict[str, np.ndarray], config: NetworkConfig, kinds: list[str], where: str) -> list:
    """The ``snapshots.{k}.*`` tensors as params lists, checked: numbered 0, 1, ... without gaps,
    each a complete set of the network's shapes and dtype, nothing else under the prefix."""
    names = [k for k in tensors if k.startswith("snapshots.")]
    numbers = set()
    for name in names:
        part = name.split(".")[1]
        if not part.isdigit() or len(part) > 7:
            raise ModelFileError(f"{where}: the tensor {name} is not a snapshot of the weights. The file was altered.")
        numbers.add(int(part))
    if numbers != set(range(len(numbers))):
        raise ModelFileError(f"{where}: the weight snapshots are not numbered 0 to {len(numbers) - 1}. "
                             "The file was altered.")
    out = []
    for k in range(len(numbers)):
        out.append(_unpack(tensors, config, kinds, f"snapshots.{k}.", where).params)
    expected = sum(len(p) for p in out[0]) * len(out) if out else 0
    if len(names) != expected:
        raise ModelFileError(f"{where}: the weight snapshots hold tensors the network does not have. The file was altered.")
    return out
