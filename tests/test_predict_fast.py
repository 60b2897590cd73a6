"""Predicting is quick and gives the same answers: ``import digitnet`` looks its names up
when first used, the picture's preparation uses faster but identical steps (a running
max/min in a few whole-picture operations, np.median and np.percentile without importing
numpy.ma), and the web page's
predict answer is encoded in one step with the same bytes."""

import json
import math

import numpy as np
import pytest

from digitnet.data import ink


def test_import_digitnet_imports_no_training_and_no_data(modules_after):
    loaded = modules_after("import digitnet")
    assert sorted(m for m in loaded if m.startswith(("digitnet.training", "digitnet.data", "digitnet.nn",
                                                     "digitnet.tasks", "digitnet.io"))) == []


def test_every_public_name_is_there_and_is_the_modules_own():
    import importlib

    import digitnet as dn

    assert set(dn.__all__) <= set(dir(dn))
    for name, (module, attr) in dn._LAZY.items():
        assert getattr(dn, name) is getattr(importlib.import_module(module), attr), name
    assert dn.prepare_image is importlib.import_module("digitnet.data.images").prepare
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        dn.no_such_name  # noqa: B018
    namespace: dict = {}
    exec("from digitnet import *", namespace)
    assert set(dn.__all__) <= set(namespace)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
def test_median_is_numpys(dtype):
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 4, 5, 10, 11, 784, 785, 12544]:
        for shape in [(n,), (1, n)]:
            a = (rng.random(shape) * 255).astype(dtype)
            ours, theirs = ink.median(a), np.median(a)
            assert type(ours) is type(theirs) and (ours == theirs), (n, ours, theirs)
    ties = np.array([3, 1, 3, 3, 2, 3], np.float32)
    assert ink.median(ties) == np.median(ties) == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_percentile_is_numpys(dtype):
    rng = np.random.default_rng(1)
    for trial in range(3000):
        n = int(rng.integers(1, 12)) if trial % 2 else int(rng.integers(1, 3000))
        a = (rng.random(n) * 255).astype(dtype)
        if trial % 5 == 0:
            a = np.round(a / 40) * 40  # ties
        q = [90, 98][trial % 2] if trial % 3 else int(rng.integers(0, 101))
        ours, theirs = ink.percentile(a, q), np.percentile(a, q)
        assert type(ours) is type(theirs) and ours == theirs, (n, q, ours, theirs)
    assert ink.percentile(np.ones((3, 4), dtype), 98) == np.percentile(np.ones((3, 4), dtype), 98)


def test_median_and_percentile_do_not_import_numpy_ma(modules_after):
    loaded = modules_after("import numpy as np\nfrom digitnet.data.ink import median, percentile\n"
                            "median(np.arange(10.0)); median(np.arange(11.0)); percentile(np.arange(9.0), 98)")
    assert "numpy.ma" not in loaded


def _running_by_hand(a: np.ndarray, size: int, how: str, axis: int) -> np.ndarray:
    f = np.max if how == "max" else np.min
    b = np.moveaxis(a, axis, 0)
    n, r = len(b), size // 2
    out = np.stack([f(b[np.clip(np.arange(i - r, i - r + size), 0, n - 1)], axis=0) for i in range(n)])
    return np.moveaxis(out, 0, axis)


def test_running_max_and_min_match_a_window_by_hand():
    rng = np.random.default_rng(2)
    for _ in range(60):
        h, w = rng.integers(1, 30, 2)
        size = int(rng.integers(1, 40))  # even sizes, and windows wider than the picture
        a = (rng.random((h, w)) * 255).astype(rng.choice([np.float32, np.float64]))
        for how in ("max", "min"):
            for axis in (0, 1):
                got = ink._running(a, size, how, axis)
                assert got.dtype == a.dtype and got.shape == a.shape
                np.testing.assert_array_equal(got, _running_by_hand(a, size, how, axis))


def test_ruled_lines_found_with_and_without_long_runs():
    mask = np.zeros((100, 100), bool)
    mask[30:60, 40:43] = True  # a stroke: no line
    assert not ink.ruled_lines(mask).any()
    mask[90, 5:95] = True  # a line across, thin
    mask[2:85, 90] = True  # a line down, thin (not crossing the other: a crossing is kept as a stroke)
    lines = ink.ruled_lines(mask)
    assert lines[90, 5:95].all() and lines[2:85, 90].all() and not lines[30:60, 40:43].any()
    mask[10:40, 2:98] = True  # a wide block: long runs but not thin, so not a line
    assert not ink.ruled_lines(mask)[10:40, 2:89].any()


def test_predict_answer_is_the_same_bytes_and_nan_still_null():
    from digitnet.web.app import _fast_json, _json

    answer = {"digit": 7, "label": "7", "outputs": [0.1, 0.9], "activations": [[0.5, 1.0]], "test_index": None}
    assert _fast_json(answer).body == _json(answer).body
    diverged = {**answer, "outputs": [math.nan, math.inf]}
    assert json.loads(_fast_json(diverged).body)["outputs"] == [None, None]
    numpy_values = {**answer, "digit": np.int64(7), "outputs": np.array([0.1, 0.9])}
    assert _fast_json(numpy_values).body == _json(answer).body
