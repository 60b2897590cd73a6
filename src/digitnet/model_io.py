"""Model files: safetensors weights plus the config that built them. Never pickle.

A digitnet model file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file:

* tensors ``layers.{l}.w`` (n_out, n_in) and ``layers.{l}.b`` (n_out,) for each dense layer
  ``l``, ``layers.{l}.w`` (c_out, c_in, k, k) and ``layers.{l}.b`` (c_out,) for a conv layer
  (pool and flatten layers have none; ``l`` counts them all, as ``kinds`` lists them);
  ``initial.layers.{l}.*`` the same before training (for ``show weights``);
  ``history.batch_cost`` (number of mini-batches,) the cost of every mini-batch; a
  checkpoint adds ``optimizer.*`` tensors (the optimiser's state).
* text metadata: ``format`` (``digitnet-model`` or ``digitnet-checkpoint``), ``format_version``,
  ``network`` (the :class:`~digitnet.config.NetworkConfig` as JSON), ``train`` (the
  :class:`~digitnet.config.TrainConfig`), ``history`` (per-epoch records), ``input`` (how
  pixels become inputs: ``x = pixel / 255``, 28x28, white ink on black), ``dataset`` and
  ``classes``, ``epoch`` (for checkpoints), and ``sha256``: a digest of every tensor's name,
  dtype, shape and bytes, so that an altered file is rejected, not silently used.

Writes are atomic: the file is written under a temporary name in the same directory,
flushed to disk, then renamed over the target, so an interrupted save never leaves a
broken file behind and the previous file stays intact until the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import DIGITS
from digitnet.errors import ConfigError, ModelFileError
from digitnet.files import atomic_write_bytes
from digitnet.history import History
from digitnet.nn.network import Network, param_shapes

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
) -> Path:
    """Save ``net`` (and what else is given) to ``path`` atomically; returns the path.

    ``run``: what else a resumed run needs (extra image folders and their digests, the data
    folder: :func:`digitnet.run.run_training`), stored as the ``run`` metadata. The engine
    that trained is ``train_config.engine``."""
    from safetensors.numpy import save

    tensors = _pack(net)
    if initial is not None:
        tensors.update(_pack(initial, "initial."))
    if history is not None and history.batch_costs:
        tensors["history.batch_cost"] = np.asarray(history.batch_costs, dtype=np.float32)
    for k, v in (extra or {}).items():
        tensors[f"optimizer.{k}"] = np.asarray(v)
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    meta = {
        "format": CHECKPOINT_FORMAT if checkpoint else FORMAT,
        "format_version": FORMAT_VERSION,
        "network": json.dumps(net.config.to_dict()),
        "kinds": json.dumps(net.kinds),
        "input": json.dumps(INPUT),
        "dataset": dataset,
        "classes": json.dumps(list(classes)),
        "epoch": str(epoch),
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
        config = NetworkConfig.from_dict(json.loads(meta["network"]))
        kinds = json.loads(meta.get("kinds", "[]"))
        classes = tuple(json.loads(meta.get("classes", json.dumps(list(DIGITS)))))
        train_config = TrainConfig.from_dict(json.loads(meta["train"])) if "train" in meta else None
        hist_meta: dict[str, Any] | None = json.loads(meta["history"]) if "history" in meta else None
        epoch = int(meta.get("epoch", "0"))
    except (KeyError, ValueError, TypeError, ConfigError) as e:
        raise ModelFileError(f"{where}: the model description in the file is invalid ({e}). The file was altered.") from None
    net = _unpack(tensors, config, kinds, "", where)
    if not all(np.isfinite(v).all() for p in net.params for v in p.values()):
        raise ModelFileError(
            f"{where}: the weights contain NaN or infinite values, so the model cannot predict anything. "
            "Its training diverged: retrain with a smaller learning rate ({eta}).", setting="eta"
        )
    has_initial = any(k.startswith("initial.layers.") for k in tensors)
    initial = _unpack(tensors, config, kinds, "initial.", where) if has_initial else None
    history = None
    if hist_meta is not None:
        history = History.from_dict(hist_meta, tensors.get("history.batch_cost", ()))
    extra = {k[len("optimizer."):]: v for k, v in tensors.items() if k.startswith("optimizer.")}
    return SavedModel(net, history, train_config, initial, meta.get("dataset", "mnist"), classes, epoch, extra, meta)
