"""What each tweak buys: from the video's network, one tweak at a time, to a conv net.

Starts from the video's network (``--preset video``) and adds one tweak per step, each
step keeping all the earlier ones:

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

and prints, for each step, the test accuracy on the 10,000 MNIST test images after the
last epoch (the median over the seeds, and the lowest and highest) and the training time
(wall time of the whole training run, including the test after every epoch; median over
the seeds), as a Markdown table, and draws both as a PNG. Every run is a fresh Python
process, which also reports its peak resident memory.

Run:  python benchmarks/tweaks.py [--seeds 0,1,2] [--steps video,...] [--epochs N]
                                  [--threads N] [--out benchmarks/results/tweaks]

It takes a while (about an hour on 2 cores for 3 seeds; the conv net is most of it):
``--seeds 0`` runs one seed, ``--epochs N`` caps every step's epochs, ``--steps`` picks
steps. ``--threads 1`` sets OPENBLAS_NUM_THREADS=1, which is much faster when other
programs share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def steps() -> list[tuple[str, str, object, object]]:
    """``(name, what changed, NetworkConfig, TrainConfig)`` for every step, cumulative."""
    from digitnet.training.presets import get_preset

    net, tc = get_preset("video")
    out = [("video", "the video's network (--preset video)", net, tc)]

    def add(name, what, net_changes=None, train_changes=None):
        nonlocal net, tc
        net = type(net).from_dict({**net.to_dict(), **(net_changes or {})})
        tc = tc.replace(**(train_changes or {}))
        out.append((name, what, net, tc))

    add("cost", "+ softmax output, cross-entropy cost", dict(output_activation="softmax", cost="cross-entropy"),
        dict(eta=0.5))
    add("activation", "+ ReLU hidden neurons", dict(activation="relu"), dict(eta=0.1))
    add("init", "+ He initialisation", dict(init="he"))
    add("optimizer", "+ Nesterov momentum 0.9", None, dict(optimizer="nesterov", momentum=0.9, eta=0.01))
    mlp_net, mlp_train = get_preset("mlp")
    # From here on the network is the mlp preset's, preprocessing included (the video preset deskews).
    same = {k: v for k, v in mlp_net.to_dict().items() if k in ("layers", "preprocess")}
    what = "+ 784-512-512-10, batch 128, cosine eta" + (
        f", preprocess {same['preprocess']}" if same.get("preprocess", "none") != net.to_dict().get("preprocess", "none") else "")
    add("width", what, same,
        dict(batch_size=mlp_train.batch_size, eta=mlp_train.eta, schedule="cosine", epochs=mlp_train.epochs,
             train_metrics="batches"))
    add("regularise", f"+ dropout {mlp_train.dropout:g}", None, dict(dropout=mlp_train.dropout))
    out.append(("augment", "+ random shifts (--preset mlp)", mlp_net, mlp_train))
    cnn_net, cnn_train = get_preset("cnn")
    out.append(("convolution", "conv + pool layers (--preset cnn)", cnn_net, cnn_train))
    return out


def worker(name: str, seed: int, epochs: int | None) -> dict:
    """Train one step with one seed (in this fresh process) and return what it measured."""
    import resource

    from digitnet.data.datasets import load_mnist
    from digitnet.nn.network import Network
    from digitnet.training.train import train

    _, _, net_cfg, tc = next(s for s in steps() if s[0] == name)
    tc = tc.replace(seed=seed, record_batch_cost=False, **({"epochs": min(epochs, tc.epochs)} if epochs else {}))
    data = load_mnist()
    net = Network.create(net_cfg, seed=seed)
    start = time.perf_counter()
    history = train(net, data.train, tc, test=data.test)
    seconds = time.perf_counter() - start
    return {
        "step": name, "seed": seed, "epochs": tc.epochs, "test_accuracy": history.epochs[-1].test_accuracy,
        "seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "network": net_cfg.describe(),
    }


def run_one(name: str, seed: int, epochs: int | None, threads: int | None) -> dict:
    env = dict(os.environ)
    if threads:
        env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--worker", name, "--seeds", str(seed)] + (["--epochs", str(epochs)] if epochs else [])
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = [
        "| step | what changed | network | epochs | seeds | test accuracy (median) | min - max | training time (median) | peak RSS |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['what']} | {r['network']} | {r['epochs']} | {','.join(map(str, r['seeds']))} | "
            f"{100 * r['accuracy']:.2f}% | "
            f"{100 * min(r['accuracies']):.2f} - {100 * max(r['accuracies']):.2f}% | {r['seconds']:.0f} s | "
            f"{r['peak_rss_mib']:.0f} MiB |"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--steps", default=None, help="comma-separated step names (default: all)")
    ap.add_argument("--epochs", type=int, default=None, help="cap every step's epochs at N (default: each step's own)")
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads per run (default: the library's choice)")
    ap.add_argument("--out", default="benchmarks/results/tweaks", help="prefix of the .md, .json and .png written")
    ap.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                    help="instead of training, combine the runs in these .json files (from earlier runs) into one table")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, seeds[0], args.epochs)))
        return
    if args.merge:
        merged = [json.loads(Path(f).read_text()) for f in args.merge]
        by_step: dict[str, list[dict]] = {}
        for m in merged:
            for row in m["rows"]:
                by_step.setdefault(row["step"], []).extend(row["runs"])
        whats = {name: what for name, what, _, _ in steps()}
        rows = [summarise(name, whats[name], by_step[name]) for name in whats if name in by_step]
        how = " ; ".join(m["command"] for m in merged) + f" ; python benchmarks/tweaks.py --merge {' '.join(args.merge)}"
        write(rows, "; ".join(sorted({m["machine"] for m in merged})), how, Path(args.out))
        return
    chosen = steps()
    if args.steps:
        names = args.steps.split(",")
        unknown = set(names) - {s[0] for s in chosen}
        if unknown:
            ap.error(f"unknown steps {', '.join(sorted(unknown))}; choose from {', '.join(s[0] for s in chosen)}")
        chosen = [s for s in chosen if s[0] in names]
    load = os.getloadavg()[0]
    rows = []
    for name, what, _, _ in chosen:
        runs = []
        for seed in seeds:
            r = run_one(name, seed, args.epochs, args.threads)
            runs.append(r)
            print(f"{name:12s} seed {seed}: {100 * r['test_accuracy']:.2f}%  {r['seconds']:.1f} s  "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
        rows.append(summarise(name, what, runs))
    load = max(load, os.getloadavg()[0])
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load average up to {load:.1f} while measuring"
    how = (f"python benchmarks/tweaks.py --seeds {args.seeds}" + (f" --epochs {args.epochs}" if args.epochs else "")
           + (f" --threads {args.threads}" if args.threads else "") + (f" --steps {args.steps}" if args.steps else ""))
    write(rows, machine, how, Path(args.out))


def summarise(name: str, what: str, runs: list[dict]) -> dict:
    """One table row from the runs (one per seed) of a step."""
    return {
        "step": name, "what": what, "network": runs[0]["network"], "epochs": runs[0]["epochs"],
        "seeds": [r["seed"] for r in runs],
        "accuracy": statistics.median(r["test_accuracy"] for r in runs),
        "accuracies": [r["test_accuracy"] for r in runs],
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "runs": runs,
    }


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
