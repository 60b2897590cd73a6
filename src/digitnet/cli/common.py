"""Helpers shared by the CLI modules: JSON output and tables."""

from __future__ import annotations

import json
import math

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
