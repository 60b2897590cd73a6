"""The optimizers' update rules: the formulas of their docstrings, bit for bit, in place."""

import tracemalloc

import numpy as np
import pytest

from digitnet.training.optim import make_optimizer


def _params(rng, dtype):
    shapes = [{"w": (30, 20), "b": (30,)}, {}, {"w": (10, 30), "b": (10,)}]  # {}: a pool layer's
    return [{k: rng.standard_normal(s).astype(dtype) for k, s in p.items()} for p in shapes]


def _stepped_like_the_textbook(name, params, grads_seq, etas):
    """Copies of ``params`` (in their memory order) stepped by optimizer ``name``; ``params``
    stepped by the textbook formulas. Asserts the two are the same bytes; returns the copies."""
    ours = [{k: w.copy(order="K") for k, w in p.items()} for p in params]
    opt = make_optimizer(name, ours)
    for grads, eta in zip(grads_seq, etas):
        opt.step(ours, grads, eta)
    _textbook(name, params, grads_seq, etas)
    for p, q in zip(ours, params):
        for k in p:
            assert p[k].tobytes() == q[k].tobytes(), (name, k)
    return ours


def _textbook(name, params, grads_seq, etas, mu=0.9, b2=0.999, eps=1e-8):
    """The update rules written out with temporaries, as in the docstrings."""
    state = [{k: (np.zeros_like(w), np.zeros_like(w)) for k, w in p.items()} for p in params]
    for t, (grads, eta) in enumerate(zip(grads_seq, etas), start=1):
        for p, g, st in zip(params, grads, state):
            for k, w in p.items():
                m, v = st[k]
                if name == "sgd":
                    w -= np.asarray(eta, w.dtype) * g[k]
                elif name in ("momentum", "nesterov"):
                    v_old = m.copy()
                    m *= mu
                    m -= eta * g[k]
                    w += (1 + mu) * m - mu * v_old if name == "nesterov" else m
                else:
                    m *= mu
                    m += (1 - mu) * g[k]
                    v *= b2
                    v += (1 - b2) * g[k] * g[k]
                    w -= eta * (m / (1 - mu**t)) / (np.sqrt(v / (1 - b2**t)) + eps)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_steps_are_the_textbook_formulas_bit_for_bit(name, dtype):
    rng = np.random.default_rng(0)
    params = _params(rng, dtype)
    grads_seq = [_params(rng, dtype) for _ in range(4)]
    etas = [0.1, 0.1, 0.05, 0.01]
    ours = _stepped_like_the_textbook(name, params, grads_seq, etas)
    assert all(w.dtype == np.dtype(dtype) for p in ours for w in p.values())


def _peak_of_a_step(name: str, n: int, seed: int, steps_before: int):
    """A float32 (n, n) weight array and its biases, and the memory peak (tracemalloc) of one
    optimizer step after ``steps_before`` others."""
    rng = np.random.default_rng(seed)
    params = [{"w": rng.standard_normal((n, n)).astype(np.float32), "b": np.zeros(n, np.float32)}]
    grads = [{k: rng.standard_normal(w.shape).astype(np.float32) for k, w in p.items()} for p in params]
    opt = make_optimizer(name, params)
    for _ in range(steps_before):
        opt.step(params, grads, 0.1)
    tracemalloc.start()
    try:
        opt.step(params, grads, 0.1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return params, peak


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_steps_make_no_array_sized_temporaries(name):
    """A step updates in place: after the first (which sizes the scratch arrays), it
    allocates nothing near the size of a parameter array (the old Nesterov step made five)."""
    params, peak = _peak_of_a_step(name, 256, seed=1, steps_before=1)
    assert peak < params[0]["w"].nbytes // 4, peak


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_steps_a_block_at_a_time_are_the_textbook_formulas_bit_for_bit(name, monkeypatch):
    """Blocks smaller than the arrays, ending in a partial block (600 = 9 x 64 + 24 values), and a
    Fortran-ordered weight array (no flat view: updated whole): the same bits as the formulas."""
    from digitnet.training import optim

    monkeypatch.setattr(optim, "BLOCK", 64)
    rng = np.random.default_rng(2)
    params = _params(rng, "float32")
    params[2]["w"] = np.asfortranarray(params[2]["w"])
    grads_seq = [_params(rng, "float32") for _ in range(3)]
    etas = [0.1, 0.05, 0.01]
    ours = _stepped_like_the_textbook(name, params, grads_seq, etas)
    assert not ours[2]["w"].flags.c_contiguous


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_scratch_arrays_are_a_block_not_a_parameter(name):
    """The update's scratch arrays hold one block (the passes stay in cache), not a whole
    parameter array: the first step of a 1 MB weight array allocates well under 1 MB."""
    from digitnet.training import optim

    params, peak = _peak_of_a_step(name, 512, seed=3, steps_before=0)
    assert optim.BLOCK * 4 * 2 <= params[0]["w"].nbytes // 2
    assert peak < params[0]["w"].nbytes // 2, peak
