"""``digitnet train``: train a network and save it."""

from __future__ import annotations

import sys
import time

import click

from digitnet.cli import main
from digitnet.cli.common import echo_json, pct
from digitnet.config import (
    ACTIVATION_NAMES,
    COST_NAMES,
    INIT_NAMES,
    OPTIMIZER_NAMES,
    SCHEDULE_NAMES,
    NetworkConfig,
    TrainConfig,
    parse_features,
    parse_layers,
)
from digitnet.presets import PRESETS

DEFAULT_OUT = "digitnet-model.safetensors"


def _load_data(data_dir, dataset="mnist"):
    from digitnet.data.datasets import load_dataset

    ctx = click.get_current_context(silent=True)
    if dataset != "mnist" and ctx is not None and \
            ctx.get_parameter_source("data_dir") == click.core.ParameterSource.ENVIRONMENT:
        data_dir = None  # DIGITNET_DATA names MNIST's directory, not this data set's
    return load_dataset(dataset, data_dir)


def _dataset_names() -> list[str]:
    from digitnet.data.datasets import DATASETS

    return list(DATASETS)


def _preset_help() -> str:
    return "; ".join(f"{k}: {v[0]}" for k, v in PRESETS.items())


@main.command()
@click.option("--preset", default="video", show_default=True, type=click.Choice(list(PRESETS)),
              help=f"Starting configuration, changed by the flags below. {_preset_help()}.")
@click.option("--layers", metavar="SIZES", help="Neurons per layer, input first: e.g. 784,16,16,10 or 784,30,10.")
@click.option("--activation", type=click.Choice(["sigmoid", "tanh", "relu"]), help="Hidden layers' activation function.")
@click.option("--output-activation", type=click.Choice(list(ACTIVATION_NAMES)), help="Output layer's activation (default: sigmoid).")
@click.option("--cost", type=click.Choice(list(COST_NAMES)), help="Cost: quadratic = average of 1/2 sum of squared output errors; or cross-entropy.")
@click.option("--init", type=click.Choice(list(INIT_NAMES)), help="Initial weights: standard N(0,1), scaled N(0,1/n_in), xavier, he.")
@click.option("--eta", type=float, help="Learning rate: how far each gradient step goes (video: 3.0).")
@click.option("--batch-size", type=int, help="Training examples per mini-batch, i.e. per gradient step (video: 10).")
@click.option("--epochs", type=int, help="Passes over the 60,000 training images (video: 30).")
@click.option("--seed", type=int, help="Seed for initial weights and shuffling: same seed, same numbers.")
@click.option("--schedule", type=click.Choice(list(SCHEDULE_NAMES)), help="Learning-rate schedule over the epochs.")
@click.option("--warmup-epochs", type=int, help="Epochs over which eta first grows linearly up to --eta.")
@click.option("--optimizer", type=click.Choice(list(OPTIMIZER_NAMES)), help="Update rule: plain SGD, momentum, Nesterov or Adam.")
@click.option("--momentum", type=float, help="Momentum coefficient (and Adam's beta1).")
@click.option("--lmbda", type=float, help="L2 regularisation strength (weight decay).")
@click.option("--validation/--no-validation", default=None, help="Hold out the last 10,000 training images to validate on.")
@click.option("--train-size", type=int, help="Train on only the first N training images (for quick experiments).")
@click.option("--features", metavar="SPECS", help="Conv/pool layers before the dense ones, e.g. conv:32:5,pool:2,conv:32:5,pool:2 (none: a dense network).")
@click.option("--dropout", type=float, help="Drop each hidden neuron feeding a dense layer with this probability in training, e.g. 0.2.")
@click.option("--patience", type=int, help="Early stopping: stop after this many epochs without a better validation accuracy (needs --validation; 0: off).")
@click.option("--keep-best/--no-keep-best", default=None, help="Keep the weights of the epoch with the best validation accuracy (needs --validation).")
@click.option("--augment", metavar="KINDS", help="Distort each training batch at random: any of shift,rotate,elastic (none: off).")
@click.option("--max-shift", type=float, help="Augmentation: shift by up to this many pixels (default 2).")
@click.option("--max-rotation", type=float, help="Augmentation: turn by up to this many degrees (default 10).")
@click.option("--elastic-alpha", type=float, help="Augmentation: strength of the elastic distortion (default 34).")
@click.option("--elastic-sigma", type=float, help="Augmentation: smoothness of the elastic distortion in pixels (default 4).")
@click.option("--train-metrics", type=click.Choice(["full", "batches"]), help="After each epoch, measure cost and accuracy on the whole training set (full), or report the mean mini-batch cost (batches: faster).")
@click.option("--preprocess", type=click.Choice(["none", "deskew"]), help="How pixels become inputs: none (pixel/255) or deskew (straighten slanted digits first).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), help="Floating-point precision of the math.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help=f"Where to save the model [default: {DEFAULT_OUT}].")
@click.option("--resume", type=click.Path(dir_okay=False), default=None, help="Continue from a checkpoint (MODEL.ckpt.safetensors) written by an earlier run.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DIGITNET_DATA", help="Directory with the four MNIST IDX files (default: the copy shipped with digitnet).")
@click.option("--dataset", default="mnist", show_default=True, type=click.Choice(_dataset_names()),
              help="The data set to learn: handwritten digits, or Zalando's pictures of clothes (fashion-mnist: "
                   "`apt-get install dataset-fashion-mnist`, or its four files in --data-dir).")
@click.option("--extra-images", "extra_images", multiple=True, type=click.Path(file_okay=False),
              help="Also train on your own labelled images: a folder DIR/0/*.png ... DIR/9/*.png (repeatable).")
@click.option("--engine", type=click.Choice(["auto", "numpy", "numba"]), envvar="DIGITNET_ENGINE", default=None,
              help="What runs plain SGD on dense networks: numba (compiled, needs pip install 'digitnet[fast]'), numpy, "
                   "or auto: numba where installed [default: auto; env DIGITNET_ENGINE].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end instead of the human output.")
def train(preset, layers, activation, output_activation, cost, init, eta, batch_size, epochs, seed, schedule,
          optimizer, momentum, lmbda, validation, warmup_epochs, train_size, preprocess, dtype, out, resume, data_dir, as_json,
          dataset="mnist", extra_images=(), features=None, dropout=None, patience=None, keep_best=None, augment=None,
          max_shift=None, max_rotation=None, elastic_alpha=None, elastic_sigma=None, train_metrics=None, engine=None):
    """Train a network on MNIST and save it.

    With no options this trains the video's network (784-16-16-10 sigmoid neurons,
    quadratic cost, mini-batch SGD, batch size 10, learning rate 3.0, 30 epochs) and
    prints the average training cost and test accuracy after every epoch.

    \b
    Examples:
      digitnet train
      digitnet train --layers 784,30,10 --epochs 10 --out small.safetensors
      digitnet train --resume digitnet-model.ckpt.safetensors
      digitnet train --dataset fashion-mnist --epochs 5 --out fashion.safetensors
      digitnet train --extra-images my-digits
    """
    from tqdm import tqdm

    from digitnet.run import run_training
    from digitnet.presets import get_preset

    start = time.perf_counter()
    net_cfg, train_cfg = get_preset(preset)
    net_changes = {k: v for k, v in dict(activation=activation, output_activation=output_activation, cost=cost,
                                         init=init, dtype=dtype, preprocess=preprocess).items() if v is not None}
    if layers is not None:
        net_changes["layers"] = parse_layers(layers)
    if features is not None:
        net_changes["features"] = parse_features(features)
    train_changes = {k: v for k, v in dict(eta=eta, batch_size=batch_size, epochs=epochs, seed=seed, schedule=schedule,
                                           optimizer=optimizer, momentum=momentum, lmbda=lmbda, warmup_epochs=warmup_epochs,
                                           validation=validation, train_size=train_size).items() if v is not None}
    train_changes.update({k: v for k, v in dict(
        dropout=dropout, patience=patience, keep_best=keep_best, max_shift=max_shift, max_rotation=max_rotation,
        elastic_alpha=elastic_alpha, elastic_sigma=elastic_sigma, train_metrics=train_metrics,
        augment=None if augment is None else tuple(a.strip() for a in augment.split(",") if a.strip() not in ("", "none")),
    ).items() if v is not None})
    net_cfg = NetworkConfig.from_dict({**net_cfg.to_dict(), **net_changes})
    train_cfg = TrainConfig.from_dict({**train_cfg.to_dict(), **train_changes})
    if out is None:
        out = DEFAULT_OUT
        if resume:
            name = str(resume)
            out = name.replace(".ckpt.safetensors", ".safetensors") if name.endswith(".ckpt.safetensors") else DEFAULT_OUT
    data = _load_data(data_dir, dataset)
    quiet = as_json
    if extra_images:
        from digitnet.data.folder import add_to_training, load_folder

        for folder in extra_images:
            extra = load_folder(folder, len(data.classes))
            data = add_to_training(data, extra)
            if not quiet:
                click.echo(f"Added {len(extra)} of your images from {folder} to the {len(data.train) - len(extra):,} "
                           "training images.")
    bar = None
    state = {}

    def on_start(trainer, ckpt):
        state["trainer"] = trainer
        if not quiet:
            cfg, tc = trainer.net.config, trainer.config
            what = "Resuming" if resume else "Training"
            click.echo(
                f"{what} {cfg.describe()} ({cfg.activation}/{cfg.output_activation}, {cfg.cost} cost, "
                f"{cfg.init} init{', deskewed input' if cfg.preprocess == 'deskew' else ''}) with {tc.optimizer}, batch "
                f"{tc.batch_size}, eta {tc.eta:g}{'' if tc.schedule == 'constant' else ' (' + tc.schedule + ' schedule)'}, "
                f"{tc.epochs} epochs, seed {tc.seed}, {trainer.step_engine} engine"
                + (f", from epoch {trainer.epoch}" if resume else "")
            )
            if trainer.history.initial_cost is not None:
                click.echo(f"Before training: cost {trainer.history.initial_cost:.4f}, test accuracy "
                           f"{pct(trainer.history.initial_test_accuracy)}")
            click.echo(f"Checkpoint after every epoch: {ckpt}")

    def epoch_start(epoch):
        nonlocal bar
        if not quiet:
            bar = tqdm(total=state["trainer"].batches_per_epoch, desc=f"Epoch {epoch + 1}/{train_cfg.epochs}", unit="batch",
                       leave=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.2)

    def progress(k):
        if bar is not None:
            bar.update(k)

    def on_epoch(rec):
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        if not quiet:
            extra = f"  validation {pct(rec.validation_accuracy)}" if rec.validation_accuracy is not None else ""
            click.echo(f"Epoch {rec.epoch:>2}/{train_cfg.epochs}  cost {rec.cost:.4f}  test accuracy "
                       f"{pct(rec.test_accuracy)}{extra}  ({rec.seconds:.2f} s)")
        trainer = state["trainer"]
        before, chance = trainer.history.initial_cost, 1 / trainer.net.config.layers[-1]
        stuck = rec.train_accuracy == rec.train_accuracy and rec.train_accuracy < 2 * chance  # (NaN: not measured)
        blown = max(float(abs(v).max()) for p in trainer.net.params for v in p.values()) > 1e3
        if not state.get("warned") and ((stuck and blown) or (before is not None and rec.cost >= before)):
            # Not a NaN (a sigmoid's cost cannot overflow), but not learning either: typically
            # steps so long that every neuron saturates.
            state["warned"] = True
            click.echo(f"Warning: after epoch {rec.epoch} the network is not learning (cost {rec.cost:.4f}, training "
                       f"accuracy {pct(rec.train_accuracy)}). The learning rate {rec.eta:g} is probably too large; "
                       f"try a smaller --eta, e.g. {rec.eta / 10:g}.", err=True)

    try:
        result = run_training(net_cfg, train_cfg, out, data, resume=resume, on_start=on_start, on_epoch=on_epoch,
                              progress=progress, epoch_start=epoch_start, engine=engine)
    finally:
        if bar is not None:
            bar.close()
    h = result.history
    final = h.epochs[-1].test_accuracy if h.epochs else h.initial_test_accuracy
    if h.best_epoch is not None:
        final = h.epochs[h.best_epoch - 1].test_accuracy
    elapsed = time.perf_counter() - start
    if as_json:
        echo_json({
            "test_accuracy": final,
            "epochs": [{"epoch": e.epoch, "cost": e.cost, "test_accuracy": e.test_accuracy,
                        "train_accuracy": e.train_accuracy, "validation_accuracy": e.validation_accuracy,
                        "seconds": e.seconds, "eta": e.eta} for e in h.epochs],
            "model": str(result.model_path),
            "interrupted": result.interrupted,
            "best_epoch": h.best_epoch,
            "stopped_epoch": h.stopped_epoch,
            "network": result.net.config.to_dict(),
            "train": train_cfg.to_dict(),
            "seconds": elapsed,
            "engine": state["trainer"].step_engine if "trainer" in state else None,
        })
    else:
        if result.interrupted:
            click.echo(f"Interrupted: saved the model trained so far ({len(h.epochs)} full epochs) to {result.model_path}")
        else:
            click.echo(f"Saved the model to {result.model_path}")
        if h.stopped_epoch is not None:
            click.echo(f"Stopped early after epoch {h.stopped_epoch}: the validation accuracy had not improved for "
                       f"{train_cfg.patience} epochs.")
        click.echo(f"Test accuracy: {pct(final)} on the 10,000 test images ({elapsed:.1f} s in all)")
        click.echo(f"Evaluate it with: digitnet evaluate {result.model_path}")
    if result.interrupted:
        sys.exit(130)
