"""The web app's endpoints over plain HTTP (Starlette's TestClient), and ``digitnet serve``.

The app runs on a small synthetic data set (digit k is a bright bar at row 4 + 2k), so
every test is fast and none needs MNIST.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

with warnings.catch_warnings():  # newer Starlette would rather test with httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from digitnet.data.datasets import DIGITS  # noqa: E402
from digitnet.data.images import prepare  # noqa: E402
from digitnet.io.model_io import load_model, save_model  # noqa: E402
from digitnet.nn.network import Network  # noqa: E402
from digitnet.web import create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def data(bar_digits):
    return bar_digits  # tests/conftest.py


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    return d


@pytest.fixture
def client(model_dir, data):
    app = create_app(model_dir, dataset=data)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        c.lab = app.state.lab
        yield c


def _digit(side: int = 56) -> np.ndarray:
    """A drawn '1': a white vertical stroke on black, (side, side) grey 0..255."""
    img = np.zeros((side, side), dtype=np.float32)
    img[side // 6 : side - side // 6, side // 2 - side // 16 : side // 2 + side // 16] = 255
    return img


def _drawing(img: np.ndarray) -> dict:
    return {"width": img.shape[1], "height": img.shape[0], "pixels": img.ravel().tolist()}


def _floats(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


def _wait(client, status_wanted, timeout=20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = client.get("/api/train/status").json()
        if s["status"] in status_wanted:
            return s
        time.sleep(0.02)
    raise AssertionError(f"training never reached {status_wanted}; last status {s['status']}")


def _config(client, **changes) -> dict:
    body = {"hidden": [8], "epochs": 3, "train_size": 300, "batch_size": 10, **changes}
    r = client.post("/api/train/config", json=body)
    assert r.status_code == 200, r.text
    return r.json()


# --- the page -------------------------------------------------------------------------------
def test_page_and_static_files_are_served_with_a_strict_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and 'id="pad"' in r.text and "/static/app.js" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for name, kind in (("app.js", "javascript"), ("app.css", "css")):
        s = client.get(f"/static/{name}")
        assert s.status_code == 200 and kind in s.headers["content-type"]
    assert "http://" not in client.get("/static/app.js").text.replace("http://www.w3.org/2000/svg", "")


def test_info_lists_presets_limits_models_and_state(client, data):
    info = client.get("/api/info").json()
    assert "video" in info["presets"] and info["presets"]["video"]["network"]["layers"] == [784, 16, 16, 10]
    assert info["data"] == {"name": "synthetic", "classes": list(DIGITS), "train": 300, "test": 100}
    assert info["limits"]["train_size"] == [1, 300]
    assert info["state"]["status"] == "ready" and info["models"] == []
    assert info["features"] == {"descent": True, "drawings": True}


def test_unknown_paths_and_methods_get_json_errors(client):
    r = client.get("/api/nothing")
    assert r.status_code == 404 and "Nothing here" in r.json()["error"]
    r = client.get("/api/predict")
    assert r.status_code == 405 and "GET is not allowed" in r.json()["error"]


def test_requests_for_other_host_names_are_refused(model_dir, data):
    with TestClient(create_app(model_dir, dataset=data)) as c:  # Host: testserver
        r = c.get("/api/info")
        assert r.status_code == 400 and "answers only on" in r.json()["error"]
    with TestClient(create_app(model_dir, dataset=data, allowed_hosts=None)) as c:
        assert c.get("/api/info").status_code == 200
    with TestClient(create_app(model_dir, dataset=data), base_url="http://[::1]:8000") as c:
        assert c.get("/api/info").status_code == 200


# --- draw -----------------------------------------------------------------------------------
def test_predict_prepares_the_drawing_like_digitnet_predict(client):
    img = _digit()
    r = client.post("/api/predict", json=_drawing(img))
    assert r.status_code == 200, r.text
    out = r.json()
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, format="PNG")
    expected = prepare(buf.getvalue())  # what `digitnet predict file.png` feeds the network
    np.testing.assert_allclose(out["input"], expected, atol=1e-3)
    assert [len(a) for a in out["activations"]] == [16, 16, 10]
    assert out["outputs"] == out["activations"][-1]
    assert out["digit"] == int(np.argmax(out["outputs"])) and out["label"] == str(out["digit"])
    net = client.lab.snapshot
    np.testing.assert_allclose(out["outputs"], net.feedforward(expected)[0], atol=1e-4)
    png = client.post("/api/predict", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert png.status_code == 200 and png.json()["outputs"] == out["outputs"]


def test_predict_a_test_image_uses_its_exact_pixels(client, data):
    out = client.post("/api/predict", json={"test_index": 5}).json()
    np.testing.assert_allclose(out["input"], data.test.x[5], atol=1e-3)
    assert out["true_label"] == int(data.test.y[5]) and out["test_index"] == 5


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"width": 56, "height": 56, "pixels": [0] * 10}, 400, "must be a list of width x height = 3136"),
        ({"width": 28, "height": 28, "pixels": [-1] * 784}, 400, "from 0 .black. to 255"),
        ({"width": 28, "height": 28, "pixels": [256] * 784}, 400, "from 0 .black. to 255"),
        ({"width": 28, "height": 28, "pixels": ["1"] * 784}, 400, "must be a number"),
        ({"width": 28, "height": 28, "pixels": [True] * 784}, 400, "must be a number"),
        ({"width": 28, "height": 28, "pixels": [[0] * 28] * 28}, 400, "width x height = 784 grey levels"),
        ({"width": 27, "height": 28, "pixels": [0] * 756}, 400, "'width' field must be a whole number from 28 to 1024"),
        ({"width": 2000, "height": 28, "pixels": [0] * 28}, 400, "'width' field must be"),
        ({"width": 28.5, "height": 28, "pixels": [0] * 784}, 400, "'width' field must be a whole number"),
        ({"width": 28, "pixels": [0] * 784}, 400, "Give the drawing's 'width' and 'height'"),
        ({"width": 28, "height": 28, "pixels": [0] * 784}, 400, "The image is blank"),
        ({"width": 28, "height": 28, "pixels": [0] * 784, "colour": "red"}, 400, "Unknown field.s.: colour"),
        ({"test_index": 100}, 400, "'test_index' field must be a whole number from 0 to 99"),
        ({"test_index": 1, "width": 28}, 400, "either a drawing"),
        ([1, 2, 3], 400, "must be a JSON object"),
    ],
)
def test_predict_rejects_bad_drawings_with_a_clear_json_error(client, body, status, message):
    r = client.post("/api/predict", json=body)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert re.search(message, r.json()["error"]), r.json()


def test_predict_rejects_bad_bodies_and_content_types(client):
    r = client.post("/api/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = client.post("/api/predict", content=b"pixels", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "Content-Type" in r.json()["error"]
    r = client.post("/api/predict", content=b"\x89PNG broken", headers={"content-type": "image/png"})
    assert r.status_code == 400 and "not an image digitnet can read" in r.json()["error"]
    r = client.post("/api/train/step", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415  # a cross-site form cannot post JSON without asking first


def test_an_uploaded_picture_of_two_marks_is_refused_with_the_reason(client):
    img = np.zeros((60, 120), dtype=np.uint8)
    img[10:50, 20:26] = img[10:50, 90:96] = 255  # two strokes far apart: not one digit
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    r = client.post("/api/predict", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 400 and "does not look like one digit: it has 2 separate marks" in r.json()["error"]
    # a JPEG upload is read as in `digitnet predict`, with its own content type
    one = np.zeros((120, 120), dtype=np.uint8)
    one[30:90, 56:64] = 255
    buf = io.BytesIO()
    Image.fromarray(one).save(buf, format="JPEG")
    r = client.post("/api/predict", content=buf.getvalue(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and 0 <= r.json()["digit"] <= 9, r.text
    # the same strokes drawn on the page are read anyway: the person may still be drawing
    r = client.post("/api/predict", json=_drawing(img.astype(np.float32)))
    assert r.status_code == 200 and 0 <= r.json()["digit"] <= 9


def test_request_bodies_over_the_cap_are_refused(model_dir, data):
    with TestClient(create_app(model_dir, dataset=data, max_body=5_000), base_url="http://127.0.0.1") as c:
        big = _drawing(_digit(56))  # about 10 kB of JSON
        r = c.post("/api/predict", json=big)
        assert r.status_code == 413 and "limit is 5,000" in r.json()["error"]

        def chunks():  # no Content-Length: the body is counted as it arrives
            for _ in range(10):
                yield b" " * 1000

        r = c.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "over the limit of 5,000 bytes" in r.json()["error"]
        small = _drawing(_digit(28))
        assert c.post("/api/predict", json=small).status_code == 200


def test_network_sends_the_published_weights(client):
    net = client.get("/api/network").json()
    snap = client.lab.snapshot
    assert net["layers"] == [784, 16, 16, 10] and net["first"]["side"] == 28
    w = _floats(net["first"]["weights"]).reshape(net["first"]["shown"], 784)
    np.testing.assert_array_equal(w, snap.weights[0][:16])
    deeper = [_floats(d["weights"]).reshape(d["shape"]) for d in net["deeper"]]
    np.testing.assert_array_equal(deeper[0], snap.weights[1])
    np.testing.assert_array_equal(deeper[1], snap.weights[2])


def test_test_images_by_index_or_at_random(client, data):
    t = client.get("/api/test-image?index=7").json()
    pixels = np.frombuffer(base64.b64decode(t["pixels"]), dtype=np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(pixels, data.test.images[7])
    assert t["label"] == int(data.test.y[7])
    assert 0 <= client.get("/api/test-image").json()["index"] < 100
    for bad in ("-1", "100", "seven"):
        r = client.get(f"/api/test-image?index={bad}")
        assert r.status_code == 400 and "'index' parameter must be a whole number from 0 to 99" in r.json()["error"]


def test_drawings_are_saved_with_their_label(client, model_dir):
    r = client.post("/api/drawings", json={"label": 1, **_drawing(_digit())})
    assert r.status_code == 200, r.text
    saved = list((model_dir / "drawings" / "1").glob("*.png"))
    assert len(saved) == 1 and r.json()["count"] == 1 and r.json()["file"] == f"1/{saved[0].name}"
    picture = np.asarray(Image.open(saved[0]))
    assert picture.shape == (28, 28) and picture.max() > 200  # the prepared 28x28, white ink on black
    r = client.post("/api/drawings", json={"label": 10, **_drawing(_digit())})
    assert r.status_code == 400 and "'label' field must be a whole number from 0 to 9" in r.json()["error"]
    r = client.post("/api/drawings", json={"label": 2, **_drawing(np.zeros((28, 28)))})
    assert r.status_code == 400 and "blank" in r.json()["error"]
    assert not (model_dir / "drawings" / "2").exists()


# --- models -----------------------------------------------------------------------------------
def test_models_are_saved_listed_and_loaded_by_name(client, model_dir):
    r = client.post("/api/models/save", json={"name": "first"})
    assert r.status_code == 200 and r.json()["model"] == "first"
    assert (model_dir / "first.safetensors").is_file()
    saved = load_model(model_dir / "first.safetensors")
    np.testing.assert_array_equal(saved.net.weights[0], client.lab.job.net.weights[0])
    (model_dir / "first.ckpt.safetensors").write_bytes(b"checkpoints are not listed")
    assert [m["name"] for m in client.get("/api/models").json()["models"]] == ["first"]
    r = client.post("/api/models/save", json={"name": "first"})
    assert r.status_code == 409 and "exists already" in r.json()["error"]
    assert client.post("/api/models/save", json={"name": "first", "overwrite": True}).status_code == 200
    _config(client)
    r = client.post("/api/models/load", json={"name": "first"})
    assert r.status_code == 200 and r.json()["model"] == "first" and r.json()["network"]["layers"] == [784, 16, 16, 10]
    r = client.post("/api/models/load", json={"name": "missing"})
    assert r.status_code == 404 and "no model named 'missing'" in r.json()["error"]


def test_errors_do_not_show_the_servers_folders(client, model_dir):
    (model_dir / "broken.safetensors").write_bytes(b"not a model at all")
    (model_dir / "dir.safetensors").mkdir()
    for r in (client.post("/api/models/load", json={"name": "broken"}),
              client.post("/api/models/save", json={"name": "dir", "overwrite": True})):
        assert r.status_code in (400, 409), r.text
        error = r.json()["error"]
        assert str(model_dir) not in error and str(model_dir.resolve()) not in error, error
        assert "broken.safetensors" in error or "dir.safetensors" in error, error


@pytest.mark.parametrize("name", ["../outside", "a/b", "/etc/passwd", ".hidden", "", "x" * 65, 5, None, "..", "C:\\x"])
def test_model_names_cannot_be_paths(client, model_dir, name):
    outside = model_dir.parent / "outside.safetensors"
    save_model(outside, Network.create((784, 3, 10)))
    for path in ("/api/models/load", "/api/models/save"):
        r = client.post(path, json={"name": name})
        assert r.status_code == 400 and "no folders or paths" in r.json()["error"]
    assert client.lab.job.net.config.layers == (784, 16, 16, 10)
    assert sorted(p.name for p in model_dir.iterdir()) == []


def test_a_convolutional_model_shows_its_dense_layers(client, model_dir):
    from digitnet.config import NetworkConfig

    net = Network.create(NetworkConfig(layers=(784, 8, 10), features=("conv:2:5", "pool:2"), activation="relu"))
    save_model(model_dir / "conv.safetensors", net)
    assert client.post("/api/models/load", json={"name": "conv"}).status_code == 200
    out = client.post("/api/predict", json=_drawing(_digit())).json()
    assert [len(a) for a in out["activations"]] == [8, 10]
    np.testing.assert_allclose(out["outputs"], net.feedforward(np.array(out["input"], np.float32))[0], atol=1e-3)
    first = client.get("/api/network").json()["first"]
    assert first["neurons"] == 8 and first["side"] is None  # its first dense layer does not see pixels
    assert "cnn" not in client.get("/api/info").json()["presets"]


def test_the_newest_saved_model_is_loaded_at_start(model_dir, data):
    net = Network.create((784, 5, 10), seed=3)
    save_model(model_dir / "small.safetensors", net)
    with TestClient(create_app(model_dir, dataset=data), base_url="http://127.0.0.1") as c:
        s = c.get("/api/train/status").json()
        assert s["model"] == "small" and s["network"]["layers"] == [784, 5, 10]


# --- learn ------------------------------------------------------------------------------------
def test_only_one_training_job_runs_at_a_time(client):
    _config(client, epochs=200, train_size=300, batch_size=1)
    r = client.post("/api/train/start", json={})
    assert r.status_code == 200 and r.json()["status"] == "running"
    try:
        r = client.post("/api/train/start", json={})
        assert r.status_code == 409 and "already running" in r.json()["error"]
        for path, body in (("/api/train/step", {}), ("/api/train/config", {}), ("/api/models/save", {"name": "m"}),
                           ("/api/models/load", {"name": "m"})):
            r = client.post(path, json=body)
            assert r.status_code == 409 and "Only one training job runs at a time" in r.json()["error"], path
        assert client.post("/api/predict", json=_drawing(_digit())).status_code == 200  # predictions still work
        deadline = time.monotonic() + 60  # the first batches come once the engine has started
        while client.get("/api/train/status").json()["batch"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        r = client.post("/api/train/pause", json={})
    assert r.status_code == 200 and r.json()["status"] == "paused" and r.json()["batch"] > 0


def test_step_and_reset_to_the_same_initial_weights(client):
    _config(client, seed=11)
    w_start = client.get("/api/network").json()["first"]["weights"]
    costs = []
    for _ in range(3):
        s = client.post("/api/train/step", json={}).json()
        costs.append(s["cost"])
    assert s["batch"] == 3 and s["status"] == "paused"
    assert client.get("/api/network").json()["first"]["weights"] != w_start
    r = client.post("/api/train/reset", json={})
    assert r.status_code == 200 and r.json()["batch"] == 0 and r.json()["status"] == "ready"
    assert client.get("/api/network").json()["first"]["weights"] == w_start
    again = [client.post("/api/train/step", json={}).json()["cost"] for _ in range(3)]
    assert again == costs  # same weights, same seed, same mini-batches


def test_training_runs_to_the_end_and_records_epochs(client):
    _config(client, epochs=2, hidden=[], eta=1.0)
    assert client.post("/api/train/start", json={}).status_code == 200
    s = _wait(client, {"done"})
    assert s["epoch"] == 2 and s["batch"] == 60 and len(s["epoch_records"]) == 2
    assert s["points"][0][0] == 0 and s["points"][-1][0] == 60
    assert s["accuracy"][-1][1] == s["epoch_records"][-1]["test_accuracy"]
    r = client.post("/api/train/start", json={})
    assert r.status_code == 409 and "All 2 epochs are done" in r.json()["error"]


def test_step_one_epoch_stops_at_the_epoch_end(client):
    _config(client, epochs=3)
    client.post("/api/train/step", json={})
    assert client.post("/api/train/start", json={"until": "epoch"}).status_code == 200
    s = _wait(client, {"paused"})
    assert s["epoch"] == 1 and s["batch"] == 30 and s["batch_in_epoch"] == 0


def test_divergence_is_reported_and_stops_training(client):
    _config(client, hidden=[], output_activation="identity", eta=100.0, epochs=5)  # a step far too large
    client.post("/api/train/start", json={})
    s = _wait(client, {"diverged", "done"})
    assert s["status"] == "diverged" and "Training diverged" in s["message"]
    r = client.post("/api/train/step", json={})
    assert r.status_code == 409 and "Reset, or use a smaller learning rate" in r.json()["error"]
    assert client.post("/api/train/reset", json={}).json()["status"] == "ready"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"hidden": [16] * 5}, "'hidden' must list 0 to 4 hidden layer sizes"),
        ({"hidden": [0]}, "each 1 to 512"),
        ({"hidden": [1000]}, "each 1 to 512"),
        ({"hidden": "16,x"}, "e.g. \"16,16\""),
        ({"hidden": [16.0]}, "each 1 to 512"),
        ({"eta": 0}, "'eta' field must be a number from 1e-06 to 100"),
        ({"eta": "3"}, "'eta' field must be a number"),
        ({"batch_size": 1.5}, "'batch_size' field must be a whole number from 1 to 1000"),
        ({"epochs": 0}, "'epochs' field must be a whole number from 1 to 200"),
        ({"seed": -1}, "'seed' field must be"),
        ({"train_size": 301}, "'train_size' field must be a whole number from 1 to 300"),
        ({"preset": "bigger"}, "'preset' field must be one of video"),
        ({"activation": "softmax"}, "'activation' field must be one of sigmoid, tanh, relu"),
        ({"cost": "cross-entropy", "output_activation": "identity"}, "cross-entropy cost needs outputs between 0 and 1"),
        ({"layers": [784, 10]}, "Unknown field.s.: layers"),
        ({"eta": float("nan")}, "not valid JSON|'eta' field"),
    ],
)
def test_bad_hyperparameters_get_a_clear_json_error(client, body, message):
    r = client.post("/api/train/config", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert re.search(message, r.json()["error"]), r.json()


def test_start_accepts_only_known_units(client):
    r = client.post("/api/train/start", json={"until": "forever"})
    assert r.status_code == 400 and "'until' field must be one of end, epoch" in r.json()["error"]


def test_events_stream_progress_as_server_sent_events(client):
    _config(client)
    client.post("/api/train/step", json={})
    r = client.get("/api/train/events?max_seconds=0.2")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert events and events[0]["reset"] is True and events[0]["batch"] == 1
    assert [p[0] for p in events[0]["points"]] == [0, 1]
    for bad in ("0", "abc", "99999"):
        r = client.get(f"/api/train/events?max_seconds={bad}")
        assert r.status_code == 400 and "'max_seconds' must be a number" in r.json()["error"]


def test_progress_since_a_cursor_sends_only_what_is_new(client):
    _config(client)
    lab = client.lab
    first, cursor = lab.progress_since(None)
    client.post("/api/train/step", json={})
    second, cursor = lab.progress_since(cursor)
    assert first["reset"] and not second["reset"]
    assert [list(p) for p in second["points"]] == [[1, second["cost"]]]


# --- look -------------------------------------------------------------------------------------
def test_evaluate_gives_the_confusion_matrix_and_the_mistakes(client, data):
    _config(client, hidden=[], epochs=2, eta=1.0)
    client.post("/api/train/start", json={})
    _wait(client, {"done"})
    r = client.get("/api/evaluate").json()
    conf = np.array(r["confusion"])
    assert conf.shape == (10, 10) and conf.sum() == 100 and r["n"] == 100
    assert r["wrong"] == 100 - np.trace(conf) and r["accuracy"] == pytest.approx(np.trace(conf) / 100)
    for m in r["misclassified"]:
        assert m["label"] == int(data.test.y[m["index"]]) and m["label"] != m["predicted"]
        assert len(base64.b64decode(m["pixels"])) == 784
    confidences = [m["confidence"] for m in r["misclassified"]]
    assert confidences == sorted(confidences, reverse=True)


def test_descent_runs_the_playground(client):
    r = client.post("/api/descent", json={"formula": "3/2x^2 + 1/2y^2", "start": [1, 1]})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["stop_reason"] == "converged" and d["path"][0] == [1.0, 1.0] and d["steps"] == len(d["path"]) - 1
    assert "x matters 3x as much" in d["gradient"] and abs(d["final"][0]) < 1e-5
    assert d["grid"]["n"] == 96 and len(d["grid"]["values"]) == 96 * 96
    notes = client.post("/api/descent", json={"formula": "3/2x^2 + ½y", "start": [1, 1]}).json()
    assert notes["stop_reason"] == "unbounded" and notes["suggestion"] == "3/2*x^2 + 1/2*y^2"
    one = client.post("/api/descent", json={"formula": "(x-1)^2", "start": [3], "view": [-2, 4, -1, 1]}).json()
    assert one["variables"] == ["x"] and abs(one["final"][0] - 1) < 1e-3 and len(one["grid"]["values"]) == 96


@pytest.mark.parametrize(
    "body, message",
    [
        ({"formula": "__import__('os')", "start": [1, 1]}, "unknown name"),
        ({"formula": "x^^2", "start": [1, 1]}, ""),
        ({"formula": "x + y", "start": [1]}, "needs a start with 2 coordinate"),
        ({"formula": 5, "start": [1, 1]}, "'formula' must be text"),
        ({"formula": "x^2", "start": "1"}, "'start' must be \\[x\\] or \\[x, y\\]"),
        ({"formula": "x^2", "start": [1e9]}, "'start' field must be a number"),
        ({"formula": "x^2", "start": [1], "steps": 10**6}, "'steps' field must be a whole number from 1 to 10000"),
        ({"formula": "x^2", "start": [1], "eta": 0}, "'eta' field must be"),
        ({"formula": "x^2", "start": [1], "view": [1, 0, 0, 1]}, "xmin < xmax"),
        ({"formula": "x^2"}, "Missing field.s.: start"),
    ],
)
def test_descent_rejects_bad_formulas_and_settings(client, body, message):
    r = client.post("/api/descent", json=body)
    assert r.status_code == 400
    assert re.search(message, r.json()["error"]), r.json()


def test_formula_errors_say_where(client):
    r = client.post("/api/descent", json={"formula": "x + $", "start": [1]})
    assert r.status_code == 400 and r.json()["position"] == 4


# --- digitnet serve ---------------------------------------------------------------------------
@pytest.fixture
def fake_server(monkeypatch, data):
    import uvicorn

    monkeypatch.setattr("digitnet.web.lab.load_mnist", lambda data_dir=None: data)

    calls = {}

    def run(self, sockets=None):
        calls["port"] = sockets[0].getsockname()[1]
        calls["app"] = self.config.app

    monkeypatch.setattr(uvicorn.Server, "run", run)
    opened = []
    import digitnet.cli.serve as serve_module

    class NowTimer:
        def __init__(self, delay, fn, args=()):
            self.fn, self.args = fn, args

        def start(self):
            self.fn(*self.args)

    monkeypatch.setattr(serve_module.threading, "Timer", NowTimer)
    monkeypatch.setattr(serve_module.webbrowser, "open", lambda url: opened.append(url))
    calls["opened"] = opened
    return calls


def test_serve_prints_the_address_and_opens_a_browser_only_when_asked(fake_server, tmp_path):
    from digitnet.cli import main

    models = tmp_path / "new-models"
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--model-dir", str(models)])
    assert result.exit_code == 0, result.output
    port = fake_server["port"]
    assert f"digitnet is serving on http://127.0.0.1:{port}/" in result.output
    assert fake_server["opened"] == [] and models.is_dir()
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--open", "--model-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert fake_server["opened"] == [f"http://127.0.0.1:{fake_server['port']}/"]


def test_serve_explains_a_port_in_use_and_warns_about_other_hosts(fake_server, tmp_path):
    import socket

    from digitnet.cli import main

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port), "--model-dir", str(tmp_path)])
        assert result.exit_code == 1 and f"Cannot listen on 127.0.0.1:{port}" in result.output
        assert f"--port {port + 1}" in result.output
    finally:
        busy.close()
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--host", "0.0.0.0", "--model-dir", str(tmp_path)])
    assert result.exit_code == 0 and "other computers on the network can use this page" in result.output
    result = CliRunner().invoke(main, ["serve", "--port", "99999"])
    assert result.exit_code == 1 and "99999" in result.output
