"""`digitnet train`'s progress: a bar in a terminal (any terminal), one line per epoch in a log,
and neither looks stuck while an epoch's cost and accuracy are measured after its steps."""

from __future__ import annotations

import os
import select
import subprocess
import sys

import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.cli.train import MEASURING

pty = pytest.importorskip("pty", reason="no pseudo-terminals on this system")

ARGS = ["train", "--train-size", "600", "--epochs", "1", "--force"]


def _train_in_a_terminal(tmp_path, columns: int, lines: int) -> str:
    """What `digitnet train` draws on its stderr when that is a terminal of this size."""
    import fcntl
    import struct
    import termios

    main_fd, term = pty.openpty()
    fcntl.ioctl(term, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "digitnet", *ARGS, "--out", str(tmp_path / "m.safetensors")],
                         stdout=subprocess.DEVNULL, stderr=term, cwd=tmp_path)
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
            elif p.poll() is not None:
                break
    finally:
        os.close(main_fd)
    assert p.wait(timeout=120) == 0, drawn.decode(errors="replace")
    return drawn.decode(errors="replace")


def test_the_bar_is_full_while_the_epoch_is_measured(tmp_path):
    """The compiled engine's steps take less than the bar's redraw interval: the bar used to
    stay at 0/60 through the whole epoch and its measurement, as if stuck."""
    drawn = _train_in_a_terminal(tmp_path, 100, 24)
    assert "0/60 " in drawn  # drawn at the start...
    assert "60/60 " in drawn and MEASURING in drawn, drawn  # ...and full, saying what it does now


def test_a_terminal_that_reports_no_size_still_gets_a_bar(tmp_path):
    """`script`, or a container's terminal, can report 0 columns and 0 lines: tqdm then drew
    nothing at all."""
    drawn = _train_in_a_terminal(tmp_path, 0, 0)
    assert "Epoch 1/1:" in drawn and "60/60 " in drawn, repr(drawn)


def test_a_log_gets_the_steps_and_the_measuring_apart(tmp_path):
    with CliRunner().isolated_filesystem(temp_dir=tmp_path):
        r = CliRunner().invoke(main, ARGS)
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("Epoch 1/1: "))
    assert line.startswith("Epoch 1/1: 60/60 batches in ") and f", then {MEASURING} in " in line, line
