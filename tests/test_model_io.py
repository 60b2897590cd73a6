import json
import os

import numpy as np
import pytest

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.errors import ModelFileError
from digitnet.model_io import FORMAT, load_model, save_model
from digitnet.nn.network import Network
from digitnet.train import EpochRecord, History


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
