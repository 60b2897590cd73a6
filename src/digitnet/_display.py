"""Short reprs and rich notebook displays for digitnet's result objects.

Jupyter shows an object through its ``_repr_html_`` / ``_repr_png_`` methods; the classes
that users hold in a notebook (:class:`~digitnet.nn.network.Network`,
:class:`~digitnet.training.history.History`, :class:`~digitnet.tasks.evaluate.Evaluation`,
the playground's descent runs) build their tables with the helpers here. Their
``_repr_png_`` draws with the plots (whose figures render themselves: :mod:`digitnet._figure`),
imported only when a notebook asks for a picture, so ``import digitnet`` never loads matplotlib.
"""

from __future__ import annotations

from html import escape
from typing import Iterable, Sequence


def pct(v: float | None) -> str:
    """0.9016 -> '90.2%'; None -> '-'."""
    return "-" if v is None else f"{100 * v:.1f}%"


def num(v) -> str:
    """A number in at most 4 significant digits, whole numbers with thousands separators."""
    if v is None:
        return "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return f"{float(v):.4g}"


def html_table(title: str, header: Sequence[str], rows: Iterable[Sequence], note: str = "") -> str:
    """A small HTML table: a bold title line, a header row, the rows (cells escaped), a note."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    foot = f"<div style='color:#555'>{escape(note)}</div>" if note else ""
    return (f"<div><b>{escape(title)}</b><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{foot}</div>")


def html_with_picture(table: str, png: bytes | None) -> str:
    """``table`` beside a PNG (embedded as base64): a notebook shows the HTML of a rich
    display rather than its PNG, so a picture that says more goes into the HTML too."""
    if not png:
        return table
    import base64

    img = base64.b64encode(png).decode("ascii")
    return (f"<div style='display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap'>{table}"
            f"<img src='data:image/png;base64,{img}' style='max-width:100%'/></div>")
