"""Training survives SIGKILL: resume from the last checkpoint ends bit-identical."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from digitnet.io.model_io import load_model

ARGS = ["train", "--layers", "784,16,10", "--epochs", "4", "--train-size", "20000", "--seed", "3", "--json"]


def _digitnet(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "digitnet", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    full = tmp_path / "full.safetensors"
    p = _digitnet(*ARGS, "--out", str(full))
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()

    killed = tmp_path / "killed.safetensors"
    ckpt = tmp_path / "killed.ckpt.safetensors"
    p = _digitnet(*ARGS, "--out", str(killed))
    deadline = time.time() + 300
    while not ckpt.exists():  # wait for the first epoch's checkpoint...
        assert p.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    epoch_seen = load_model(ckpt).epoch
    time.sleep(0.05)  # ...and kill it somewhere in the middle of a later epoch
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    assert not killed.exists()
    saved = load_model(ckpt)
    assert 1 <= saved.epoch < 4 and saved.epoch >= epoch_seen

    r = _digitnet("train", "--resume", str(ckpt), "--json")
    assert r.wait(timeout=300) == 0, r.stderr.read().decode()
    a, b = load_model(full), load_model(killed)
    assert [e.epoch for e in b.history.epochs] == [1, 2, 3, 4]
    for pa, pb in zip(a.net.params, b.net.params):
        for k in pa:
            assert np.array_equal(pa[k], pb[k])  # bit-identical
    assert [e.cost for e in a.history.epochs] == [e.cost for e in b.history.epochs]
