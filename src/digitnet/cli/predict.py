"""``digitnet predict``: read handwritten digits from image files."""

from __future__ import annotations

import click

from digitnet.cli import main
from digitnet.cli.common import echo_json


DATA_SUFFIXES = (".csv", ".npz", ".npy", ".tsv")  # tables of numbers, not pictures


def _not_images(model, saved, tables) -> str:
    """One line for a model of your own arrays, or a table given where images go: what to run instead."""
    python = f"m = digitnet.load_model({str(model)!r}); m.input.predict(m.net, X)"
    if saved.input is not None:
        data = tables[0] if tables else "FILE"
        return (f"{model} was trained on your own arrays ({saved.input.n_features} features), not on images: test "
                f"it with digitnet evaluate {model} --data {data}, or predict rows X in Python: {python}.")
    return (f"{tables[0]} is a table of numbers, not an image; digitnet predict reads pictures of digits. For a "
            f"model of your own data (digitnet train --data) use digitnet evaluate MODEL --data {tables[0]}, or "
            f"in Python: m = digitnet.load_model('MODEL'); m.input.predict(m.net, X).")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list with file, digit and the 10 outputs for each image "
                   "(or file and error for one that cannot be read).")
def predict(model, images, as_json):
    """Read handwritten digits from image files (PNG, JPEG, any size).

    Each image is turned into a 28x28 MNIST-like input the way MNIST was made: dark ink
    on light paper or light on dark, cropped to the ink, scaled into 20x20 and centred
    by its centre of mass. Prints the predicted digit and the 10 output activations.

    For a model of your own arrays (digitnet train --data), use digitnet evaluate MODEL
    --data FILE, or in Python m = digitnet.load_model(MODEL); m.input.predict(m.net, X).

    Every file is reported, in the order given: one that cannot be read gets a line
    FILE: error ... and the others are still read; the exit status is then 1.

    \b
    Examples:
      digitnet predict digitnet-model.safetensors my-seven.png
      digitnet predict digitnet-model.safetensors digits/*.png --json
    """
    from pathlib import Path

    from digitnet.data.images import prepare
    from digitnet.errors import ImageError
    from digitnet.io.model_io import load_model

    tables = [p for p in images if Path(p).suffix.lower() in DATA_SUFFIXES]
    saved = load_model(model)
    if saved.input is not None or tables:
        raise click.ClickException(_not_images(model, saved, tables))
    results = []
    for path in images:
        try:
            x = prepare(path, strict=True)  # a picture that is not one digit is reported, not guessed at
        except ImageError as e:
            message = str(e)  # names the file, e.g. "a.png does not look like one digit: ..."
            results.append({"file": path, "error": message if path in message else f"{path}: {message}"})
            continue
        a = saved.net.feedforward(x[None, :])[0]
        k = int(a.argmax())
        results.append({"file": path, "digit": int(k), "label": saved.classes[k], "outputs": [float(v) for v in a]})
    failed = [r for r in results if "error" in r]
    if as_json:
        echo_json(results)
    elif len(results) == 1 and failed:
        raise click.ClickException(failed[0]["error"])  # one file: just its error, one line
    else:
        for r in results:
            if "error" in r:
                what = r["error"].removeprefix(r["file"]).lstrip(": ")  # the file is named once, first
                click.echo(f"{r['file']}: error: {what}")
                continue
            outs = "  ".join(f"{c}:{v:.2f}" for c, v in zip(saved.classes, r["outputs"]))
            click.echo(f"{r['file']}: {r['label']}    outputs {outs}")
    if failed:
        if len(results) == 1:
            raise click.ClickException(failed[0]["error"])
        raise click.ClickException(f"{len(failed)} of {len(results)} images could not be read (see above); "
                                   "the others were read.")
