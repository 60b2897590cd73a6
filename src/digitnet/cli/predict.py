"""``digitnet predict``: read handwritten digits from image files."""

from __future__ import annotations

import click

from digitnet.cli import main
from digitnet.cli.common import echo_json


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
