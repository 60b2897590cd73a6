"""Shared fixtures: MNIST (loaded once) and small helpers."""

from __future__ import annotations

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
