"""The web server under attack (issue 15): each test reproduces one attack, in-process where it
can (Starlette's TestClient or a raw ASGI call), and checks the server's answer.

The longer, measured version is ``benchmarks/attack.py`` against a live ``digitnet serve``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from click.testing import CliRunner  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from digitnet.data.datasets import DIGITS, Dataset, Split  # noqa: E402
from digitnet.data.images import MAX_PIXELS, read_grey  # noqa: E402
from digitnet.errors import ImageError  # noqa: E402
from digitnet.io.model_io import save_model  # noqa: E402
from digitnet.nn.network import Network  # noqa: E402
from digitnet.web import create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def bomb(load_benchmark) -> bytes:
    return load_benchmark("attack").png_bomb()  # the same bomb the attack suite sends


@pytest.fixture(scope="module")
def data() -> Dataset:
    rng = np.random.default_rng(7)
    ytr, yte = rng.integers(0, 10, 200), rng.integers(0, 10, 50)
    img = lambda y: rng.integers(0, 255, size=(len(y), 28, 28)).astype(np.uint8)  # noqa: E731
    return Dataset("synthetic", DIGITS, Split(img(ytr), ytr), Split(img(yte), yte))


@pytest.fixture
def app(tmp_path, data):
    (tmp_path / "models").mkdir()
    return create_app(tmp_path / "models", dataset=data)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="http://127.0.0.1") as c:
        c.lab = app.state.lab
        yield c


# --- 1. decompression bombs -------------------------------------------------------------------
def test_a_png_bomb_is_refused_from_its_header_without_decoding(bomb):
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw DecompressionBombWarning either
        with pytest.raises(ImageError, match=f"at most {MAX_PIXELS:,} pixels"):
            read_grey(bomb)
    assert time.perf_counter() - t < 0.5  # decoding it would take seconds and 300 MB+


def test_a_png_bomb_through_the_web_gets_a_quick_400(client, bomb):
    t = time.perf_counter()
    r = client.post("/api/predict", content=bomb, headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and f"at most {MAX_PIXELS:,} pixels" in r.json()["error"]
    assert time.perf_counter() - t < 1.0


def test_a_png_bomb_through_digitnet_predict_gives_one_line(tmp_path, bomb):
    from digitnet.cli import main

    model = save_model(tmp_path / "m.safetensors", Network.create((784, 4, 10), seed=0))
    (tmp_path / "bomb.png").write_bytes(bomb)
    r = CliRunner().invoke(main, ["predict", str(model), str(tmp_path / "bomb.png")])
    assert r.exit_code == 1 and "Traceback" not in r.output and "DecompressionBomb" not in r.output
    assert f"at most {MAX_PIXELS:,} pixels" in r.output


# --- 4. every answer is JSON ------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"formula": "x^2", "start": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
    b'{"formula": "x^2", "start": [1], "steps": 1' + b"0" * 400 + b"}",
    b'{"formula": "x^2", "start": [1' + b"0" * 400 + b"]}",
    b'{"formula": "x^2", "start": [1], "eta": 1e999}',
    b'{"formula": "x^2", "start": [1], "steps": 1' + b"0" * 5000 + b"}",
])
def test_deep_and_huge_json_gets_a_json_400(client, body):
    r = client.post("/api/descent", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
    assert len(r.json()["error"]) < 400


def test_huge_numbers_in_a_drawing_and_the_config_form_get_json_400s(client):
    pixels = "[" + ",".join(["1" + "0" * 400] * 784) + "]"
    r = client.post("/api/predict", content=f'{{"width": 28, "height": 28, "pixels": {pixels}}}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "0 (black) to 255" in r.json()["error"]
    r = client.post("/api/train/config", content='{"eta": 1' + "0" * 400 + "}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "'eta'" in r.json()["error"]


def test_an_unexpected_error_is_a_json_500_without_internals_logged_once(client, monkeypatch, caplog):
    def broken(x):
        raise KeyError("secret internal detail")

    monkeypatch.setattr(client.lab, "predict", broken)
    with caplog.at_level("ERROR", logger="digitnet.web"):
        r = client.post("/api/predict", json={"test_index": 0})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert "secret" not in r.text and "KeyError" not in r.text and "a bug" in r.json()["error"]
    logged = [rec for rec in caplog.records if "Unexpected error" in rec.getMessage()]
    assert len(logged) == 1 and "secret internal detail" in caplog.text


def test_random_json_bodies_get_json_answers(client):
    rng = np.random.default_rng(0)
    atoms = [0, -1, 1e308, 10**400, "x", None, True, [], {}, "3/2x^2", [1, 2], [1e6] * 4]
    fields = ["formula", "start", "eta", "steps", "momentum", "view", "name", "label", "pixels", "width",
              "height", "test_index", "hidden", "preset", "until", "evil"]
    paths = ["/api/predict", "/api/descent", "/api/drawings", "/api/models/load", "/api/models/save",
             "/api/train/config", "/api/train/pause"]
    for _ in range(150):
        body = {str(rng.choice(fields)): atoms[rng.integers(len(atoms))] for _ in range(rng.integers(0, 4))}
        text = json.dumps(body) if rng.random() < 0.9 else json.dumps(body)[: rng.integers(0, 20)]
        r = client.post(str(rng.choice(paths)), content=text, headers={"Content-Type": "application/json"})
        assert r.status_code < 500 and "error" in r.json() if r.status_code >= 400 else True, r.text
        assert r.headers["content-type"] == "application/json"


# --- 3. bounded work --------------------------------------------------------------------------
def test_a_full_pool_answers_503_with_retry_after(client, app):
    pool = app.state.pools["predict"]
    pool.admitted = pool.capacity  # as if that many predictions were running or queued
    try:
        r = client.post("/api/predict", json={"test_index": 0})
    finally:
        pool.admitted = 0
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]
    assert client.post("/api/predict", json={"test_index": 0}).status_code == 200


def test_a_maximal_descent_request_is_refused_by_its_work_budget(client):
    formula = "+".join(["x^2"] * 250)[:999]
    formula = formula[: formula.rfind("+")]
    r = client.post("/api/descent", json={"formula": formula, "start": [1], "steps": 10_000})
    assert r.status_code == 400 and "at most" in r.json()["error"] and "steps" in r.json()["error"]
    t = time.perf_counter()
    r = client.post("/api/descent", json={"formula": formula, "start": [1], "steps": 300})
    assert r.status_code == 200, r.text
    assert time.perf_counter() - t < 5


def test_a_busy_playground_answers_503_before_parsing_the_formula(client, app, monkeypatch, load_benchmark):
    # attack.py's profile of the server under 40 clients repeating maximal descents: 68% of the
    # event loop went to parsing formulas (16 ms each) of requests then answered 503, and predict
    # p99 rose to 300-800 ms. A full pool must say so before any formula work.
    import digitnet.web.app as web_app

    parsed = []
    monkeypatch.setattr(web_app, "parse_descent", lambda *a: parsed.append(a) or pytest.fail("parsed"))
    pool = app.state.pools["descent"]
    pool.admitted = pool.capacity
    try:
        r = client.post("/api/descent", json=load_benchmark("attack").maximal_descent())
    finally:
        pool.admitted = 0
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and parsed == []


def test_formulas_are_parsed_in_the_worker_process_never_in_the_server(client, monkeypatch):
    import digitnet.web.app as web_app

    def in_the_server(*args):
        raise AssertionError("a formula was parsed in the server process")

    monkeypatch.setattr(web_app, "parse_descent", in_the_server)  # the worker process has its own
    r = client.post("/api/descent", json={"formula": "x^2", "start": [1], "steps": 5})
    assert r.status_code == 200, r.text
    r = client.post("/api/descent", json={"formula": "x^2 +* 1", "start": [1]})  # errors come back as they were
    assert r.status_code == 400 and r.json()["position"] == 5, r.text
    r = client.post("/api/descent", json={"formula": "x^2", "start": [1, 2]})
    assert r.status_code == 400 and "needs a start with 1 coordinate" in r.json()["error"]
    r = client.post("/api/descent", json={"formula": "x^2", "start": [1], "eta": "fast"})
    assert r.status_code == 400 and "'eta'" in r.json()["error"]


@pytest.mark.skipif(not hasattr(os, "nice"), reason="os.nice is POSIX")
def test_the_playground_worker_runs_at_a_lower_cpu_priority():
    from digitnet.web.app import WORKER_NICENESS, _in_worker_process

    assert _in_worker_process(os.nice, 0) >= min(19, os.nice(0) + WORKER_NICENESS)


def _asgi(app, method, path, chunks, *, headers=(), seconds=None):
    """Call the ASGI app directly, sending the body in ``chunks`` (None: the client stalls)."""
    sent, received = [], []

    async def receive():
        if chunks:
            chunk = chunks.pop(0)
            if chunk is None:
                await asyncio.sleep(3600)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), *headers], "scheme": "http", "http_version": "1.1",
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "root_path": "", "app": app}
    return scope, receive, send, sent, received


def test_a_slow_prediction_body_does_not_hold_up_training_and_times_out(app, monkeypatch):
    import digitnet.web.requests as requests_module

    monkeypatch.setattr(requests_module, "BODY_SECONDS", 0.5)
    lab = app.state.lab
    scope, receive, send, sent, _ = _asgi(app, "POST", "/api/predict", [b'{"test_', None],
                                          headers=[(b"content-type", b"application/json")])
    waiting = []

    async def main():
        task = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.sleep(0.2)
        waiting.append(lab._waiting)  # the body is half-sent: training must not be asked to wait
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert waiting == [0]
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 408 and "did not arrive within" in json.loads(body)["error"]


def test_start_pause_reset_in_a_race_give_no_500(client):
    r = client.post("/api/train/config", json={"hidden": [4], "epochs": 200, "train_size": 200, "batch_size": 10})
    assert r.status_code == 200
    statuses, errors = [], []

    def hammer(path):
        for _ in range(15):
            try:
                statuses.append(client.post(path, json={}).status_code)
            except Exception as e:  # noqa: BLE001 - the test reports anything at all
                errors.append(repr(e))

    threads = [threading.Thread(target=hammer, args=(p,)) for p in
               ("/api/train/start", "/api/train/pause", "/api/train/reset", "/api/train/start")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    client.post("/api/train/pause", json={})
    assert not errors and statuses and all(s in (200, 409) for s in statuses), (errors, sorted(set(statuses)))


# --- 5. crafted model files through the web ---------------------------------------------------
@pytest.mark.parametrize("field,value", [("history", "[]"), ("kinds", "5"), ("train", "[1, 2]"),
                                         ("network", "[" * 100_000 + "]" * 100_000)])
def test_loading_a_crafted_model_file_gives_a_json_400(client, tmp_path, field, value):
    from safetensors import safe_open
    from safetensors.numpy import save

    from digitnet.io.model_io import _digest

    good = save_model(tmp_path / "good.safetensors", Network.create((784, 4, 10), seed=0))
    with safe_open(str(good), framework="numpy") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    meta[field] = value
    meta["sha256"] = _digest(tensors)  # a checksum anyone can recompute
    (tmp_path / "models" / "crafted.safetensors").write_bytes(save(tensors, metadata=meta))
    r = client.post("/api/models/load", json={"name": "crafted"})
    assert r.status_code == 400 and "not a valid digitnet model" in r.json()["error"], r.text


# --- 7. the drawings folder -------------------------------------------------------------------
def _stroke() -> dict:
    img = np.zeros((28, 28))
    img[5:23, 13:15] = 255
    return {"width": 28, "height": 28, "pixels": img.ravel().tolist()}


def test_drawings_have_a_limit_and_the_reply_holds_no_server_path(client, tmp_path, monkeypatch):
    import digitnet.web.app as app_module

    monkeypatch.setattr(app_module, "MAX_DRAWINGS", 2)
    for _ in range(2):
        r = client.post("/api/drawings", json={"label": 1, **_stroke()})
        assert r.status_code == 200
        assert str(tmp_path) not in r.text and r.json()["folder"] == "drawings"
    r = client.post("/api/drawings", json={"label": 1, **_stroke()})
    assert r.status_code == 409 and "full" in r.json()["error"] and str(tmp_path) not in r.text
    assert len(list((tmp_path / "models" / "drawings" / "1").glob("*.png"))) == 2


# --- 2 and 8. digitnet serve ------------------------------------------------------------------
@pytest.fixture
def fake_server(monkeypatch, data):
    import uvicorn

    monkeypatch.setattr("digitnet.web.lab.load_mnist", lambda data_dir=None: data)
    calls = {}

    def run(self, sockets=None):
        calls["config"] = self.config
        calls["app"] = self.config.app

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return calls


def test_serve_skips_a_foreign_or_broken_newest_model_file(fake_server, tmp_path):
    import os

    from digitnet.cli import main

    models = tmp_path / "models"
    models.mkdir()
    save_model(models / "good.safetensors", Network.create((784, 4, 10), seed=0))
    outside = tmp_path / "outside.safetensors"
    save_model(outside, Network.create((784, 4, 10), seed=1))
    (models / "foreign.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (models / "truncated.safetensors").write_bytes((models / "good.safetensors").read_bytes()[:500])
    (models / "zlink.safetensors").symlink_to(outside)
    for i, name in enumerate(["good", "foreign", "truncated", "zlink"]):
        os.utime(models / f"{name}.safetensors", (1000 + i, 1000 + i), follow_symlinks=False)
    os.utime(outside, (2000, 2000))  # the symlink's target is the newest of all
    r = CliRunner().invoke(main, ["serve", "--port", "0", "--model-dir", str(models)])
    assert r.exit_code == 0, r.output
    assert fake_server["app"].state.lab.job.name == "good"
    assert r.output.count("Skipped a model file") == 3


def test_serve_on_another_loopback_address_accepts_its_own_host_header(fake_server, tmp_path):
    from digitnet.cli import main

    r = CliRunner().invoke(main, ["serve", "--port", "0", "--host", "127.0.0.1", "--model-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    app = fake_server["app"]
    assert "127.0.0.1" in app.allowed and "evil.example" not in app.allowed
    config = fake_server["config"]
    assert config.timeout_keep_alive <= 5 and config.h11_max_incomplete_event_size <= 16 * 1024
    with TestClient(app, base_url="http://127.0.0.2:8000") as c:
        assert c.get("/api/info").status_code == 400  # served on 127.0.0.1: 127.0.0.2 is another host
    r = CliRunner().invoke(main, ["serve", "--port", "0", "--host", "127.0.0.2", "--model-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    with TestClient(fake_server["app"], base_url="http://127.0.0.2:8000") as c:
        assert c.get("/api/info").status_code == 200
    with TestClient(fake_server["app"], base_url="http://evil.example") as c:
        assert c.get("/api/info").status_code == 400


# --- 3. connections: a real server on a random port of 127.0.0.1 ------------------------------
def test_idle_and_half_sent_connections_are_closed_and_never_lock_out_a_request(app, monkeypatch):
    import socket

    import httpx
    import uvicorn

    import digitnet.web.requests as requests_module
    from digitnet.web.server import make_protocol

    monkeypatch.setattr(requests_module, "BODY_SECONDS", 1.0)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", http=make_protocol(20, header_seconds=1.0),
                            timeout_keep_alive=1, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        idle = []
        for i in range(60):  # three times the limit: silent, half-sent headers, half-sent bodies
            s = socket.create_connection(("127.0.0.1", port))
            if i % 3 == 1:
                s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            elif i % 3 == 2:
                s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9999\r\n\r\n{")
            idle.append(s)
        t = time.perf_counter()
        r = httpx.post(f"http://127.0.0.1:{port}/api/predict", json={"test_index": 0}, timeout=5)
        assert r.status_code == 200 and time.perf_counter() - t < 2
        assert len(server.server_state.connections) <= 21
        time.sleep(2.5)  # past the header and body timeouts: all are closed or answered 408
        still_open = []
        for i, s in enumerate(idle):
            s.settimeout(0.5)
            try:
                s.recv(1024)  # b"" (closed) or a 408 answer
            except TimeoutError:
                still_open.append(i % 3)
            except ConnectionResetError:  # closed with unread data: a reset
                pass
            s.close()
        assert still_open == []
        assert len(server.server_state.connections) == 0
    finally:
        server.should_exit = True
        thread.join(10)


def test_logs_are_rate_limited_not_hundreds_of_megabytes():
    import io
    import logging

    from digitnet.web.server import RateLimitFilter

    logger = logging.getLogger("digitnet.test.flood")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    logger.addFilter(RateLimitFilter(per_minute=5))
    logger.propagate = False
    try:
        for _ in range(10_000):  # what 1,100 connections over the descriptor limit used to log
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                logger.error("socket.accept() out of system resource", exc_info=True)
        logger.error("something else")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert text.count("out of system resource") == 5 and "something else" in text
    assert len(text) < 5_000
