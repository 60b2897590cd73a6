"""Tests for ``digitnet show ...`` through click's test runner, on a tiny trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.config import TrainConfig
from digitnet.data.datasets import load_mnist
from digitnet.io.model_io import save_model
from digitnet.nn.network import Network
from digitnet.training.train import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """A 784-16-10 network trained for a moment on 400 MNIST images, saved with its history."""
    mnist = load_mnist()
    net = Network.create((784, 16, 10), seed=0)
    initial = net.copy()
    cfg = TrainConfig(epochs=3, batch_size=10, eta=3.0, seed=0)
    history = train(net, mnist.train.subset(400), cfg, test=mnist.test.subset(500))
    path = tmp_path_factory.mktemp("show") / "tiny.safetensors"
    save_model(path, net, history, cfg, initial)
    return str(path)


def _run(args, cwd=None):
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(main, args, catch_exceptions=False)
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _png(path) -> None:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


def test_show_lists_every_subcommand():
    r = _run(["show", "--help"])
    assert r.exit_code == 0
    for name in ("training", "weights", "errors", "gradient", "activations", "noise", "dream", "shuffled"):
        assert name in r.output


def test_training_default_out_name(model, tmp_path):
    r = _run(["show", "training", model], cwd=tmp_path)
    assert r.exit_code == 0, r.output
    assert "3 epochs: average cost" in r.output
    assert "Wrote tiny-training.png" in r.output
    _png(tmp_path / "tiny-training.png")


def test_training_json(model, tmp_path):
    d = _json(_run(["show", "training", model, "--out", str(tmp_path / "t.png"), "--json"]))
    assert d["png"] == str(tmp_path / "t.png")
    assert [e["epoch"] for e in d["epochs"]] == [1, 2, 3]
    assert d["n_batch_costs"] == 120
    _png(tmp_path / "t.png")


def test_training_without_history_is_an_error(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_model(path, Network.create((784, 5, 10), seed=0))
    r = CliRunner().invoke(main, ["show", "training", str(path), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 1
    assert "Error:" in r.output and "no training history" in r.output
    assert not (tmp_path / "x.png").exists()


def test_weights(model, tmp_path):
    d = _json(_run(["show", "weights", model, "--out", str(tmp_path / "w.png"), "--json"]))
    assert d["n_neurons"] == 16 and d["initial_weights"] == "stored in the model file"
    assert d["relative_move"] > 0 and len(d["neurons"]) == 16
    _png(tmp_path / "w.png")
    r = _run(["show", "weights", model, "--out", str(tmp_path / "w2.png")])
    assert "16 first-layer neurons" in r.output and "moved by" in r.output


def test_errors(model, tmp_path):
    d = _json(_run(["show", "errors", model, "--count", "6", "--out", str(tmp_path / "e.png"), "--json"]))
    assert d["n"] == 10_000
    conf = np.array(d["confusion"])
    assert conf.sum() == 10_000 and d["wrong"] == 10_000 - np.trace(conf)
    assert len(d["mistakes"]) == 6
    confidences = [m["confidence"] for m in d["mistakes"]]
    assert confidences == sorted(confidences, reverse=True)
    assert all(m["true"] != m["predicted"] for m in d["mistakes"])
    _png(tmp_path / "e.png")


def test_gradient(model, tmp_path):
    d = _json(_run(["show", "gradient", model, "--image", "2", "--top", "4", "--examples", "300",
                    "--out", str(tmp_path / "g.png"), "--json"]))
    assert d["image"] == 2
    assert d["average"]["n_examples"] == 300 and d["example"]["n_examples"] == 1
    assert len(d["average"]["top"]) == 4 and d["average"]["n_components"] == 784 * 16 + 16 + 16 * 10 + 10
    assert sum(layer["share"] for layer in d["average"]["layers"]) == pytest.approx(1.0, abs=1e-6)
    _png(tmp_path / "g.png")
    r = CliRunner().invoke(main, ["show", "gradient", model, "--image", "60000"])
    assert r.exit_code == 1 and "--image 60000 is out of range" in r.output


def test_activations_from_test_index_and_from_a_file(model, tmp_path):
    from PIL import Image

    d = _json(_run(["show", "activations", model, "--test-index", "0", "--out", str(tmp_path / "a.png"), "--json"]))
    assert d["input"] == "test image 0 (a 7)"
    assert len(d["outputs"]) == 10 and [len(a) for a in d["layers"]] == [16, 10]
    assert d["prediction"] == int(np.argmax(d["outputs"]))
    _png(tmp_path / "a.png")

    img = load_mnist().test.images[0]
    Image.fromarray(255 - img).resize((112, 112)).save(tmp_path / "seven.png")  # dark ink on white paper
    r = _run(["show", "activations", model, str(tmp_path / "seven.png"), "--out", str(tmp_path / "b.png")])
    assert r.exit_code == 0 and "read as" in r.output
    _png(tmp_path / "b.png")


def test_activations_needs_exactly_one_input(model, tmp_path):
    r = CliRunner().invoke(main, ["show", "activations", model])
    assert r.exit_code == 1 and "Give either an IMAGE file or --test-index N" in r.output
    r = CliRunner().invoke(main, ["show", "activations", model, "x.png", "--test-index", "1"])
    assert r.exit_code == 1 and "not both" in r.output


def test_noise(model, tmp_path):
    args = ["show", "noise", model, "--count", "50", "--seed", "3", "--json"]
    d = _json(_run(args + ["--out", str(tmp_path / "n.png")]))
    assert d["n_noise"] == 50 and sum(d["noise_predicted_counts"]) == 50
    assert 0 <= d["noise_mean_confidence"] <= 1
    assert _json(_run(args + ["--out", str(tmp_path / "n2.png")]))["noise_mean_confidence"] == d["noise_mean_confidence"]
    _png(tmp_path / "n.png")


def test_dream(model, tmp_path):
    d = _json(_run(["show", "dream", model, "--steps", "40", "--out", str(tmp_path / "d.png"), "--json"]))
    assert len(d["digits"]) == 10
    assert all(x["final_activation"] > x["start_activation"] for x in d["digits"])
    _png(tmp_path / "d.png")


def test_shuffled(model, tmp_path):
    r = _run(["show", "shuffled", model, "--train-size", "200", "--epochs", "3", "--out", str(tmp_path / "s.png")])
    assert r.exit_code == 0, r.output
    assert "Shuffled labels: training accuracy" in r.output and "(200 images, 3 epochs" in r.output
    # stderr is not a terminal here: one plain progress line, not redrawn bars
    assert "\r" not in r.output and "labels: 6/6 epochs in" in r.output, r.output
    _png(tmp_path / "s.png")
    d = _json(_run(["show", "shuffled", model, "--train-size", "200", "--epochs", "3", "--json",
                    "--out", str(tmp_path / "s2.png")]))
    assert d["n_train"] == 200 and d["epochs"] == 3 and d["chance"] == 0.1
    assert len(d["shuffled"]["train_accuracy"]) == 3
    help_text = _run(["show", "shuffled", "--help"]).output
    assert "2,000 images" in help_text and "seconds" in help_text


# --- issue 16: every subcommand has an example, one colour convention, conv models --------

SUBCOMMANDS = ("training", "weights", "errors", "gradient", "activations", "noise", "dream", "shuffled")


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_help_has_an_example(name):
    out = _run(["show", name, "--help"]).output
    assert "Example" in out and f"digitnet show {name} digitnet-model.safetensors" in out


def test_help_texts_say_blue_is_positive():
    out = " ".join(_run(["show", "weights", "--help"]).output.split())
    assert "Blue is positive, red negative" in out and "Red is positive" not in out


@pytest.fixture(scope="session")
def conv_model(tmp_path_factory):
    """A tiny convolutional network (two 5x5 filters, 2x2 pooling, 12 hidden neurons),
    trained for one epoch on 300 MNIST images."""
    mnist = load_mnist()
    net = Network.create((784, 12, 10), seed=0, features=("conv:2:5", "pool:2"), activation="relu")
    initial = net.copy()
    cfg = TrainConfig(epochs=1, batch_size=10, eta=0.1, seed=0)
    history = train(net, mnist.train.subset(300), cfg, test=mnist.test.subset(200))
    path = tmp_path_factory.mktemp("conv") / "conv.safetensors"
    save_model(path, net, history, cfg, initial)
    return str(path)


@pytest.mark.parametrize("args", [
    ["training"], ["weights"], ["errors", "--count", "4"], ["gradient", "--examples", "50"],
    ["activations", "--test-index", "0"], ["noise", "--count", "20"], ["dream", "--steps", "3"],
    ["shuffled", "--train-size", "50", "--epochs", "1"],
])
def test_every_view_works_for_a_conv_model(conv_model, tmp_path, args):
    r = CliRunner().invoke(main, ["show", args[0], conv_model, *args[1:], "--out", str(tmp_path / "v.png")])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output and "Wrote" in r.output
    _png(tmp_path / "v.png")


def test_conv_activations_json_and_weights_summary(conv_model, tmp_path):
    d = _json(_run(["show", "activations", conv_model, "--test-index", "0", "--out", str(tmp_path / "a.png"), "--json"]))
    assert d["layer_kinds"] == ["conv", "pool", "flatten", "dense", "dense"]
    assert d["layer_shapes"][0] == [24, 24, 2] and len(d["layers"][0]) == 24 * 24 * 2
    assert len(d["outputs"]) == 10
    r = _run(["show", "weights", conv_model, "--out", str(tmp_path / "w.png")])
    assert "2 convolution filters (5x5)" in r.output
