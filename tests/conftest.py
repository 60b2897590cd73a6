"""Shared fixtures: MNIST (loaded once) and small helpers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "browser: drives a real Chromium through Playwright")


@pytest.fixture(scope="session")
def mnist():
    from digitnet.data.datasets import load_mnist

    return load_mnist()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def bar_digits():
    """A tiny synthetic data set the web tests train on in a moment: digit k is a bright bar
    at rows 4 + 2k on faint noise (300 training, 100 test images, seed 7)."""
    from digitnet.data.datasets import DIGITS, Dataset, Split

    def bars(labels, rng):
        images = rng.integers(0, 30, size=(len(labels), 28, 28)).astype(np.uint8)
        for img, k in zip(images, labels):
            img[4 + 2 * k : 6 + 2 * k, 6:22] = 255
        return images

    rng = np.random.default_rng(7)
    ytr, yte = rng.integers(0, 10, 300), rng.integers(0, 10, 100)
    return Dataset("synthetic", DIGITS, Split(bars(ytr, rng), ytr), Split(bars(yte, rng), yte))


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("speed")``: a script of benchmarks/ as a module, so tests can check
    what it computes and share its helpers (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def modules_after():
    """``modules_after("import digitnet")``: the modules loaded after running that code in a
    fresh interpreter on this checkout's src/ (no site-packages' digitnet, a bare environment)."""
    import json
    import subprocess
    import sys

    src = Path(__file__).resolve().parent.parent / "src"

    def run(code: str) -> set:
        probe = f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                           env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr
        return set(json.loads(r.stdout.splitlines()[-1]))

    return run


# --- a real server and a real browser, for the web page's tests ------------------------------
CHROMIUM = os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def serve_app():
    """``with serve_app(app) as url:``: ``app`` served by uvicorn in a thread on a free
    127.0.0.1 port, stopped on leaving."""
    import contextlib
    import socket
    import threading
    import time

    @contextlib.contextmanager
    def serve(app):
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
        thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.started, "the server did not start"
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
        finally:
            srv.should_exit = True
            thread.join(timeout=10)
            sock.close()

    return serve


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright; skipped, with the reason, without them."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not at {CHROMIUM}: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go: ``$DIGITNET_SCREENSHOTS``, or a temporary folder."""
    where = os.environ.get("DIGITNET_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        return Path(where)
    return tmp_path_factory.mktemp("screenshots")
