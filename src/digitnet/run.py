"""A complete training run: data, network, epochs, checkpoints and the saved model.

:func:`run_training` is what ``digitnet train`` calls. It writes a checkpoint atomically
after every epoch next to the model (``MODEL.ckpt.safetensors``), saves the model when
training ends, and never loses work: on divergence it saves the last good epoch's
weights, on Ctrl-C the weights trained so far, before re-raising.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Dataset, load_dataset
from digitnet.errors import DivergenceError, ModelFileError
from digitnet.files import check_replaceable, checkpoint_path
from digitnet.model_io import load_model, save_model
from digitnet.nn.network import Network
from digitnet.train import EpochRecord, History, Trainer


def save_checkpoint(path: str | os.PathLike, trainer: Trainer, initial: Network, dataset: str, classes) -> Path:
    """Everything needed to continue: weights, optimiser state, history, epochs done."""
    return save_model(
        path, trainer.net, trainer.history, trainer.config, initial, dataset, classes,
        checkpoint=True, epoch=trainer.epoch, extra=trainer.optimizer.state(),
    )


def check_writable(out: Path) -> None:
    """Fail before training, not after it, when the model could not be saved."""
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise ModelFileError(f"Cannot save to {out}: the directory {directory} does not exist. Create it first.")
    if not os.access(directory, os.W_OK):
        raise ModelFileError(f"Cannot save to {out}: the directory {directory} is not writable. Choose another --out.")
    check_replaceable(out)  # not a folder, FIFO or device


@dataclass
class RunResult:
    net: Network
    history: History
    model_path: Path
    checkpoint_path: Path
    interrupted: bool = False


def run_training(
    net_config: NetworkConfig,
    train_config: TrainConfig,
    out: str | os.PathLike,
    dataset: Dataset | None = None,
    *,
    resume: str | os.PathLike | None = None,
    on_start: Callable[[Trainer, Path], None] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: Callable[[int], None] | None = None,
    epoch_start: Callable[[int], None] | None = None,
    engine: str | None = None,
) -> RunResult:
    """Train and save; see the module docstring. ``dataset`` defaults to MNIST."""
    out = Path(out)
    ckpt = checkpoint_path(out)
    check_writable(out)
    data = dataset if dataset is not None else load_dataset("mnist")
    if resume is not None:
        saved = load_model(resume, checkpoint=True)
        net, train_config = saved.net, saved.train_config or train_config
        initial = saved.initial or saved.net.copy()
        data = dataset if dataset is not None else load_dataset(saved.dataset)
    else:
        net = Network.create(net_config, seed=train_config.seed)
        initial = net.copy()
    if train_config.validation:
        train_split, validation = data.with_validation()
    else:
        train_split, validation = data.train, None
    if train_config.train_size is not None:
        train_split = train_split.subset(train_config.train_size)
    trainer = Trainer(net, train_split, train_config, test=data.test, validation=validation, engine=engine)
    if resume is not None:
        trainer.epoch = saved.epoch
        trainer.history = saved.history or History()
        trainer.optimizer.load_state(saved.extra)
    else:
        trainer.measure_initial()
    if on_start is not None:
        on_start(trainer, ckpt)

    def save_final() -> Path:
        return save_model(out, trainer.net, trainer.history, trainer.config, initial, data.name, data.classes)

    try:
        while not trainer.done:
            if epoch_start is not None:
                epoch_start(trainer.epoch)
            rec = trainer.run_epoch(progress)
            save_checkpoint(ckpt, trainer, initial, data.name, data.classes)
            if on_epoch is not None:
                on_epoch(rec)
    except DivergenceError as e:
        if trainer.epoch > 0:
            save_final()
            raise DivergenceError(f"{e} Saved the last good model (epoch {trainer.epoch}) to {out}.") from None
        raise DivergenceError(f"{e} Nothing was saved: the first epoch already diverged.") from None
    except KeyboardInterrupt:
        save_final()
        return RunResult(trainer.net, trainer.history, out, ckpt, interrupted=True)
    trainer.finish()
    save_final()
    try:
        ckpt.unlink()
    except OSError:
        pass
    return RunResult(trainer.net, trainer.history, out, ckpt)
