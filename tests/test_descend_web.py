"""The web page's /api/descent explains stops through the same library: oscillation,
saddles and long sums (issues 15 and 16)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from digitnet.data.datasets import DIGITS, Dataset, Split  # noqa: E402
from digitnet.web import create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y = np.arange(20) % 10
    data = Dataset("synthetic", DIGITS, Split(x, y), Split(x[:10], y[:10]))
    with TestClient(create_app(tmp_path, dataset=data), base_url="http://127.0.0.1") as c:
        yield c


def test_descent_api_names_oscillation_and_saddles(client):
    d = client.post("/api/descent", json={"formula": "x^2", "start": [1], "eta": 1}).json()
    assert d["stop_reason"] == "oscillating" and "try eta = 0.5" in d["explanation"]
    d = client.post("/api/descent", json={"formula": "x^2 - y^2", "start": [1, 0]}).json()
    assert d["stop_reason"] == "converged" and "a saddle point, not a minimum" in d["explanation"]


def test_descent_api_runs_a_sum_of_500_terms(client):
    r = client.post("/api/descent", json={"formula": "+".join(["x"] * 500), "start": [1]})
    assert r.status_code == 200, r.text
    assert r.json()["stop_reason"] == "unbounded"
