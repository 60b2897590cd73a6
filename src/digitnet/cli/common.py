"""Helpers shared by the CLI modules: JSON output, tables, flags for settings, progress bars."""

from __future__ import annotations

import contextlib
import json
import math
import os

import click

from digitnet.jsonable import jsonable


def echo_json(obj) -> None:
    """Print one JSON object on stdout (arrays as lists, NaN as null)."""
    click.echo(json.dumps(jsonable(obj), indent=2))


def table(rows: list[list[str]], header: list[str] | None = None) -> str:
    """Right-aligned plain-text table."""
    allrows = ([header] if header else []) + rows
    widths = [max(len(str(r[i])) for r in allrows) for i in range(len(allrows[0]))]
    lines = [" ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in allrows]
    if header:
        lines.insert(1, " ".join("-" * w for w in widths))
    return "\n".join(lines)


def pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def flag(setting: str) -> str:
    """A setting's flag: ``batch_size`` -> ``--batch-size``."""
    return "--" + setting.replace("_", "-")


def cli_message(err) -> str:
    """A :class:`~digitnet.errors.DigitnetError`'s message in the command line's words: each
    setting it names (``{eta}`` in its template) written as its flag (``--eta``)."""
    render = getattr(err, "render", None)
    return render(flag) if render is not None else str(err)


class _LineProgress:
    """A progress 'bar' for logs: nothing while it runs, one plain line when it closes."""

    def __init__(self, total: int, desc: str, unit: str):
        import time

        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self._clock = time.perf_counter
        self._start = self._clock()
        self._then: tuple[str, float] | None = None  # what came after the count, and since when
        self._closed = self.stopped = False

    def update(self, k: int = 1) -> None:
        self.n += k

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def then(self, what: str) -> None:
        """The count is done and the work goes on with ``what`` (the line gives its time apart)."""
        self._then = (what, self._clock())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            units = {"batch": "batches"}.get(self.unit, self.unit + "s")  # the units the CLI counts in
            now = self._clock()
            line = f"{self.desc}: {self.n:,}/{self.total:,} {units} in "
            if self._then is None:
                line += f"{now - self._start:.1f} s"
            else:
                what, since = self._then
                line += f"{since - self._start:.1f} s, then {what} " + ("for" if self.stopped else "in")
                line += f" {now - since:.1f} s"
            click.echo(line + (", interrupted" if self.stopped else ""), err=True)


def is_terminal(stream) -> bool:
    """Whether ``stream`` (sys.stderr, sys.stdout) is a terminal; False for anything without
    ``isatty`` (a test runner's capture, a replaced stream)."""
    isatty = getattr(stream, "isatty", None)
    return isatty is not None and bool(isatty())


def _terminal_size() -> os.terminal_size | None:
    """stderr's size where it is a terminal (0 x 0 where it does not say); None elsewhere."""
    import sys

    if not is_terminal(sys.stderr):
        return None
    try:
        return os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file, or no size to ask for
        return os.terminal_size((0, 0))


@contextlib.contextmanager
def waiting(text: str):
    """``text`` on stderr while the block runs, erased when it ends, where stderr and stdout
    are a terminal: a wait that the user sees the reason for. Nothing in a log, nor where
    stdout goes through a pipe (``| tee``: its lines would reach the screen after the text,
    on its line, and stay). Yields the line: ``add(more)`` adds words to it."""
    import sys

    size = _terminal_size()
    line = _StatusLine((size.columns or 80) - 1 if size is not None and is_terminal(sys.stdout) else 0)
    line.add(text)
    try:
        yield line
    finally:
        line.erase()


class _StatusLine:
    """One line of words on stderr, added to and then erased; none where ``room`` is 0."""

    def __init__(self, room: int):
        self.room, self.shown = room, 0

    def add(self, text: str) -> None:
        import sys

        text = text[: self.room - self.shown]  # one line, so that the carriage return erases it all
        if text:
            try:
                sys.stderr.write(text)
                sys.stderr.flush()
            except (OSError, RuntimeError):  # RuntimeError: called while stderr was being written
                return
            self.shown += len(text)

    def erase(self) -> None:
        import sys

        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = 0


def progress_bar(total: int, desc: str, unit: str = "item"):
    """A progress bar on stderr with ``update(k)``, ``then(what)`` and ``close()``: redrawn in place (tqdm)
    when stderr is a terminal; otherwise (a log, a pipe, CI) one plain line when it closes,
    instead of hundreds of redrawn bars."""
    import sys

    size = _terminal_size()
    if size is None:
        return _LineProgress(total, desc, unit)
    from tqdm import tqdm

    class Bar(tqdm):
        def then(self, what: str) -> None:
            """The count is done and the work goes on with ``what``: said first, in place of
            the bar (a bar squeezed by a long text would shrink to a cell, the text cut)."""
            self.bar_format = "{desc}: " + what.replace("{", "{{").replace("}", "}}") + "… ({n_fmt}/{total_fmt} done)"
            self.refresh()

    # A terminal that reports no size (`script`, a container's pty) would get a bar of no
    # characters on no lines, that is none at all: 80 columns and 24 lines where it says 0
    # (fixed: tqdm's resizing would read the 0s again).
    shape = {"dynamic_ncols": True} if min(size) > 0 else {"ncols": size.columns or 80, "nrows": size.lines or 24}
    return Bar(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, mininterval=0.2, **shape)
