"""Packaging: one source for the version, the licence as an SPDX expression with its files,
py.typed shipped, the extras the export needs (onnx in the test extra, torch not), and the
compiled engine's Numba as a core dependency where it has wheels."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import digitnet

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_has_one_source():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "digitnet._version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", digitnet.__version__)


def test_installed_metadata_and_cli_version_match_the_source():
    try:
        installed = importlib.metadata.version("digitnet")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("digitnet is not installed (run from the source tree); CI installs it")
    assert installed == digitnet.__version__
    from digitnet.cli import main

    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and digitnet.__version__ in r.output


def test_licence_is_an_spdx_expression_with_its_files():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT AND CC-BY-SA-3.0"
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639: the expression alone
    for name in project["license-files"]:
        assert (ROOT / name).is_file(), name
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "src/digitnet/data/mnist/README.md" in text
    assert "Attribution-Share Alike 3.0" in (ROOT / "src/digitnet/data/mnist/README.md").read_text()


def test_py_typed_is_shipped():
    assert (ROOT / "src/digitnet/py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["digitnet"]
    assert "Typing :: Typed" in PYPROJECT["project"]["classifiers"]


def _numba_requirements():
    from packaging.requirements import Requirement

    reqs = [Requirement(d) for d in PYPROJECT["project"]["dependencies"]]
    return [r for r in reqs if r.name in ("numba", "llvmlite")]


def test_the_compiled_engine_comes_with_pip_install_where_numba_has_wheels():
    """numba (and llvmlite, which the kernels import) are core dependencies, but only where
    Numba ships wheels: elsewhere pip would build Numba from source and the install would fail."""
    pytest.importorskip("packaging")
    reqs = _numba_requirements()
    assert sorted(r.name for r in reqs) == ["llvmlite", "numba"]
    base = {"platform_python_implementation": "CPython", "python_version": "3.12", "sys_platform": "linux",
            "platform_machine": "x86_64"}
    wheels = [{}, {"python_version": "3.10"}, {"python_version": "3.15"}, {"platform_machine": "aarch64"},
              {"sys_platform": "win32", "platform_machine": "AMD64"},
              {"sys_platform": "darwin", "platform_machine": "arm64"}]
    no_wheels = [{"python_version": "3.16"}, {"platform_python_implementation": "PyPy"},
                 {"sys_platform": "darwin", "platform_machine": "x86_64"},
                 {"sys_platform": "win32", "platform_machine": "x86"}, {"platform_machine": "ppc64le"},
                 {"platform_machine": "armv7l"}]
    for r in reqs:
        for where in wheels:
            assert r.marker.evaluate({**base, **where}), (r.name, where)
        for where in no_wheels:
            assert not r.marker.evaluate({**base, **where}), (r.name, where)


def test_scipy_is_not_needed_and_fast_is_kept_as_an_empty_extra():
    names = {re.split(r"[<>=!~\[ ;]", d)[0] for d in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "scipy" not in names
    assert extras["fast"] == []  # `pip install 'digitnet[fast]'` of old instructions still works


def test_export_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    names = {k: {re.split(r"[<>=!~\[ ;]", d)[0] for d in v} for k, v in extras.items()}
    assert "onnx" in names["onnx"]
    assert {"onnx", "onnxruntime"} <= names["test"]  # the ONNX export is checked in CI
    assert "torch" not in names["test"]  # CI must not need PyTorch; its tests skip without it
