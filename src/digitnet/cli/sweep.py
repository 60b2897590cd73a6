"""``digitnet sweep``: many trainings (a grid of settings, several seeds) on a Dask cluster.

The CLI parses, calls :func:`digitnet.tasks.sweep.run_sweep` and shows its answer: a progress
bar over the runs, the summary table, and ``DIR/summary.png`` (:func:`digitnet.plots.sweep_figure`).
"""

from __future__ import annotations

import sys

import click

from digitnet.cli import main
from digitnet.cli.common import cli_message, echo_json, is_terminal, pct, progress_bar, table
from digitnet.errors import DigitnetError


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False), metavar="SPEC.toml")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="The sweep's folder: results.jsonl (one line a run), models/, summary.md and summary.png. Runs "
                   "already done there are skipped, so the same command continues an interrupted sweep.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes on this machine, one thread each [default: one per core].")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing Dask cluster instead: its scheduler's address, e.g. tcp://10.0.0.5:8786 "
                   "(start it with `dask scheduler`, and `dask worker ADDRESS` on each machine).")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object at the end: {"runs", "new", "skipped", "failed", "summary": [...]}.')
def sweep(spec, out, workers, scheduler, as_json):
    """Train every configuration of a sweep spec with every seed, in parallel.

    The spec is TOML: settings shared by every run in [base], settings to vary in
    [grid] (every combination runs), seeds = [...] (every combination runs once per
    seed); settings are named as in `digitnet train --config FILE.toml`. Every run
    trains exactly as `digitnet train` with its settings and seed would; each
    finished run is added to DIR/results.jsonl at once. Running the command again
    skips the runs done and runs the rest (Ctrl-C loses only the runs in flight).

    \b
    Example spec (sweep.toml):
      seeds = [0, 1, 2]
      [base]
      preset = "video"
      epochs = 10
      validation = true
      [grid]
      eta = [1.0, 3.0]
      batch_size = [10, 32]
    \b
    Examples:
      digitnet sweep sweep.toml --out sweep-eta
      digitnet sweep sweep.toml --out sweep-eta --workers 4
      digitnet sweep sweep.toml --out sweep-eta --scheduler tcp://10.0.0.5:8786

    Configurations listed one by one, instead of or besides the grid, are [[runs]]
    tables (optional name = "..."). Needs Dask: pip install 'digitnet[cluster]'.
    """
    try:
        _sweep(spec, out, workers, scheduler, as_json)
    except DigitnetError as e:
        raise click.ClickException(cli_message(e)) from None


def _sweep(spec, out, workers, scheduler, as_json):
    from pathlib import Path

    from digitnet.tasks.sweep import FIGURE, SUMMARY, load_spec, run_sweep

    parsed = load_spec(spec)  # a bad spec is refused before any cluster starts
    out = Path(out)
    state: dict = {"bar": None, "done": 0}
    tty = is_terminal(sys.stderr)

    def on_start(plan):
        if plan.workers == 0 and plan.todo:  # Dask holds the runs until a worker joins
            click.echo(f"The cluster at {plan.scheduler} has no worker yet: waiting for workers: start `dask worker "
                       f"{plan.scheduler}` (Ctrl-C to stop).", err=True)
        if as_json:
            return
        where = f"the cluster at {plan.scheduler}" if scheduler else "this machine"
        click.echo(f"Sweep {spec}: {plan.runs} run{'' if plan.runs == 1 else 's'}, {plan.skipped} already done in {out}, {plan.todo} to run on "
                   f"{plan.workers} worker{'' if plan.workers == 1 else 's'} ({where}).", err=True)
        state["todo"] = plan.todo
        if tty:
            state["bar"] = progress_bar(plan.todo, "Runs", "run")

    def on_result(record):
        state["done"] += 1
        if as_json:
            return
        what = (f"{pct(record['test_accuracy'])} in {record['seconds']:.1f} s" if record["status"] == "done"
                else f"FAILED: {record['error']}")
        line = f"{state['done']}/{state['todo']}  {record['label']}, seed {record['seed']}: {what}"
        bar = state["bar"]
        if bar is not None:
            if record["status"] != "done":
                bar.write(line, file=sys.stderr)
            bar.update(1)
        else:
            click.echo(line, err=True)

    import signal
    import threading

    def terminate(signum, frame):  # SIGTERM (kill, a batch system's time limit) stops as Ctrl-C does
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        result = run_sweep(parsed, out, workers=workers, scheduler=scheduler, on_start=on_start, on_result=on_result)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if state["bar"] is not None:
            state["bar"].close()
    from digitnet.plots import save_figure, sweep_figure

    png = None
    if any(r["test_accuracy_median"] is not None for r in result.summary):
        png = save_figure(sweep_figure(result.summary, title=f"Sweep {Path(spec).name}"), out / FIGURE)
    if as_json:
        echo_json(result.to_dict())
    else:
        with_val = any(r["validation_accuracy_median"] is not None for r in result.summary)
        rows = []
        for r in result.summary:
            spread = "-" if r["test_accuracy_min"] is None else \
                f"{pct(r['test_accuracy_min'])} - {pct(r['test_accuracy_max'])}"
            row = [r["label"], ",".join(map(str, r["seeds"])) or "-", pct(r["test_accuracy_median"]), spread]
            row += [pct(r["validation_accuracy_median"])] if with_val else []
            row += ["-" if r["seconds_median"] is None else f"{r['seconds_median']:.1f} s",
                    ",".join(map(str, r["failed_seeds"])) or "-"]
            rows.append(row)
        head = ["configuration", "seeds", "test (median)", "min - max"] + (["validation"] if with_val else []) + \
            ["time", "failed"]
        click.echo(table(rows, head))
        click.echo(f"{result.new} run{'' if result.new == 1 else 's'} now ({result.failed} failed), "
                   f"{result.skipped} already done. Results: {out / 'results.jsonl'}, {out / SUMMARY}"
                   + (f", {png}" if png else ""))
        if result.failed:
            click.echo("Failed runs are recorded with their error and run again by the same command.")
        if result.foreign:
            n = result.foreign
            click.echo(f"{n} run{' is' if n == 1 else 's are'} in {out / 'results.jsonl'} that {'is' if n == 1 else 'are'} "
                       "no run of this spec (another spec's, or edited): kept there, left out of the summary.")
    if result.interrupted:
        if not as_json:
            click.echo("Interrupted: the runs done are kept; run the same command again to run the rest.", err=True)
        sys.exit(130)
