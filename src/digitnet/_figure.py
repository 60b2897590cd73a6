"""A matplotlib ``Figure`` that shows itself in a notebook, with no pyplot and no magic.

Jupyter shows the last expression of a cell through its ``_repr_*_`` methods. A plain
pyplot-free :class:`matplotlib.figure.Figure` has none (IPython registers a formatter for
figures only once pyplot's inline backend is active), so a fresh kernel would print
``<Figure size ... with 2 Axes>``. Every figure digitnet draws is this subclass instead,
whose :meth:`~Figure._repr_png_` renders it as a PNG.

This module imports matplotlib: import it only inside functions that draw, so that
``import digitnet`` stays fast.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure as _MplFigure


class Figure(_MplFigure):
    """A :class:`matplotlib.figure.Figure` with ``_repr_png_`` (white background, 100 dpi)."""

    def _repr_png_(self) -> bytes:
        return figure_png(self)


def figure_png(fig, dpi: int = 100) -> bytes:
    """``fig`` rendered as PNG bytes (white background)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()
