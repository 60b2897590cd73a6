"""``digitnet config``: a saved model's settings, written back as a config file."""

from __future__ import annotations

from pathlib import Path

import click

from digitnet.cli import main
from digitnet.cli.common import cli_message
from digitnet.errors import DigitnetError


@main.command("config")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None, metavar="FILE.toml",
              help="Write the config file here instead of printing it. An existing file is not replaced without --force.")
@click.option("--force", is_flag=True, help="Replace an existing file at --out.")
def config_command(model, out, force):
    """Print the settings a model (or checkpoint) was trained with, as a config file.

    Every setting is written, each with its help as a comment, including the engine that
    trained it, so `digitnet train --config FILE.toml` trains the same network again, bit
    for bit (change `engine` to auto where that engine is not installed).

    \b
    Examples:
      digitnet config digitnet-model.safetensors
      digitnet config digitnet-model.safetensors --out course.toml
      digitnet train --config course.toml --epochs 5 --out mine.safetensors
    """
    from digitnet.io.model_io import atomic_write_bytes, load_model
    from digitnet.training.settings import settings_to_toml

    try:
        saved = load_model(model)
        if saved.train_config is None:
            raise click.ClickException(f"{model} does not record how it was trained, so it has no settings to write.")
        h = saved.history
        acc = h.epochs[-1].test_accuracy if h is not None and h.epochs else None
        header = (f"Settings of {Path(model).name}"
                  + (f" ({len(h.epochs)} epochs, test accuracy {100 * acc:.2f}%)" if acc is not None else "")
                  + f".\nTrain it again with: digitnet train --config {Path(out).name if out else 'FILE.toml'}")
        text = settings_to_toml(saved.net.config, saved.train_config, header=header)
        if out is None:
            click.echo(text, nl=False)
            return
        if Path(out).exists() and not force:
            raise click.ClickException(f"{out} already exists. Choose another --out, or replace it with --force.")
        atomic_write_bytes(out, text.encode())
        click.echo(f"Wrote the settings of {model} to {out}")
    except DigitnetError as e:
        raise click.ClickException(cli_message(e)) from None
