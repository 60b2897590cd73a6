"""Gradient descent on a formula of one or two variables, the way the notes explain it.

Before the notes apply gradient descent to the network's 13,002 weights and biases, they
show it on small functions: the slope says which way to step, ``-grad C`` points
downhill, the steps are small, the minimum you find depends on where you start, and a
larger gradient component means that variable matters more. This module runs that
experiment and returns every point visited as arrays; it never prints.

The update, with learning rate ``eta`` and momentum ``mu`` (``mu = 0`` is plain descent)::

    v <- mu * v - eta * grad C(p)
    p <- p + v

A run stops for one of :data:`STOP_REASONS`:

- ``converged``: ``|grad C| < tol`` (and the last step was as small as such a gradient
  makes it), so ``p`` is a stationary point, usually a minimum: :attr:`Descent.stationary`
  says which kind, from the curvature there (the eigenvalues of the Hessian), so that a
  saddle (``x^2 - y^2`` from (1, 0)) or a maximum is not mistaken for a minimum.
- ``oscillating``: the point bounces back and forth across a valley, returning close to
  where it was two steps ago, while C no longer falls, for 20 steps in a row: the step is
  too large for the curvature (for ``x^2``, ``eta = 1`` jumps between +1 and -1 forever).
- ``diverged``: C or the point grew 10^12-fold, or C rose above its start value for
  20 steps in a row: the step is too large for the curvature (for ``x^2``, ``eta > 1``).
- ``unbounded``: C kept falling, and looking ahead along ``-grad C`` as far as
  10^6 (1 + |p|) it falls at least half as fast as its slope says (or it fell
  10^12-fold): there is no minimum that way (the notes' literal ``3/2x^2 + 1/2y`` falls
  without end as y -> -inf).
- ``undefined``: C or its gradient is nan at the next point (``log`` of a negative
  number, ``sqrt`` below 0, a division by zero).
- ``max_steps``: none of the above within the step budget.

Shapes: ``d`` is the number of variables; a point is ``(d,)``, a path ``(steps + 1, d)``.
Several starts run together as arrays ``(n, d)``, each stopping on its own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from digitnet.errors import ConfigError, ExpressionError
from digitnet.playground.expr import Expression, parse, square_linear_terms

__all__ = [
    "MAX_STARTS",
    "MAX_STEPS",
    "STOP_REASONS",
    "Descent",
    "Minimum",
    "MultiDescent",
    "bounded_alternative",
    "descend",
    "descend_many",
    "describe_gradient",
    "explain_stop",
    "find_minima",
    "gradient_shares",
    "random_starts",
]

STOP_REASONS = ("converged", "oscillating", "diverged", "unbounded", "undefined", "max_steps")
MAX_STEPS = 100_000  # most steps one run may take
MAX_STARTS = 1_000  # most starts one call may run
_MAX_POINTS = 2_000_000  # starts * (steps + 1): the path arrays are kept in memory

_BLOWUP = 1e12  # |C| or a coordinate this many times its size at the start has blown up
_RISE_STEPS = 20  # C above its start value and rising this many steps in a row: diverged
_BOUNCE_STEPS = 20  # back and forth without C falling this many steps in a row: oscillating
_BOUNCE_RETURN = 0.25  # |p_k - p_{k-2}| under this fraction of the last step is a bounce back
_FALL_STEPS = 10  # C falling this many steps in a row: look ahead for a bottom
_LOOK_AHEAD = 10.0 ** np.arange(7)  # distances 1 .. 1e6 (times 1 + |p|) along -grad C


@dataclass(frozen=True, eq=False)
class Descent:
    """One run of gradient descent from one start."""

    expression: str  # the formula as it was read, e.g. "3/2*x^2 + 1/2*y^2"
    variables: tuple[str, ...]  # names of the d coordinates, e.g. ("x", "y")
    path: np.ndarray  # (steps + 1, d) every point visited; path[0] is the start
    values: np.ndarray  # (steps + 1,) C at each point
    gradients: np.ndarray  # (steps + 1, d) grad C at each point
    stop_reason: str  # one of STOP_REASONS
    eta: float  # learning rate
    momentum: float  # mu; 0 is plain gradient descent
    tol: float  # |grad C| under which the run has converged
    max_steps: int  # the step budget it had
    # For a converged run, the kind of stationary point it stopped on, from the Hessian's
    # eigenvalues there: "minimum", "saddle", "maximum" or "flat" (no curvature seen);
    # "" for runs that did not converge.
    stationary: str = ""
    curvature: tuple[float, ...] = ()  # the Hessian's eigenvalues at the end point, lowest first
    curvature_axes: np.ndarray | None = None  # (d, d) their eigenvectors, as columns

    @property
    def steps(self) -> int:
        """Number of steps taken: ``len(path) - 1``."""
        return len(self.path) - 1

    @property
    def start(self) -> np.ndarray:
        """``(d,)`` the first point."""
        return self.path[0]

    @property
    def final(self) -> np.ndarray:
        """``(d,)`` the last point reached (the last one where C was defined)."""
        return self.path[-1]

    @property
    def value(self) -> float:
        """C at :attr:`final`."""
        return float(self.values[-1])

    @property
    def gradient_at_start(self) -> np.ndarray:
        """``(d,)`` grad C at the start: which way is uphill, and how steeply."""
        return self.gradients[0]

    # --- display (a notebook shows _repr_html_ and _repr_png_) ---------------------------
    def _point(self, p) -> str:
        return "(" + ", ".join(_fmt(c) for c in p) + ")" if len(p) != 1 else _fmt(p[0])

    def __repr__(self) -> str:
        kind = f" at a {self.stationary}" if self.stationary else ""
        return (f"Descent(C = {self.expression}: {self._point(self.start)} -> {self._point(self.final)} in "
                f"{self.steps:,} steps, {self.stop_reason}{kind}, C = {_fmt(self.value)})")

    def _repr_html_(self) -> str:
        from digitnet._display import html_table, html_with_picture

        v = ", ".join(self.variables)
        rows = [("start", self._point(self.start), _fmt(self.values[0]), _fmt(np.linalg.norm(self.gradients[0]))),
                ("end", self._point(self.final), _fmt(self.value), _fmt(np.linalg.norm(self.gradients[-1])))]
        note = (f"{self.steps:,} steps, eta {self.eta:g}" + (f", momentum {self.momentum:g}" if self.momentum else "")
                + f". Stopped: {explain_stop(self)}")
        table = html_table(f"Gradient descent on C = {self.expression}", ["", f"({v})", "C", "|grad C|"], rows, note)
        return html_with_picture(table, self._repr_png_())

    def _repr_png_(self) -> bytes | None:
        """The path on the curve or contour map (:func:`digitnet.playground.plot.plot_descent`)."""
        if len(self.variables) > 2:
            return None
        from digitnet.playground.plot import plot_descent  # a notebook display hook, imported lazily

        return plot_descent(self.expression, self)._repr_png_()


@dataclass(frozen=True, eq=False)
class Minimum:
    """A distinct local minimum, with the starts whose descent ended in it."""

    point: np.ndarray  # (d,) the lowest end point among those starts
    value: float  # C at point
    starts: tuple[int, ...]  # indices into MultiDescent.runs


@dataclass(frozen=True, eq=False)
class MultiDescent:
    """Gradient descent from several starts, and the distinct minima they found."""

    expression: str  # the formula as it was read
    variables: tuple[str, ...]  # names of the d coordinates
    runs: tuple[Descent, ...]  # one per start, in the order of the starts
    minima: tuple[Minimum, ...]  # lowest value first

    @property
    def starts(self) -> np.ndarray:
        """``(n, d)`` the start points."""
        return np.array([run.start for run in self.runs])

    @property
    def best(self) -> int:
        """Index of the run that ended lowest (ignoring runs where C was undefined)."""
        finals = np.array([run.value for run in self.runs])
        finals = np.where(np.isnan(finals), np.inf, finals)
        return int(np.argmin(finals))

    def stop_counts(self) -> dict[str, int]:
        """How many runs stopped for each reason in :data:`STOP_REASONS`."""
        return {r: sum(run.stop_reason == r for run in self.runs) for r in STOP_REASONS}

    # --- display ------------------------------------------------------------------------
    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {r}" for r, n in self.stop_counts().items() if n)
        best = f"; lowest C = {_fmt(self.minima[0].value)}" if self.minima else ""
        return (f"MultiDescent(C = {self.expression}: {len(self.runs)} starts ({counts}), "
                f"{len(self.minima)} distinct minim{'um' if len(self.minima) == 1 else 'a'}{best})")

    def _repr_html_(self) -> str:
        from digitnet._display import html_table, html_with_picture

        rows = [(m + 1, self.runs[0]._point(mn.point), _fmt(mn.value), len(mn.starts)) for m, mn in enumerate(self.minima)]
        counts = ", ".join(f"{n} {r}" for r, n in self.stop_counts().items() if n)
        table = html_table(f"Gradient descent on C = {self.expression} from {len(self.runs)} starts",
                           ["minimum", f"({', '.join(self.variables)})", "C", "starts that end there"], rows,
                           f"Runs stopped: {counts}.")
        return html_with_picture(table, self._repr_png_())

    def _repr_png_(self) -> bytes | None:
        """Every path on the curve or contour map (:func:`digitnet.playground.plot.plot_descent`)."""
        if len(self.variables) > 2:
            return None
        from digitnet.playground.plot import plot_descent  # a notebook display hook, imported lazily

        return plot_descent(self.expression, self)._repr_png_()


def random_starts(
    rng: np.random.Generator, n: int, dim: int, box: tuple[float, float] = (-2.0, 2.0)
) -> np.ndarray:
    """``(n, dim)`` starts drawn uniformly from ``[lo, hi]`` in every coordinate."""
    lo, hi = float(box[0]), float(box[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"The box must be two numbers lo < hi. Got {lo:g}, {hi:g} instead.")
    if not 1 <= n <= MAX_STARTS:
        raise ConfigError(f"The number of starts must be 1 to {MAX_STARTS}. Got {n} instead.")
    return rng.uniform(lo, hi, size=(n, dim))


def descend(
    expression: str | Expression,
    start,
    *,
    eta: float = 0.1,
    steps: int = 1000,
    momentum: float = 0.0,
    tol: float = 1e-6,
) -> Descent:
    """Run gradient descent on ``expression`` from ``start`` ``(d,)`` (a number if d = 1).

    Raises :class:`~digitnet.errors.ExpressionError` if the formula cannot be read or C
    is undefined at the start, and :class:`~digitnet.errors.ConfigError` for a start of
    the wrong size or settings out of range.
    """
    expr = expression if isinstance(expression, Expression) else parse(expression)
    starts = _as_starts(np.atleast_1d(np.asarray(start, dtype=float))[None, :], expr)
    run = descend_many(expr, starts, eta=eta, steps=steps, momentum=momentum, tol=tol).runs[0]
    if run.steps == 0 and run.stop_reason == "undefined":
        where = ", ".join(f"{v} = {_fmt(c)}" for v, c in zip(expr.variables, run.start))
        raise ExpressionError(
            f"C = {expr} is undefined at the start ({where}): choose a start where it is "
            "defined (log and sqrt need positive arguments, division a nonzero divisor)"
        )
    return run


def descend_many(
    expression: str | Expression,
    starts,
    *,
    eta: float = 0.1,
    steps: int = 1000,
    momentum: float = 0.0,
    tol: float = 1e-6,
) -> MultiDescent:
    """Run gradient descent from every row of ``starts`` ``(n, d)``; group the minima.

    The runs go together as arrays, each stopping on its own. Runs that converged to a
    local minimum are grouped into distinct minima by :func:`find_minima`.
    """
    expr = expression if isinstance(expression, Expression) else parse(expression)
    starts = _as_starts(starts, expr)
    _check_settings(eta, steps, momentum, tol, len(starts))
    runs = _run(expr, starts, float(eta), int(steps), float(momentum), float(tol))
    return MultiDescent(str(expr), expr.variables, tuple(runs), find_minima(expr, runs))


def bounded_alternative(run: Descent, expression: Expression | None = None) -> Descent | None:
    """For an ``unbounded`` run: the formula with its linear terms squared, descended.

    The notes' ``3/2x^2 + ½y`` has no minimum; ``3/2x^2 + ½y^2`` is most likely what was
    meant. Returns the run of that formula from the same start with the same settings if
    it converges, else None (also for runs that were not unbounded). Pass the parsed
    ``expression`` the run descended: its echo (``run.expression``) can be longer than a
    typed formula may be, and is read again only when it is not given.
    """
    if run.stop_reason != "unbounded":
        return None
    if expression is None:
        try:
            expression = parse(run.expression)
        except ExpressionError:  # an echo over the length limit
            return None
    squared = square_linear_terms(expression)
    if squared is None:
        return None
    try:
        other = descend(
            squared, run.start, eta=run.eta, steps=run.max_steps, momentum=run.momentum,
            tol=run.tol,
        )  # fmt: skip
    except ExpressionError:  # undefined at the start
        return None
    return other if other.stop_reason == "converged" else None


def _as_starts(starts, expr: Expression) -> np.ndarray:
    p = np.asarray(starts, dtype=float)
    if p.ndim != 2 or p.shape[1] != expr.dim:
        names = ",".join(expr.variables)
        got = p.shape[-1] if p.ndim else 1
        raise ConfigError(
            f"A start for C({', '.join(expr.variables)}) needs {expr.dim} "
            f"coordinate{'s' if expr.dim > 1 else ''} ({names}). Got {got} instead."
        )
    if len(p) == 0 or len(p) > MAX_STARTS:
        raise ConfigError(f"The number of starts must be 1 to {MAX_STARTS}. Got {len(p)} instead.")
    if not np.isfinite(p).all():
        raise ConfigError("Every start coordinate must be a finite number.")
    return p


def _check_settings(eta, steps, momentum, tol, n: int) -> None:
    if not (np.isfinite(eta) and eta > 0):
        raise ConfigError(f"The 'eta' parameter must be > 0. Got {eta} instead.")
    if not (np.isfinite(momentum) and 0 <= momentum < 1):
        raise ConfigError(f"The 'momentum' parameter must be in [0, 1). Got {momentum} instead.")
    if not (np.isfinite(tol) and tol > 0):
        raise ConfigError(f"The 'tol' parameter must be > 0. Got {tol} instead.")
    if int(steps) != steps or not 1 <= steps <= MAX_STEPS:
        raise ConfigError(f"The 'steps' parameter must be 1 to {MAX_STEPS}. Got {steps} instead.")
    if n * (steps + 1) > _MAX_POINTS:
        raise ConfigError(
            f"{n} starts x {steps} steps is too many points to keep; "
            f"keep starts x steps under {_MAX_POINTS:,}"
        )


def _run(
    expr: Expression, starts: np.ndarray, eta: float, steps: int, momentum: float, tol: float
) -> list[Descent]:
    n, d = starts.shape
    path = np.full((steps + 1, n, d), np.nan)
    values = np.full((steps + 1, n), np.nan)
    gradients = np.full((steps + 1, n, d), np.nan)
    last = np.zeros(n, dtype=int)  # index of each run's last recorded point
    reasons = np.zeros(n, dtype=np.int8)  # 1 + index into STOP_REASONS once stopped

    active = np.arange(n)  # the runs still going
    p = starts.copy()  # (m, d) their points
    velocity = np.zeros_like(p)  # (m, d)
    rises = np.zeros(n, dtype=int)  # (m,) steps in a row on which C went up
    bounces = np.zeros(n, dtype=int)  # (m,) steps in a row back near p two steps ago, C not falling
    p_prev = p_prev2 = None  # (m, d) the points one and two steps ago
    C_prev2 = None  # (m,) C two steps ago
    falls = np.zeros(n, dtype=int)  # (m,) steps in a row on which C went down
    C_prev = C0 = None  # (m,) C one step ago, and at the starts
    far = _BLOWUP * (1.0 + np.abs(starts).max(axis=1))  # (m,) coordinates beyond are huge
    # A step no longer than a gradient at the tolerance gives (10x slack, and the
    # momentum's 1 / (1 - mu) gain) tells a settled run from one rushing through.
    settled_step = 10.0 * eta * tol / (1.0 - momentum)

    for k in range(steps + 1):
        C, g = expr.value_and_gradient(p)  # (m,), (m, d)
        if k == 0:
            C0, C_prev = C.copy(), C.copy()
        defined = np.isfinite(C) & np.isfinite(g).all(axis=1)
        recorded = defined if k > 0 else np.ones(len(active), dtype=bool)
        rows = active[recorded]
        path[k, rows], values[k, rows], gradients[k, rows] = p[recorded], C[recorded], g[recorded]
        last[rows] = k

        # Why each run stops here, if it does; the first reason found wins.
        code = np.zeros(len(active), dtype=np.int8)
        mark = functools.partial(_mark, code)

        # Blown up (nan never compares, so a nan C at a sane point is "undefined").
        huge = (np.abs(p).max(axis=1) > far) | ~np.isfinite(p).all(axis=1)
        huge |= np.abs(C) > _BLOWUP * (1.0 + np.abs(C0))
        falling_away = C < C0
        mark(huge & falling_away, "unbounded")
        mark(huge, "diverged")
        mark(~defined, "undefined")

        grad_norm = np.linalg.norm(g, axis=1)
        mark((grad_norm < tol) & (np.linalg.norm(velocity, axis=1) <= settled_step), "converged")

        with np.errstate(invalid="ignore"):
            rises = np.where(C > C_prev, rises + 1, 0)
            falls = np.where(C < C_prev, falls + 1, 0)
        mark((rises >= _RISE_STEPS) & (C > C0), "diverged")
        if p_prev2 is not None:
            step = np.linalg.norm(p - p_prev, axis=1)
            back = np.linalg.norm(p - p_prev2, axis=1) <= _BOUNCE_RETURN * step
            with np.errstate(invalid="ignore"):
                stuck = C >= C_prev2 - 1e-12 * (1.0 + np.abs(C_prev2))
            bounces = np.where(back & stuck & (step > settled_step), bounces + 1, 0)
            mark(bounces >= _BOUNCE_STEPS, "oscillating")
        if k % _FALL_STEPS == 0:
            look = (code == 0) & (falls >= _FALL_STEPS) & (grad_norm > 0)
            if look.any():
                endless = np.zeros(len(active), dtype=bool)
                endless[look] = _falls_without_end(expr, p[look], C[look], g[look])
                mark(endless, "unbounded")
        if k == steps:
            mark(np.ones(len(active), dtype=bool), "max_steps")

        reasons[active] = code
        going = code == 0
        if not going.any():
            break
        C_prev2 = C_prev[going] if k > 0 else None
        p_prev2 = p_prev[going] if p_prev is not None else None
        active, p, velocity, g = active[going], p[going], velocity[going], g[going]
        C_prev, C0, rises, falls = C[going], C0[going], rises[going], falls[going]
        far, bounces, p_prev = far[going], bounces[going], p

        velocity = momentum * velocity - eta * g
        p = p + velocity

    runs = []
    for i in range(n):
        reason = STOP_REASONS[reasons[i] - 1]
        final = path[last[i], i]
        eigenvalues, axes = _curvature(expr, final) if reason in ("converged", "oscillating") else ((), None)
        runs.append(Descent(
            expression=str(expr),
            variables=expr.variables,
            path=path[: last[i] + 1, i].copy(),
            values=values[: last[i] + 1, i].copy(),
            gradients=gradients[: last[i] + 1, i].copy(),
            stop_reason=reason,
            eta=eta,
            momentum=momentum,
            tol=tol,
            max_steps=steps,
            stationary=_stationary_kind(eigenvalues) if reason == "converged" else "",
            curvature=tuple(float(v) for v in eigenvalues),
            curvature_axes=axes,
        ))  # fmt: skip
    return runs


def _curvature(expr: Expression, p: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The Hessian of C at ``p``, by central differences of the exact gradient: its
    eigenvalues ``(d,)``, lowest first, and eigenvectors ``(d, d)`` as columns (nan and
    None where C is undefined close by)."""
    d = len(p)
    h = 1e-4 * (1.0 + np.linalg.norm(p))
    offsets = np.concatenate([np.eye(d), -np.eye(d)]) * h  # (2d, d)
    g = expr.gradient(p[None, :] + offsets)  # (2d, d)
    hessian = (g[:d] - g[d:]).T / (2.0 * h)  # column i: d grad C / d p_i
    if not np.isfinite(hessian).all():
        return np.full(d, np.nan), None
    return np.linalg.eigh(0.5 * (hessian + hessian.T))


def _stationary_kind(eigenvalues) -> str:
    """"minimum", "saddle", "maximum" or "flat", from the Hessian's eigenvalues."""
    ev = np.asarray(eigenvalues, dtype=float)
    if ev.size == 0 or not np.isfinite(ev).all():
        return "flat"
    small = 1e-6 * max(1.0, float(np.abs(ev).max()))  # below this a direction counts as flat
    down, up = bool((ev < -small).any()), bool((ev > small).any())
    if down and up:
        return "saddle"
    if down:
        return "maximum" if bool((ev < -small).all()) else "saddle"
    return "minimum" if up else "flat"


def _mark(code: np.ndarray, where: np.ndarray, reason: str) -> None:
    """Give the runs ``where`` that have no stop reason yet this one (as 1 + its index)."""
    code[(code == 0) & where] = STOP_REASONS.index(reason) + 1


def _falls_without_end(
    expr: Expression, p: np.ndarray, C: np.ndarray, g: np.ndarray
) -> np.ndarray:
    """``(m,)`` True where C falls without end along ``-grad C`` from ``p`` ``(m, d)``.

    Looks ahead at distances t = s, 10 s, ..., 10^6 s along the unit downhill direction
    u, with s = 1 + |p| so a far start looks far enough, and asks that
    C(p + t u) <= C(p) - t |grad C| / 2 at every t: C keeps falling at least half as fast
    as its slope says. A function with a minimum anywhere that way rises again.
    """
    norm = np.linalg.norm(g, axis=1)  # (m,)
    u = -g / norm[:, None]  # (m, d)
    t = _LOOK_AHEAD[None, :] * (1.0 + np.linalg.norm(p, axis=1))[:, None]  # (m, T)
    ahead = p[:, None, :] + t[:, :, None] * u[:, None, :]  # (m, T, d)
    C_ahead = expr.value(ahead)  # (m, T)
    required = C[:, None] - 0.5 * t * norm[:, None]
    with np.errstate(invalid="ignore"):
        return (C_ahead <= required).all(axis=1)  # nan never counts as falling


def find_minima(expression: Expression, runs) -> tuple[Minimum, ...]:
    """Group the end points of the converged runs into distinct local minima.

    An end point counts only if it is a local minimum (no lower point close by, beyond
    what its small leftover gradient explains), so a run that stopped on a saddle or a
    peak is left out. Two end points share a minimum when C has no hill between them
    along the straight segment that joins them. Lowest value first.
    """
    candidates = [
        i
        for i, run in enumerate(runs)
        if run.stop_reason == "converged" and _is_local_minimum(expression, run)
    ]
    candidates.sort(key=lambda i: runs[i].value)
    groups: list[list[int]] = []  # each group's first member is its lowest end point
    for i in candidates:
        for group in groups:
            if _same_basin(expression, runs[group[0]].final, runs[i].final):
                group.append(i)
                break
        else:
            groups.append([i])
    return tuple(
        Minimum(point=runs[g[0]].final.copy(), value=runs[g[0]].value, starts=tuple(sorted(g)))
        for g in groups
    )


def _is_local_minimum(expression: Expression, run: Descent) -> bool:
    p, C, g = run.final, run.value, run.gradients[-1]
    h = 1e-4 * (1.0 + np.linalg.norm(p))
    if len(p) == 1:
        directions = np.array([[1.0], [-1.0]])
    else:
        angles = np.arange(8) * np.pi / 4
        directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (8, 2)
    around = expression.value(p + h * directions)
    # A first-order drop of up to |g| h is the leftover gradient, not a lower place.
    allowance = 2.0 * np.linalg.norm(g) * h + 1e-12 * (1.0 + abs(C))
    return bool(np.all(around >= C - allowance))


def _same_basin(expression: Expression, a: np.ndarray, b: np.ndarray) -> bool:
    t = np.linspace(0.0, 1.0, 33)[:, None]
    C = expression.value(a + t * (b - a))  # (33,)
    top = max(C[0], C[-1])
    return bool(np.all(C <= top + 1e-9 * (1.0 + abs(top))))


def gradient_shares(gradient) -> np.ndarray:
    """``(d,)`` each component's share of ``|dC/dx| + |dC/dy|`` (zeros if all are 0)."""
    a = np.abs(np.asarray(gradient, dtype=float))
    total = a.sum()
    return a / total if total > 0 else np.zeros_like(a)


def describe_gradient(gradient, variables) -> str:
    """One line saying which way is downhill and which variable matters more.

    ``describe_gradient([3, 1], ("x", "y"))`` is
    ``"dC/dx = 3, dC/dy = 1: x matters 3x as much here"``.
    """
    g = np.asarray(gradient, dtype=float)
    listed = ", ".join(f"dC/d{v} = {_fmt(c)}" for v, c in zip(variables, g))
    if not np.isfinite(g).all():
        return f"{listed}: the gradient is undefined here"
    if len(g) == 1:
        v = variables[0]
        if g[0] > 0:
            return f"{listed}: the slope is positive, so downhill is to the left (smaller {v})"
        if g[0] < 0:
            return f"{listed}: the slope is negative, so downhill is to the right (larger {v})"
        return f"{listed}: the slope is flat here, so there is no step to take"
    a = np.abs(g)
    big, small = int(np.argmax(a)), int(np.argmin(a))
    if a[big] == 0:
        return f"{listed}: the gradient is zero, a flat spot with no step to take"
    if a[small] == 0:
        return f"{listed}: only {variables[big]} matters here"
    ratio = a[big] / a[small]
    if ratio < 1.05:
        return f"{listed}: {' and '.join(variables)} matter about equally here"
    return f"{listed}: {variables[big]} matters {_fmt_ratio(ratio)}x as much here"


def explain_stop(run: Descent) -> str:
    """One sentence on why ``run`` stopped, with what to try next where that helps.

    It reads after "Stopped: " (the CLI's prefix), so it never starts with "stopped".
    """
    k, reason = run.steps, run.stop_reason
    grad_norm = float(np.linalg.norm(run.gradients[-1]))
    steps = f"{k} step{'s' if k != 1 else ''}"
    if reason == "converged":
        small = f"|grad C| = {_fmt(grad_norm)} is under the tolerance {run.tol:g}"
        if run.stationary == "saddle":
            return (
                f"converged after {steps} to a saddle point, not a minimum: {small}, but C "
                f"curves down {_down_direction(run)}; start a little off this point to go lower"
            )
        if run.stationary == "maximum":
            return (
                f"converged after {steps} to a maximum, not a minimum: {small}, but C curves "
                "down in every direction; start a little off this point to go lower"
            )
        return f"converged after {steps}: {small}"
    if reason == "oscillating":
        return (
            f"oscillating after {steps}: each step jumps across the valley and back "
            f"(C = {_fmt(run.value)} no longer falls); a step of eta = {run.eta:g} is too "
            f"large for the curvature here, {_eta_advice(run)}"
        )
    if reason == "diverged":
        return (
            f"diverged after {steps}: C rose to {_fmt(run.value)}; a step of "
            f"eta = {run.eta:g} is too large for the curvature here, try a smaller eta"
        )
    if reason == "unbounded":
        return (
            f"unbounded: after {steps} C = {_fmt(run.value)} and still falling "
            f"{_downhill(run)}, with no minimum to find"
        )
    if reason == "undefined":
        return (
            f"C or its gradient is undefined at the next point after {steps} "
            "(log or sqrt of a negative number, or a division by zero)"
        )
    return (
        f"reached the limit of {steps} with |grad C| = {_fmt(grad_norm)} still above "
        f"the tolerance {run.tol:g}: allow more steps or a larger eta"
    )


def _eta_advice(run: Descent) -> str:
    """Which eta to try when the step is too large. Plain descent across a valley of
    curvature c is stable only for eta < 2 / c (with momentum mu, 2 (1 + mu) / c), and
    eta = 1 / c lands on the bottom of a parabola in one step."""
    c = max((v for v in run.curvature if np.isfinite(v)), default=0.0)
    if not c > 0:
        return "try a smaller eta"
    bound = "2 / curvature" if run.momentum == 0 else "2 (1 + momentum) / curvature"
    return f"try eta = {_fmt(1.0 / c)} (it must stay below {bound} = {_fmt(2.0 * (1 + run.momentum) / c)})"


def _down_direction(run: Descent) -> str:
    """Where C curves down at a saddle: the variable, or the direction (the Hessian's
    eigenvector of the lowest eigenvalue)."""
    if len(run.variables) == 1 or run.curvature_axes is None:
        return f"in {run.variables[0]}" if len(run.variables) == 1 else "in some direction"
    u = run.curvature_axes[:, 0]
    i = int(np.argmax(np.abs(u)))
    u = u if u[i] > 0 else -u
    c = f"(curvature {_fmt(run.curvature[0])})"
    if abs(u[i]) > 0.99:
        return f"along {run.variables[i]} {c}"
    return "along (" + ", ".join(_fmt(x) for x in u) + f") {c}"


def _downhill(run: Descent) -> str:
    g = run.gradients[-1]
    norm = np.linalg.norm(g)
    if not norm > 0:
        return "downhill"
    u = -g / norm
    i = int(np.argmax(np.abs(u)))
    if abs(u[i]) > 0.99:
        return f"as {run.variables[i]} {'grows' if u[i] > 0 else 'decreases'}"
    return "along (" + ", ".join(_fmt(c) for c in u) + ")"


def _fmt(value: float) -> str:
    """A number in at most 4 significant digits, without '-0'."""
    text = f"{float(value):.4g}"
    return "0" if text == "-0" else text


def _fmt_ratio(ratio: float) -> str:
    if ratio < 10:
        return f"{ratio:.2g}"
    return f"{ratio:.0f}" if ratio < 1e4 else f"{ratio:.1e}"
