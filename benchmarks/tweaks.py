"""What each tweak buys: from the video's network, one tweak at a time, to a conv net.

The steps are the sweep spec ``benchmarks/tweaks.toml`` (one ``[[runs]]`` table a step, each
keeping the earlier steps' tweaks):

    video          784-16-16-10 sigmoid, quadratic cost, SGD, batch 10, eta 3.0, 30 epochs
    cost           + softmax output with the cross-entropy cost (eta 0.5)
    activation     + ReLU hidden neurons (eta 0.1)
    init           + He initialisation, N(0, 2/n_in)
    optimizer      + Nesterov momentum 0.9 (eta 0.01)
    width          + 784-512-512-10, batch 128, eta 0.1, cosine schedule, 15 epochs
    regularise     + dropout 0.2
    augment        + training images shifted up to 1.5 pixels at random  (= --preset mlp, 15 epochs)
    convolution    conv 32 5x5, pool 2, conv 32 5x5, pool 2, dense 128; Adam, dropout 0.3,
                   shifts and turns, 10 epochs  (= --preset cnn)

This script runs it as a sweep (``digitnet.tasks.sweep``, on Dask: every run trains exactly as
``digitnet train`` would, in worker processes of one BLAS thread each; runs already done in the
sweep folder are skipped, so an interrupted run continues), then prints, for each step, the test
accuracy on the 10,000 MNIST test images after the last epoch (the median over the seeds, and
the lowest and highest) and the training time (wall time of the training run on its worker,
including the test after every epoch; median over the seeds), as a Markdown table, and draws
both as a PNG.

Run:  python benchmarks/tweaks.py [--workers N] [--seeds 0,1,2] [--steps video,...] [--epochs N]
                                  [--train-size N] [--sweep DIR] [--out benchmarks/results/tweaks]

It takes a while (about 30 minutes on 2 cores for 3 seeds with 1 worker; the conv net is
most of it). ``--seeds 0`` runs one seed, ``--epochs N`` caps every step's epochs and
``--train-size N`` trains on the first N images (a quick check that it works: such runs are
other runs, with other keys), ``--steps`` picks steps. ``--workers 1`` measures each run's time
on an otherwise idle core; more workers finish sooner but share the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import textwrap
from pathlib import Path

SPEC = Path(__file__).with_name("tweaks.toml")


def tweaks_spec(seeds: list[int] | None = None, steps: list[str] | None = None, epochs: int | None = None,
         train_size: int | None = None):
    """The tweaks spec, narrowed to ``steps`` and ``seeds``, with every step's epochs capped at
    ``epochs`` and its training set cut to ``train_size`` images."""
    from digitnet.tasks.sweep import load_spec
    from digitnet.training.settings import settings_from_dict

    spec = load_spec(SPEC)
    names = [r["name"] for r in spec.runs]
    if steps:
        unknown = sorted(set(steps) - set(names))
        if unknown:
            raise SystemExit(f"unknown steps {', '.join(unknown)}; choose from {', '.join(names)}")
        spec.runs = [r for r in spec.runs if r["name"] in steps]
    if seeds:
        spec.seeds = list(seeds)
    for r in spec.runs:
        if epochs:
            _, tc = settings_from_dict({**spec.base, **{k: v for k, v in r.items() if k not in ("name", "description")}})
            r["epochs"] = min(epochs, tc.epochs)
        if train_size:
            r["train_size"] = train_size
    spec.expand()  # still valid
    return spec


def rows(spec, result, records: list[dict]) -> list[dict]:
    """One table row a step (with a run done), from the sweep's summary and its records."""
    from digitnet.training.settings import settings_from_dict

    latest = {r["key"]: r for r in records}
    runs = spec.expand()
    out = []
    for s in result.summary:
        done = [latest[r.key] for r in runs if r.config_key == s["config_key"] and r.key in latest
                and latest[r.key]["status"] == "done"]
        if not done:
            continue
        net, _ = settings_from_dict(done[0]["config"])
        out.append({
            "step": s["label"].split(",")[0], "what": s["description"], "network": net.describe(),
            "epochs": s["epochs"], "seeds": s["seeds"], "accuracy": s["test_accuracy_median"],
            "accuracies": [r["test_accuracy"] for r in done], "seconds": s["seconds_median"],
            "runs": [{k: r[k] for k in ("key", "seed", "test_accuracy", "seconds", "engine", "host", "model")}
                     for r in done],
        })
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| step | what changed | network | epochs | seeds | test accuracy (median) | min - max | training time (median) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['what']} | {r['network']} | {r['epochs']} | {','.join(map(str, r['seeds']))} | "
            f"{100 * r['accuracy']:.2f}% | "
            f"{100 * min(r['accuracies']):.2f} - {100 * max(r['accuracies']):.2f}% | {r['seconds']:.0f} s |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], caption: str, path: Path) -> Path:
    """Two panels side by side: test accuracy (median, min-max bars) and training time per step."""
    from matplotlib.figure import Figure

    from digitnet.plots import save_figure

    fig = Figure(figsize=(11, 0.45 * len(rows) + 2.4), dpi=100, layout="constrained")
    ax_acc, ax_t = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    ys = list(range(len(rows)))[::-1]
    labels = [textwrap.fill(f"{r['step']}: {r['what']}", 36) for r in rows]
    acc = [100 * r["accuracy"] for r in rows]
    lo = [100 * (r["accuracy"] - min(r["accuracies"])) for r in rows]
    hi = [100 * (max(r["accuracies"]) - r["accuracy"]) for r in rows]
    ax_acc.barh(ys, acc, xerr=[lo, hi], color="tab:blue", capsize=3)
    for y, a in zip(ys, acc):
        ax_acc.text(a, y, f" {a:.2f}%", va="center", ha="left", fontsize=9)
    ax_acc.set_xlim(min(acc) - 1.5, 100.4)
    ax_acc.set_yticks(ys, labels)
    ax_acc.set_xlabel("test accuracy on the 10,000 MNIST test images (%)")
    ax_acc.set_title("test accuracy")
    ax_t.barh(ys, [r["seconds"] for r in rows], color="tab:orange")
    for y, r in zip(ys, rows):
        ax_t.text(r["seconds"], y, f" {r['seconds']:.0f} s", va="center", ha="left", fontsize=9)
    ax_t.set_xlabel("training time (s)")
    ax_t.set_title("training time")
    fig.suptitle("What each tweak buys, and what it costs (median over seeds; error bars: lowest to highest seed)")
    ax_t.set_xlim(0, 1.25 * max(r["seconds"] for r in rows))
    fig.supxlabel(textwrap.fill(caption, 150), fontsize=9, color="0.3")
    return save_figure(fig, path)


class LoadWatch:
    """The highest 1-minute load average seen while a sweep runs: read every ``every`` seconds
    by a thread, not only at the start and the end (a shared machine can be busy in between)."""

    def __init__(self, every: float = 5.0, read=lambda: os.getloadavg()[0]):
        import threading

        self.every, self.read, self.highest = every, read, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.highest = max(self.highest, self.read())
            if self._done.wait(self.every):
                return

    def start(self) -> "LoadWatch":
        self._thread.start()
        return self

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        self.highest = max(self.highest, self.read())
        return self.highest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: the spec's, 0,1,2)")
    ap.add_argument("--steps", default=None, help="comma-separated step names (default: all)")
    ap.add_argument("--epochs", type=int, default=None, help="cap every step's epochs at N (default: each step's own)")
    ap.add_argument("--train-size", type=int, default=None, help="train on the first N images (default: all)")
    ap.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    ap.add_argument("--scheduler", default=None, help="run on the Dask cluster at this address instead")
    ap.add_argument("--sweep", default="benchmarks/results/tweaks-sweep",
                    help="the sweep's folder: results.jsonl, models/, summary.md (runs done there are skipped)")
    ap.add_argument("--out", default="benchmarks/results/tweaks", help="prefix of the .md, .json and .png written")
    args = ap.parse_args()
    from digitnet.tasks.sweep import read_results, run_sweep

    spec = tweaks_spec([int(s) for s in args.seeds.split(",")] if args.seeds else None,
                args.steps.split(",") if args.steps else None, args.epochs, args.train_size)
    watch = LoadWatch().start()

    def progress(r):
        what = f"{100 * r['test_accuracy']:.2f}%" if r["status"] == "done" else f"FAILED: {r['error']}"
        print(f"{r['label']:12s} seed {r['seed']}: {what}  {r['seconds'] or 0:.1f} s", flush=True)

    result = run_sweep(spec, args.sweep, workers=args.workers, scheduler=args.scheduler, on_result=progress)
    load = watch.stop()
    workers = "on a Dask cluster" if args.scheduler else f"{args.workers or os.cpu_count()} local workers"
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, {workers} of one BLAS thread, load average up to "
               f"{load:.1f} while measuring")
    how = ("python benchmarks/tweaks.py" + (f" --seeds {args.seeds}" if args.seeds else "")
           + (f" --epochs {args.epochs}" if args.epochs else "") + (f" --train-size {args.train_size}" if args.train_size else "")
           + (f" --steps {args.steps}" if args.steps else "") + (f" --workers {args.workers}" if args.workers else ""))
    write(rows(spec, result, read_results(args.sweep)), machine, how, Path(args.out))


def write(rows: list[dict], machine: str, how: str, out: Path) -> None:
    """Print the table and write it (.md), the runs (.json) and the plot (.png) next to ``out``."""
    md = table(rows)
    print()
    print(md)
    print(f"\n{machine}\n{how}")
    out.parent.mkdir(parents=True, exist_ok=True)
    from digitnet.files import atomic_write_bytes

    atomic_write_bytes(out.with_suffix(".md"), f"{md}\n\n{machine}. Command: `{how}`\n".encode())
    atomic_write_bytes(out.with_suffix(".json"), json.dumps({"rows": rows, "machine": machine, "command": how},
                                                            indent=2).encode())
    png = plot(rows, f"{how}  ({machine})", out.with_suffix(".png"))
    print(f"Wrote {out.with_suffix('.md')}, {out.with_suffix('.json')} and {png}")


if __name__ == "__main__":
    main()
