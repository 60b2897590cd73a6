"""A model file records what made it: the versions of digitnet, Python, NumPy and Numba, and the
engine (in the training settings); SavedModel and `digitnet evaluate` give them back; files from
before this was recorded still load."""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata

import numpy as np
import pytest
from click.testing import CliRunner

import digitnet as dn
from digitnet.cli import main
from digitnet.io import model_io


def _installed_numba():
    try:
        return metadata.version("numba")
    except metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny network trained one epoch by the NumPy engine, saved with its settings."""
    mnist = dn.load_mnist()
    net = dn.Network.create((784, 10), seed=0)
    cfg = dn.TrainConfig(epochs=1, train_size=300, engine="numpy")
    history = dn.train(net, mnist.train, cfg)
    path = tmp_path_factory.mktemp("prov") / "tiny.safetensors"
    dn.save_model(path, net, history, cfg)
    return path


def _rewrite(path, out, **changes):
    """``path``'s tensors with its metadata changed (None removes a key); the digest covers tensors only."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    save_file(tensors, str(out), metadata=meta)
    return out


def test_the_file_records_the_versions_that_made_it(trained):
    saved = dn.load_model(trained)
    want = {"digitnet": dn.__version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": _installed_numba()}
    assert saved.provenance == want
    assert json.loads(saved.metadata["provenance"]) == want  # in the file itself, as JSON
    assert saved.engine == "numpy" and saved.train_config.engine == "numpy"
    assert "made with digitnet" in repr(saved) and len(repr(saved)) < 300


def test_numba_is_none_where_it_is_not_installed(monkeypatch, tmp_path):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setattr(metadata, "version", missing)
    assert model_io.provenance()["numba"] is None
    path = dn.save_model(tmp_path / "m.safetensors", dn.Network.create((784, 10)))
    assert dn.load_model(path).provenance["numba"] is None
    assert '"numba": null' in dn.load_model(path).metadata["provenance"]


def test_old_files_without_provenance_still_load(trained, tmp_path):
    old = _rewrite(trained, tmp_path / "old.safetensors", provenance=None)
    saved = dn.load_model(old)
    assert saved.provenance is None and saved.engine == "numpy"
    np.testing.assert_array_equal(saved.net.weights[0], dn.load_model(trained).net.weights[0])
    r = CliRunner().invoke(main, ["evaluate", str(old)])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == ("Made with: versions not recorded (a file from an older digitnet); "
                                        "trained by the numpy engine.")
    assert json.loads(CliRunner().invoke(main, ["evaluate", str(old), "--json"]).output)["provenance"] is None


@pytest.mark.parametrize("bad", ['["numpy"]', '{"numpy": 2}', '{"numpy": "' + "9" * 200 + '"}', "{not json"])
def test_a_garbled_provenance_is_one_clear_error(trained, tmp_path, bad):
    path = _rewrite(trained, tmp_path / "bad.safetensors", provenance=bad)
    with pytest.raises(dn.ModelFileError, match="provenance|not a valid digitnet model"):
        dn.load_model(path)


def test_evaluate_shows_what_made_the_model(trained):
    r = CliRunner().invoke(main, ["evaluate", str(trained)])
    assert r.exit_code == 0, r.output
    numba = _installed_numba() or "not installed"
    assert r.output.splitlines()[0] == (
        f"Made with digitnet {dn.__version__}, Python {platform.python_version()}, NumPy {np.__version__}, "
        f"Numba {numba}; trained by the numpy engine.")
    d = json.loads(CliRunner().invoke(main, ["evaluate", str(trained), "--json"]).output)
    assert d["provenance"] == dn.load_model(trained).provenance and d["engine"] == "numpy"
