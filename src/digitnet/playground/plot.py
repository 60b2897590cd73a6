"""Pictures of gradient descent: the curve with its steps, or a contour map with paths.

A formula in one variable is drawn as the curve C(x) with every step on it, coloured by
step number. A formula in two variables is drawn as a filled contour map of C(x, y) with
the path of every start; paths that ended in the same local minimum share a colour and
each minimum is a star, so "where you end depends on where you start" can be seen.
``surface=True`` adds the 3-D surface beside the map.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot, no window,
no global state); matplotlib is imported only when a picture is asked for.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from digitnet.files import write_figure
from digitnet.playground.descent import Descent, MultiDescent, explain_stop
from digitnet.playground.expr import Expression, parse

__all__ = ["plot_descent", "save_png"]

_FAR = 1e6  # points beyond this are left out when choosing what the picture shows


def plot_descent(
    expression: str | Expression,
    result: Descent | MultiDescent,
    *,
    surface: bool = False,
    resolution: int = 200,
):
    """A :class:`~matplotlib.figure.Figure` of ``result``, a descent on ``expression``.

    ``resolution`` is the number of grid points per axis for the curve or contour map;
    ``surface`` adds a 3-D surface beside a 2-D contour map.
    """
    expr = expression if isinstance(expression, Expression) else parse(expression)
    if isinstance(result, MultiDescent):
        runs, minima = result.runs, result.minima
    else:
        runs, minima = (result,), ()
    group = {i: m for m, minimum in enumerate(minima) for i in minimum.starts}
    caption = _caption(runs, minima)
    if expr.dim == 1:
        return _plot_curve(expr, runs, minima, caption, max(resolution, 100) * 3)
    return _plot_map(expr, runs, minima, group, caption, resolution, surface)


def save_png(figure, path, dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` as PNG atomically; returns the path.

    The image goes to a temporary file in the same folder first and is then renamed
    over ``path``, so a reader never sees half a file.
    """
    return write_figure(figure, path, dpi=dpi)


def _caption(runs, minima) -> str:
    first = runs[0]
    settings = f"eta = {first.eta:g}, momentum = {first.momentum:g}"
    if len(runs) == 1:
        text = f"{settings}: {explain_stop(first)}"
    else:
        counts: dict[str, int] = {}
        for run in runs:
            counts[run.stop_reason] = counts.get(run.stop_reason, 0) + 1
        stops = ", ".join(f"{c} {reason}" for reason, c in counts.items())
        found = f"{len(minima)} distinct local minim{'um' if len(minima) == 1 else 'a'} found"
        text = f"{len(runs)} starts, {settings}; {found}; stops: {stops}"
    return "\n".join(textwrap.wrap(text, 110))


def _title(expr: Expression) -> str:
    text = str(expr)
    text = text if len(text) <= 70 else text[:67] + "..."
    return f"Gradient descent on C({', '.join(expr.variables)}) = {text}"


def _extent(runs, minima) -> np.ndarray:
    """``(d, 2)`` the range of every coordinate the picture shows, with a margin."""
    points = np.concatenate([run.path for run in runs] + [m.point[None] for m in minima])
    near = points[np.isfinite(points).all(axis=1) & (np.abs(points).max(axis=1) <= _FAR)]
    if len(near) == 0:
        near = np.concatenate([run.start[None] for run in runs])
    lo, hi = near.min(axis=0), near.max(axis=0)
    pad = 0.15 * (hi - lo) + 0.5
    return np.stack([lo - pad, hi + pad], axis=1)


def _plot_curve(expr: Expression, runs, minima, caption: str, resolution: int):
    from digitnet._figure import Figure  # shows itself in a notebook (_repr_png_)

    v = expr.variables[0]
    lo, hi = _extent(runs, minima)[0]
    xs = np.linspace(lo, hi, resolution)[:, None]  # (resolution, 1)
    fig = Figure(figsize=(7.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(xs[:, 0], expr.value(xs), color="0.25", linewidth=1.5, label=f"C({v})")
    most = max(run.steps for run in runs)
    for run in runs:
        ax.plot(run.path[:, 0], run.values, color="0.5", linewidth=0.6, alpha=0.6)
        dots = ax.scatter(
            run.path[:, 0], run.values, c=np.arange(run.steps + 1), cmap="viridis",
            vmin=0, vmax=max(most, 1), s=16, zorder=3,
        )  # fmt: skip
    starts = np.array([[run.start[0], run.values[0]] for run in runs])
    ends = np.array([[run.final[0], run.value] for run in runs])
    ax.plot(*starts.T, "o", ms=9, mfc="none", mec="black", label="start", zorder=4)
    ax.plot(*ends.T, "X", ms=9, color="crimson", label="end", zorder=4)
    if minima:
        at = np.array([[m.point[0], m.value] for m in minima])
        ax.plot(*at.T, "*", ms=16, mfc="gold", mec="black", ls="none", label="local minimum")
    fig.colorbar(dots, ax=ax, label="step")
    ax.set_xlim(lo, hi)
    ax.set_title(_title(expr))
    ax.set_xlabel(v)
    ax.set_ylabel(f"C({v})")
    ax.legend(loc="best", fontsize=8)
    fig.supxlabel(caption, fontsize=8)
    return fig


def _plot_map(expr, runs, minima, group, caption, resolution, surface):
    from digitnet._figure import Figure  # shows itself in a notebook (_repr_png_)
    from matplotlib.lines import Line2D

    (x0, x1), (y0, y1) = _extent(runs, minima)
    X, Y = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    Z = expr.value(np.stack([X, Y], axis=-1))  # (resolution, resolution)
    finite = Z[np.isfinite(Z)]
    # Levels at quantiles of C spread the contour lines evenly over the picture, even
    # when C spans many orders of magnitude (x^4 far from its minimum).
    levels = np.unique(np.quantile(finite, np.linspace(0, 1, 21))) if finite.size else []

    fig = Figure(figsize=(12.5, 5.8) if surface else (7.5, 6.2), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.0], wspace=0.0) if surface else None
    ax = fig.add_subplot(grid[0, 0] if surface else 111)
    if len(levels) >= 2:
        shade = ax.contourf(X, Y, np.ma.masked_invalid(Z), levels=levels, cmap="viridis")
        ax.contour(X, Y, np.ma.masked_invalid(Z), levels=levels, colors="white",
                   linewidths=0.4, alpha=0.5)  # fmt: skip
        fig.colorbar(shade, ax=ax, label="C(x, y)")

    palette = ["#ff7f0e", "#e377c2", "#17becf", "#bcbd22", "#d62728", "#9467bd", "#8c564b"]
    single = len(runs) == 1
    for i, run in enumerate(runs):
        if i in group:
            colour = palette[group[i] % len(palette)]
        else:
            colour = "red" if run.stop_reason in ("diverged", "unbounded") else "white"
        style = dict(marker=".", ms=4) if single else {}
        ax.plot(run.path[:, 0], run.path[:, 1], color=colour, linewidth=1.3, **style)
        ax.plot(*run.start, "o", ms=5 if single else 3.5, mfc="none", mec=colour)
        ax.plot(*run.final, "X", ms=8 if single else 5, color=colour, mec="black", mew=0.5)
    for m in minima:
        ax.plot(*m.point, "*", ms=17, mfc="gold", mec="black")
        ax.annotate(f"C = {m.value:.4g}", m.point, textcoords="offset points",
                    xytext=(8, 8), fontsize=8, color="white")  # fmt: skip
    handles = [
        Line2D([], [], marker="o", ls="none", mfc="none", mec="black", label="start"),
        Line2D([], [], marker="X", ls="none", color="black", label="end"),
    ]
    if minima:
        handles.append(Line2D([], [], marker="*", ls="none", ms=12, mfc="gold", mec="black",
                              label="local minimum"))  # fmt: skip
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if 1 / 3 <= (x1 - x0) / (y1 - y0) <= 3:
        ax.set_aspect("equal")  # so -grad C shows at right angles to the contour lines
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(_title(expr), fontsize=10)

    if surface:
        ax3 = fig.add_subplot(grid[0, 1], projection="3d")
        # A 3-D box leaves wide empty margins inside its axes; zoom in to fill them.
        ax3.set_box_aspect(None, zoom=1.08)
        top = np.quantile(finite, 0.98) if finite.size else 1.0
        shown = np.clip(np.where(np.isfinite(Z), Z, top), None, top)  # spikes cut at 98%
        ax3.plot_surface(X, Y, shown, cmap="viridis", rcount=60, ccount=60, linewidth=0,
                         alpha=0.8)  # fmt: skip
        for i, run in enumerate(runs):
            colour = palette[group[i] % len(palette)] if i in group else "red"
            ax3.plot(run.path[:, 0], run.path[:, 1], np.minimum(run.values, top),
                     color=colour, linewidth=1.5)  # fmt: skip
        ax3.set_xlabel("x")
        ax3.set_ylabel("y")
        ax3.set_zlabel("C")
        ax3.set_title("the same as a surface (height: C)", fontsize=10)
    fig.supxlabel(caption, fontsize=8)
    return fig
