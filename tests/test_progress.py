"""`digitnet train`'s progress: a bar in a terminal (any terminal), one line per epoch in a log,
and neither looks stuck while an epoch's cost and accuracy are measured after its steps."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.cli.train import MEASURING

pty = pytest.importorskip("pty", reason="no pseudo-terminals on this system")

ARGS = ["train", "--train-size", "600", "--epochs", "1", "--force"]


def _train_in_a_terminal(tmp_path, columns: int, lines: int, *args: str, env: dict | None = None,
                         piped: bool = False, ctrl_c_after: str | None = None, status: int = 0) -> tuple[str, str]:
    """What `digitnet train` shows in a terminal of this size, and (``piped``: stdout goes
    through a pipe, as with ``| tee``, and the terminal gets stderr alone) what it prints on
    stdout. ``ctrl_c_after``: a Ctrl-C (SIGINT) a second after these words show."""
    import fcntl
    import struct
    import termios

    main_fd, term = pty.openpty()
    fcntl.ioctl(term, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "digitnet", *ARGS, "--out", str(tmp_path / "m.safetensors"), *args],
                         stdout=subprocess.PIPE if piped else term, stderr=term, cwd=tmp_path, env=env)
    os.close(term)
    drawn = b""
    try:
        while True:
            if select.select([main_fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(main_fd, 4096)
                except OSError:  # the program closed its end
                    break
                if not chunk:
                    break
                drawn += chunk
                if ctrl_c_after is not None and ctrl_c_after.encode() in drawn:
                    time.sleep(1)
                    p.send_signal(signal.SIGINT)
                    ctrl_c_after = None
            elif p.poll() is not None:
                break
    finally:
        os.close(main_fd)
    out = p.stdout.read().decode() if piped else ""
    assert p.wait(timeout=300) == status, drawn.decode(errors="replace")
    return drawn.decode(errors="replace"), out


def test_the_bar_is_full_while_the_epoch_is_measured(tmp_path):
    """The compiled engine's steps take less than the bar's redraw interval: the bar used to
    stay at 0/60 through the whole epoch and its measurement, as if stuck."""
    drawn, _ = _train_in_a_terminal(tmp_path, 100, 24)
    assert "0/60 " in drawn  # drawn at the start...
    assert f"Epoch 1/1: {MEASURING['full']}… (60/60 done)" in drawn, drawn  # ...and done, saying what it does now


@pytest.mark.parametrize("columns, lines", [(40, 20), (0, 0), (200, 0)])
def test_any_terminal_gets_a_bar_and_the_whole_word(tmp_path, columns, lines):
    """`script`, or a container's terminal, can report 0 columns and 0 lines: tqdm then drew
    nothing at all (and 0 lines alone gave 80 columns). A narrow terminal got a bar of one
    cell and the text after it cut: now the text is said first, in place of the bar."""
    drawn, _ = _train_in_a_terminal(tmp_path, columns, lines)
    assert "Epoch 1/1:   0%|" in drawn and f"Epoch 1/1: {MEASURING['full']}…" in drawn, repr(drawn)
    width = max(len(frame) for frame in drawn.split("\r") if frame.startswith("Epoch 1/1:"))  # the bar's
    assert width <= (columns or 80) and (columns != 200 or width > 100), (width, repr(drawn))


def test_a_log_gets_the_steps_and_the_measuring_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the model is written here
    r = CliRunner().invoke(main, ARGS)
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("Epoch 1/1: "))
    assert line.startswith("Epoch 1/1: 60/60 batches in ") and f", then {MEASURING['full']} in " in line, line


@pytest.mark.slow
def test_compiling_the_engine_is_a_wait_with_a_reason(tmp_path):
    """A network of a shape the package's cache lacks compiles the numba engine's kernels
    first, seconds to a minute: the terminal says the engine is starting (then erases it),
    and a line says it compiled; the next run loads it and says nothing."""
    from digitnet.nn.compiled import missing

    if missing() is not None:
        pytest.skip(f"the numba engine cannot run here: {missing()}")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}  # nothing compiled yet
    layers = ("--layers", "784,8,8,8,8,8,10")  # six layers: not among the shapes the build compiles
    screen, _ = _train_in_a_terminal(tmp_path, 100, 24, *layers, env=env)
    compiled = re.findall(r"Compiled the numba engine for this network in [0-9.]+ s; later runs load it from the "
                          r"cache\.\r\n", screen)
    assert len(compiled) == 1, repr(screen)
    order = [screen.index(x) for x in ("Checkpoint after every epoch", "Starting the numba engine…\r\x1b[K",
                                       "Compiled", "Epoch  1/1")]
    assert order == sorted(order), repr(screen)
    drawn, out = _train_in_a_terminal(tmp_path, 100, 24, *layers, env=env, piped=True)
    assert "Compiled" not in out and "Epoch  1/1" in out, out  # loaded from the cache this time
    # stdout through a pipe reaches the screen late: the words would stay on the line it joins
    assert "Starting" not in drawn, repr(drawn)


@pytest.mark.slow
def test_ctrl_c_while_the_engine_compiles_stops_once_it_is_ready(tmp_path):
    """Inside Numba's compiler a KeyboardInterrupt was lost (an "Exception ignored" traceback,
    and training went on) or broke it (RuntimeError, exit status 1). Now the terminal says
    it stops once the engine is ready, and it does: "Interrupted.", 130, nothing saved."""
    from digitnet.nn.compiled import missing

    if missing() is not None:
        pytest.skip(f"the numba engine cannot run here: {missing()}")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    screen, _ = _train_in_a_terminal(tmp_path, 100, 24, "--layers", "784,8,8,8,8,10", "--dtype", "float64", env=env,
                                     ctrl_c_after="Starting the numba engine…", status=130)
    assert "Starting the numba engine… stopping once it is ready\r\x1b[K" in screen, repr(screen)
    assert screen.endswith("Interrupted.\r\n") and "Traceback" not in screen and "Exception" not in screen, repr(screen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no model, no checkpoint
