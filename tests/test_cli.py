"""The CLI through click's test runner: train, evaluate, predict, and their errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from digitnet.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small model trained through the CLI (3,000 images, 3 epochs of the video's network)."""
    out = tmp_path_factory.mktemp("cli") / "m.safetensors"
    r = CliRunner().invoke(main, ["train", "--epochs", "3", "--train-size", "3000", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    return out, json.loads(r.output)


def test_help_lists_commands():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    for cmd in ("train", "evaluate", "predict"):
        assert cmd in r.output


@pytest.mark.parametrize("cmd", ["train", "evaluate", "predict"])
def test_each_command_has_help_with_example(cmd):
    r = CliRunner().invoke(main, [cmd, "--help"])
    assert r.exit_code == 0 and "Example" in r.output


def test_train_help_explains_every_default_flag():
    out = CliRunner().invoke(main, ["train", "--help"]).output
    for flag in ("--layers", "--activation", "--cost", "--eta", "--batch-size", "--epochs", "--seed", "--out", "--json"):
        assert flag in out


def test_train_json(model):
    path, obj = model
    assert path.exists()
    assert obj["model"] == str(path)
    assert 0.8 < obj["test_accuracy"] <= 1
    assert [e["epoch"] for e in obj["epochs"]] == [1, 2, 3]
    assert all({"cost", "test_accuracy", "seconds"} <= set(e) for e in obj["epochs"])
    assert obj["network"]["layers"] == [784, 16, 16, 10] and obj["train"]["eta"] == 3.0


def test_train_human_output(tmp_path):
    out = tmp_path / "h.safetensors"
    r = CliRunner().invoke(main, ["train", "--epochs", "1", "--train-size", "500", "--layers", "784,10", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "Epoch  1/1  cost" in r.output and "test accuracy" in r.output
    assert f"Saved the model to {out}" in r.output
    assert f"digitnet evaluate {out}" in r.output
    assert "Checkpoint after every epoch" in r.output


def test_evaluate(model):
    path, trained = model
    r = CliRunner().invoke(main, ["evaluate", str(path), "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
    assert obj["accuracy"] == pytest.approx(trained["test_accuracy"])
    assert set(obj["per_class"]) == {str(d) for d in range(10)}
    conf = np.array(obj["confusion"])
    assert conf.shape == (10, 10) and conf.sum() == 10000
    assert np.trace(conf) / 10000 == pytest.approx(obj["accuracy"])
    human = CliRunner().invoke(main, ["evaluate", str(path)]).output
    assert "Test accuracy" in human and "Confusion matrix" in human and "true\\pred" in human


def test_predict_on_mnist_images_written_as_png(model, mnist, tmp_path):
    path, _ = model
    files = []
    for i in range(20):
        f = tmp_path / f"d{i}.png"
        Image.fromarray(255 - mnist.test.images[i]).resize((112, 112)).save(f)  # dark on light, 4x larger
        files.append(str(f))
    r = CliRunner().invoke(main, ["predict", str(path), *files, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert [o["file"] for o in out] == files and all(len(o["outputs"]) == 10 for o in out)
    right = sum(o["digit"] == int(y) for o, y in zip(out, mnist.test.y[:20]))
    assert right >= 15
    human = CliRunner().invoke(main, ["predict", str(path), files[0]]).output
    assert human.startswith(f"{files[0]}: ") and "outputs 0:" in human


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--eta", "-1"], "Error: --eta must be > 0. Got -1.0 instead."),
        (["train", "--etta", "1"], "No such option '--etta'"),
        (["train", "--output-activation", "tanh", "--cost", "cross-entropy"],
         "set --output-activation to sigmoid or softmax (got 'tanh'), or --cost to quadratic"),
        (["train", "--layers", "784,abc,10"], "Layers must be comma-separated whole numbers"),
        (["train", "--layers", "100,10", "--epochs", "1"], "first layer has 100 inputs but the images have 784"),
        (["train", "--cost", "cross-entropy", "--output-activation", "tanh"], "cross-entropy cost needs outputs"),
        (["train", "--data-dir", "/nonexistent"], "does not exist"),
        (["train", "--out", "/nonexistent/dir/m.safetensors", "--epochs", "1", "--train-size", "100"], "does not exist"),
        (["evaluate", "missing.safetensors"], "No model file at missing.safetensors"),
        (["train", "--resume", "missing.ckpt.safetensors"], "No checkpoint at missing.ckpt.safetensors."),
    ],
)
def test_errors_are_one_clear_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
    assert r.output.strip().startswith("Error:") or "Usage:" in r.output
    assert "--out missing" not in r.output  # (a missing checkpoint once suggested `--out missing...`)


def test_predict_bad_image(model, tmp_path):
    path, _ = model
    f = tmp_path / "notes.txt"
    f.write_text("not an image")
    r = CliRunner().invoke(main, ["predict", str(path), str(f)])
    assert r.exit_code == 1 and "Error:" in r.output and "notes.txt is not an image digitnet can read (not a PNG or JPEG image)" in r.output
    assert "BufferedReader" not in r.output


def test_evaluate_rejects_model_trained_elsewhere(tmp_path):
    f = tmp_path / "m.safetensors"
    f.write_bytes(b"\x00" * 64)
    r = CliRunner().invoke(main, ["evaluate", str(f)])
    assert r.exit_code == 1 and "not a readable digitnet model file" in r.output


def test_train_warns_when_the_network_does_not_learn(tmp_path):
    out = tmp_path / "w.safetensors"
    r = CliRunner().invoke(main, ["train", "--eta", "1e9", "--epochs", "1", "--train-size", "1000", "--out", str(out)])
    assert r.exit_code == 0
    assert "Warning: after epoch 1 the network is not learning" in r.output and "try a smaller --eta" in r.output
    ok = CliRunner().invoke(main, ["train", "--epochs", "1", "--train-size", "1000", "--out", str(out), "--force"])
    assert ok.exit_code == 0 and "Warning" not in ok.output


def test_train_engine_choice(tmp_path, monkeypatch):
    """--engine (or $DIGITNET_ENGINE) picks what runs the steps; the JSON, the model file and
    the header say which ran; a named engine that cannot run the settings is an error."""
    import importlib.util

    from digitnet.io.model_io import load_model

    monkeypatch.delenv("DIGITNET_ENGINE", raising=False)
    out = tmp_path / "m.safetensors"
    args = ["train", "--epochs", "1", "--train-size", "300", "--layers", "784,10", "--out", str(out), "--force"]
    r = CliRunner().invoke(main, args + ["--engine", "numpy", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["engine"] == "numpy" and json.loads(r.output)["train"]["engine"] == "numpy"
    assert load_model(out).train_config.engine == "numpy"  # stored in the model file
    r = CliRunner().invoke(main, args + ["--optimizer", "adam", "--eta", "0.01", "--json"])
    assert json.loads(r.output)["engine"] == "reference"  # auto: Adam runs on the reference engine
    r = CliRunner().invoke(main, args + ["--optimizer", "adam", "--engine", "numpy"])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert ("Error: The numpy engine cannot train this: the numpy engine runs plain SGD on dense layers; these "
            "settings use the adam optimizer. Set --engine to auto or reference.") in r.output
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and ("numba engine" in r.output or "numpy engine" in r.output)  # the header says
    if importlib.util.find_spec("numba"):
        r = CliRunner().invoke(main, args + ["--json"], env={"DIGITNET_ENGINE": "numba"})
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["engine"] == "numba"
    r = CliRunner().invoke(main, args, env={"DIGITNET_ENGINE": "cuda"})
    assert r.exit_code == 1
    assert "Error: $DIGITNET_ENGINE is 'cuda'; choose one of auto, numba, numpy, reference." in r.output
