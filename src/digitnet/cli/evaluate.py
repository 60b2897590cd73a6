"""``digitnet evaluate``: test accuracy, accuracy per class and the confusion matrix of a saved model."""

from __future__ import annotations

import click

from digitnet.cli import main
from digitnet.cli.common import echo_json, pct, table
from digitnet.cli.train import _dataset_names, _load_data
from digitnet.files import model_stem


_NAMES = {"digitnet": "digitnet", "python": "Python", "numpy": "NumPy", "numba": "Numba"}


def made_with(saved) -> str:
    """One line on what made the model: the versions recorded in the file and the engine that trained."""
    engine = f"; trained by the {saved.engine} engine" if saved.engine else ""
    if saved.provenance is None:
        return f"Made with: versions not recorded (a file from an older digitnet){engine}."
    parts = [f"{_NAMES.get(k, k)} {v if v is not None else 'not installed'}" for k, v in saved.provenance.items()]
    return f"Made with {', '.join(parts)}{engine}."


WIDTH = 100  # the widest confusion matrix printed with whole class names as column headings


def confusion_table(classes, confusion) -> str:
    """The confusion matrix as a text table, both axes labelled with the class names.

    Digits are their own names. Longer names are cut to the width that fits WIDTH characters
    (still telling the classes apart); where none does, the columns are numbered and each row
    gives its number and its name."""
    names = [str(c) for c in classes]
    cells = [[str(int(v)) for v in row] for row in confusion]

    def render(cols: list[str], rows: list[str]) -> str:
        return table([[r] + row for r, row in zip(rows, cells)], ["true\\pred"] + cols)

    longest = max(map(len, names))
    for w in (longest, *range(longest - 1, 2, -1)):  # whole names first, then ever shorter
        cols = [n if len(n) <= w else n[:w - 1] + "." for n in names]
        text = render(cols, names)
        if len(set(cols)) == len(cols) and max(map(len, text.splitlines())) <= WIDTH:
            return text
    return render([str(i) for i in range(len(names))], [f"{i} {n}" for i, n in enumerate(names)])


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DIGITNET_DATA", help="Directory with the data set's four IDX files.")
@click.option("--dataset", type=click.Choice(_dataset_names()), default=None,
              help="The data set whose test images to use [default: the one the model was trained on].")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Test on your own labelled images instead: a folder DIR/0/*.png ... DIR/9/*.png.")
@click.option("--data", "data_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Test a model of your own data (digitnet train --data) on FILE.npz (its X_test, y_test if "
                   "present, else X, y) or FILE.csv (label in the last column).")
@click.option("--robustness", "robust", is_flag=True,
              help="Also measure how accuracy falls when the images are shifted, rotated, thickened or noised.")
@click.option("--robustness-png", type=click.Path(dir_okay=False), default=None,
              help="Where to draw the robustness curves [default: MODEL-robustness.png in this directory].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the robustness test's random shifts, turns and noise.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def evaluate(model, data_dir, dataset, images, data_file, robust, robustness_png, seed, as_json):
    """Test a saved model on a data set's 10,000 test images, your own images, or your own arrays.

    Prints what made the model (the versions of digitnet, Python, NumPy and Numba, and
    the training engine), the accuracy, the accuracy per class and the confusion matrix
    (rows: true class, columns: predicted class). With --images, also the worst mistakes: the
    pictures the network got wrong while most sure of itself.

    \b
    Examples:
      digitnet evaluate digitnet-model.safetensors
      digitnet evaluate fashion.safetensors --dataset fashion-mnist
      digitnet evaluate digitnet-model.safetensors --images my-digits
      digitnet evaluate digitnet-model.safetensors --robustness
      digitnet evaluate moons.safetensors --data moons-test.csv
    """
    from pathlib import Path

    from digitnet.data.datasets import DATASETS, DIGITS, TITLES
    from digitnet.io.model_io import load_model
    from digitnet.tasks.evaluate import evaluate as run_eval

    saved = load_model(model)
    name = dataset or (saved.dataset if saved.dataset in DATASETS else "mnist")
    folder = None
    if data_file is not None or saved.input is not None:
        from digitnet.cli.train import own_test_split
        from digitnet.errors import DigitnetError

        try:
            split = own_test_split(saved, data_file, model, images=images, dataset=dataset, robustness=robust)
        except DigitnetError as e:
            raise click.ClickException(str(e)) from None
        classes, name = tuple(saved.input.labels), None  # your labels, as their own type (7 stays 7)
    elif images is not None:
        from digitnet.data.folder import read_image_folder

        classes = tuple(saved.classes)
        folder = read_image_folder(images, len(classes))
        split = folder.split
    else:
        data = _load_data(data_dir, name)
        classes, split = data.classes, data.test
    n_out = saved.net.config.layers[-1]
    if n_out != len(classes):
        raise click.ClickException(f"The model has {n_out} outputs but {TITLES.get(name, name) or data_file} has "
                                   f"{len(classes)} classes; evaluate it on the data set it was trained for.")
    r = run_eval(saved.net, split, classes)
    mistakes = []
    if folder is not None:
        from digitnet.data.folder import worst_mistakes

        for i in worst_mistakes(r.outputs, split.y):
            t, p = int(split.y[i]), int(r.predictions[i])
            mistakes.append({"file": str(folder.paths[i]), "true": classes[t], "predicted": classes[p],
                             "output_predicted": float(r.outputs[i, p]), "output_true": float(r.outputs[i, t])})
    rb = png = None
    if robust:
        from digitnet.tasks.robustness import robustness, save_robustness_png

        rb = robustness(saved.net, split, seed=seed, classes=classes)
        stem = model_stem(Path(model).name)
        what = "your images" if folder is not None else f"{TITLES.get(name, name)} test images"
        png = save_robustness_png(rb, robustness_png or f"{stem}-robustness.png",
                                  title=f"{Path(model).name}: accuracy as the {what} change")
    if as_json:
        # What it was tested on: exactly one of dataset (a named data set's test images), images
        # (a folder of your images) and data (a file of your arrays) is set, the others null.
        echo_json({"model": model, "dataset": name if folder is None and data_file is None else None,
                   "images": images, "data": data_file,
                   "accuracy": r.accuracy, "n": r.n, "provenance": saved.provenance, "engine": saved.engine,
                   "per_class": {str(c): a for c, a in zip(classes, r.per_class)},
                   "confusion": r.confusion, "classes": list(classes),
                   **({"worst_mistakes": mistakes} if folder is not None else {}),
                   **({"robustness": {c.transform: {"unit": c.unit, "levels": c.levels, "accuracy": c.accuracy}
                                      for c in rb.curves}, "robustness_png": str(png)} if rb is not None else {})})
        return
    if name != saved.dataset and folder is None and data_file is None:
        click.echo(f"Note: this model was trained on {TITLES.get(saved.dataset, saved.dataset)}; "
                   f"testing it on {TITLES.get(name, name)}.\n")
    click.echo(made_with(saved) + "\n")
    right = int(r.confusion.trace())
    if data_file is not None:
        click.echo(f"Accuracy on {data_file}: {pct(r.accuracy)} ({right} of {r.n} examples right)\n")
    elif folder is not None:
        click.echo(f"Accuracy on your images in {images}: {pct(r.accuracy)} ({right} of {r.n} images right)\n")
    else:
        click.echo(f"Test accuracy on {TITLES.get(name, name)}: {pct(r.accuracy)} ({right} of {r.n} test images right)\n")
    kind = "digit" if tuple(classes) == DIGITS else "class"
    unit = "examples" if data_file is not None else "images"  # rows of your table, or pictures
    click.echo(f"Accuracy per {kind}:")
    click.echo(table([[str(c), pct(a), str(int(r.confusion[i].sum()))]
                      for i, (c, a) in enumerate(zip(classes, r.per_class))], [kind, "accuracy", unit]))
    click.echo(f"\nConfusion matrix (rows: true {kind}, columns: predicted {kind}):")
    click.echo(confusion_table(classes, r.confusion))
    if folder is not None:
        if mistakes:
            click.echo("\nWorst mistakes (the wrong answers the network was surest of):")
            click.echo(table([[m["file"], m["true"], m["predicted"], f"{m['output_predicted']:.2f}",
                               f"{m['output_true']:.2f}"] for m in mistakes],
                             ["file", "true", "predicted", "its output", "true class's output"]))
        else:
            click.echo("\nNo mistakes.")
    if rb is not None:
        click.echo(f"\nRobustness on {rb.n} images (seed {rb.seed}): accuracy at each level of each change")
        for c in rb.curves:
            cells = " ".join(f"{lv:>5g}: {pct(a):>7}" for lv, a in zip(c.levels, c.accuracy))
            click.echo(f"{c.transform:<8}{cells}   ({c.unit})")
        click.echo(f"Saved the curves to {png}")
