"""``digitnet train``: train a network and save it.

Every setting of :class:`~digitnet.config.NetworkConfig` and
:class:`~digitnet.config.TrainConfig` is a flag, made here from the config's fields (name,
type, choices and help), so a field added there is a flag here without another line. The
flags, a ``--config`` file and ``--preset`` all meet in :func:`digitnet.training.settings.settings_from_dict`.
"""

from __future__ import annotations

import sys
import time

import click

from digitnet.cli import main
from digitnet.cli.common import cli_message, echo_json, flag, pct, progress_bar, waiting
from digitnet.errors import DigitnetError
from digitnet.files import uninterrupted
from digitnet.training.presets import DEFAULT_PRESET, PRESETS
from digitnet.training.settings import SETTINGS, setting_fields

DEFAULT_OUT = "digitnet-model.safetensors"
# What an epoch does after its last step (with --train-metrics batches its cost is the batches')
MEASURING = {"full": "measuring cost and accuracy", "batches": "measuring accuracy"}


def _load_data(data_dir, dataset="mnist"):
    """The data set for `evaluate` and friends (``digitnet train`` loads it in run_training)."""
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


def _preset_defaults() -> dict:
    from digitnet.training.settings import settings_to_dict

    return settings_to_dict(*PRESETS[DEFAULT_PRESET][1:])


_DEFAULTS = _preset_defaults()  # what each setting is when no flag, file or preset changes it


def setting_option(f) -> click.Option:
    """The flag of one config field: ``batch_size: int`` -> ``--batch-size INTEGER``, a
    ``bool`` -> ``--validation/--no-validation``, names -> a choice; its help is the field's.
    Every flag defaults to None: "not given", so the preset's (or config file's) value stays."""
    meta, kind = f.metadata, str(f.type).replace(" ", "")
    default = _DEFAULTS.get(f.name)
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    help_text = f"{meta.get('help', '')} [default: {'none' if shown in (None, '') else shown}]"
    if kind == "bool":
        return click.Option([f"{flag(f.name)}/--no-{f.name.replace('_', '-')}", f.name], default=None,
                            help=help_text)
    if "choices" in meta:
        typ = click.Choice(list(meta["choices"]))
    elif kind in ("int", "int|None"):
        typ = click.INT
    elif kind == "float":
        typ = click.FLOAT
    else:  # text: a name, or a list written with commas (layers, features, augment)
        typ = click.STRING
    return click.Option([flag(f.name), f.name], type=typ, default=None, metavar=meta.get("metavar"),
                        help=help_text)


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


@main.command()
@click.option("--preset", default=None, type=click.Choice(list(PRESETS)),
              help=f"Starting settings, changed by a --config file and the flags below [default: {DEFAULT_PRESET}]. "
                   f"{_preset_help()}.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, metavar="FILE.toml",
              help="Read settings from a TOML file (one setting a line, named as the flags without --: eta = 0.5, "
                   "layers = [784, 30, 10], optional preset = \"video\"); flags given here override it. "
                   "`digitnet config MODEL` writes a model's settings as such a file.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help=f"Where to save the model [default: {DEFAULT_OUT}; with --resume, the checkpoint's model]. An "
                   "existing file is not replaced without --force.")
@click.option("--force", is_flag=True, help="Replace an existing model at --out (and a checkpoint of an unfinished run).")
@click.option("--resume", type=click.Path(dir_okay=False), default=None,
              help="Continue the unfinished run whose checkpoint (MODEL.ckpt.safetensors) this is, with its own "
                   "settings, data and engine; --epochs may extend it, any other setting that differs is refused.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DIGITNET_DATA",
              help="Directory with the four MNIST IDX files (default: the copy shipped with digitnet).")
@click.option("--dataset", default=None, type=click.Choice(_dataset_names()),
              help="The data set to learn [default: mnist]: handwritten digits, or Zalando's pictures of clothes "
                   "(fashion-mnist: `apt-get install dataset-fashion-mnist`, or its four files in --data-dir).")
@click.option("--data", "data_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Train on your own data instead: FILE.npz with arrays X (n, d) and y (n,) (and optionally X_test, "
                   "y_test), or FILE.csv with the label in the last column (a header line is optional). The features "
                   "are standardised; --layers gives the hidden layers only [default: 16,16]; without a test set "
                   "20% of the examples are held out to test on.")
@click.option("--extra-images", "extra_images", multiple=True, type=click.Path(file_okay=False),
              help="Also train on your own labelled images: a folder DIR/0/*.png ... DIR/9/*.png (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end instead of the human output.")
@click.pass_context
def train(ctx, preset, config_file, out, force, resume, data_dir, dataset, data_file, extra_images, as_json,
          **settings):
    """Train a network on MNIST and save it.

    With no options this trains the `video` preset: the video's network (784-16-16-10
    sigmoid neurons, quadratic cost, mini-batch SGD, batch size 10, learning rate 3.0,
    30 epochs) with the learning rate falling linearly to 0 and each digit deskewed. It
    prints the average training cost and test accuracy after every epoch, with the
    time of the epoch's steps; on stderr, a progress bar (in a log, one line per epoch
    with the time of the steps and of measuring the cost and accuracy). Ctrl-C saves the
    last full epoch's model and prints the command that continues the run.

    \b
    Examples:
      digitnet train
      digitnet train --layers 784,30,10 --epochs 10 --out small.safetensors
      digitnet train --config course.toml --eta 0.5
      digitnet train --resume digitnet-model.ckpt.safetensors
      digitnet train --dataset fashion-mnist --epochs 5 --out fashion.safetensors
      digitnet train --extra-images my-digits
      digitnet train --data moons.csv --layers 8 --epochs 50 --out moons.safetensors
    """
    try:
        _train(ctx, preset, config_file, out, force, resume, data_dir, dataset, extra_images, as_json, settings,
               data_file)
    except DigitnetError as e:
        raise click.ClickException(cli_message(e)) from None


# One flag per setting, in the configs' order, before the run's own options.
train.params[2:2] = [setting_option(f) for _, f in setting_fields()]


def _own_data(ctx, data_file, dataset, extra_images, flags, from_file):
    """``--data FILE``: the Dataset, and the hidden layers (``--layers`` gives only those)."""
    from digitnet.data.arrays import from_arrays, hidden_layers, read_data_file
    from digitnet.errors import ConfigError

    if dataset is not None or extra_images or _given(ctx, "data_dir") and \
            ctx.get_parameter_source("data_dir") != click.core.ParameterSource.ENVIRONMENT:
        raise ConfigError("--data trains on your own file; leave out --dataset, --data-dir and --extra-images.")
    for name, flag_name in (("preprocess", "--preprocess"), ("augment", "--augment")):
        value = flags.get(name, from_file.get(name))
        if value not in (None, "none", (), [], ""):
            raise ConfigError(f"{flag_name} works on 28x28 images, not on the columns of {data_file}; leave it out.")
    hidden = flags.pop("layers", None) or from_file.pop("layers", None) or (16, 16)
    X, y, test = read_data_file(data_file)
    data = from_arrays(X, y, test=test, name=str(data_file))
    return data, hidden_layers(hidden, data.input.n_features, len(data.classes))


def own_test_split(saved, data_file, model, **others):
    """``digitnet evaluate MODEL --data FILE``: the file's test arrays (X_test, y_test if it has
    them, else X, y) as a Split for a model of your own data; errors name the mismatch."""
    from digitnet.data.arrays import read_data_file
    from digitnet.errors import ConfigError

    if saved.input is None:
        raise ConfigError(f"{model} was trained on images, not on your own arrays: leave out --data (--data tests "
                          "a model trained with digitnet train --data).")
    if data_file is None:
        raise ConfigError(f"{model} was trained on your own data ({saved.input.n_features} features): give the "
                          "file to test it on with --data FILE (.npz or .csv).")
    given = [f"--{k.replace('_', '-')}" for k, v in others.items() if v]
    if given:
        raise ConfigError(f"--data tests on your own arrays; leave out {', '.join(given)}.")
    X, y, test = read_data_file(data_file)
    if test is not None:
        X, y = test
    return saved.input.split(X, y)


def _check_resumed_preset(resume, name: str, source: str, preset_settings: dict) -> None:
    """A resumed run keeps its network and settings: a preset that asks for others is refused,
    saying where it came from (the flags and the file's own settings are checked as they are)."""
    from pathlib import Path

    from digitnet.errors import ConfigError
    from digitnet.io.model_io import load_model
    from digitnet.tasks.run import resume_config

    if not Path(resume).is_file():
        return  # run_training says there is no checkpoint
    try:
        resume_config(load_model(resume, checkpoint=True), preset_settings)
    except ConfigError as e:
        differ = ", ".join(e.settings) or "its settings"
        raise ConfigError(
            f"The checkpoint {resume} continues its own network and settings, but the preset {name} ({source}) "
            f"differs from them in {differ}. Leave the preset out when resuming, or start a new run without "
            "--resume.") from None


def _train(ctx, preset, config_file, out, force, resume, data_dir, dataset, extra_images, as_json, settings,
           data_file=None):
    from digitnet.errors import ConfigError
    from digitnet.tasks.run import model_path_for, run_training
    from digitnet.training.presets import get_preset
    from digitnet.training.settings import read_settings_file, settings_from_dict, settings_to_dict
    from digitnet.training.train import not_learning

    start = time.perf_counter()
    flags = {k: v for k, v in settings.items() if v is not None}
    from_file: dict = {}
    if config_file is not None:
        from_file = read_settings_file(config_file)
        try:  # the file on its own first, so that its mistakes are reported as the file's
            settings_from_dict(from_file, preset=preset)
        except ConfigError as e:
            raise ConfigError(f"{config_file}: {e}") from None
    preset_name = preset or from_file.get("preset") or DEFAULT_PRESET
    own = None
    if data_file is not None:
        own, hidden = _own_data(ctx, data_file, dataset, extra_images, flags, from_file)
        flags["preprocess"] = "none"
    net_cfg, train_cfg = settings_from_dict({**from_file, **flags, "preset": preset_name})
    if own is not None:
        import dataclasses

        net_cfg = dataclasses.replace(net_cfg, layers=(own.input.n_features, *hidden, len(own.classes)))
        dataset = own
    requested = {}
    if resume:
        chosen = preset or from_file.get("preset")
        if chosen is not None:  # a preset (--preset, or in the file) is checked as its settings are
            _check_resumed_preset(resume, chosen, "--preset" if preset else f"preset in {config_file}",
                                  {k: v for k, v in settings_to_dict(*get_preset(chosen)).items()
                                   if k not in from_file and k not in flags})
            requested.update(settings_to_dict(*get_preset(chosen)))
        requested.update({k: v for k, v in from_file.items() if k in SETTINGS})
        requested.update(flags)
    if out is None:
        out = DEFAULT_OUT
        if resume:
            out = str(model_path_for(resume) or DEFAULT_OUT)
    if dataset is None and not resume:
        dataset = "mnist"
    if own is None and dataset not in (None, "mnist") and _given(ctx, "data_dir") and \
            ctx.get_parameter_source("data_dir") == click.core.ParameterSource.ENVIRONMENT:
        data_dir = None  # DIGITNET_DATA names MNIST's directory, not this data set's
    quiet = as_json
    bar = None
    state = {}

    def on_start(s):
        trainer = state["trainer"] = s.trainer
        if quiet:
            return
        for e in s.extra_images:
            click.echo(f"Added {e.count} of your images from {e.folder} to the {e.added_to:,} training images.")
        cfg, tc = trainer.net.config, trainer.config
        what = "Resuming" if resume else "Training"
        extend = ""
        if s.planned_epochs is not None and s.planned_epochs != tc.epochs:
            extend = f", the run changed from {s.planned_epochs} to {tc.epochs} epochs"
            if tc.schedule in ("linear", "cosine"):
                extend += f" (the {tc.schedule} schedule now spans {tc.epochs} epochs)"
        click.echo(
            f"{what} {cfg.describe()} ({cfg.activation}/{cfg.output_activation}, {cfg.cost} cost, "
            f"{cfg.init} init{', deskewed input' if cfg.preprocess == 'deskew' else ''}) with {tc.optimizer}, batch "
            f"{tc.batch_size}, eta {tc.eta:g}{'' if tc.schedule == 'constant' else ' (' + tc.schedule + ' schedule)'}, "
            f"{tc.epochs} epoch{'' if tc.epochs == 1 else 's'}, seed {tc.seed}, {trainer.engine} engine"
            + (f", from epoch {trainer.epoch}" if resume else "") + extend
        )
        if trainer.engine_note:
            click.echo(trainer.engine_note)
        if resume and trainer.history.epochs:
            last = trainer.history.epochs[-1]
            click.echo(f"After epoch {last.epoch}: cost {last.cost:.4f}, test accuracy {pct(last.test_accuracy)}")
        elif trainer.history.initial_cost is not None:
            click.echo(f"Before training: cost {trainer.history.initial_cost:.4f}, test accuracy "
                       f"{pct(trainer.history.initial_test_accuracy)}")
        click.echo(f"Checkpoint after every epoch: {s.checkpoint}")
        began = time.perf_counter()
        with waiting(f"Starting the {trainer.engine} engine…") as line, \
                uninterrupted(on_hold=lambda: line.add(" stopping once it is ready")):  # not inside a compiler
            compiled = trainer.start_engine()
        if compiled:  # a wait of seconds to a minute before the first batch: say what it was
            click.echo(f"Compiled the {trainer.engine} engine for this network in {time.perf_counter() - began:.1f} s; "
                       "later runs load it from the cache.")

    def epoch_start(epoch):
        nonlocal bar
        if not quiet:
            trainer = state["trainer"]
            bar = progress_bar(trainer.batches_per_epoch, f"Epoch {epoch + 1}/{trainer.config.epochs}", "batch")

    def progress(k):
        if bar is not None:
            bar.update(k)
            if bar.n >= bar.total:  # the steps are done; the epoch's cost and accuracy follow
                bar.then(MEASURING[state["trainer"].config.train_metrics])  # (a bar stopped at 0/6000 looks stuck)

    def on_epoch(rec):
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        trainer = state["trainer"]
        if not quiet:
            extra = f"  validation {pct(rec.validation_accuracy)}" if rec.validation_accuracy is not None else ""
            click.echo(f"Epoch {rec.epoch:>2}/{trainer.config.epochs}  cost {rec.cost:.4f}  test accuracy "
                       f"{pct(rec.test_accuracy)}{extra}  ({rec.seconds:.2f} s)")
        warning = not_learning(trainer.history, trainer.net)
        if warning is not None and "warning" not in state:
            state["warning"] = cli_message(warning)
            click.echo(f"Warning: {state['warning']}", err=True)

    try:
        result = run_training(net_cfg, train_cfg, out, dataset, resume=resume, requested=requested,
                              extra_images=extra_images, data_dir=data_dir, replace=force, on_start=on_start,
                              on_epoch=on_epoch, progress=progress, epoch_start=epoch_start)
    finally:
        if bar is not None:  # an epoch left unfinished: Ctrl-C, or an error
            bar.stopped = True  # (a log's line says so)
            bar.close()
    h = result.history
    trainer = state["trainer"]
    final = h.epochs[-1].test_accuracy if h.epochs else h.initial_test_accuracy
    if h.best_epoch is not None:
        final = h.epochs[h.best_epoch - 1].test_accuracy
    elapsed = time.perf_counter() - start
    again = None
    if result.interrupted and result.resume_from is not None:
        again = f"digitnet train --resume {result.resume_from}"
        if str(model_path_for(result.resume_from)) != str(result.model_path):
            again += f" --out {result.model_path}"
    if as_json:
        echo_json({
            "test_accuracy": final,
            "epochs": [{"epoch": e.epoch, "cost": e.cost, "test_accuracy": e.test_accuracy,
                        "train_accuracy": e.train_accuracy, "validation_accuracy": e.validation_accuracy,
                        "seconds": e.seconds, "eta": e.eta} for e in h.epochs],
            "model": str(result.model_path) if result.saved else None,
            "interrupted": result.interrupted,
            "resume": again,
            "best_epoch": h.best_epoch,
            "stopped_epoch": h.stopped_epoch,
            "network": result.net.config.to_dict(),
            "train": trainer.config.to_dict(),
            "seconds": elapsed,
            "engine": trainer.engine,
            "warning": state.get("warning"),
        })
    else:
        if result.interrupted and not result.saved:
            click.echo("Interrupted before the first epoch finished: nothing was saved. To start again, run the "
                       "same command.")
            sys.exit(130)
        if result.interrupted:
            click.echo(f"Interrupted: saved the model trained so far ({len(h.epochs)} full epoch{'' if len(h.epochs) == 1 else 's'}) to {result.model_path}")
            if again is not None:
                click.echo(f"To continue where it stopped: {again}")
        else:
            click.echo(f"Saved the model to {result.model_path}")
        if h.stopped_epoch is not None:
            click.echo(f"Stopped early after epoch {h.stopped_epoch}: the validation accuracy had not improved for "
                       f"{trainer.config.patience} epochs.")
        n_test = len(trainer.test.y) if trainer.test is not None else 0
        shown = "10,000 test images" if own is None else f"{n_test:,} test examples"
        click.echo(f"Test accuracy: {pct(final)} on the {shown} ({elapsed:.1f} s in all)")
        if own is None:
            click.echo(f"Evaluate it with: digitnet evaluate {result.model_path}")
        else:
            click.echo(f"Predict with it in Python: m = digitnet.load_model({str(result.model_path)!r}); "
                       "m.input.predict(m.net, X)")
    if result.interrupted:
        sys.exit(130)
