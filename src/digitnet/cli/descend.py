"""``digitnet descend``: gradient descent on a formula in x, or in x and y.

Parses the options, calls :mod:`digitnet.playground`, and formats what comes back as
text or as one JSON object; all the mathematics is in the library.
"""

from __future__ import annotations

import json
import math

import click
import numpy as np

from digitnet.cli import main
from digitnet.errors import ExpressionError
from digitnet.jsonable import jsonable
from digitnet.playground import (
    MAX_STARTS,
    MAX_STEPS,
    Descent,
    MultiDescent,
    bounded_alternative,
    descend as descend_from,
    descend_many,
    describe_gradient,
    explain_stop,
    format_expression_error,
    gradient_shares,
    parse,
    plot_descent,
    random_starts,
    save_png,
)


@click.command("descend")
@click.argument("formula")
@click.option("--start", "start_texts", multiple=True, metavar="X[,Y]",
              help="Where to start (default 1, or 1,1); repeat it for several starts.")
@click.option("--starts", "n_starts", type=click.IntRange(1, MAX_STARTS), metavar="N",
              help="Start from N random points in --box instead, and group the minima found.")
@click.option("--box", default="-2,2", show_default=True, metavar="LO,HI",
              help="Range of every coordinate of the random starts.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random starts.")
@click.option("--eta", type=float, default=0.1, show_default=True,
              help="Learning rate: each step moves by -eta times the gradient.")
@click.option("--steps", type=click.IntRange(1, MAX_STEPS), default=1000, show_default=True,
              help="Most steps to take from each start.")
@click.option("--momentum", type=float, default=0.0, show_default=True,
              help="Momentum mu in [0, 1): v = mu*v - eta*grad C; 0 is plain descent.")
@click.option("--tol", type=float, default=1e-6, show_default=True,
              help="Converged once |grad C| is below this.")
@click.option("--every", type=click.IntRange(1), metavar="K",
              help="Print every K-th step of the path (default: about 10 rows).")
@click.option("--out", type=click.Path(dir_okay=False), metavar="PNG",
              help="Draw the curve or contour map with the path(s) into this PNG file.")
@click.option("--surface", is_flag=True,
              help="With --out and a formula in x and y, add a 3-D surface.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object instead of text.")  # fmt: skip
def descend(
    formula, start_texts, n_starts, box, seed, eta, steps, momentum, tol, every, out, surface,
    as_json,
):  # fmt: skip
    """Run gradient descent on FORMULA, a function of x or of x and y, and show the path.

    FORMULA uses numbers, x, y, pi, e, + - * / ^ (or **), brackets and functions such
    as sin, cos, tan, exp, log, sqrt, abs, tanh, sigmoid, relu, min, max. It is read as
    a person means it: 3/2x^2 is (3/2)*x^2, ½ is 1/2, xy is x*y; the reading is echoed.

    \b
    Examples:
      digitnet descend "3/2x^2 + 1/2y^2" --start 1,1
      digitnet descend "x**4 - 3*x**2 + y**2" --starts 20 --out descent.png
      digitnet descend "x^4 - 3x^2 + x" --start=-0.5 --eta 0.02 --json
    """
    try:
        expr = parse(formula)
    except ExpressionError as e:
        raise click.ClickException(format_expression_error(formula, e)) from None
    if start_texts and n_starts:
        raise click.UsageError("give either --start or --starts, not both")

    settings = dict(eta=eta, steps=steps, momentum=momentum, tol=tol)
    random_box = None
    if n_starts:
        random_box = _numbers(box, 2, "--box", "LO,HI")
        starts = random_starts(np.random.default_rng(seed), n_starts, expr.dim, random_box)
    elif start_texts:
        form = ",".join(v.upper() for v in expr.variables)
        starts = np.array([_numbers(t, expr.dim, "--start", form) for t in start_texts])
    else:
        starts = np.ones((1, expr.dim))

    if len(starts) == 1 and not n_starts:
        result = descend_from(expr, starts[0], **settings)
    else:
        result = descend_many(expr, starts, **settings)

    hint = _bounded_hint(result, expr)
    if out:
        figure = plot_descent(expr, result, surface=surface)
        try:
            save_png(figure, out)
        except OSError as e:
            raise click.ClickException(f"cannot write {out}: {e.strerror or e}") from None

    if as_json:
        report = _json_report(formula, expr, result, settings, hint, out)
        if random_box is not None:
            report.update(seed=seed, box=list(random_box))
        click.echo(json.dumps(report))
    elif isinstance(result, Descent):
        _print_single(expr, result, every, hint)
    else:
        _print_many(expr, result, random_box, seed, settings)
    if out and not as_json:
        click.echo(f"Wrote {out}")


def _numbers(text: str, count: int, option: str, form: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise click.BadParameter(f"expected {count} number{'s' if count > 1 else ''} "
                                 f"as {form}, got {text!r}", param_hint=option)  # fmt: skip
    return values


def _bounded_hint(result, expr) -> dict | None:
    if not isinstance(result, Descent):
        return None
    run = bounded_alternative(result, expr)
    if run is None:
        return None
    return {"expression": run.expression, "final": run.final, "value": run.value}


# --- text -------------------------------------------------------------------------------


def _num(value: float) -> str:
    text = f"{float(value):.4g}"
    return "0" if text == "-0" else text


def _point(expr, p) -> str:
    if expr.dim == 1:
        return f"{expr.variables[0]} = {_num(p[0])}"
    return f"({', '.join(expr.variables)}) = ({', '.join(_num(c) for c in p)})"


def _print_single(expr, run: Descent, every: int | None, hint: dict | None) -> None:
    names = ", ".join(expr.variables)
    click.echo(f"Read as: C({names}) = {expr}")
    click.echo(f"Start: {_point(expr, run.start)}, C = {_num(run.values[0])}")
    g0 = run.gradient_at_start
    click.echo(f"Gradient at the start: {describe_gradient(g0, run.variables)}")
    if expr.dim > 1 and np.isfinite(g0).all() and np.any(g0 != 0):
        shares = ", ".join(f"{v} {s:.0%}" for v, s in zip(run.variables, gradient_shares(g0)))
        total = " + ".join(f"|dC/d{v}|" for v in run.variables)
        click.echo(f"  share of {total}: {shares}")
    click.echo(f"Gradient descent with eta = {run.eta:g}, momentum = {run.momentum:g}:")
    every = every or max(1, math.ceil(run.steps / 10))
    rows = list(range(0, run.steps + 1, every))
    if rows[-1] != run.steps:
        rows.append(run.steps)
    header = "".join(f"{h:>12}" for h in (*run.variables, "C", "|grad C|"))
    click.echo(f"  {'step':>6}{header}")
    for k in rows:
        cells = [*run.path[k], run.values[k], np.linalg.norm(run.gradients[k])]
        click.echo(f"  {k:>6}" + "".join(f"{_num(c):>12}" for c in cells))
    click.echo(f"Stopped: {explain_stop(run)}")
    click.echo(f"Final: {_point(expr, run.final)}, C = {_num(run.value)}")
    if hint is not None:
        click.echo(
            f"Hint: with each linear term squared, C = {hint['expression']} has a minimum "
            f"near {_point(expr, _rounded(hint['final']))}, C = {_num(round(hint['value'], 6))}"
        )


def _print_many(expr, result: MultiDescent, box, seed, settings) -> None:
    runs, n = result.runs, len(result.runs)
    click.echo(f"Read as: C({', '.join(expr.variables)}) = {expr}")
    where = (
        f"drawn uniformly from [{_num(box[0])}, {_num(box[1])}] in "
        f"{'each of x and y' if expr.dim == 2 else expr.variables[0]} (seed {seed})"
        if box is not None
        else "given with --start"
    )
    click.echo(
        f"{n} starts {where}; eta = {settings['eta']:g}, momentum = {settings['momentum']:g}, "
        f"at most {settings['steps']} steps each"
    )
    minima = result.minima
    if not minima:
        click.echo("No start converged to a local minimum.")
    else:
        s = "um" if len(minima) == 1 else "a"
        click.echo(f"{len(minima)} distinct local minim{s} found:")
        for m in minima:
            shown = ", ".join(_short_point(runs[i].start) for i in m.starts[:4])
            more = f", ... ({len(m.starts)} in all)" if len(m.starts) > 4 else ""
            count = f"{len(m.starts)} start{'s' if len(m.starts) > 1 else ''}"
            click.echo(f"  {_point(expr, _rounded(m.point))}  C = {_num(m.value)}  from {count}: "
                       f"{shown}{more}")  # fmt: skip
        lowest = minima[0]
        tied = [m for m in minima if _same_value(m.value, lowest.value)]
        reached = sum(len(m.starts) for m in tied)
        if len(tied) < len(minima):
            click.echo(
                f"The lowest, C = {_num(lowest.value)}, was reached from {reached} of {n} "
                f"starts; {sum(len(m.starts) for m in minima) - reached} ended in a higher "
                "local minimum: where you end depends on where you start."
            )
        elif len(tied) > 1:
            all_of_them = "Both" if len(tied) == 2 else f"All {len(tied)}"
            click.echo(
                f"{all_of_them} minima share the lowest value C = {_num(lowest.value)}, and "
                "each start found only one of them: where you end depends on where you start."
            )
        else:
            click.echo(f"Every start that found a minimum ({reached} of {n}) found this one.")
    counts = ", ".join(f"{c} {r}" for r, c in result.stop_counts().items() if c)
    click.echo(f"Stops: {counts}")
    best = runs[result.best]
    if best.stop_reason in ("unbounded", "diverged", "oscillating"):
        click.echo(f"For example, from {_short_point(best.start)}: {explain_stop(best)}")


def _rounded(p) -> np.ndarray:
    # A descent stops within the tolerance, not on the minimum: 9e-07 is 0 to a reader.
    return np.round(np.asarray(p, dtype=float), 4) + 0.0


def _same_value(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-8 * (1.0 + abs(a))


def _short_point(p) -> str:
    return "(" + ", ".join(f"{float(c):.2f}" for c in p) + ")"


# --- JSON -------------------------------------------------------------------------------


def _run_summary(run: Descent) -> dict:
    return {
        "start": run.start,
        "stop_reason": run.stop_reason,
        "message": explain_stop(run),
        "steps": run.steps,
        "final": run.final,
        "value": run.value,
        "gradient_at_start": run.gradient_at_start,
    }


def _json_report(formula, expr, result, settings, hint, out) -> dict:
    report = {
        "formula": formula,
        "expression": str(expr),
        "variables": list(expr.variables),
        "eta": settings["eta"],
        "momentum": settings["momentum"],
        "tol": settings["tol"],
        "max_steps": settings["steps"],
    }
    if isinstance(result, Descent):
        run = result
        report.update(_run_summary(run))
        report["path"] = run.path
        report["values"] = run.values
        report["hint"] = hint
    else:
        run = result.runs[result.best]
        report.update(_run_summary(run))
        report["best_run"] = result.best
        report["runs"] = [_run_summary(r) for r in result.runs]
        report["minima"] = [
            {
                "point": m.point,
                "value": m.value,
                "starts": list(m.starts),
                "start_points": [result.runs[i].start for i in m.starts],
            }
            for m in result.minima
        ]
        report["stop_counts"] = result.stop_counts()
    report["gradient_shares"] = gradient_shares(run.gradient_at_start)
    report["importance"] = describe_gradient(run.gradient_at_start, run.variables)
    report["out"] = out
    return jsonable(report)


main.add_command(descend)
