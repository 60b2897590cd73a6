"""``digitnet export``: a saved model as an ONNX file or a PyTorch module."""

from __future__ import annotations

import click

from digitnet.cli import main

SUFFIXES = {"onnx": ".onnx", "torch": ".pt"}


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["onnx", "torch"]), required=True,
              help="onnx: an ONNX graph (needs the onnx extra: pip install 'digitnet[onnx]', or '.[onnx]' in a clone); torch: a torch.nn.Sequential saved with torch.save (needs PyTorch).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the export [default: MODEL with the suffix .onnx or .pt].")
@click.option("--force", is_flag=True, help="Replace the --out file if it exists.")
@click.option("--network-only", is_flag=True,
              help="For a model that deskews its inputs: export the network alone; deskew each input yourself with digitnet.data.images.deskew_inputs first.")
def export(model, fmt, out, force, network_only):
    """Export a saved model to run outside digitnet: ONNX or PyTorch.

    The exported network takes what digitnet's first layer takes, an (n, 784) float32
    array of pixel / 255 of 28x28 images, row by row, white ink on black, and returns
    the (n, 10) output activations; the largest is the digit. It computes the same
    numbers as digitnet (checked on all 10,000 MNIST test images in the tests).

    \b
    Examples:
      digitnet export plain.safetensors --format onnx   # trained with --preprocess none
      digitnet export digitnet-model.safetensors --format onnx --network-only --out digitnet.onnx
      digitnet export digitnet-model.safetensors --format torch --network-only --out digitnet.pt
    \b
    The default model (digitnet train) deskews its inputs, which the export does not
    carry: add --network-only and deskew each input with digitnet.data.images.deskew_inputs.
    \b
    Load a PyTorch export with torch.load("digitnet.pt", weights_only=False).
    """
    from pathlib import Path

    from digitnet.export import export as export_net
    from digitnet.export import input_description
    from digitnet.io.model_io import load_model

    saved = load_model(model)
    out = Path(out) if out else Path(model).with_suffix(SUFFIXES[fmt])
    path = export_net(saved.net, out, fmt, network_only=network_only, overwrite=force)
    what = "an ONNX graph (input 'input', output 'output')" if fmt == "onnx" else "a torch.nn.Sequential"
    click.echo(f"Exported {model} ({saved.net.config.describe()}) to {path} as {what}.")
    click.echo(f"Input: {input_description(saved.net)}.")
    click.echo(f"Output: (n, {saved.net.config.layers[-1]}) activations, one per class ({', '.join(saved.classes)}).")
    if network_only and saved.net.config.preprocess == "none":
        click.echo("(--network-only changed nothing: this model does not deskew its inputs, so the network is the whole model.)")
