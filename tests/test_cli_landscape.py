"""The weights' trajectory in model files, and ``digitnet show landscape / interpolate /
smoothness / curvature`` through click's test runner, on a tiny model trained 3 epochs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.config import NetworkConfig, TrainConfig
from digitnet.errors import ModelFileError
from digitnet.io.model_io import load_model, save_model
from digitnet.nn.network import Network
from digitnet.tasks.run import checkpoint_path, run_training
from digitnet.training.train import SNAPSHOT_BYTES, Trainer, snapshot_budget

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N = 300  # training images the commands average over (the model's own training set)
CFG = TrainConfig(epochs=3, train_size=N, batch_size=10, eta=3.0, seed=0)


@pytest.fixture(scope="module")
def model(tmp_path_factory, mnist):
    """784-16-10 trained 3 epochs on 300 MNIST images by run_training (as `digitnet train` does)."""
    path = tmp_path_factory.mktemp("landscape") / "tiny.safetensors"
    run_training(NetworkConfig(layers=(784, 16, 10)), CFG, path, mnist)
    return str(path)


@pytest.fixture(scope="module")
def other(tmp_path_factory, mnist):
    """The same network trained from another seed: a second minimum."""
    path = tmp_path_factory.mktemp("landscape") / "other.safetensors"
    run_training(NetworkConfig(layers=(784, 16, 10)), CFG.replace(seed=1), path, mnist)
    return str(path)


@pytest.fixture(scope="module")
def old(tmp_path_factory, model):
    """The tiny model saved as files were before snapshots: no snapshots.* tensors."""
    saved = load_model(model)
    path = tmp_path_factory.mktemp("landscape") / "old.safetensors"
    save_model(path, saved.net, saved.history, saved.train_config, saved.initial)
    return str(path)


def _run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _json(args) -> dict:
    r = _run(args + ["--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    with open(out["png"], "rb") as f:
        assert f.read(8) == PNG_MAGIC
    return out


def _error(args) -> str:
    r = _run(args)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


def _cost(net, mnist):
    part = mnist.train.subset(N)
    return net.cost(part.x, part.y)


# --- the trajectory in the model file ---------------------------------------------------


def test_training_keeps_the_initial_weights_and_every_epoch(model):
    saved = load_model(model)
    assert len(saved.snapshots) == CFG.epochs + 1
    first, last = saved.snapshots[0], saved.snapshots[-1]
    for l, p in enumerate(saved.net.params):
        for k, v in p.items():
            assert np.array_equal(first[l][k], saved.initial.params[l][k])
            assert np.array_equal(last[l][k], v)
            assert last[l][k].dtype == v.dtype
    assert not np.array_equal(saved.snapshots[1][0]["w"], first[0]["w"])  # each epoch is its own snapshot


def test_snapshots_round_trip_and_old_files_load(tmp_path, model, old):
    saved = load_model(model)
    path = save_model(tmp_path / "again.safetensors", saved.net, saved.history, saved.train_config, saved.initial,
                      snapshots=saved.snapshots)
    again = load_model(path)
    assert len(again.snapshots) == len(saved.snapshots)
    for a, b in zip(again.snapshots, saved.snapshots):
        assert all(np.array_equal(a[l][k], b[l][k]) for l in range(len(b)) for k in b[l])
    assert load_model(old).snapshots == []  # a file without them loads, with none


def test_altered_snapshots_are_rejected(tmp_path, model):
    """A snapshot missing a tensor, of the wrong shape, or numbered with a gap: one clear error."""
    from safetensors.numpy import load_file, save_file

    from digitnet.io.model_io import _digest

    saved = load_model(model)
    tensors = load_file(model)
    for name, change in (("missing", lambda t: t.pop("snapshots.1.layers.0.b")),
                         ("shape", lambda t: t.__setitem__("snapshots.2.layers.1.w", np.zeros((3, 3), np.float32))),
                         ("gap", lambda t: [t.__setitem__(k.replace("snapshots.3.", "snapshots.7."), t.pop(k))
                                            for k in [k for k in t if k.startswith("snapshots.3.")]])):
        t = dict(tensors)
        change(t)
        meta = dict(saved.metadata)
        meta["sha256"] = _digest(t)  # a consistent checksum: the snapshot check itself must catch it
        path = tmp_path / f"{name}.safetensors"
        save_file(t, str(path), metadata=meta)
        with pytest.raises(ModelFileError, match="snapshot|snapshots"):
            load_model(path)


def test_large_networks_keep_no_snapshots(mnist):
    small = Network.create((784, 16, 16, 10), seed=0)
    assert snapshot_budget(small, 30) and not snapshot_budget(small, 100)  # 52 KB a copy: up to 79 epochs
    big = Network.create((784, 1400, 10), seed=0)
    assert 2 * sum(v.nbytes for p in big.params for v in p.values()) > SNAPSHOT_BYTES
    t = Trainer(big, mnist.train.subset(20), TrainConfig(epochs=1, batch_size=10, seed=0))
    t.run_epoch()
    assert t.snapshots is None


def test_a_resumed_run_keeps_the_whole_trajectory(tmp_path, mnist):
    class Stop(Exception):
        pass

    def stop_after_1(rec):
        if rec.epoch == 1:
            raise Stop

    full = tmp_path / "full.safetensors"
    run_training(NetworkConfig(layers=(784, 8, 10)), CFG, full, mnist)
    part = tmp_path / "part.safetensors"
    with pytest.raises(Stop):
        run_training(NetworkConfig(layers=(784, 8, 10)), CFG, part, mnist, on_epoch=stop_after_1)
    assert len(load_model(checkpoint_path(part)).snapshots) == 2
    run_training(None, None, part, mnist, resume=checkpoint_path(part))
    a, b = load_model(full).snapshots, load_model(part).snapshots
    assert len(a) == len(b) == CFG.epochs + 1
    assert all(np.array_equal(x[l][k], y[l][k]) for x, y in zip(a, b) for l in range(len(x)) for k in x[l])


# --- show landscape -----------------------------------------------------------------------


def test_landscape_random(model, mnist, tmp_path):
    out = _json(["show", "landscape", model, "--images", str(N), "--grid", "5", "--out", str(tmp_path / "l.png")])
    assert out["directions"] == "random" and "path" not in out
    assert out["alphas"] == out["betas"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    cost = np.array(out["cost"])
    assert cost.shape == (5, 5)
    centre = _cost(load_model(model).net, mnist)
    assert out["center_cost"] == pytest.approx(centre, rel=1e-5)
    assert cost[2, 2] == pytest.approx(centre, rel=1e-4)  # the grid's centre is the model
    assert (cost >= cost[2, 2] - 0.05).all()  # and the trained weights sit in a valley
    # the second panel: the test accuracy on the same grid, the centre the model's own
    net, test = load_model(model).net, mnist.test.subset(100)
    out = _json(["show", "landscape", model, "--images", str(N), "--grid", "3", "--test-images", "100",
                 "--out", str(tmp_path / "l3.png")])
    assert out["n_test"] == 100 and np.array(out["test_accuracy"]).shape == (3, 3)
    assert out["test_accuracy"][1][1] == out["center_test_accuracy"] == np.mean(net.predict(test.x) == test.y)
    out = _json(["show", "landscape", model, "--images", str(N), "--grid", "3", "--test-images", "0",
                 "--out", str(tmp_path / "l0.png")])
    assert "test_accuracy" not in out


def test_landscape_trajectory_draws_the_path(model, tmp_path):
    out = _json(["show", "landscape", model, "--directions", "trajectory", "--images", str(N), "--grid", "7",
                 "--surface", "--out", str(tmp_path / "t.png")])
    path = np.array(out["path"])
    assert out["directions"] == "trajectory"
    assert path.shape == (CFG.epochs + 1, 2)
    assert path[-1].tolist() == [0.0, 0.0]
    assert (path[0] <= 0).all()
    # the default range holds the whole path
    assert np.abs(path[:, 0]).max() <= max(out["alphas"]) and np.abs(path[:, 1]).max() <= max(out["betas"])
    assert sum(out["explained"]) <= 1 + 1e-9


def test_landscape_errors(model, old, tmp_path):
    line = _error(["show", "landscape", old, "--directions", "trajectory"])
    assert "no snapshots" in line and "--directions random" in line
    assert "--grid 500" in _error(["show", "landscape", model, "--grid", "500"])
    assert "--grid 1" in _error(["show", "landscape", model, "--grid", "1"])
    assert "--range 0" in _error(["show", "landscape", model, "--range", "0"])
    assert "--range 1e+06" in _error(["show", "landscape", model, "--range", "1e6"])
    saved = load_model(model)  # one epoch's trajectory (start and end) spans no plane
    short = save_model(tmp_path / "short.safetensors", saved.net, initial=saved.initial,
                       snapshots=[saved.snapshots[0], saved.snapshots[-1]])
    assert "at least 2 epochs" in _error(["show", "landscape", str(short), "--directions", "trajectory",
                                          "--out", str(tmp_path / "short.png")])


def test_interpolate_errors(model, conv, tmp_path):
    assert "two networks differ" in _error(["show", "interpolate", model, conv])
    saved = load_model(model)
    bare = save_model(tmp_path / "bare.safetensors", saved.net)  # no initial weights, no seed
    line = _error(["show", "interpolate", str(bare)])
    assert "no initial weights" in line and "OTHER" in line


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    net = Network.create((784, 10), seed=0, features=("conv:2:3", "pool:2"))
    path = tmp_path_factory.mktemp("landscape") / "conv.safetensors"
    save_model(path, net, initial=net.copy())
    return str(path)


def test_conv_nets_get_one_line(conv):
    for command in ("landscape", "smoothness", "curvature"):
        assert "dense network" in _error(["show", command, conv])


# --- show interpolate -----------------------------------------------------------------------


def test_interpolate_from_the_initial_weights(model, mnist, tmp_path):
    out = _json(["show", "interpolate", model, "--images", str(N), "--points", "11", "--extend", "0.2",
                 "--out", str(tmp_path / "i.png")])
    alphas = np.array(out["alphas"])
    assert len(alphas) == len(out["cost"]) == len(out["accuracy"]) == 15
    i0, i1 = list(alphas).index(0.0), list(alphas).index(1.0)
    saved = load_model(model)
    assert out["cost"][i0] == pytest.approx(_cost(saved.initial, mnist), rel=1e-4)
    assert out["cost"][i1] == pytest.approx(_cost(saved.net, mnist), rel=1e-4)
    assert out["cost"][i1] < out["cost"][i0]


def test_interpolate_between_two_models(model, other, mnist, tmp_path):
    out = _json(["show", "interpolate", model, other, "--images", str(N), "--points", "5", "--extend", "0",
                 "--out", str(tmp_path / "two.png")])
    assert out["alphas"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert out["cost"][0] == pytest.approx(_cost(load_model(model).net, mnist), rel=1e-4)
    assert out["cost"][-1] == pytest.approx(_cost(load_model(other).net, mnist), rel=1e-4)
    assert out["barrier"] >= 0


def test_interpolate_says_no_barrier_in_words(model, tmp_path):
    """The straight path down from the initial weights never climbs above the line between the end
    costs: the sentence says so instead of "rises at most 0"."""
    r = _run(["show", "interpolate", model, "--images", str(N), "--points", "11", "--extend", "0",
              "--out", str(tmp_path / "i.png")])
    assert r.exit_code == 0, r.output
    assert "at most 0 " not in r.output and "never rises above the straight line" in r.output, r.output


@pytest.mark.parametrize("barrier, words", [
    (0.0, "the cost never rises above the straight line between the two ends' costs: no barrier."),
    (1e-6, "rises at most 1e-06 above the straight line between the two ends' costs, too little to count: no "
           "barrier."),
    (0.25, "the cost rises as much as 0.25 above the straight line between the two ends' costs: a barrier."),
])
def test_barrier_sentence(barrier, words):
    from digitnet.plots import barrier_sentence

    assert barrier_sentence(barrier, 0.09, 0.03).endswith(words)


# --- show smoothness, show curvature --------------------------------------------------------


def test_smoothness_step_is_flat(model, tmp_path):
    out = _json(["show", "smoothness", model, "--images", str(N), "--points", "41", "--out", str(tmp_path / "s.png")])
    assert len(out["weight"]) == len(out["sigmoid_cost"]) == len(out["step_cost"]) == 41
    assert out["step_flat_fraction"] > 0.8
    assert out["sigmoid_flat_fraction"] < 0.2
    assert out["weight"][20] == pytest.approx(out["original"])
    line = _error(["show", "smoothness", model, "--layer", "5"])
    assert "--layer 5" in line
    assert "--weight" in _error(["show", "smoothness", model, "--weight", "a,b"])


def test_curvature_against_two_over_eta(model, tmp_path):
    out = _json(["show", "curvature", model, "--images", "200", "--top", "3", "--out", str(tmp_path / "c.png")])
    ev = np.array(out["eigenvalues"])
    assert len(ev) == 3 and (np.diff(ev) <= 1e-12).all()
    assert out["eta"] == CFG.eta and out["two_over_eta"] == pytest.approx(2 / CFG.eta)
    assert out["stable"] == bool(CFG.eta < 2 / ev[0])
    assert ev[0] > np.median(out["random_curvatures"])


def test_every_command_has_help_with_an_example():
    for command in ("landscape", "interpolate", "smoothness", "curvature"):
        r = _run(["show", command, "--help"])
        assert r.exit_code == 0 and "Example" in r.output and f"digitnet show {command}" in r.output


def test_a_trajectory_that_stops_short_of_the_model_ends_at_it(model, tmp_path):
    """As after --keep-best: the file's last snapshot is not the model's weights; the path gets them as its end."""
    saved = load_model(model)
    path = save_model(tmp_path / "best.safetensors", saved.net, initial=saved.initial, snapshots=saved.snapshots[:3])
    out = _json(["show", "landscape", str(path), "--directions", "trajectory", "--images", "50", "--grid", "3",
                 "--test-images", "0", "--out", str(tmp_path / "best.png")])
    assert len(out["path"]) == 4 and out["path"][-1] == [0.0, 0.0]
