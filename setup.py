"""The build step that pyproject.toml cannot say: after the package's files are copied into
the build folder, compile the compiled engine's kernels there (digitnet.nn._numba_cache.build),
so that the wheel carries them and the first training after ``pip install .`` loads them
instead of compiling for about 15 seconds.

It never fails the install: where Numba is missing (the platforms without its wheels), an
editable install, or anything going wrong, it says why in one line and goes on; training then
compiles the kernels on first use. Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

# Runs in a fresh interpreter with the build folder first on the path. The package's
# __init__ is not run (it imports what the build environment does not have: click, Pillow,
# safetensors); only digitnet.nn and the few modules the kernels' warm-up needs, on NumPy.
_COMPILE = """
import sys, types
pkg = types.ModuleType("digitnet")
pkg.__path__ = [sys.argv[1] + "/digitnet"]
sys.modules["digitnet"] = pkg
from digitnet.nn import _numba_cache
print(_numba_cache.build())
"""

TIMEOUT_S = 900  # a slow machine compiles in about a minute; beyond this something is wrong


def compile_kernels(build_lib: str, run=subprocess.run) -> tuple[bool, str]:
    """Compile the kernels into ``build_lib``'s package. Returns (done, one line for the log)."""
    skip = "digitnet: not compiling the kernels at build time ({}); training compiles them on first use"
    try:
        import numba  # noqa: F401
    except Exception as e:  # not installed here (no wheels for this platform), or broken
        return False, skip.format(f"Numba is not available: {type(e).__name__}: {e}")
    # pip's isolated build environment is on PYTHONPATH (with the build requirements): keep it.
    path = os.pathsep.join(p for p in (os.path.abspath(build_lib), os.environ.get("PYTHONPATH")) if p)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_DISABLE_JIT", "NUMBA_CACHE_DIR")}
    env.update(PYTHONPATH=path, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ of the build environment's Python in the wheel
    try:
        r = run([sys.executable, "-c", _COMPILE, os.path.abspath(build_lib)], env=env, capture_output=True,
                text=True, timeout=TIMEOUT_S)
    except Exception as e:  # timed out, or could not start
        return False, skip.format(f"{type(e).__name__}: {e}")
    if r.returncode != 0:
        last = ((r.stderr or "").strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        return False, skip.format(f"compiling failed: {last[:300]}")
    return True, "digitnet: " + (r.stdout.strip().splitlines() or ["compiled the kernels"])[-1]


class BuildPyWithKernels(build_py):
    """build_py, then the kernels compiled into the build folder (not for editable installs,
    which run from the source tree and compile on first use)."""

    def run(self):
        super().run()
        if self.dry_run or getattr(self, "editable_mode", False):
            return
        try:
            _, line = compile_kernels(self.build_lib)
        except Exception as e:  # never fail the install for a cache
            line = f"digitnet: not compiling the kernels at build time ({type(e).__name__}: {e})"
        print(line, file=sys.stderr)


if __name__ == "__main__":  # as setuptools runs it (tests import compile_kernels alone)
    setup(cmdclass={"build_py": BuildPyWithKernels})
