"""``digitnet train``, ``digitnet evaluate`` and ``digitnet predict``."""

from __future__ import annotations

import sys
import time

import click

from digitnet.cli import main
from digitnet.cli.common import echo_json, pct, table
from digitnet.config import (
    ACTIVATION_NAMES,
    COST_NAMES,
    INIT_NAMES,
    OPTIMIZER_NAMES,
    SCHEDULE_NAMES,
    NetworkConfig,
    TrainConfig,
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
@click.option("--optimizer", type=click.Choice(list(OPTIMIZER_NAMES)), help="Update rule: plain SGD, momentum, Nesterov or Adam.")
@click.option("--momentum", type=float, help="Momentum coefficient (and Adam's beta1).")
@click.option("--lmbda", type=float, help="L2 regularisation strength (weight decay).")
@click.option("--validation/--no-validation", default=None, help="Hold out the last 10,000 training images to validate on.")
@click.option("--train-size", type=int, help="Train on only the first N training images (for quick experiments).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), help="Floating-point precision of the math.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help=f"Where to save the model [default: {DEFAULT_OUT}].")
@click.option("--resume", type=click.Path(dir_okay=False), default=None, help="Continue from a checkpoint (MODEL.ckpt.safetensors) written by an earlier run.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DIGITNET_DATA", help="Directory with the four MNIST IDX files (default: the copy shipped with digitnet).")
@click.option("--dataset", default="mnist", show_default=True, type=click.Choice(_dataset_names()),
              help="The data set to learn: handwritten digits, or Zalando's pictures of clothes (fashion-mnist: "
                   "`apt-get install dataset-fashion-mnist`, or its four files in --data-dir).")
@click.option("--extra-images", "extra_images", multiple=True, type=click.Path(file_okay=False),
              help="Also train on your own labelled images: a folder DIR/0/*.png ... DIR/9/*.png (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end instead of the human output.")
def train(preset, layers, activation, output_activation, cost, init, eta, batch_size, epochs, seed, schedule,
          optimizer, momentum, lmbda, validation, train_size, dtype, out, resume, data_dir, as_json,
          dataset="mnist", extra_images=()):
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
                                         init=init, dtype=dtype).items() if v is not None}
    if layers is not None:
        net_changes["layers"] = parse_layers(layers)
    train_changes = {k: v for k, v in dict(eta=eta, batch_size=batch_size, epochs=epochs, seed=seed, schedule=schedule,
                                           optimizer=optimizer, momentum=momentum, lmbda=lmbda,
                                           validation=validation, train_size=train_size).items() if v is not None}
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
                f"{what} {'-'.join(map(str, cfg.layers))} ({cfg.activation}/{cfg.output_activation}, {cfg.cost} cost, "
                f"{cfg.init} init) with {tc.optimizer}, batch {tc.batch_size}, eta {tc.eta:g}, {tc.epochs} epochs, seed {tc.seed}"
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

    try:
        result = run_training(net_cfg, train_cfg, out, data, resume=resume, on_start=on_start, on_epoch=on_epoch,
                              progress=progress, epoch_start=epoch_start)
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
            "network": result.net.config.to_dict(),
            "train": train_cfg.to_dict(),
            "seconds": elapsed,
        })
    else:
        if result.interrupted:
            click.echo(f"Interrupted: saved the model trained so far ({len(h.epochs)} full epochs) to {result.model_path}")
        else:
            click.echo(f"Saved the model to {result.model_path}")
        click.echo(f"Test accuracy: {pct(final)} on the 10,000 test images ({elapsed:.1f} s in all)")
        click.echo(f"Evaluate it with: digitnet evaluate {result.model_path}")
    if result.interrupted:
        sys.exit(130)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DIGITNET_DATA", help="Directory with the four MNIST IDX files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def evaluate(model, data_dir, as_json):
    """Test a saved model on the 10,000 MNIST test images.

    Prints the accuracy, the accuracy per digit and the confusion matrix (rows: true
    digit, columns: predicted digit).

    \b
    Example:
      digitnet evaluate digitnet-model.safetensors
    """
    from digitnet.evaluate import evaluate as run_eval
    from digitnet.model_io import load_model

    saved = load_model(model)
    data = _load_data(data_dir)
    r = run_eval(saved.net, data.test, saved.classes)
    if as_json:
        echo_json({"model": model, "accuracy": r.accuracy, "n": r.n,
                   "per_class": {c: a for c, a in zip(saved.classes, r.per_class)},
                   "confusion": r.confusion, "classes": list(saved.classes)})
        return
    click.echo(f"Test accuracy: {pct(r.accuracy)} ({int(r.confusion.trace())} of {r.n} test images right)\n")
    click.echo("Accuracy per digit:")
    click.echo(table([[c, pct(a), str(int(r.confusion[i].sum()))] for i, (c, a) in enumerate(zip(saved.classes, r.per_class))],
                     ["digit", "accuracy", "images"]))
    click.echo("\nConfusion matrix (rows: true digit, columns: predicted):")
    click.echo(table([[c] + [str(v) for v in row] for c, row in zip(saved.classes, r.confusion)],
                     ["true\\pred"] + list(saved.classes)))


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list with file, digit and the 10 outputs for each image.")
def predict(model, images, as_json):
    """Read handwritten digits from image files (PNG, JPEG, any size).

    Each image is turned into a 28x28 MNIST-like input the way MNIST was made: dark ink
    on light paper or light on dark, cropped to the ink, scaled into 20x20 and centred
    by its centre of mass. Prints the predicted digit and the 10 output activations.

    \b
    Example:
      digitnet predict digitnet-model.safetensors my-seven.png
    """
    from digitnet.images import prepare
    from digitnet.model_io import load_model

    saved = load_model(model)
    results = []
    for path in images:
        x = prepare(path)
        a = saved.net.feedforward(x[None, :])[0]
        k = int(a.argmax())
        results.append({"file": path, "digit": int(k), "label": saved.classes[k], "outputs": [float(v) for v in a]})
    if as_json:
        echo_json(results)
        return
    for r in results:
        outs = "  ".join(f"{c}:{v:.2f}" for c, v in zip(saved.classes, r["outputs"]))
        click.echo(f"{r['file']}: {r['label']}    outputs {outs}")
