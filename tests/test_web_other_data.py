"""The MNIST page and models of other data (issue 15): a Fashion-MNIST model or a model of your
own arrays is refused with one line saying what to do, when loaded and when the server starts,
rather than shown with the digits' names and tested on the digits."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from digitnet.data.arrays import ArrayInput  # noqa: E402
from digitnet.data.datasets import DIGITS, FASHION_CLASSES, Dataset, Split  # noqa: E402
from digitnet.io.model_io import save_model  # noqa: E402
from digitnet.nn.network import Network  # noqa: E402
from digitnet.web import create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def data() -> Dataset:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, 60)
    img = rng.integers(0, 255, size=(60, 28, 28)).astype(np.uint8)
    return Dataset("mnist", DIGITS, Split(img, y), Split(img[:20], y[:20]))


def _models(folder):
    folder.mkdir()
    save_model(folder / "digits.safetensors", Network.create((784, 4, 10), seed=0))
    save_model(folder / "fashion.safetensors", Network.create((784, 4, 10), seed=1), dataset="fashion-mnist",
               classes=FASHION_CLASSES)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 784)), rng.integers(0, 10, 40)  # 784 columns, ten labels: looks like MNIST
    save_model(folder / "mine.safetensors", Network.create((784, 4, 10), seed=2), dataset="mine.npz",
               classes=tuple(map(str, range(10))), input=ArrayInput.fit(X, y))
    return folder


def test_a_model_of_other_data_is_refused_by_the_page_with_what_to_do(tmp_path, data):
    app = create_app(_models(tmp_path / "models"), dataset=data)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/api/models/load", json={"name": "fashion"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
        error = r.json()["error"]
        assert "Fashion-MNIST" in error and "T-shirt/top" in error and "this page shows MNIST" in error
        assert "digitnet evaluate fashion.safetensors" in error and str(tmp_path) not in error
        r = c.post("/api/models/load", json={"name": "mine"})
        assert r.status_code == 400 and "your own data (784 features" in r.json()["error"]
        assert "--data FILE" in r.json()["error"]
        assert c.post("/api/models/load", json={"name": "digits"}).status_code == 200
        assert c.get("/api/info").json()["state"]["model"] == "digits"


def test_the_server_does_not_start_with_a_newest_model_of_other_data(tmp_path, data):
    models = _models(tmp_path / "models")
    for i, name in enumerate(["digits", "mine", "fashion"]):  # fashion is the newest
        os.utime(models / f"{name}.safetensors", (1000 + i, 1000 + i))
    lab = create_app(models, dataset=data).state.lab
    assert lab.job.name == "digits"
    assert len(lab.skipped) == 2 and "Fashion-MNIST" in lab.skipped[0] and "your own data" in lab.skipped[1]
