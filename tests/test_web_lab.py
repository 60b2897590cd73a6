"""The web page's engine (:mod:`digitnet.web.lab`): training-job control under concurrent
requests, and the library functions it must use rather than re-implement.

Small synthetic data (digit k is a bright bar at row 4 + 2k), so every test is fast.
"""

from __future__ import annotations

import random
import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from digitnet.web import create_app  # noqa: E402
from digitnet.web.lab import Lab  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def data(bar_digits):
    return bar_digits  # tests/conftest.py


def test_start_pause_and_reset_racing_never_fail(tmp_path, data, monkeypatch):
    """Issue 15, item 5: start racing pause or reset gave 500s (Thread.join before the thread
    had started). Every answer must be a 200 or a JSON 409, and training must end up stopped.

    Threads here start 2 ms late, as on a loaded server, which widens the window the race needs."""
    real_start = threading.Thread.start

    def late_start(self):
        time.sleep(0.002)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", late_start)
    app = create_app(tmp_path, dataset=data)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        r = client.post("/api/train/config", json={"hidden": [8], "epochs": 200, "train_size": 300, "batch_size": 1})
        assert r.status_code == 200, r.text
        answers: list[tuple[str, int, str]] = []

        def hammer(seed: int) -> None:
            rnd = random.Random(seed)
            for _ in range(40):
                path = rnd.choice(["/api/train/start", "/api/train/start", "/api/train/pause", "/api/train/reset"])
                resp = client.post(path, json={})
                answers.append((path, resp.status_code, resp.text[:200]))

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        bad = [a for a in answers if a[1] not in (200, 409)]
        assert len(answers) == 160 and bad == [], f"{len(bad)} of {len(answers)} failed, e.g. {bad[:3]}"
        for _, status, text in answers:
            if status == 409:
                assert "running" in text
        final = client.post("/api/train/pause", json={})
        assert final.status_code == 200 and final.json()["status"] != "running"
        assert not app.state.lab.running


def test_the_gallery_ranks_mistakes_as_the_library_does(tmp_path, data):
    """The misclassified gallery is the library's worst_mistakes ranking (as `digitnet evaluate`)."""
    from digitnet.data.folder import worst_mistakes
    from digitnet.tasks.evaluate import evaluate

    lab = Lab(tmp_path, dataset=data)
    lab.step()
    result = lab.evaluation()
    r = evaluate(lab.snapshot, data.test, data.classes)
    expected = worst_mistakes(r.outputs, data.test.y, k=len(data.test))
    assert [m["index"] for m in result["misclassified"]] == expected[: len(result["misclassified"])].tolist()
    assert result["wrong"] == len(expected)


def test_the_lab_trains_with_the_engine_setting(tmp_path, data, monkeypatch):
    """The page trains with the engine setting ("auto" unless told otherwise), not a fixed "numpy"."""
    import digitnet.web.lab as lab_module

    seen = []
    real = lab_module.Trainer

    def spy(*args, **kw):
        seen.append(kw.get("engine"))
        return real(*args, **kw)

    monkeypatch.setattr(lab_module, "Trainer", spy)
    Lab(tmp_path, dataset=data).step()
    Lab(tmp_path, dataset=data, engine="numpy").step()
    assert seen == ["auto", "numpy"]


def test_the_epoch_and_position_come_from_the_trainer(tmp_path, data):
    """Steps and epochs as the Trainer counts them: 300 images in batches of 100 = 3 per epoch."""
    from digitnet.config import NetworkConfig, TrainConfig

    lab = Lab(tmp_path, dataset=data)
    lab.configure(NetworkConfig(layers=(784, 8, 10)), TrainConfig(epochs=2, batch_size=100), 300)
    for k in range(1, 7):
        s = lab.step()
        trainer = lab.job.trainer
        assert s["batch"] == k and s["epoch"] == trainer.epoch == k // 3
        assert s["batch_in_epoch"] == k % 3
    assert s["status"] == "done"


def _client(tmp_path, data):
    return TestClient(create_app(tmp_path, dataset=data), base_url="http://127.0.0.1")


def test_more_epochs_on_an_unfinished_run_is_refused_not_ignored(tmp_path, data):
    with _client(tmp_path, data) as client:
        client.post("/api/train/config", json={"hidden": [8], "epochs": 3, "train_size": 300, "batch_size": 100})
        r = client.post("/api/train/start", json={"more_epochs": 50})
        assert r.status_code == 409 and "has 3 of its 3 epochs to go" in r.json()["error"], r.text
        assert client.get("/api/train/status").json()["epochs"] == 3


def test_a_finished_network_trains_more_epochs_when_asked(tmp_path, data):
    with _client(tmp_path, data) as client:
        client.post("/api/train/config", json={"hidden": [8], "epochs": 1, "train_size": 300, "batch_size": 100})
        client.post("/api/train/start", json={"until": "epoch"})
        for _ in range(200):
            s = client.get("/api/train/status").json()
            if s["status"] == "done":
                break
            time.sleep(0.02)
        assert s["status"] == "done" and s["epoch"] == 1
        r = client.post("/api/train/start", json={})
        assert r.status_code == 409 and "All 1 epochs are done" in r.json()["error"]
        r = client.post("/api/train/start", json={"more_epochs": 0})
        assert r.status_code == 400 and "'more_epochs' field must be a whole number from 1 to 200" in r.json()["error"]
        assert client.post("/api/train/start", json={"more_epochs": 1}).status_code == 200
        for _ in range(200):
            s = client.get("/api/train/status").json()
            if s["status"] == "done":
                break
            time.sleep(0.02)
        assert s["status"] == "done" and s["epoch"] == s["epochs"] == 2 and s["batch"] == 6


def test_unsaved_training_is_flagged_until_saved(tmp_path, data):
    with _client(tmp_path, data) as client:
        client.post("/api/train/config", json={"hidden": [8], "epochs": 2, "train_size": 300})
        assert client.get("/api/train/status").json()["unsaved"] is False  # nothing trained, nothing to lose
        assert client.post("/api/train/step", json={}).json()["unsaved"] is True
        assert client.post("/api/models/save", json={"name": "m"}).json()["unsaved"] is False
        assert client.post("/api/train/step", json={}).json()["unsaved"] is True
        assert client.post("/api/models/load", json={"name": "m"}).json()["unsaved"] is False


def test_a_conv_network_is_described_by_its_layers_and_true_size(tmp_path, data):
    from digitnet.config import NetworkConfig
    from digitnet.io.model_io import save_model
    from digitnet.nn.network import Network

    net = Network.create(NetworkConfig(layers=(784, 8, 10), features=("conv:3:5", "pool:2"), activation="relu"))
    save_model(tmp_path / "conv.safetensors", net)
    with _client(tmp_path, data) as client:
        about = client.get("/api/network").json()["describe"]
    assert about["n_params"] == net.n_params == 3 * 25 + 3 + 432 * 8 + 8 + 8 * 10 + 10
    assert [f["text"] for f in about["features"]] == ["conv 3 of 5x5", "pool 2x2", "flatten", "dense 8", "dense 10"]
    assert about["dense_inputs"] == 12 * 12 * 3
    f = about["filters"]
    assert (f["count"], f["side"]) == (3, 5)
    np.testing.assert_allclose(f["weights"], net.params[0]["w"][:, 0].ravel(), atol=1e-5)


def test_the_page_says_the_engine_is_starting_while_it_does(tmp_path, data, monkeypatch):
    """The numba engine compiles for a network shape it has not met (up to a minute) before the
    first batch: the page's status says why nothing moves yet, and the note goes once it runs."""
    from digitnet.training.train import Trainer

    lab = Lab(tmp_path, dataset=data)
    seen = []
    real = Trainer.start_engine

    def slow_start(trainer):
        seen.append(lab.state()["message"])
        return real(trainer)

    monkeypatch.setattr(Trainer, "start_engine", slow_start)
    lab.start(until="epoch")
    lab._thread.join(timeout=60)
    engine = lab.job.trainer.engine
    assert seen == [f"Starting the {engine} engine… (the first time for a network of this shape, it compiles: "
                    "up to a minute)"]
    assert lab.state()["message"] is None and lab.state()["epoch"] == 1
