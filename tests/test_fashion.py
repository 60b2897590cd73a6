"""The real Fashion-MNIST, from Debian's dataset-fashion-mnist package (CI installs it).

    sudo apt-get install -y dataset-fashion-mnist    # -> /usr/share/datasets/fashion-mnist/
"""

import gzip
import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from digitnet.data.datasets import FASHION_CLASSES, FASHION_MNIST_DIR, FASHION_MNIST_SHA256, FILES

pytestmark = pytest.mark.skipif(
    not all((FASHION_MNIST_DIR / f"{stem}.gz").is_file() for stem in FILES.values()),
    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}: "
           "run `sudo apt-get install -y dataset-fashion-mnist` to run these tests",
)


@pytest.fixture(scope="module")
def fashion():
    from digitnet.data.datasets import load_dataset

    return load_dataset("fashion-mnist")


def test_installed_files_match_the_stored_checksums():
    for stem in FILES.values():
        raw = gzip.decompress((FASHION_MNIST_DIR / f"{stem}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == FASHION_MNIST_SHA256[stem], stem


def test_shapes_and_classes(fashion):
    assert fashion.classes == FASHION_CLASSES
    assert fashion.train.images.shape == (60000, 28, 28) and fashion.test.images.shape == (10000, 28, 28)
    assert np.bincount(fashion.train.y).tolist() == [6000] * 10  # balanced: 6,000 of each class
    assert np.bincount(fashion.test.y).tolist() == [1000] * 10
    assert fashion.train.y[:5].tolist() == [9, 0, 0, 3, 0]  # ankle boot, T-shirts, a dress: Zalando's first five


def test_one_short_training_is_far_above_chance(fashion):
    from digitnet.config import TrainConfig
    from digitnet.nn.network import Network
    from digitnet.tasks.evaluate import evaluate
    from digitnet.training.train import train

    net = Network.create((784, 30, 10), seed=0)
    train(net, fashion.train.subset(20000), TrainConfig(epochs=1, record_batch_cost=False))
    r = evaluate(net, fashion.test, fashion.classes)
    # Chance is 10%; one pass over a third of the pictures already reaches about 78%.
    assert r.accuracy > 0.7
    assert r.per_class[FASHION_CLASSES.index("Trouser")] > 0.85  # the easiest class
    assert r.per_class.min() < r.per_class.max()  # shirts are harder than trousers


def test_cli_reports_class_names(tmp_path, monkeypatch):
    from digitnet.cli import main

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["train", "--dataset", "fashion-mnist", "--layers", "784,30,10", "--epochs", "1",
                                  "--train-size", "5000", "--out", "f.safetensors", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["test_accuracy"] > 0.5
    out = CliRunner().invoke(main, ["evaluate", "f.safetensors"]).output
    assert "Test accuracy on Fashion-MNIST" in out and "Sneaker" in out and "Ankle boot" in out
