"""Where the compiled engine's kernels (:mod:`digitnet.nn._kernels`) are cached on disk, so
that only the first use on a machine compiles them, and, with a cache written when the
package is built, not even that.

Numba caches a function compiled with ``cache=True`` in files found by a *locator*: an index
(``NAME-LINE.pyXY.nbi``) of compiled versions, each keyed on the argument types, the CPU
(target triple, CPU name and features) and a hash of the bytecode, and stamped with Numba's
version and a stamp of the source file; a data file (``.nbc``) per version. Numba's own
locators write beside the module or in ``~/.cache/numba``, and older Numbas stamp the source
by its modification time, which ``pip install`` does not keep. This module registers
:class:`KernelCacheLocator` for the modules of this folder only (other packages' functions
keep Numba's locators). It

* stamps the source by the SHA-256 of its content, so a copy of the file (a new install of
  the same code) finds the cache and an edited file does not;
* reads the cache that the build wrote into the package (:data:`SHIPPED`, see
  :func:`build`): on the first use, the entries there that the user's cache lacks are copied
  into it (1.7 MB), so a read-only install needs no write there;
* writes what is compiled later (another CPU, Numba version, dtype or number of layers) to
  the user's cache, :func:`user_cache_dir`: ``$NUMBA_CACHE_DIR`` if set, else the platform's
  user cache directory (``~/.cache/digitnet/numba`` on Linux), one subfolder per installed
  copy of the package.

Its functions' caches (:func:`harden`, called at the end of :mod:`digitnet.nn._kernels`) never
fail a call: a damaged file or another version's data is a miss (compiled again, the file
replaced), and a cache folder that cannot be written means compiling in memory. Where no
folder can be written at all, the locator reads the shipped cache and writes nothing.

A cache built on another CPU, or by another Numba or Python version, simply misses (its keys,
its version stamp or its file names differ): the kernels compile on first use, as without it.
Importing this module imports Numba; :mod:`digitnet.nn._kernels` imports it first.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numba
from numba.core import caching, config

PACKAGE = Path(__file__).resolve().parent  # the folder whose modules this locator serves
SHIPPED = PACKAGE / "_kernels_cache"  # written by build() when the package is built

_building = False  # build(): write into SHIPPED instead of the user's cache
_seeded: set[tuple[str, str]] = set()  # (user cache folder, module) given the shipped entries, this process
_lock = threading.Lock()


def user_cache_dir() -> Path:
    """Where compiled kernels go: ``$NUMBA_CACHE_DIR`` if set (Numba's own setting), else the
    platform's user cache directory, ``digitnet/numba`` in it (Linux: ``$XDG_CACHE_HOME`` or
    ``~/.cache``; macOS: ``~/Library/Caches``; Windows: ``%LOCALAPPDATA%``). Raises OSError
    where no home directory is known."""
    if config.CACHE_DIR:
        return Path(config.CACHE_DIR)
    from numba.misc.appdirs import AppDirs

    path = Path(AppDirs(appname="digitnet", appauthor=False).user_cache_dir) / "numba"
    if not path.is_absolute():  # no home found ('~' left as it is): not a folder of the current one
        raise OSError(f"no user cache directory (the home directory is unknown): {path}")
    return path


@functools.lru_cache(maxsize=None)
def _content_hash(path: str, mtime_ns: int, size: int) -> str:
    # mtime and size only make the memo notice a file changed while the process runs
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def source_stamp(py_file: str | os.PathLike) -> tuple[str, str]:
    """The stamp of a source file in the cache's index: its content's SHA-256, not its mtime."""
    st = os.stat(py_file)
    return ("sha256", _content_hash(os.fspath(py_file), st.st_mtime_ns, st.st_size))


class KernelCacheLocator(caching._CacheLocator):
    """Numba's cache locator for the functions of :data:`PACKAGE`'s modules (see the module)."""

    def __init__(self, py_func, py_file, cache_path: Path):
        self._py_file = os.fspath(py_file)
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.fspath(cache_path)

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self):
        return source_stamp(self._py_file)

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.isfile(py_file) or Path(py_file).resolve().parent != PACKAGE:
            return None  # not ours: Numba's own locators
        if _building:
            path = SHIPPED
        else:
            try:
                path = user_cache_dir() / cls.get_suitable_cache_subpath(py_file)
            except Exception:  # no user cache directory can be named (e.g. no home)
                path = None
        self = cls(py_func, py_file, path) if path is not None else None
        try:
            if self is None:
                raise OSError("no user cache directory")
            self.ensure_cache_path()  # exists and writable
        except OSError:
            # Not writable (HOME read-only or missing, $NUMBA_CACHE_DIR a file...): Numba's own
            # locators (beside the module, ~/.cache/numba); where none can write either, read
            # the shipped cache and compile the rest in memory (Numba would refuse to cache).
            # (A build that cannot write into the package writes nowhere else either.)
            found = None if _building else _fallback(py_func, py_file)
            return found or ReadOnlyLocator(py_func, py_file, SHIPPED)
        if not _building:
            seed(path, py_file)
        return self


class ReadOnlyLocator(KernelCacheLocator):
    """The shipped cache, read only: where no cache folder can be written. Saving fails (with
    an OSError, which :func:`harden`'s caches ignore): what it lacks compiles in every process."""

    def ensure_cache_path(self):
        raise PermissionError(13, "no writable cache folder for the compiled kernels", self._cache_path)


def _locators():
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    return impl._locator_classes


def _fallback(py_func, py_file):
    """The first of Numba's own locators that can write, or None. Without a home directory,
    not Numba's user-wide one: it would make ``./~/.cache/numba`` in the current folder."""
    from numba.misc.appdirs import AppDirs

    skip = [KernelCacheLocator]
    if not os.path.isabs(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        skip += [c for c in (getattr(caching, n, None) for n in ("UserWideCacheLocator", "_UserWideCacheLocator")) if c]
    for other in _locators():
        if issubclass(other, tuple(skip)):
            continue
        try:
            found = other.from_function(py_func, py_file)
        except Exception:
            found = None
        if found is not None:
            return found
    return None


# --- a cache that a damaged file, a race or an unwritable folder cannot break -------------------

def _signature_args(sig) -> tuple:
    from numba.core import sigutils

    return tuple(sigutils.normalize_signature(sig)[0])


class SafeCacheFile(caching.IndexDataCacheFile):
    """Numba's index and data files, read so that a damaged one is a miss, not an error.

    Numba raises from the unpickling of a truncated, empty or foreign file (in the middle of
    training), and two processes saving different versions of one function at once can leave
    the index naming another version's data. Here an index that cannot be read is empty (the
    next save replaces it), a data file that cannot be read or that holds another signature
    than its key's is missing (compiled again and saved over), and a save that cannot write
    is skipped: the compiled code runs, it is only not kept."""

    def _load_index(self):
        try:
            return super()._load_index()
        except Exception:
            return {}

    def _load_data(self, name):
        try:
            return super()._load_data(name)
        except OSError:
            raise
        except Exception as e:  # load() treats an OSError as a missing file
            raise OSError(f"damaged cache file {name}: {type(e).__name__}") from e

    def load(self, key):
        data = super().load(key)
        try:
            if data is not None and tuple(data[3].args) != _signature_args(key[0]):
                return None  # another version's data (a race between two saves)
        except Exception:
            return None
        return data

    def save(self, key, data):
        try:
            super().save(key, data)
        except OSError:
            pass


class SafeFunctionCache(caching.FunctionCache):
    """Numba's per-function cache whose loads and saves never fail a call: see :class:`SafeCacheFile`."""

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception:  # e.g. object code that unpickles but cannot be rebuilt: compile it
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except OSError:  # the folder went away or cannot be written: not kept, still run
            pass


def harden(namespace: dict) -> int:
    """Give every cached Numba function of ``namespace`` (a module's globals) the caches of
    :class:`SafeFunctionCache` and :class:`SafeCacheFile`. Returns how many. Call it at the
    end of a module of kernels."""
    from numba.core.dispatcher import Dispatcher

    done = 0
    for f in list(namespace.values()):
        cache = getattr(f, "_cache", None) if isinstance(f, Dispatcher) else None
        if type(cache) is caching.FunctionCache and type(cache._cache_file) is caching.IndexDataCacheFile:
            cache.__class__ = SafeFunctionCache
            cache._cache_file.__class__ = SafeCacheFile
            done += 1
    return done


def _index_file(folder: Path, name: str, stamp) -> caching.IndexDataCacheFile:
    # SafeCacheFile: a damaged index in the user's cache reads as empty and is replaced
    return SafeCacheFile(cache_path=os.fspath(folder), filename_base=name[: -len(".nbi")], source_stamp=stamp)


def seed(target: Path, py_file: str | os.PathLike, shipped: Path | None = None) -> int:
    """Copy into the cache folder ``target`` the compiled versions of the functions of
    ``py_file`` in ``shipped`` (default :data:`SHIPPED`) that it lacks: those compiled from
    this very source (the same content) by this Numba version. Once per folder and module in
    a process; returns how many were copied. Never raises: a cache that cannot be copied
    only means compiling on first use."""
    shipped = SHIPPED if shipped is None else shipped
    key = (os.fspath(target), os.fspath(py_file))
    with _lock:
        if key in _seeded:
            return 0
        _seeded.add(key)
        try:
            stamp = source_stamp(py_file)
            names = sorted(p.name for p in shipped.glob(f"{Path(py_file).stem}.*.nbi"))
        except OSError:
            return 0
        copied = 0
        for name in names:
            try:
                copied += _merge_index(shipped, target, name, stamp)
            except Exception:  # a damaged or foreign file: that function compiles on first use
                continue
        return copied


def _merge_index(shipped: Path, target: Path, name: str, stamp) -> int:
    theirs = _index_file(shipped, name, stamp)
    entries = theirs._load_index()  # {} unless the same Numba version and the same source
    if not entries:
        return 0
    mine = _index_file(target, name, stamp)
    have = mine._load_index()
    missing = {k: v for k, v in entries.items() if k not in have}
    if not missing:
        return 0
    used = set(have.values())
    number = 1
    for key, data_name in missing.items():
        while mine._data_name(number) in used or (target / mine._data_name(number)).exists():
            number += 1
        new = mine._data_name(number)
        tmp = target / f"{new}.tmp.{os.getpid()}.{time.monotonic_ns()}"
        shutil.copyfile(shipped / data_name, tmp)
        os.replace(tmp, target / new)
        have[key] = new
        used.add(new)
    mine._save_index(have)  # atomic (a temporary file, then a rename), after the data
    return len(missing)


def register() -> None:
    """Put :class:`KernelCacheLocator` first among Numba's locators (once; it declines every
    function outside :data:`PACKAGE`)."""
    if KernelCacheLocator not in _locators():
        _locators().insert(0, KernelCacheLocator)


register()


# --- the build step ------------------------------------------------------------------------

def _warm_up() -> list[str]:
    """Call the kernels with the types that training uses, so that each is compiled (or found
    in the cache): float32 (the default; a float64 network compiles on first use), 3 and 2
    weight layers (the video's 784-16-16-10 and the README's 784-30-10), a sparse first layer
    (on uint8 codes and on float32 values), a dense one and raw pixels, and the dense rows of
    compressed inputs. Returns what it ran."""
    import numpy as np

    from digitnet.nn.compiled import CompiledSGD, SparseRows
    from digitnet.nn.network import Network

    rng = np.random.default_rng(0)
    pixels = np.where(rng.random((40, 784)) < 0.2, rng.integers(1, 256, (40, 784)), 0).astype(np.uint8)
    x = pixels.astype(np.float32) / np.float32(255)
    y, order = np.arange(40) % 10, np.arange(40)
    coded = SparseRows.of(x)  # raw pixels: every value k/255, kept as uint8 codes
    rows = SparseRows.of(x * np.float32(0.75))  # other values (deskewed digits): kept as float32
    for r in (coded, rows):
        r.dense(0, 10)
    done = []
    for layers in ((784, 16, 16, 10), (784, 30, 10)):
        net = Network.create(layers, seed=0)
        for inputs, px, sparse in ((coded, None, True), (rows, None, True), (x, None, False), (None, pixels, False)):
            CompiledSGD(net, inputs, y, pixels=px, sparse=sparse).steps(order, 0, 2, 10, 0.5)
        done.append("-".join(map(str, layers)))
    return done


def build() -> str:
    """Compile the kernels into :data:`SHIPPED`, for the package being built (``setup.py``
    runs this in a subprocess, with the built package first on the path). Returns a line
    for the build's log."""
    global _building
    if "digitnet.nn._kernels" in sys.modules:
        raise RuntimeError("build() must run before digitnet.nn._kernels is imported")
    _building = True
    start = time.perf_counter()
    done = _warm_up()
    files = sorted(SHIPPED.glob("*.nb[ic]"))
    size = sum(p.stat().st_size for p in files)
    return (f"compiled the kernels for float32 {', '.join(done)} with Numba {numba.__version__} in "
            f"{time.perf_counter() - start:.1f} s: {len(files)} files, {size / 1e6:.1f} MB in {SHIPPED}")
