"""Writing files safely, and the one rule that names model files.

Every file digitnet writes (models, checkpoints, figures, saved drawings) goes through
:func:`atomic_write_bytes`: the bytes go to a temporary file next to the target, are
flushed to disk, and the temporary file is renamed over the target, so a reader never
sees half a file and an interrupted write leaves the previous file intact.

The temporary file is named after its target and the writing process,
``.NAME.PID.RANDOM.tmp``; one left behind by a process that was killed mid-write is removed
by the next successful write of the same target. A target that exists and is not a
regular file (a folder, a FIFO, a device such as ``/dev/null``) is never replaced.

A Ctrl-C during a write takes effect when the write is done (:func:`uninterrupted`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import stat
import tempfile
import threading
from pathlib import Path
from typing import Callable

from digitnet.errors import FileWriteError

MODEL_SUFFIX = ".safetensors"
CHECKPOINT_SUFFIX = ".ckpt.safetensors"
TMP_SUFFIX = ".tmp"
_TMP_MIDDLE = re.compile(r"(\d+)\.[A-Za-z0-9_]+")  # PID.RANDOM, what mkstemp puts between prefix and suffix


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or we cannot tell: leave its file alone
    return True


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files of earlier writes of ``path`` whose writing process no longer runs."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    prefix = _tmp_prefix(path)
    stale = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TMP_SUFFIX)):
            continue
        m = _TMP_MIDDLE.fullmatch(name[len(prefix) : -len(TMP_SUFFIX)])
        if m and not _alive(int(m.group(1))):
            stale.append(directory / name)
    return stale


def check_replaceable(path: str | os.PathLike) -> Path:
    """``path``, if a write may create or replace it; a :class:`FileWriteError` if it exists
    and is not a regular file (a folder, a FIFO, a device), which a write must not replace."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as e:
        raise FileWriteError(f"Cannot save to {path}: {e.strerror or e}.") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a special file (a device, FIFO or socket)"
        raise FileWriteError(
            f"Cannot save to {path}: it is {what}, not a regular file, and will not be replaced. "
            "Choose another file name."
        )
    return path


@contextlib.contextmanager
def uninterrupted(deliver: bool = True, on_hold: Callable[[], None] | None = None):
    """Ctrl-C (SIGINT) inside the block takes effect when the block ends (with ``deliver``
    False, not at all): for work that must not be cut in the middle, such as a file being
    written, or Numba compiling (a KeyboardInterrupt raised inside its compiler is lost, or
    breaks the compiled code). ``on_hold()`` is called at the first Ctrl-C held (to say
    so). Only in the main thread, where Python handles signals; elsewhere, and inside
    another such block (which holds the Ctrl-C for both), it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or getattr(previous, "holds_ctrl_c", False):  # not Python's handler; or held already
        yield
        return
    caught: list[int] = []

    def hold(signum, frame):
        caught.append(signum)
        if on_hold is not None and len(caught) == 1:
            on_hold()

    hold.holds_ctrl_c = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and deliver:
        if callable(previous):
            previous(signal.SIGINT, None)  # Python's own handler raises KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename); returns the path.

    Raises :class:`FileWriteError` (naming the path and what to do) when the folder is
    missing or not writable, the disk is full, or ``path`` is not a regular file.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileWriteError(f"Cannot save to {path}: the directory {directory} does not exist. Create it first.")
    check_replaceable(path)
    with uninterrupted():
        return _write(path, directory, data)


def _write(path: Path, directory: Path, data: bytes) -> Path:
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_tmp_prefix(path)}{os.getpid()}.", suffix=TMP_SUFFIX, dir=directory)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        check_replaceable(path)  # again: it may have become a FIFO meanwhile
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise FileWriteError(
            f"Cannot save to {path}: {e.strerror or e}. Check that the directory is writable and the disk "
            "has free space; any previous file there is unchanged."
        ) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    for old in stale_temporaries(path):
        try:
            os.unlink(old)
        except OSError:
            pass
    return path


def write_figure(fig, path: str | os.PathLike, dpi: int = 100, **savefig) -> Path:
    """Draw a matplotlib figure into a PNG file at ``path``, atomically; returns the path.

    ``savefig`` keywords (e.g. ``facecolor="white"``) go to ``Figure.savefig``.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **savefig)
    return atomic_write_bytes(path, buf.getvalue())


# --- model file names ---------------------------------------------------------------


def model_stem(name: str | os.PathLike) -> str:
    """What a model is called, without its file suffix: ``"net"``, ``"net.safetensors"`` and
    ``"net.ckpt.safetensors"`` all give ``"net"`` (folders kept: ``"out/net"``).

    Only one suffix is taken off, so ``"h.safetensors.safetensors"`` is the model
    ``"h.safetensors"``, saved as ``h.safetensors.safetensors``.
    """
    name = os.fspath(name)
    for suffix in (CHECKPOINT_SUFFIX, MODEL_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def model_path(name: str | os.PathLike) -> Path:
    """The model file for a model's name: ``net``, ``net.safetensors`` or ``net.ckpt.safetensors``
    -> ``net.safetensors`` (a checkpoint's name gives the model it belongs to)."""
    return Path(model_stem(name) + MODEL_SUFFIX)


def checkpoint_path(out: str | os.PathLike) -> Path:
    """The training checkpoint next to the model file ``out``: ``net.safetensors`` (or ``net``)
    -> ``net.ckpt.safetensors``. Only ``.safetensors`` is taken off, so a checkpoint never
    has the name of the model file it belongs to."""
    out = os.fspath(out)
    stem = out[: -len(MODEL_SUFFIX)] if out.endswith(MODEL_SUFFIX) else out
    return Path(stem + CHECKPOINT_SUFFIX)
