"""A complete training run: data, network, epochs, checkpoints and the saved model.

:func:`run_training` is what ``digitnet train`` calls. It writes a checkpoint atomically
after every epoch next to the model (``MODEL.ckpt.safetensors``), saves the model when
training ends, and never loses work: on divergence it saves the last good epoch's
weights, on Ctrl-C the weights trained so far, before re-raising. It never replaces an
existing model (or the checkpoint of an unfinished run) unless asked to (``replace``).

A checkpoint holds everything needed to continue bit for bit: the weights, the optimizer's
state, the history, both configs (with the engine that ran), the data set and its folder,
and the extra image folders with a digest of their images. Resuming takes all of these from
the checkpoint; a setting asked for that contradicts it is refused, naming each, except
``epochs``, which may extend the run (see :func:`resume_config`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Dataset, load_dataset
from digitnet.errors import ConfigError, DataError, DivergenceError, ModelFileError
from digitnet.files import CHECKPOINT_SUFFIX, check_replaceable, checkpoint_path, uninterrupted
from digitnet.io.model_io import SavedModel, load_model, save_model
from digitnet.nn.network import Network
from digitnet.training.history import EpochRecord, History
from digitnet.training.settings import NETWORK_SETTINGS, TRAIN_SETTINGS
from digitnet.training.train import Trainer

def model_path_for(ckpt: str | os.PathLike) -> Path | None:
    """``model.ckpt.safetensors`` -> ``model.safetensors`` (None for other names)."""
    ckpt = Path(ckpt)
    if not ckpt.name.endswith(CHECKPOINT_SUFFIX) or ckpt.name == CHECKPOINT_SUFFIX:
        return None
    return ckpt.with_name(ckpt.name[: -len(CHECKPOINT_SUFFIX)] + ".safetensors")


def check_writable(out: Path) -> None:
    """Fail before training, not after it, when the model could not be saved."""
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise ModelFileError(f"Cannot save to {out}: the directory {directory} does not exist. Create it first.",
                             setting="out")
    if not os.access(directory, os.W_OK):
        raise ModelFileError(f"Cannot save to {out}: the directory {directory} is not writable. Choose another "
                             "{out}.", setting="out")
    check_replaceable(out)  # not a folder, FIFO or device


@dataclass
class ExtraImages:
    """A folder of the user's labelled images added to the training set."""

    folder: str  # as given
    count: int
    sha256: str  # of the images and labels, so that a resumed run can tell they are the same
    added_to: int = 0  # how many training images there were before them

    def to_dict(self) -> dict:
        return {"folder": self.folder, "count": self.count, "sha256": self.sha256}


def _split_digest(split) -> str:
    h = hashlib.sha256()
    h.update(memoryview(split.images.tobytes()))
    h.update(memoryview(split.labels.astype("<i8").tobytes()))
    return h.hexdigest()


def _stored_run(saved: SavedModel, where: Path) -> dict[str, Any]:
    """The checkpoint's ``run`` metadata (extra image folders, data folder), checked."""
    try:
        run = json.loads(saved.metadata.get("run", "{}"))
        extras = run.get("extra_images", [])
        ok = isinstance(extras, list) and all(
            isinstance(e, dict) and isinstance(e.get("folder"), str) and isinstance(e.get("sha256"), str)
            and isinstance(e.get("count"), int) for e in extras)
        ok = ok and (run.get("data_dir") is None or isinstance(run.get("data_dir"), str))
    except (ValueError, AttributeError, RecursionError):
        ok = False
    if not ok:
        raise ModelFileError(f"{where}: the checkpoint's run description is invalid. The file was altered.")
    return run


def _check_resumed_arrays(saved: SavedModel, dataset) -> None:
    """A checkpoint of your own arrays continues only on the same arrays (given again: they are
    not stored in it), and a checkpoint of images never on arrays."""
    import numpy as np

    given = dataset.input if isinstance(dataset, Dataset) else None
    if saved.input is not None and given is None:
        raise ConfigError(f"The checkpoint was trained on your own data ({saved.dataset}); give the same file again "
                          f"({{data}} {saved.dataset}) to continue the run.", setting="data")
    if saved.input is None and given is not None:
        raise ConfigError(f"The checkpoint was trained on {saved.dataset}, not on your own arrays: leave out {{data}} "
                          "to continue it, or start a new run without resuming.", setting="data")
    if saved.input is not None and not (
            np.array_equal(saved.input.mean, given.mean) and np.array_equal(saved.input.scale, given.scale)
            and [str(v) for v in saved.input.labels] == [str(v) for v in given.labels]):
        raise DataError(f"{dataset.name} is not the data the checkpoint was trained on ({saved.dataset}): its "
                        "columns or labels differ, so the resumed run would not be the same run. Give the same "
                        "file, or start a new run without resuming.")


@dataclass
class RunStart:
    """What :func:`run_training` tells ``on_start`` before the first epoch."""

    trainer: Trainer  # its config is the one that trains, with the engine that runs
    checkpoint: Path  # written after every epoch
    extra_images: list[ExtraImages]
    resumed_epochs: int | None = None  # resuming: the epochs the checkpoint had already trained
    planned_epochs: int | None = None  # resuming: the epochs the checkpoint's run was set to train


@dataclass
class RunResult:
    net: Network
    history: History
    model_path: Path
    checkpoint_path: Path
    interrupted: bool = False
    saved: bool = True  # False when Ctrl-C came before any epoch finished: no file was written
    # Where to continue an interrupted run from (the checkpoint of its last full epoch), or None.
    resume_from: Path | None = None
    extra_images: list[ExtraImages] = field(default_factory=list)


def resume_config(saved: SavedModel, requested: Mapping[str, Any]) -> tuple[NetworkConfig, TrainConfig]:
    """The configs to continue the checkpoint ``saved`` with, given the settings the user
    asked for (``requested``, e.g. the flags given with ``--resume``).

    Every setting is the checkpoint's; one asked for with another value is refused (a
    :class:`ConfigError` naming each), except ``epochs``: a larger value extends the run.
    The ``linear`` and ``cosine`` schedules are spread over ``epochs``, so extending such a
    run changes the learning rate of the epochs still to come (the header says so); the
    epochs already trained keep theirs. ``engine`` is not the math but what runs it: the
    checkpoint's engine unless another is asked for (``auto``: the fastest installed), e.g.
    to continue a run on a machine without Numba; the same engine continues bit-identically.
    """
    net, train = saved.net.config, saved.train_config
    if train is None:
        raise ModelFileError("The checkpoint has no training settings; it cannot be resumed. Start a new run.")
    have = {**net.to_dict(), **train.to_dict(), "layers": tuple(net.layers), "features": tuple(net.features)}
    clash = []
    for key, value in requested.items():
        if key in ("epochs", "engine"):
            continue
        if key not in have:
            continue
        want = value
        if key in NETWORK_SETTINGS:
            want = getattr(NetworkConfig.from_dict({**net.to_dict(), key: value}), key)
        elif key in TRAIN_SETTINGS:
            want = getattr(TrainConfig.from_dict({**train.to_dict(), key: value}), key)
        if want != have[key]:
            shown = ",".join(map(str, have[key])) if isinstance(have[key], tuple) else have[key]
            clash.append((key, shown))
    if clash:
        raise ConfigError(
            "The checkpoint continues its own settings: "
            + "; ".join(f"it has {{{k}}} {v}" for k, v in clash)
            + f". Leave out {', '.join('{' + k + '}' for k, _ in clash)} (or give the checkpoint's values), "
            "or start a new run without resuming.",
            setting=tuple(k for k, _ in clash),
        )
    if requested.get("engine") is not None:
        train = train.replace(engine=requested["engine"])
    epochs = requested.get("epochs", train.epochs)
    if epochs != train.epochs:
        train = TrainConfig.from_dict({**train.to_dict(), "epochs": epochs})
        if epochs <= saved.epoch:
            raise ConfigError(f"The checkpoint has already trained {saved.epoch} epochs; to extend the run, set "
                              f"{{epochs}} to more than {saved.epoch}.", setting="epochs")
    return net, train


def load_teacher(path: str | os.PathLike) -> Network:
    """The network of the model file named by the ``teacher`` setting (knowledge distillation)."""
    if not Path(path).is_file():
        raise ModelFileError(f"No teacher model at {path}: {{teacher}} names a model file that `digitnet train "
                             "--out` saved, e.g. of --preset mlp.", setting="teacher")
    try:
        return load_model(path).net
    except ModelFileError as e:
        raise ModelFileError(f"The {{teacher}} {path} cannot be read: {e}", setting="teacher") from None


def run_training(
    net_config: NetworkConfig,
    train_config: TrainConfig,
    out: str | os.PathLike,
    dataset: Dataset | str | None = None,
    *,
    resume: str | os.PathLike | None = None,
    requested: Mapping[str, Any] | None = None,
    extra_images: Sequence[str | os.PathLike] = (),
    data_dir: str | os.PathLike | None = None,
    replace: bool = False,
    on_start: Callable[[RunStart], None] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: Callable[[int], None] | None = None,
    epoch_start: Callable[[int], None] | None = None,
    engine: str | None = None,
) -> RunResult:
    """Train and save; see the module docstring.

    ``dataset`` is a :class:`Dataset` or a data set's name (loaded from ``data_dir``); it
    defaults to MNIST, or to the checkpoint's. ``extra_images`` are folders of labelled
    images added to the training set. With ``resume`` (a checkpoint) the configs given are
    ignored in favour of the checkpoint's and ``requested`` (the settings the user asked
    for) is checked against them (:func:`resume_config`). ``replace``: replace an existing
    model file at ``out`` (or a checkpoint of an unfinished run next to it).
    """
    out = Path(out)
    ckpt = checkpoint_path(out)
    check_writable(out)
    saved = None
    run_meta: dict[str, Any] = {}
    if resume is not None:
        resume = Path(resume)
        if not resume.is_file():
            raise ModelFileError(
                f"No checkpoint at {resume}. A run writes MODEL.ckpt.safetensors next to its model after every "
                "epoch and removes it when training ends; check the name.", setting="resume")
        saved = load_model(resume, checkpoint=True)
        net_config, train_config = resume_config(saved, requested or {})
        run_meta = _stored_run(saved, resume)
    # Resuming saves over the model of the same run (Ctrl-C saved it there).
    same_run = resume is not None and os.path.abspath(resume) == os.path.abspath(ckpt)
    if not replace and not same_run:
        # an unfinished run first: its model file exists too when Ctrl-C saved it
        if resume is None and ckpt.exists():
            raise ModelFileError(
                f"{ckpt} is the checkpoint of an unfinished run. Continue it ({{resume}} {ckpt}), choose another "
                "{out}, or allow replacing it ({force}).", setting=("resume", "out", "force"))
        if out.exists():
            raise ModelFileError(f"{out} already exists, and training would replace it. Choose another {{out}}, "
                                 "or allow replacing it ({force}).", setting=("out", "force"))

    # The data: the checkpoint's data set, folder and extra images unless given.
    if saved is not None:
        _check_resumed_arrays(saved, dataset)
        if isinstance(dataset, str) and dataset != saved.dataset:
            raise ConfigError(f"The checkpoint was trained on {saved.dataset}; leave out {{dataset}} or give "
                              f"{saved.dataset}.", setting="dataset")
        if dataset is None or isinstance(dataset, str):
            dataset = saved.dataset
        if data_dir is None:
            data_dir = run_meta.get("data_dir")
        stored = run_meta.get("extra_images", [])
        if extra_images and [str(f) for f in extra_images] != [e["folder"] for e in stored]:
            raise ConfigError(
                "The checkpoint was trained with extra images from "
                f"{', '.join(e['folder'] for e in stored) or 'no folder'}; leave out {{extra_images}} or give the "
                "same folders.", setting="extra_images")
        extra_images = [e["folder"] for e in stored]
    if isinstance(dataset, Dataset):
        data = dataset
    else:
        data = load_dataset(dataset or "mnist", data_dir, cache=False)  # a copy of its own: see below
    extras: list[ExtraImages] = []
    if extra_images:
        from digitnet.data.folder import add_to_training, load_folder

        for folder in extra_images:
            split = load_folder(folder, len(data.classes))
            before = len(data.train)
            data = add_to_training(data, split)
            extras.append(ExtraImages(str(folder), len(split), _split_digest(split), before))
    if saved is not None:
        for got, want in zip(extras, run_meta.get("extra_images", [])):
            if got.sha256 != want["sha256"]:
                raise DataError(
                    f"The images in {got.folder} changed since the checkpoint was written ({want['count']} then, "
                    f"{got.count} now, different pixels or labels); the resumed run would not be the same run. "
                    "Put the folder back as it was, or start a new run.")
    run_meta = {"extra_images": [e.to_dict() for e in extras],
                "data_dir": None if data_dir is None else os.path.abspath(data_dir)}

    if saved is not None:
        net = saved.net
        initial = saved.initial or saved.net.copy()
    else:
        net = Network.create(net_config, seed=train_config.seed)
        initial = net.copy()
    if train_config.validation:
        train_split, validation = data.with_validation()
    else:
        train_split, validation = data.train, None
    if train_config.train_size is not None:
        train_split = train_split.subset(train_config.train_size)
    trainer = Trainer(net, train_split, train_config, test=data.test, validation=validation, engine=engine,
                      teacher=load_teacher(train_config.teacher) if train_config.teacher else None)
    # The trainer holds the inputs in the form its engine reads: let the images go (data set loaded here).
    name, classes, data_input = data.name, data.classes, data.input
    del data, train_split, validation
    if saved is not None:
        trainer.epoch = saved.epoch
        trainer.history = saved.history or History()
        try:  # the optimizer's state (momentum, Adam's moments) must fit the network
            trainer.optimizer.load_state(saved.extra)
        except (KeyError, ValueError, IndexError, TypeError) as e:
            raise ModelFileError(f"{resume}: the checkpoint's optimizer state does not fit its network "
                                 f"({str(e)[:100]}). The file was altered or damaged; start the run again.",
                                 setting="resume") from None
        trainer.snapshots = list(saved.snapshots) if saved.snapshots and trainer.snapshots is not None else None
    else:
        trainer.measure_initial()
    if on_start is not None:
        on_start(RunStart(trainer, ckpt, extras, saved.epoch if saved else None,
                          saved.train_config.epochs if saved else None))

    def save_final() -> Path:
        return save_model(out, trainer.net, trainer.history, trainer.config, initial, name, classes,
                          run=run_meta, snapshots=trainer.snapshots, input=data_input)

    try:
        while not trainer.done:
            if epoch_start is not None:
                epoch_start(trainer.epoch)
            rec = trainer.run_epoch(progress)
            with uninterrupted():  # a Ctrl-C now comes after the epoch's checkpoint, which it keeps
                save_model(ckpt, trainer.net, trainer.history, trainer.config, initial, name, classes,
                           checkpoint=True, epoch=trainer.epoch, extra=trainer.optimizer.state(), run=run_meta,
                           snapshots=trainer.snapshots, input=data_input)
            if on_epoch is not None:
                on_epoch(rec)
    except DivergenceError as e:
        if trainer.epoch > 0:
            save_final()
            raise DivergenceError(f"{e.template} Saved the last good model (epoch {trainer.epoch}) to {out}.",
                                  setting=e.settings) from None
        raise DivergenceError(f"{e.template} Nothing was saved: the first epoch already diverged.",
                              setting=e.settings) from None
    except KeyboardInterrupt:
        if not trainer.done:  # (done: Ctrl-C while the last epoch was reported; the run ends as usual)
            if trainer.epoch == 0:  # no epoch finished: the initial weights are not a model worth a file
                return RunResult(trainer.net, trainer.history, out, ckpt, interrupted=True, saved=False,
                                 extra_images=extras)
            with uninterrupted(deliver=False):  # a second Ctrl-C must not lose the model being saved
                save_final()
            return RunResult(trainer.net, trainer.history, out, ckpt, interrupted=True,
                             resume_from=ckpt if ckpt.is_file() else None, extra_images=extras)
    with uninterrupted(deliver=False):  # all epochs are done: a Ctrl-C now stops nothing, the model is saved
        trainer.finish()
        save_final()
        try:
            ckpt.unlink()
        except OSError:
            pass
    return RunResult(trainer.net, trainer.history, out, ckpt, extra_images=extras)
