"""The load-test script runs end to end (a small load: the real one is a benchmark)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_loadtest_script_small_run():
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "loadtest.py"), "--requests", "200", "--clients", "5",
         "--interval", "0.01", "--p99-target", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "requests sent: 200 from 5 clients" in r.stdout
    assert "5xx or no answer: 0; problems: 0" in r.stdout
