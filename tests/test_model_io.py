import json
import os

import numpy as np
import pytest

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.errors import ModelFileError
from digitnet.io.model_io import FORMAT, load_model, save_model
from digitnet.nn.network import Network
from digitnet.training.train import EpochRecord, History


@pytest.fixture
def saved(tmp_path):
    net = Network.create((784, 16, 16, 10), seed=3)
    initial = Network.create((784, 16, 16, 10), seed=4)
    h = History([EpochRecord(1, 0.1, 0.9, 0.91, None, 0.5, 3.0)], [0.5, 0.4, 0.3], 0.9, 0.1)
    path = save_model(tmp_path / "m.safetensors", net, h, TrainConfig(epochs=1), initial)
    return path, net, initial


def test_round_trip(saved):
    path, net, initial = saved
    m = load_model(path)
    assert m.net.config == net.config
    for a, b in zip(m.net.params + m.initial.params, net.params + initial.params):
        for k in a:
            assert a[k].dtype == b[k].dtype
            np.testing.assert_array_equal(a[k], b[k])
    assert m.history.epochs[0].test_accuracy == 0.91
    assert m.history.batch_costs == pytest.approx([0.5, 0.4, 0.3])
    assert m.train_config.epochs == 1 and m.classes[3] == "3"
    x = np.random.default_rng(0).uniform(size=(4, 784)).astype(np.float32)
    np.testing.assert_array_equal(m.net.feedforward(x), net.feedforward(x))
    m.net.params[0]["w"][0, 0] = 1.0  # loaded arrays are writable


def test_file_is_safetensors_with_documented_metadata(saved):
    path, _, _ = saved
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header["__metadata__"]
    assert meta["format"] == FORMAT and meta["format_version"] == "1"
    assert json.loads(meta["network"])["layers"] == [784, 16, 16, 10]
    assert header["layers.0.w"]["shape"] == [16, 784] and header["layers.0.w"]["dtype"] == "F32"
    assert b"pickle" not in raw and os.stat(path).st_mode & 0o044  # readable by others like any file


def test_truncated_file_rejected(saved):
    path, _, _ = saved
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="not a readable digitnet model file.*truncated"):
        load_model(path)


def test_altered_weight_rejected(saved):
    path, _, _ = saved
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # a byte of the last tensor's data
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="do not match the file's checksum"):
        load_model(path)


def _rewrite_meta(path, **changes):
    from safetensors.numpy import load, save

    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    tensors = load(path.read_bytes())
    meta.update(changes)
    path.write_bytes(save(tensors, metadata=meta))


def test_wrong_version_rejected(saved):
    path, _, _ = saved
    _rewrite_meta(path, format_version="99")
    with pytest.raises(ModelFileError, match="format version '99'.*Upgrade digitnet"):
        load_model(path)


def test_wrong_shape_in_config_rejected(saved):
    path, _, _ = saved
    _rewrite_meta(path, network=json.dumps({**NetworkConfig().to_dict(), "layers": [784, 30, 10]}))
    with pytest.raises(ModelFileError, match="tensor layers.0.w has shape \\(16, 784\\).*needs \\(30, 784\\)"):
        load_model(path)


def test_not_a_digitnet_file(tmp_path):
    from safetensors.numpy import save

    p = tmp_path / "other.safetensors"
    p.write_bytes(save({"x": np.zeros(3, np.float32)}))
    with pytest.raises(ModelFileError, match="not a digitnet model"):
        load_model(p)
    p.write_bytes(b"hello, I am text")
    with pytest.raises(ModelFileError, match="not a readable digitnet model"):
        load_model(p)
    with pytest.raises(ModelFileError, match="No model file at.*Check the name, or train a model"):
        load_model(tmp_path / "missing.safetensors")


def test_save_is_atomic_when_write_fails(saved, monkeypatch):
    path, net, _ = saved
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ModelFileError, match="No space left on device.*previous file there is unchanged"):
        save_model(path, Network.create((784, 10)))
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(ModelFileError, match="directory .*nope does not exist"):
        save_model(tmp_path / "nope" / "m.safetensors", Network.create((784, 10)))


def test_save_into_read_only_directory(tmp_path, monkeypatch):
    """As root every directory is writable, so the refusal is injected where the OS gives it."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ModelFileError, match="Cannot save to .*Permission denied.*writable"):
        save_model(tmp_path / "m.safetensors", Network.create((784, 10)))
    assert not (tmp_path / "m.safetensors").exists()


# --- crafted files: a valid digest, odd metadata (issue 15) -------------------------------
def craft(path, out, **meta_changes):
    """A copy of the model file at ``path`` with metadata fields replaced (None: removed) and the
    digest recomputed, as anyone can: the digest is a checksum, not a signature."""
    from safetensors import safe_open
    from safetensors.numpy import save

    from digitnet.io.model_io import _digest

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensor_changes = meta_changes.pop("tensors", {})
    tensors.update(tensor_changes)
    for k, v in meta_changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    meta["sha256"] = _digest(tensors)
    out.write_bytes(save(tensors, metadata=meta))
    return out


DEEP = "[" * 100_000 + "]" * 100_000
RECORD = {"epoch": 1, "cost": 0.1, "train_accuracy": 0.9, "test_accuracy": 0.91, "validation_accuracy": None,
          "seconds": 0.5, "eta": 3.0}
CRAFTED = {
    "history is a list": {"history": "[]"},
    "kinds is a number": {"kinds": "5"},
    "train is a list": {"train": "[1, 2]"},
    "epoch record with an unknown key": {"history": json.dumps({"epochs": [{**RECORD, "evil": 1}]})},
    "epoch record missing a key": {"history": json.dumps({"epochs": [{"epoch": 1}]})},
    "epoch record with text": {"history": json.dumps({"epochs": [{**RECORD, "cost": "low"}]})},
    "0-d batch cost": {"tensors": {"history.batch_cost": np.array(1.0, dtype=np.float32)}},
    "2-d batch cost": {"tensors": {"history.batch_cost": np.ones((2, 2), dtype=np.float32)}},
    "network nested 100,000 deep": {"network": DEEP},
    "history nested 100,000 deep": {"history": DEEP},
    "train nested deep but parseable": {"train": json.dumps({"augment": [[[[[[[[["x"]]]]]]]]]})},
    "classes is text": {"classes": '"0123456789"'},
    "classes hold numbers": {"classes": json.dumps(list(range(10)))},
    "train eta is text": {"train": json.dumps({"eta": "fast"})},
    "train with an unknown key": {"train": json.dumps({"etta": 3.0})},
    "network layers is text": {"network": json.dumps({"layers": "784,16,10"})},
    "network is null": {"network": "null"},
    "network missing": {"network": None},
    "epoch is text": {"epoch": "four"},
    "epoch is huge": {"epoch": "9" * 5000},
    "best_epoch is text": {"history": json.dumps({"epochs": [], "best_epoch": "1"})},
    "initial cost is a list": {"history": json.dumps({"epochs": [], "initial_cost": [1]})},
    "huge integer": {"train": '{"epochs": ' + "9" * 4000 + "}"},
    "not JSON": {"kinds": "{"},
}


@pytest.mark.parametrize("changes", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_metadata_with_a_valid_digest_gives_one_clean_error(saved, tmp_path, changes):
    path, _, _ = saved
    bad = craft(path, tmp_path / "bad.safetensors", **dict(changes))
    with pytest.raises(ModelFileError, match="is not a valid digitnet model"):
        load_model(bad)


def test_crafted_file_that_is_well_formed_still_loads(saved, tmp_path):
    path, net, _ = saved
    ok = craft(path, tmp_path / "ok.safetensors", history=json.dumps({"epochs": [RECORD]}), train=None)
    m = load_model(ok)
    assert m.train_config is None and m.history.epochs[0].test_accuracy == 0.91


def _altered(path, out, change_meta=None, change_tensors=None):
    """A copy of the model file with its metadata or tensors changed and the digest recomputed,
    as anyone can (the digest is not a signature)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from digitnet.io.model_io import _digest

    tensors = load_file(str(path))
    with safe_open(str(path), "np") as f:
        meta = dict(f.metadata())
    if change_meta:
        change_meta(meta)
    if change_tensors:
        change_tensors(tensors)
    meta["sha256"] = _digest(tensors)
    save_file(tensors, str(out), metadata=meta)
    return out


def test_crafted_files_with_a_valid_digest_give_one_clean_error(tmp_path):
    net = Network.create((784, 6, 10), seed=0)
    hist = History(initial_cost=1.0, epochs=[EpochRecord(1, 0.5, 0.9, 0.9, None, 1.0, 3.0)], batch_costs=[0.5, 0.4])
    good = tmp_path / "good.safetensors"
    save_model(good, net, hist)
    cases = {
        "fewer classes than outputs": dict(change_meta=lambda m: m.update(classes=json.dumps(["a", "b", "c"]))),
        "best epoch not recorded": dict(change_meta=lambda m: m.update(
            history=json.dumps({**json.loads(m["history"]), "best_epoch": 999}))),
        "millions of batch costs": dict(change_tensors=lambda t: t.update(
            {"history.batch_cost": np.zeros(10_000_001, np.float32)})),
    }
    for name, change in cases.items():
        bad = _altered(good, tmp_path / f"{name}.safetensors", **change)
        with pytest.raises(ModelFileError, match="is not a valid digitnet model"):
            load_model(bad)


def _poison(value):
    def change(tensors, name):
        t = tensors[name].copy()
        t.flat[0] = value
        tensors[name] = t
    return change


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["layers.0.w", "initial.layers.1.b", "snapshots.1.layers.0.w"])
def test_nan_or_inf_anywhere_in_the_weights_is_refused_naming_the_file(tmp_path, name, value):
    # The digest is no defence (anyone can recompute it): the initial weights (show weights, the
    # page's reset) and the snapshots were accepted with NaN before.
    net = Network.create((784, 6, 10), seed=0)
    snaps = [Network.create((784, 6, 10), seed=s).params for s in (1, 2)]
    good = save_model(tmp_path / "good.safetensors", net, None, None, Network.create((784, 6, 10), seed=1),
                      snapshots=snaps)
    bad = _altered(good, tmp_path / "bad.safetensors", change_tensors=lambda t: _poison(value)(t, name))
    with pytest.raises(ModelFileError, match="NaN or infinite") as e:
        load_model(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    assert load_model(good).snapshots  # the untouched file loads


def test_nan_in_a_checkpoints_optimizer_state_is_refused_by_resume_in_one_line(tmp_path, mnist):
    from click.testing import CliRunner

    from digitnet.cli import main
    from digitnet.tasks.run import checkpoint_path, run_training

    out = tmp_path / "mom.safetensors"

    class Killed(Exception):
        pass

    def killed(rec):
        raise Killed  # as if killed after epoch 1: the checkpoint stays

    with pytest.raises(Killed):
        run_training(NetworkConfig(layers=(784, 8, 10)), TrainConfig(epochs=3, train_size=300, seed=1,
                                                                     optimizer="momentum"), out, mnist, on_epoch=killed)
    ckpt = checkpoint_path(out)
    names = [k for k in load_model(ckpt).extra]
    assert names
    _altered(ckpt, ckpt, change_tensors=lambda t: _poison(np.nan)(t, "optimizer." + names[0]))
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt)])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert r.output.startswith("Error: ") and str(ckpt) in r.output and "NaN or infinite" in r.output


def test_nan_initial_weights_are_refused_by_the_cli_and_the_web_page(tmp_path):
    from click.testing import CliRunner

    from digitnet.cli import main

    good = save_model(tmp_path / "good.safetensors", Network.create((784, 6, 10), seed=0), None, None,
                      Network.create((784, 6, 10), seed=1))
    models = tmp_path / "models"
    models.mkdir()
    bad = _altered(good, models / "bad.safetensors", change_tensors=lambda t: _poison(np.inf)(t, "initial.layers.0.w"))
    for command in (["show", "weights", str(bad), "--out", str(tmp_path / "w.png")], ["config", str(bad)]):
        r = CliRunner().invoke(main, command)
        assert r.exit_code == 1 and r.output.count("\n") == 1 and str(bad) in r.output, r.output
    pytest.importorskip("starlette")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from digitnet.data.datasets import DIGITS, Dataset, Split
    from digitnet.web import create_app

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 30)
    img = rng.integers(0, 255, size=(30, 28, 28)).astype(np.uint8)
    with TestClient(create_app(models, dataset=Dataset("mnist", DIGITS, Split(img, y), Split(img, y))),
                    base_url="http://127.0.0.1") as c:
        r = c.post("/api/models/load", json={"name": "bad"})
    assert r.status_code == 400 and "NaN or infinite" in r.json()["error"] and str(tmp_path) not in r.text
