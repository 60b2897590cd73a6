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
