"""Where the compiled engine's kernels are cached (digitnet.nn._numba_cache) and the build step
that compiles them into the package (setup.py): a cache built in one folder is found by a
copy of the package with new file times (as pip installs it), even a read-only one; an edited
source is compiled again; what is compiled later goes to the user's cache; the build step
never fails the install.

The kernels themselves take 15 s to compile, so these tests use a package of their own: a
one-function module beside a copy of _numba_cache.py, in a `digitnet.nn` of a temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

ROOT = Path(__file__).resolve().parents[1]
NN = ROOT / "src" / "digitnet" / "nn"

TINY = """from digitnet.nn import _numba_cache  # noqa: F401

from numba import njit


@njit(cache=True)
def add(a, b):
    return a + b


_numba_cache.harden(globals())
"""

# argv: "build" (compile into the package's folder, as setup.py does) or "run"; the
# arguments' kind ("float" or "int"); "read-only": every write under the package fails;
# "homeless": no home directory can be found.
PROBE = """
import builtins, os, sys, tempfile
from pathlib import Path
mode, kind = sys.argv[1], sys.argv[2]
if "homeless" in sys.argv:  # HOME unset, the user not in the password database: '~' stays '~'
    os.environ.pop("HOME", None), os.environ.pop("XDG_CACHE_HOME", None)
    os.path.expanduser = lambda path: path
if "read-only" in sys.argv:
    import digitnet
    blocked = [str(Path(digitnet.__path__[0]).resolve())]
    if "no-home" in sys.argv:  # the user's home (and cache) cannot be written either
        blocked.append(str(Path(os.environ["HOME"]).resolve()))

    def guard(path):
        if any(str(Path(path).resolve()).startswith(b) for b in blocked):
            raise PermissionError(13, "Read-only file system", str(path))

    real_open, real_makedirs, real_replace, real_tmp = builtins.open, os.makedirs, os.replace, tempfile.TemporaryFile
    def open_(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            guard(file)
        return real_open(file, mode, *a, **k)
    def makedirs(name, *a, **k):
        if not os.path.isdir(name):
            guard(name)
        return real_makedirs(name, *a, **k)
    def replace(src, dst, *a, **k):
        guard(dst)
        return real_replace(src, dst, *a, **k)
    def temporary(*a, dir=None, **k):
        if dir is not None:
            guard(dir)
        return real_tmp(*a, dir=dir, **k)
    builtins.open, os.makedirs, os.replace, tempfile.TemporaryFile = open_, makedirs, replace, temporary
from digitnet.nn import _numba_cache
_numba_cache._building = mode == "build"
from digitnet.nn import _tiny
print(_tiny.add(1.0, 2.0) if kind == "float" else _tiny.add(1, 2))
stats = _tiny.add.stats
print(len(stats.cache_hits), len(stats.cache_misses))
print(_tiny.add._cache.cache_path)
"""


def _package(where: Path) -> Path:
    """A `digitnet` package at ``where`` with digitnet.nn._numba_cache and a one-function module."""
    nn = where / "digitnet" / "nn"
    nn.mkdir(parents=True)
    (where / "digitnet" / "__init__.py").write_text("")
    (nn / "__init__.py").write_text("")
    shutil.copyfile(NN / "_numba_cache.py", nn / "_numba_cache.py")
    (nn / "_tiny.py").write_text(TINY)
    return nn


def _run(package_root: Path, home: Path, *args: str, cwd: Path | None = None, **more_env: str) -> tuple[str, int, int, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(package_root), HOME=str(home), XDG_CACHE_HOME=str(home / "cache"),
               PYTHONDONTWRITEBYTECODE="1", **more_env)
    r = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=300,
                       cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    value, counts, path = r.stdout.splitlines()
    hits, misses = map(int, counts.split())
    return value, hits, misses, Path(path)


def _cached(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.nb[ic]")) if folder.exists() else []


def test_a_cache_built_with_the_package_is_found_after_a_copy_with_new_file_times(tmp_path):
    """What `pip install .` does: the build compiles into the package's folder; the install
    copies the files (new modification times) elsewhere. The copy loads the compiled code
    (a hit, no compile), read from the package and copied to the user's cache. Numba's own
    locators look in __pycache__ beside the module (and older Numbas compare file times)."""
    built = _package(tmp_path / "build")
    assert _run(tmp_path / "build", tmp_path / "builder", "build", "float")[:3] == ("3.0", 0, 1)
    shipped = built / "_kernels_cache"
    assert [n for n in _cached(shipped) if n.endswith(".nbi")] == ["_tiny.add-6.py%d%d.nbi" % sys.version_info[:2]]
    assert _cached(tmp_path / "builder") == []  # the build writes nothing to the builder's cache

    installed = tmp_path / "site-packages"
    shutil.copytree(tmp_path / "build", installed, copy_function=shutil.copyfile)
    later = os.stat(installed / "digitnet/nn/_tiny.py").st_mtime + 3600
    for p in (installed / "digitnet").rglob("*"):
        os.utime(p, (later, later))
    value, hits, misses, path = _run(installed, tmp_path / "user", "run", "float")
    assert (value, hits, misses) == ("3.0", 1, 0)
    assert path.is_relative_to(tmp_path / "user" / "cache" / "digitnet" / "numba")
    assert _cached(path) == _cached(shipped)  # the shipped entries, copied to the user's cache


def test_an_edited_source_is_compiled_again_not_served_the_old_code(tmp_path):
    """The stamp is the source's content: the same length and line numbers, another body."""
    nn = _package(tmp_path / "pkg")
    assert _run(tmp_path / "pkg", tmp_path / "user", "build", "float")[:3] == ("3.0", 0, 1)
    (nn / "_tiny.py").write_text(TINY.replace("return a + b", "return a - b"))
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "float")[:3] == ("-1.0", 0, 1)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "float")[:3] == ("-1.0", 1, 0)  # now cached for the user


def test_a_read_only_package_uses_its_cache_and_compiles_the_rest_into_the_users(tmp_path):
    """Installed where the user cannot write: the shipped code still loads (no compile), a
    version it lacks (other argument types) compiles into the user's cache, and the next run
    loads both; nothing is written into the package."""
    nn = _package(tmp_path / "pkg")
    _run(tmp_path / "pkg", tmp_path / "builder", "build", "float")
    before = _cached(nn)
    value, hits, misses, path = _run(tmp_path / "pkg", tmp_path / "user", "run", "float", "read-only")
    assert (value, hits, misses) == ("3.0", 1, 0)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "int", "read-only")[:3] == ("3", 0, 1)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "int", "read-only")[:3] == ("3", 1, 0)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "float", "read-only")[:3] == ("3.0", 1, 0)
    assert _cached(nn) == before and not (nn / "__pycache__").exists()
    assert path.is_relative_to(tmp_path / "user" / "cache" / "digitnet" / "numba")
    assert len([n for n in _cached(path) if n.endswith(".nbc")]) == 2


def test_with_nowhere_to_write_the_shipped_kernels_still_load_and_the_rest_compiles(tmp_path):
    """A read-only package and a home that cannot be written (no home, a read-only one): the
    kernels still load from the package's cache and what it lacks compiles (in memory); before,
    Numba raised 'no locator available' at import."""
    _package(tmp_path / "pkg")
    _run(tmp_path / "pkg", tmp_path / "builder", "build", "float")
    home = tmp_path / "user"
    value, hits, misses, path = _run(tmp_path / "pkg", home, "run", "float", "read-only", "no-home")
    assert (value, hits, misses) == ("3.0", 1, 0)
    assert _run(tmp_path / "pkg", home, "run", "int", "read-only", "no-home")[:3] == ("3", 0, 1)
    assert not any(home.rglob("*.nb[ic]"))  # nothing written where it cannot be


@pytest.mark.parametrize("damage", ["empty index", "truncated index", "garbage index", "empty data",
                                    "truncated data", "garbage data", "truncated shipped data"])
def test_a_damaged_cache_file_means_compiling_again_not_an_error(tmp_path, damage):
    """A truncated, empty or garbled index or data file (a full disk, a killed process, a
    bad copy) in the user's cache or in the package's is a miss: the function compiles, the
    damaged file is replaced, and the next run loads it. Numba itself raises from the
    unpickling, in the middle of training."""
    nn = _package(tmp_path / "pkg")
    if "shipped" in damage:
        _run(tmp_path / "pkg", tmp_path / "builder", "build", "float")
        folder = nn / "_kernels_cache"
    else:
        folder = _run(tmp_path / "pkg", tmp_path / "user", "run", "float")[3]
    kind = ".nbi" if "index" in damage else ".nbc"
    [victim] = [p for p in folder.iterdir() if p.name.endswith(kind)]
    good = victim.read_bytes()
    victim.write_bytes(b"" if "empty" in damage else good[: len(good) // 2] if "truncated" in damage
                       else b"\x80\x05not a pickle at all" * 7)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "float")[:3] == ("3.0", 0, 1)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "float")[:3] == ("3.0", 1, 0)  # replaced


def test_a_data_file_holding_another_signature_is_not_loaded(tmp_path):
    """Two processes saving two versions of one function at once can leave the index naming the
    other version's data file (Numba writes the index, then the data). Such a file is a miss:
    the right version compiles, instead of the wrong code being called."""
    _package(tmp_path / "pkg")
    _run(tmp_path / "pkg", tmp_path / "user", "run", "float")
    path = _run(tmp_path / "pkg", tmp_path / "user", "run", "int")[3]
    one, two = sorted(path.glob("*.nbc"))
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b)
    two.write_bytes(a)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "float")[:3] == ("3.0", 0, 1)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "int")[:3] == ("3", 0, 1)
    assert _run(tmp_path / "pkg", tmp_path / "user", "run", "float")[:3] == ("3.0", 1, 0)


def test_with_no_cache_folder_writable_anywhere_the_shipped_cache_is_read_and_the_rest_compiled(tmp_path):
    """A read-only package, $NUMBA_CACHE_DIR a file, and no home to make ~/.cache in (a service
    user's /nonexistent, a read-only container): Numba would refuse to set up the functions at
    all ("cannot cache function ... no locator available"). Here the shipped versions load,
    the others compile in memory, and nothing is written."""
    nn = _package(tmp_path / "pkg")
    _run(tmp_path / "pkg", tmp_path / "builder", "build", "float")
    before = _cached(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = dict(NUMBA_CACHE_DIR=str(blocker))
    value, hits, misses, path = _run(tmp_path / "pkg", blocker, "run", "float", "read-only", **env)
    assert (value, hits, misses, path.resolve()) == ("3.0", 1, 0, (nn / "_kernels_cache").resolve())
    assert _run(tmp_path / "pkg", blocker, "run", "int", "read-only", **env)[:3] == ("3", 0, 1)
    assert _run(tmp_path / "pkg", blocker, "run", "int", "read-only", **env)[:3] == ("3", 0, 1)  # not kept
    assert _cached(tmp_path) == before and blocker.read_text() == "not a folder"


def test_without_a_home_directory_nothing_is_written_in_the_current_folder(tmp_path):
    """'~' that cannot be expanded must not become ./~/.cache/... wherever the user runs."""
    nn = _package(tmp_path / "pkg")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    value, hits, misses, path = _run(tmp_path / "pkg", tmp_path / "unused", "run", "float", "homeless", cwd=cwd)
    assert value == "3.0" and list(cwd.iterdir()) == []
    assert path.is_absolute() and path.resolve().is_relative_to(nn.resolve())  # Numba's, beside the module


def test_a_home_that_cannot_be_found_is_not_the_current_folder(monkeypatch):
    """With HOME unset and the user not in the password database (a container run with a
    random uid), '~' stays '~': the cache must not become ./~/.cache in whatever folder the
    user runs from."""
    from numba.core import config

    from digitnet.nn import _numba_cache

    monkeypatch.setattr(config, "CACHE_DIR", "")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(os.path, "expanduser", lambda p: p)
    with pytest.raises(OSError, match="no user cache"):
        _numba_cache.user_cache_dir()


def test_numba_cache_dir_is_the_users_cache_when_set(tmp_path, monkeypatch):
    from digitnet.nn import _numba_cache
    from numba.core import config

    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path / "numba-cache"))
    assert _numba_cache.user_cache_dir() == tmp_path / "numba-cache"
    monkeypatch.setattr(config, "CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert _numba_cache.user_cache_dir() == tmp_path / "xdg" / "digitnet" / "numba"


def test_the_kernels_module_registers_the_locator():
    """The locator serves digitnet.nn's modules only; other packages keep Numba's own."""
    from numba.core import caching

    from digitnet.nn import _kernels, _numba_cache

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    assert impl._locator_classes[0] is _numba_cache.KernelCacheLocator
    assert isinstance(_kernels.sgd_batches._cache._impl.locator, _numba_cache.KernelCacheLocator)
    assert _numba_cache.KernelCacheLocator.from_function(test_the_kernels_module_registers_the_locator, __file__) is None


# --- the build step (setup.py) -----------------------------------------------------------------

def _setup_module():
    spec = importlib.util.spec_from_file_location("digitnet_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not as __main__: setup() is not called
    return module


def test_the_build_step_skips_without_numba_and_never_fails_the_install(tmp_path, monkeypatch, capsys):
    setup = _setup_module()
    ran = []

    def run(*a, **k):
        ran.append(a)
        return subprocess.CompletedProcess(a, 1, "", "Traceback ...\nLLVM ERROR: out of memory\n")

    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    done, line = setup.compile_kernels(str(tmp_path), run=run)
    assert not done and ran == [] and "Numba is not available" in line and "compiles them on first use" in line
    monkeypatch.undo()

    done, line = setup.compile_kernels(str(tmp_path), run=run)  # the compiling process fails
    assert not done and "compiling failed: LLVM ERROR: out of memory" in line

    def too_slow(*a, **k):
        raise subprocess.TimeoutExpired(a[0], k["timeout"])

    done, line = setup.compile_kernels(str(tmp_path), run=too_slow)
    assert not done and "TimeoutExpired" in line

    def ok(args, env, **k):
        assert env["PYTHONPATH"].split(os.pathsep)[0] == os.path.abspath(tmp_path)  # the built package first
        return subprocess.CompletedProcess(args, 0, "compiled the kernels for float32 784-16-16-10\n", "")

    assert setup.compile_kernels(str(tmp_path), run=ok) == (True, "digitnet: compiled the kernels for float32 784-16-16-10")

    # build_py itself: whatever compile_kernels does, the build goes on (and says why in one line)
    from setuptools import Distribution

    monkeypatch.setattr(setup.build_py, "run", lambda self: None)

    def broken(build_lib, run=None):
        raise RuntimeError("no space left")

    monkeypatch.setattr(setup, "compile_kernels", broken)
    cmd = setup.BuildPyWithKernels(Distribution())
    cmd.build_lib = str(tmp_path)
    cmd.run()
    assert "not compiling the kernels at build time (RuntimeError: no space left)" in capsys.readouterr().err
    cmd.editable_mode = True  # an editable install runs from the source tree: nothing to compile into
    monkeypatch.setattr(setup, "compile_kernels", lambda *a, **k: pytest.fail("compiled for an editable install"))
    cmd.run()


def test_numba_is_a_build_requirement_where_it_is_a_dependency():
    """The build compiles the kernels with Numba where the runtime has it: the same markers."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = [r for r in pyproject["build-system"]["requires"] if r.startswith("numba")]
    runtime = [r for r in pyproject["project"]["dependencies"] if r.startswith("numba")]
    assert build == runtime and len(build) == 1
