"""Data sets by name: Fashion-MNIST's loader, checks and CLI options, on small generated IDX files."""

import gzip
import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.data import datasets
from digitnet.data.datasets import (
    DATASETS,
    FASHION_CLASSES,
    FASHION_MNIST_SHA256,
    FILES,
    load_dataset,
    load_fashion_mnist,
)
from digitnet.data.idx import encode_idx
from digitnet.errors import DataError


def _fake_idx_dir(path, n_train=300, n_test=100, seed=0):
    """Four gzipped IDX files of learnable 'clothes': class k is a bright bar at row 2k + 4.

    Returns the SHA-256 of each decompressed file, as the loader's checksum table wants.
    """
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    sums = {}
    for part, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k + 4, 4:24] = 255
        for kind, a in (("images", images), ("labels", labels)):
            raw = encode_idx(a)
            stem = FILES[f"{part}_{kind}"]
            (path / f"{stem}.gz").write_bytes(gzip.compress(raw, mtime=0))
            sums[stem] = hashlib.sha256(raw).hexdigest()
    return sums


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    d = tmp_path / "fashion"
    sums = _fake_idx_dir(d)
    monkeypatch.setattr(datasets, "FASHION_MNIST_SHA256", sums)
    return d


def test_fashion_is_a_named_dataset():
    assert list(DATASETS) == ["mnist", "fashion-mnist"]
    assert FASHION_CLASSES[0] == "T-shirt/top" and FASHION_CLASSES[9] == "Ankle boot" and len(FASHION_CLASSES) == 10
    assert set(FASHION_MNIST_SHA256) == set(FILES.values())
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in FASHION_MNIST_SHA256.values())
    with pytest.raises(DataError, match="Unknown data set 'cifar'; choose one of: mnist, fashion-mnist"):
        load_dataset("cifar")


def test_load_from_a_given_directory(fake_fashion):
    d = load_dataset("fashion-mnist", fake_fashion)
    assert d.name == "fashion-mnist" and d.classes == FASHION_CLASSES
    assert d.train.images.shape == (300, 28, 28) and len(d.test) == 100
    assert d.train.x.dtype == np.float32 and d.train.y.dtype == np.int64
    # Each picture's label is where its bar is (the generator's rule), so the labels came through right.
    assert (d.test.images[np.arange(100), 2 * d.test.y + 4, 10] == 255).all()


def test_environment_variable(fake_fashion, monkeypatch):
    monkeypatch.setenv("DIGITNET_FASHION_MNIST", str(fake_fashion))
    assert len(load_fashion_mnist().train) == 300


def test_checksums_are_verified(tmp_path):
    d = tmp_path / "wrong"
    _fake_idx_dir(d)  # the real checksums stay in force: these files are not Zalando's
    with pytest.raises(DataError, match=r"checksum mismatch .* not the Fashion-MNIST one"):
        load_fashion_mnist(d)


def test_missing_package_or_file_says_how_to_get_it(tmp_path, fake_fashion):
    with pytest.raises(DataError, match=r"Fashion-MNIST not found: .*nope does not exist.*apt-get install "
                                        r"dataset-fashion-mnist.*--data-dir"):
        load_fashion_mnist(tmp_path / "nope")
    (fake_fashion / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"file t10k-labels-idx1-ubyte\(.gz\) is missing from .*apt-get install"):
        load_fashion_mnist(fake_fashion)


def test_debian_location_is_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("DIGITNET_FASHION_MNIST", raising=False)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path / "usr-share-datasets-fashion-mnist")
    with pytest.raises(DataError, match="usr-share-datasets-fashion-mnist does not exist"):
        load_fashion_mnist()


def test_cli_train_and_evaluate_report_class_names(fake_fashion, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGITNET_FASHION_MNIST", str(fake_fashion))
    # DIGITNET_DATA names MNIST's directory; it must not be read as Fashion-MNIST's.
    monkeypatch.setenv("DIGITNET_DATA", str(tmp_path / "mnist-elsewhere"))
    r = CliRunner().invoke(main, ["train", "--dataset", "fashion-mnist", "--layers", "784,30,10", "--epochs", "3",
                                  "--out", "f.safetensors", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["test_accuracy"] > 0.5  # the bars are easy; chance is 0.1
    from digitnet.io.model_io import load_model

    saved = load_model(tmp_path / "f.safetensors")
    assert saved.dataset == "fashion-mnist" and saved.classes == FASHION_CLASSES

    r = CliRunner().invoke(main, ["evaluate", "f.safetensors", "--json"])  # the model's own data set by default
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
    assert obj["dataset"] == "fashion-mnist" and obj["n"] == 100
    assert obj["classes"] == list(FASHION_CLASSES) and set(obj["per_class"]) == set(FASHION_CLASSES)

    human = CliRunner().invoke(main, ["evaluate", "f.safetensors"]).output
    assert "Test accuracy on Fashion-MNIST:" in human and "Accuracy per class:" in human
    assert "Ankle boot" in human and "T-shirt/top" in human
    matrix = human[human.index("Confusion matrix"):].splitlines()
    assert "T-shirt/top Trouser Pullover" in matrix[1] and matrix[-1].split()[:2] == ["Ankle", "boot"]  # both axes
    assert "Accuracy per digit" not in human


def test_cli_evaluate_on_another_dataset_says_so(fake_fashion, tmp_path):
    from digitnet.io.model_io import save_model
    from digitnet.nn.network import Network

    model = save_model(tmp_path / "digits.safetensors", Network.create((784, 10), seed=0))
    r = CliRunner().invoke(main, ["evaluate", str(model), "--dataset", "fashion-mnist", "--data-dir", str(fake_fashion)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Note: this model was trained on MNIST; testing it on Fashion-MNIST.")
    bad = CliRunner().invoke(main, ["evaluate", str(model), "--dataset", "fashion-mnist",
                                    "--data-dir", str(tmp_path / "none")])
    assert bad.exit_code == 1 and bad.output.startswith("Error: Fashion-MNIST not found")


def test_cli_help_lists_the_new_options():
    train_help = CliRunner().invoke(main, ["train", "--help"]).output
    assert "--dataset" in train_help and "fashion-mnist" in train_help and "--extra-images" in train_help
    eval_help = CliRunner().invoke(main, ["evaluate", "--help"]).output
    for flag in ("--dataset", "--images", "--robustness", "--robustness-png"):
        assert flag in eval_help
