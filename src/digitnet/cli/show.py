"""``digitnet show ...``: pictures of what a trained network learned, and the numbers behind them.

Every subcommand takes a MODEL file, writes one PNG (``--out``, or ``NAME-COMMAND.png``
in the current directory, NAME being the model file's name without .safetensors) and
prints a one-line summary of its numbers, or all of them as one JSON object with ``--json``.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from digitnet.cli import main
from digitnet.cli.common import echo_json, pct, progress_bar
from digitnet.files import MODEL_SUFFIX, model_stem


# Said the same way in every --help and in the README.
DEFAULT_OUT = ("NAME-COMMAND.png in the current directory, NAME being the model file's name without .safetensors, "
               "e.g. digitnet-model-weights.png")


def _out_option(f):
    return click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
                        help=f"Where to write the PNG [default: {DEFAULT_OUT}].")(f)


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the numbers as one JSON object.")(f)


def _data_option(f):
    return click.option("--data-dir", type=click.Path(file_okay=False), envvar="DIGITNET_DATA",
                        help="Directory with the four MNIST IDX files (default: the copy shipped with digitnet).")(f)


def _model_argument(f):
    return click.argument("model", type=click.Path(dir_okay=False))(f)


def _default_out(model: str, command: str, out: str | None) -> str:
    if out is not None:
        return out
    name = Path(model).name
    stem = model_stem(name) if name.endswith(MODEL_SUFFIX) else Path(model).stem
    return f"{stem}-{command}.png"


def _load(model: str):
    from digitnet.io.model_io import load_model

    return load_model(model)


def _data(saved, data_dir):
    from digitnet.data.datasets import load_dataset

    if getattr(saved, "input", None) is not None:
        raise click.ClickException(
            f"This model was trained on your own arrays ({saved.dataset}, digitnet train --data); the show "
            "commands read an image data set (mnist, fashion-mnist). Look inside it from Python instead "
            "(digitnet.explain, digitnet.plots).")
    return load_dataset(saved.dataset, data_dir)


def _finish(fig, out: str, as_json: bool, numbers: dict, summary: str) -> None:
    """Save the figure, then print the numbers (JSON) or the summary and where the PNG went."""
    from digitnet.plots import save_figure

    path = save_figure(fig, out)
    if as_json:
        echo_json({"png": str(path), **numbers})
    else:
        click.echo(summary)
        click.echo(f"Wrote {path}")


@main.group()
def show() -> None:
    """Look inside a trained network: pictures and the numbers behind them.

    Each command writes a PNG (--out, or NAME-COMMAND.png in the current directory,
    NAME being the model file's name without .safetensors) and prints a summary, or its
    numbers as JSON with --json. Signed numbers are blue positive, red negative.

    \b
    Examples:
      digitnet show training digitnet-model.safetensors
      digitnet show weights digitnet-model.safetensors --out weights.png
      digitnet show gradient digitnet-model.safetensors --image 7 --json
    """


@show.command()
@_model_argument
@_out_option
@_json_option
def training(model, out, as_json):
    """The cost and the accuracies during training, from the model's saved history.

    Plots the average cost over all training images after every epoch, each mini-batch's
    cost smoothed by a moving average, and the training and test accuracy per epoch.

    \b
    Example:
      digitnet show training digitnet-model.safetensors
    """
    from digitnet.errors import ModelFileError
    from digitnet.plots import training_figure

    saved = _load(model)
    h = saved.history
    if h is None or not h.epochs:
        raise ModelFileError(f"{model} holds no training history (it was saved without one). Train a model with "
                             "`digitnet train` to get one.")
    fig = training_figure(h, title=f"Training {'-'.join(map(str, saved.net.sizes))}")
    first, last = h.epochs[0], h.epochs[-1]
    start_cost = h.initial_cost if h.initial_cost is not None else first.cost
    numbers = {
        "model": model, "initial_cost": h.initial_cost, "initial_test_accuracy": h.initial_test_accuracy,
        "best_epoch": h.best_epoch, "n_batch_costs": len(h.batch_costs),
        "epochs": [{"epoch": e.epoch, "cost": e.cost, "train_accuracy": e.train_accuracy,
                    "test_accuracy": e.test_accuracy, "validation_accuracy": e.validation_accuracy,
                    "seconds": e.seconds, "eta": e.eta} for e in h.epochs],
    }
    test = ""
    if last.test_accuracy is not None:
        test = f", test accuracy {pct(h.initial_test_accuracy)} -> {pct(last.test_accuracy)}"
    summary = (f"{len(h.epochs)} epochs: average cost {start_cost:.4f} -> {last.cost:.4f}, training accuracy "
               f"{pct(last.train_accuracy)}{test}.")
    _finish(fig, _default_out(model, "training", out), as_json, numbers, summary)


@show.command()
@_model_argument
@_out_option
@_json_option
def weights(model, out, as_json):
    """Every first-layer neuron's 784 weights as a 28x28 image, as in the video.

    Beside the learned weights: the initial ones (kept in the model file, or recreated from
    its seed) and how far each weight moved. Blue is positive, red negative, white 0 (as
    in every digitnet picture). For a convolutional network: its first layer's filters.

    \b
    Example:
      digitnet show weights digitnet-model.safetensors --out weights.png
    """
    from digitnet.explain import initial_network, weights_report
    from digitnet.plots import weights_figure

    saved = _load(model)
    initial, source = initial_network(saved)
    report = weights_report(saved.net, initial, source)
    conv = saved.net.kinds[0] == "conv"
    fig = weights_figure(report.learned, report.initial, initial_source=source, filters=conv,
                         title="First-layer filters" if conv else "First-layer weights")
    s = report.summary()
    side = f"{report.learned.shape[1]}x{report.learned.shape[2]}"
    what = f"{s['n_neurons']} convolution filters ({side})" if conv else f"{s['n_neurons']} first-layer neurons"
    line = f"{what}, mean |w| {s['learned_mean_abs']:.3g}"
    if report.initial is not None:
        line += (f" (initially {s['initial_mean_abs']:.3g}); the weights moved by {s['relative_move']:.3g} times "
                 f"their initial size; correlation of learned with initial weights {s['mean_correlation_with_initial']:.2f}.")
    else:
        line += f"; initial weights {source}."
    _finish(fig, _default_out(model, "weights", out), as_json, {"model": model, **s}, line)


@show.command()
@_model_argument
@click.option("--count", default=24, show_default=True, type=click.IntRange(0, 200),
              help="How many misclassified images to show.")
@_data_option
@_out_option
@_json_option
def errors(model, count, data_dir, out, as_json):
    """The confusion matrix and the most confident mistakes on the test set.

    The gallery shows misclassified test images with the true digit, the network's answer
    and the activation of that answer, most confident mistakes first.

    \b
    Example:
      digitnet show errors digitnet-model.safetensors --count 12
    """
    from digitnet.explain import misclassified
    from digitnet.plots import errors_figure
    from digitnet.tasks.evaluate import evaluate

    saved = _load(model)
    test = _data(saved, data_dir).test
    r = evaluate(saved.net, test, saved.classes)
    mistakes = misclassified(r.outputs, test.y)
    idx = mistakes.index[:count]
    fig = errors_figure(r.confusion, test.images[idx], mistakes.true[:count], mistakes.predicted[:count],
                        mistakes.confidence[:count], saved.classes, n_total=r.n)
    wrong = len(mistakes.index)
    numbers = {"model": model, "n": r.n, "wrong": wrong, "accuracy": r.accuracy, "classes": list(saved.classes),
               "confusion": r.confusion, "mistakes": mistakes.to_list(count)}
    line = f"{wrong} of {r.n} test images misread ({wrong / max(r.n, 1):.2%})."
    if wrong:
        i = 0
        line += (f" Most confident mistake: test image {int(mistakes.index[i])}, a {saved.classes[mistakes.true[i]]} "
                 f"read as {saved.classes[mistakes.predicted[i]]} (output {mistakes.confidence[i]:.3f}).")
    _finish(fig, _default_out(model, "errors", out), as_json, numbers, line)


@show.command()
@_model_argument
@click.option("--image", "image", default=0, show_default=True, type=click.IntRange(0),
              help="Which training image (0-based) to take the one-example gradient of.")
@click.option("--top", "top_k", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="How many of the largest components to list.")
@click.option("--examples", default=None, type=click.IntRange(1),
              help="Average over the first N training images [default: all of them].")
@_data_option
@_out_option
@_json_option
def gradient(model, image, top_k, examples, data_dir, out, as_json):
    """Which weights matter: the gradient of the cost, for one image and for the training set.

    For one training image (--image) and for the average cost over the training set, shows
    the first layer's |dC/dw| as a 28x28 image per neuron, every component's magnitude per
    layer, the top-k weights and biases and the share of the gradient's squared norm they
    carry, and each layer's share. Averaging over all 60,000 images takes a few seconds.

    \b
    Example:
      digitnet show gradient digitnet-model.safetensors --image 7 --top 20
    """
    from digitnet.errors import ConfigError
    from digitnet.explain import analyse_gradient, dataset_gradient, example_gradient
    from digitnet.plots import gradient_figure

    saved = _load(model)
    train = _data(saved, data_dir).train
    if image >= len(train):
        raise ConfigError(f"--image {image} is out of range: the training set has images 0 to {len(train) - 1}.")
    n = min(examples or len(train), len(train))
    net = saved.net
    part = train if max(n, image + 1) == len(train) else train.subset(max(n, image + 1))  # convert only what is used
    label = int(part.y[image])
    one = analyse_gradient(example_gradient(net, part.x[image], label), top_k,
                           f"Training image {image} (a {saved.classes[label]})", 1)
    avg = analyse_gradient(dataset_gradient(net, part.x[:n], part.y[:n]), top_k, f"Average over {n} training images", n)
    fig = gradient_figure([one, avg], filters=net.kinds[0] == "conv")
    numbers = {"model": model, "image": image, "example": one.to_dict(), "average": avg.to_dict()}
    shares = ", ".join(f"layer {s.layer + 1} {s.share:.1%}" for s in avg.layers)
    line = (f"One image: the top {top_k} of {one.n_components} components carry {one.top_share:.1%} of "
            f"||gradient||^2. Training set: the top {top_k} carry {avg.top_share:.1%}, "
            f"{avg.components_for(0.5)} carry half; per layer: {shares}.")
    _finish(fig, _default_out(model, "gradient", out), as_json, numbers, line)


@show.command()
@_model_argument
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@click.option("--test-index", type=click.IntRange(0), default=None,
              help="Use MNIST test image N instead of an image file.")
@_data_option
@_out_option
@_json_option
def activations(model, image, test_index, data_dir, out, as_json):
    """Every layer's activations for one image, as the video's columns of neurons.

    IMAGE is a PNG or JPEG of one digit (prepared like MNIST: cropped, scaled into 20x20,
    centred); or give --test-index N to use MNIST test image N.

    \b
    Examples:
      digitnet show activations digitnet-model.safetensors my-seven.png
      digitnet show activations digitnet-model.safetensors --test-index 0
    """
    from digitnet.errors import ConfigError
    from digitnet.explain import activations as run_activations
    from digitnet.plots import activations_figure

    if (image is None) == (test_index is None):
        raise ConfigError("Give either an IMAGE file or --test-index N (not both, not neither).")
    saved = _load(model)
    if image is not None:
        from digitnet.data.images import prepare

        x, what = prepare(image, strict=True), image  # as digitnet predict: not one digit is said
    else:
        test = _data(saved, data_dir).test
        if test_index >= len(test):
            raise ConfigError(f"--test-index {test_index} is out of range: the test set has images 0 to {len(test) - 1}.")
        x, what = test.x[test_index], f"test image {test_index} (a {saved.classes[int(test.y[test_index])]})"
    a = run_activations(saved.net, x)
    kinds = saved.net.kinds
    # A conv net's feature maps are not columns of neurons: draw its dense layers, fed by
    # the flattened features (all of them are in --json).
    dense = list(range(max((i for i, kind in enumerate(kinds) if kind != "dense"), default=-1) + 1, len(kinds)))
    features = None
    if dense[0] > 0:
        n_features = int(np.size(a.layers[dense[0] - 1]))
        features = f"{n_features} features from {', '.join(saved.net.config.features)}"
    weights_ = [saved.net.params[i]["w"] for i in dense]
    fig = activations_figure(a.x, [a.layers[i] for i in dense], weights_, saved.classes,
                             title=f"Activations for {what}", features=features)
    k = a.prediction
    numbers = {"model": model, "input": what, "label": saved.classes[k], **a.summary()}
    outs = "  ".join(f"{c}:{v:.2f}" for c, v in zip(saved.classes, a.output))
    line = f"{what}: read as {saved.classes[k]} (output {a.output[k]:.3f}). Outputs {outs}"
    _finish(fig, _default_out(model, "activations", out), as_json, numbers, line)


@show.command()
@_model_argument
@click.option("--count", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="How many random-noise images to feed the network.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed for the noise.")
@_data_option
@_out_option
@_json_option
def noise(model, count, seed, data_dir, out, as_json):
    """Feed random noise to the network: it names a digit anyway, often confidently.

    Compares the activation of the most active output ("confidence") on images whose
    pixels are uniform random in [0, 1] with that on the real test digits.

    \b
    Example:
      digitnet show noise digitnet-model.safetensors --count 5000
    """
    from digitnet.explain import noise_experiment
    from digitnet.plots import noise_figure

    saved = _load(model)
    test = _data(saved, data_dir).test
    r = noise_experiment(saved.net, test.x, test.y, count, seed)
    fig = noise_figure(r.noise, r.noise_outputs, r.real_outputs, saved.classes)
    s = r.summary()
    counts = s["noise_predicted_counts"]
    top = sorted(range(len(counts)), key=lambda i: -counts[i])[:3]
    called = ", ".join(f"{saved.classes[i]} {counts[i] / count:.0%}" for i in top if counts[i])
    line = (f"On {count} noise images the most active output averages {s['noise_mean_confidence']:.2f} (above 0.5 for "
            f"{s['noise_fraction_confident']:.0%}); on real test digits {s['real_mean_confidence']:.2f} "
            f"({s['real_fraction_confident']:.0%}). The noise is read as: {called}.")
    _finish(fig, _default_out(model, "noise", out), as_json, {"model": model, **s}, line)


@show.command()
@_model_argument
@click.option("--steps", default=200, show_default=True, type=click.IntRange(0, 100_000), help="Gradient-ascent steps.")
@click.option("--step-size", default=0.02, show_default=True, type=float,
              help="How far each step moves the pixels (root mean square, pixels are 0..1).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed for the starting image's faint noise.")
@_data_option
@_out_option
@_json_option
def dream(model, steps, step_size, seed, data_dir, out, as_json):
    """What the network thinks each digit looks like: gradient ascent on the input.

    For each digit, starting from a black image with faint noise, repeatedly nudges the
    pixels along the gradient of that digit's output (clipped to 0..1) so the output grows.
    The ten images are shown beside the average real image of each digit: they look like
    scattered specks, not like digits. Takes about a second.

    \b
    Example:
      digitnet show dream digitnet-model.safetensors --steps 500
    """
    from digitnet.explain import class_means, dream as run_dream
    from digitnet.plots import dream_figure

    saved = _load(model)
    means = class_means(_data(saved, data_dir).train, saved.net.sizes[-1])
    r = run_dream(saved.net, steps=steps, step_size=step_size, seed=seed, class_means=means)
    sim = r.similarity_to_digits()
    fig = dream_figure(r.images, r.digits, r.start_activation, r.final_activation, r.trace, r.class_means, sim,
                       saved.classes)
    s = r.summary()
    line = (f"Each digit's output rose from {s['mean_start_activation']:.2f} to {s['mean_final_activation']:.2f} on "
            f"average; the network reads {s['recognised']} of {len(r.digits)} dream images as their digit; their "
            f"correlation with the average real digit is {s['mean_correlation_with_average_digit']:.2f}.")
    _finish(fig, _default_out(model, "dream", out), as_json, {"model": model, **s}, line)


@show.command()
@_model_argument
@click.option("--train-size", default=2000, show_default=True, type=click.IntRange(1),
              help="How many training images (the first N) both runs train on.")
@click.option("--epochs", default=60, show_default=True, type=click.IntRange(1, 10_000), help="Epochs of each run.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0),
              help="Seed for the label shuffle, the initial weights and the batch order.")
@_data_option
@_out_option
@_json_option
def shuffled(model, train_size, epochs, seed, data_dir, out, as_json):
    """Train the model's network on shuffled labels: it memorises, test accuracy stays at chance.

    Trains a fresh network of the model's shape twice on the first --train-size training
    images, from the same initial weights, with the model's learning rate, batch size and
    optimiser: once with the true labels, once with the labels randomly permuted among
    the images. Training accuracy climbs in both runs; test accuracy (on the true test
    labels) climbs only with the true labels (Zhang et al. 2017). With the defaults
    (2,000 images, 60 epochs, the video's 784-16-16-10 network) this takes about 10 to
    20 seconds.

    \b
    Example:
      digitnet show shuffled digitnet-model.safetensors --train-size 1000 --epochs 30
    """
    from digitnet.config import TrainConfig
    from digitnet.explain import shuffled_labels_experiment
    from digitnet.plots import shuffled_figure

    saved = _load(model)
    data = _data(saved, data_dir)
    train_cfg = saved.train_config or TrainConfig()
    bar = None if as_json else progress_bar(2 * epochs, "Training", unit="epoch")  # plain lines in a log

    def on_epoch(run, rec):
        if bar is not None:
            bar.set_description(f"{run} labels")
            bar.update(1)

    try:
        r = shuffled_labels_experiment(saved.net.config, train_cfg, data.train, data.test, min(train_size, len(data.train)),
                                       epochs, seed, on_epoch)
    finally:
        if bar is not None:
            bar.close()
    fig = shuffled_figure(r.normal, r.shuffled, r.chance, n_train=r.n_train)
    s = r.summary()
    sh, no = s["shuffled"], s["normal"]
    line = (f"Shuffled labels: training accuracy {pct(sh['train_accuracy'][0])} -> {pct(sh['final_train_accuracy'])}, "
            f"test accuracy {pct(sh['final_test_accuracy'])} (chance {pct(r.chance)}). True labels: training "
            f"{pct(no['final_train_accuracy'])}, test {pct(no['final_test_accuracy'])}. "
            f"({r.n_train} images, {epochs} epochs, {r.seconds:.1f} s)")
    _finish(fig, _default_out(model, "shuffled", out), as_json, {"model": model, **s}, line)


# --- the cost landscape ---------------------------------------------------------------


def _images_option(f):
    return click.option("--images", "n_images", default=10_000, show_default=True, type=click.IntRange(1),
                        help="Average the cost over the first N training images.")(f)


def _training_images(saved, data_dir, n: int):
    """The first ``n`` training images (all of them if fewer): (x, y)."""
    train = _data(saved, data_dir).train
    part = train if n >= len(train) else train.subset(n)
    return part.x, part.y


def _check_grid(grid: int, extent: float | None) -> None:
    from digitnet.errors import ConfigError
    from digitnet.explain.landscape import MAX_COORD, MAX_GRID

    if not 3 <= grid <= MAX_GRID:
        raise ConfigError(f"--grid {grid} is out of range: use 3 to {MAX_GRID} points per axis "
                          "(each point is a pass over the images).")
    if extent is not None and not (0 < extent <= MAX_COORD):
        raise ConfigError(f"--range {extent:g} is out of range: give a positive number up to {MAX_COORD:g} "
                          "(e.g. 1 for random directions).")


def _trajectory(saved, model: str) -> list:
    """The model's weight snapshots, ending at its final weights (appended if the file's last
    snapshot is not them, as after --keep-best)."""
    from digitnet.errors import ConfigError

    snaps = list(saved.snapshots)
    if not snaps:
        raise ConfigError(f"{model} holds no snapshots of the training trajectory (models trained before they were "
                          "kept, or networks too large to keep them). Use --directions random, or retrain it with "
                          "`digitnet train`.")
    if any(not np.array_equal(v, saved.net.params[l][k]) for l, p in enumerate(snaps[-1]) for k, v in p.items()):
        snaps.append(saved.net.params)
    return snaps


@show.command()
@_model_argument
@click.option("--directions", type=click.Choice(["random", "trajectory"]), default="random", show_default=True,
              help="random: two filter-normalised random directions (Li et al. 2018); trajectory: the two principal "
                   "directions of the training path, with the path drawn on the slice.")
@click.option("--grid", default=41, show_default=True, type=int, help="Points per axis (3 to 201).")
@click.option("--range", "extent", default=None, type=float,
              help="Half-width of the slice in units of the directions [default: 1 for random directions; for "
                   "trajectory directions, enough to hold the path].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed for the random directions.")
@click.option("--surface", is_flag=True, help="Add a third panel with the cost as a 3-D surface.")
@_images_option
@click.option("--test-images", "n_test", default=2000, show_default=True, type=click.IntRange(0),
              help="The accuracy panel's test images (the first N); 0: show the accuracy on the training images.")
@_data_option
@_out_option
@_json_option
def landscape(model, directions, grid, extent, seed, surface, n_images, n_test, data_dir, out, as_json):
    """The cost on a 2-D slice of weight space, centred on the trained weights.

    The slice is the plane W + alpha D1 + beta D2 through the trained weights W: along two
    random directions scaled neuron by neuron to the weights' size (--directions random), or
    along the two principal directions of the training trajectory (--directions trajectory),
    with the path of gradient descent drawn on it: start, every epoch, end. Beside the cost:
    the test accuracy on the same grid. A 41x41 slice over 10,000 images takes a few seconds.
    Dense networks only.

    \b
    Examples:
      digitnet show landscape digitnet-model.safetensors
      digitnet show landscape digitnet-model.safetensors --directions trajectory --surface
    """
    from digitnet.explain.landscape import (filter_normalized_direction, landscape as run_landscape,
                                            require_dense, trajectory_directions)
    from digitnet.plots import landscape_figure

    _check_grid(grid, extent)
    saved = _load(model)
    net = saved.net
    require_dense(net, "Landscape slices")
    path = explained = None
    if directions == "trajectory":
        tr = trajectory_directions(_trajectory(saved, model))
        d1, d2, path, explained = tr.d1, tr.d2, tr.path, tr.explained
        if extent is None:
            reach = np.abs(path).max(axis=0)
            reach = np.where(reach > 0, reach, reach.max())
            ra, rb = 1.25 * reach
        else:
            ra = rb = extent
    else:
        rng = np.random.default_rng(seed)
        d1, d2 = filter_normalized_direction(net, rng), filter_normalized_direction(net, rng)
        ra = rb = 1.0 if extent is None else extent
    data = _data(saved, data_dir)
    train = data.train if n_images >= len(data.train) else data.train.subset(n_images)
    alphas, betas = np.linspace(-ra, ra, grid), np.linspace(-rb, rb, grid)
    r = run_landscape(net, train.x, train.y, d1, d2, alphas, betas)
    test = None
    if n_test and len(data.test):
        part = data.test if n_test >= len(data.test) else data.test.subset(n_test)
        test = run_landscape(net, part.x, part.y, d1, d2, alphas, betas)
    fig = landscape_figure(r, path, directions=directions, surface=surface, explained=explained, test=test,
                           title=f"The cost landscape of {'-'.join(map(str, net.sizes))} ({directions} directions)")
    la, lb, _ = r.lowest
    numbers = {"model": model, "directions": directions, **r.to_dict()}
    if test is not None:
        numbers.update(n_test=test.n, test_accuracy=test.accuracy.tolist(), center_test_accuracy=test.center_accuracy)
    if path is not None:
        numbers["path"] = path.tolist()
        numbers["explained"] = explained.tolist()
    line = (f"{grid}x{grid} slice over {r.n} training images ({directions} directions): cost at the trained weights "
            f"{r.center_cost:.4f}, from {float(r.cost.min()):.4f} to {float(r.cost.max()):.4f} on the slice; lowest "
            f"at alpha {la:.3g}, beta {lb:.3g}.")
    if explained is not None:
        line += f" The two directions explain {explained[0]:.0%} and {explained[1]:.0%} of the path's variance."
    _finish(fig, _default_out(model, "landscape", out), as_json, numbers, line)


@show.command()
@_model_argument
@click.argument("other", required=False, type=click.Path(dir_okay=False))
@click.option("--points", default=41, show_default=True, type=click.IntRange(2, 401),
              help="Points from alpha = 0 to alpha = 1.")
@click.option("--extend", default=0.25, show_default=True, type=click.FloatRange(0, 1),
              help="Also go this far beyond each end (in units of the whole line).")
@_images_option
@_data_option
@_out_option
@_json_option
def interpolate(model, other, points, extend, n_images, data_dir, out, as_json):
    """The cost along the straight line between two networks.

    Without OTHER: from the model's initial weights (alpha = 0) to its trained ones (alpha = 1):
    is the way down one smooth valley? With OTHER (a model of the same shape, e.g. trained
    with another --seed): from MODEL (alpha = 0) to OTHER (alpha = 1): are two minima of
    nearly equal quality separated by a barrier? Works for every network.

    \b
    Examples:
      digitnet show interpolate digitnet-model.safetensors
      digitnet show interpolate seed0.safetensors seed1.safetensors
    """
    from digitnet.errors import ConfigError
    from digitnet.explain import initial_network
    from digitnet.explain.landscape import interpolate as run_interpolate
    from digitnet.nn.network import Network
    from digitnet.plots import barrier_sentence, interpolation_figure

    saved = _load(model)
    if other is not None:
        start, end, labels = saved.net, _load(other).net, (Path(model).name, Path(other).name)
    else:
        if saved.snapshots:
            start, source = Network(saved.net.config, saved.snapshots[0], list(saved.net.kinds)), "stored in the model file"
        else:
            start, source = initial_network(saved)
        if start is None:
            raise ConfigError(f"{model} holds no initial weights ({source}). Give a second model to interpolate to: "
                              "digitnet show interpolate MODEL OTHER.")
        end, labels = saved.net, ("initial weights", "trained weights")
    m = round(extend * (points - 1))
    alphas = np.arange(-m, points + m) / (points - 1)  # exactly 0 and 1 among them
    x, y = _training_images(saved, data_dir, n_images)
    r = run_interpolate(start, end, x, y, alphas)
    fig = interpolation_figure(r.alphas, r.cost, r.accuracy, labels=labels,
                               title=f"The straight line from {labels[0]} to {labels[1]}")
    i0, i1 = m, m + points - 1
    numbers = {"model": model, "other": other, "n": len(y), **r.to_dict(), "start_cost": float(r.cost[i0]),
               "end_cost": float(r.cost[i1])}
    line = (f"From {labels[0]} (cost {r.cost[i0]:.4f}, accuracy {pct(r.accuracy[i0])}) to {labels[1]} (cost "
            f"{r.cost[i1]:.4f}, accuracy {pct(r.accuracy[i1])}) over {len(y)} training images: "
            f"{barrier_sentence(r.barrier, r.cost[i0], r.cost[i1])}")
    _finish(fig, _default_out(model, "interpolate", out), as_json, numbers, line)


@show.command()
@_model_argument
@click.option("--layer", default=0, show_default=True, type=click.IntRange(0),
              help="Which layer's weight to sweep (0: the first layer's weights).")
@click.option("--weight", "which", default=None, metavar="I,J",
              help="The weight from input J to neuron I [default: the one with the largest |dC/dw|].")
@click.option("--span", default=10.0, show_default=True, type=click.FloatRange(0, 1000, min_open=True),
              help="Sweep from the trained value minus SPAN to plus SPAN.")
@click.option("--points", default=201, show_default=True, type=click.IntRange(3, 1001), help="Values swept.")
@_images_option
@_data_option
@_out_option
@_json_option
def smoothness(model, layer, which, span, points, n_images, data_dir, out, as_json):
    """Why sigmoids and not on/off steps: the cost as one weight sweeps a range.

    Sweeps one weight for the trained network and for the same network with every sigmoid
    replaced by a step (1 if z >= 0 else 0). The sigmoid network's cost changes smoothly; the
    step network's is flat almost everywhere and jumps, so its gradient says nothing.
    Sigmoid dense networks only.

    \b
    Example:
      digitnet show smoothness digitnet-model.safetensors --layer 1 --span 20
    """
    from digitnet.errors import ConfigError
    from digitnet.explain.landscape import require_dense, smoothness as run_smoothness, steepest_weight
    from digitnet.plots import smoothness_figure

    saved = _load(model)
    net = saved.net
    require_dense(net, "Sigmoid-against-step sweeps")
    if layer >= len(net.params):
        raise ConfigError(f"--layer {layer} does not exist: the network has layers 0 to {len(net.params) - 1}.")
    x, y = _training_images(saved, data_dir, n_images)
    if which is None:
        i, j = steepest_weight(net, x, y, layer)
    else:
        try:
            i, j = (int(v) for v in which.split(","))
        except ValueError:
            raise ConfigError(f"--weight {which!r} is not two whole numbers I,J (e.g. --weight 3,400).") from None
    original = float(net.params[layer]["w"][i, j]) if 0 <= i < net.params[layer]["w"].shape[0] and \
        0 <= j < net.params[layer]["w"].shape[1] else 0.0
    r = run_smoothness(net, x, y, layer, i, j, original + np.linspace(-span, span, points))
    name = f"w[{layer}][{i}, {j}]"
    fig = smoothness_figure(r.weight, r.sigmoid_cost, r.step_cost, r.original, r.sigmoid_flat_fraction,
                            r.step_flat_fraction, name=name)
    numbers = {"model": model, "n": len(y), **r.to_dict()}
    line = (f"Sweeping {name} from {r.weight[0]:.3g} to {r.weight[-1]:.3g} over {len(y)} training images: the "
            f"sigmoid network's cost is flat on {r.sigmoid_flat_fraction:.0%} of the sweep, the step network's on "
            f"{r.step_flat_fraction:.0%}.")
    _finish(fig, _default_out(model, "smoothness", out), as_json, numbers, line)


@show.command()
@_model_argument
@click.option("--top", "k", default=5, show_default=True, type=click.IntRange(1, 50),
              help="How many of the largest eigenvalues to find.")
@click.option("--eta", default=None, type=click.FloatRange(0, min_open=True),
              help="The learning rate to set against 2 / lambda [default: the model's own].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed for the Lanczos start.")
@_images_option
@_data_option
@_out_option
@_json_option
def curvature(model, k, eta, seed, n_images, data_dir, out, as_json):
    """How curved the cost is: the Hessian's largest eigenvalues against 2 / eta.

    Gradient descent with step eta diverges along a direction whose curvature exceeds
    2 / eta. Finds the largest eigenvalues of the cost's Hessian (Lanczos on exact
    Hessian-vector products) and the curvature of random directions: how much more the
    most curved direction matters than a typical one. Dense networks only; computed in
    float64 (about 2 s for 10,000 images and the video's network).

    \b
    Example:
      digitnet show curvature digitnet-model.safetensors --top 10
    """
    from digitnet.explain.curvature import curvature as run_curvature
    from digitnet.explain.landscape import require_dense
    from digitnet.plots import curvature_figure

    saved = _load(model)
    require_dense(saved.net, "Hessian eigenvalues")
    if eta is None and saved.train_config is not None:
        eta = saved.train_config.eta
    x, y = _training_images(saved, data_dir, n_images)
    r = run_curvature(saved.net, x, y, k=k, eta=eta, rng=seed)
    fig = curvature_figure(r.eigenvalues, r.random_curvatures, eta)
    limit = r.eta_limit
    numbers = {"model": model, **r.to_dict()}
    line = (f"Largest Hessian eigenvalues over {r.n} training images: "
            f"{', '.join(f'{v:.4g}' for v in r.eigenvalues)}; gradient descent diverges for eta above {limit:.4g}")
    line += f" (the model's eta {eta:g}: {'below' if r.stable else 'above'})." if eta is not None else "."
    _finish(fig, _default_out(model, "curvature", out), as_json, numbers, line)
