"""What a sweep gains from more workers, and what the cluster costs per run.

Runs one sweep of short trainings (24 by default: the video's network on the first 10,000
training images for one epoch, 4 learning rates x 3 batch sizes x 2 seeds, a few seconds
each) on a local Dask cluster of 1 worker process, then of 2, in one run of this script, and
prints for each:

* the sweep's wall time (client side: from submitting the first run to writing the last
  record; the cluster's start and each worker's first load of MNIST and first compile are
  measured apart, before, and not counted), and the speedup over 1 worker;
* each run's own time (``wall_seconds`` in its record: the whole ``run_training`` call on the
  worker, preparing the inputs, the gradient steps, the test after every epoch; ``seconds``,
  the gradient steps alone, would leave the run's own evaluation counted as overhead),
  median and sum;
* the time per run including the cluster's overhead, ``wall x workers / runs``, and the
  overhead: that minus the run's own mean training time (scheduling, sending the run and its
  model back, writing results.jsonl and the model), in seconds and as a share of a run.

Run:  python benchmarks/sweep_scale.py [--workers 1,2] [--train-size 10000] [--epochs 1]
                                       [--seeds 0,1] [--out benchmarks/results/sweep_scale]

Measure on an otherwise idle machine: with other programs on the cores, the 2-worker
speedup and the overhead say more about them than about the sweep. A quick check that it
works: ``--train-size 1000 --seeds 0``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def spec(train_size: int, epochs: int, seeds: list[int]):
    from digitnet.tasks.sweep import spec_from_dict

    return spec_from_dict({
        "seeds": seeds,
        "base": {"preset": "video", "train_size": train_size, "epochs": epochs, "record_batch_cost": False},
        "grid": {"eta": [1.0, 2.0, 3.0, 4.0], "batch_size": [10, 20, 30]},
    }, "sweep_scale")


def _warm_up(config: dict) -> float:
    """On a worker: load MNIST, and train one tiny run (the engine's first compile, the test set's
    deskewing), so that the timed sweep measures runs, not a worker's first start."""
    from digitnet.tasks.sweep import _digest, train_run

    start = time.perf_counter()
    train_run({"key": _digest(config), "label": "warm-up", "config": config})
    return time.perf_counter() - start


def measure(workers: int, the_spec, warm_config: dict) -> dict:
    from distributed import Client

    from digitnet.tasks.sweep import local_cluster, run_sweep

    t0 = time.perf_counter()
    cluster = local_cluster(workers)
    client = Client(cluster)
    client.wait_for_workers(workers)
    started = time.perf_counter() - t0
    try:
        warm = client.run(_warm_up, warm_config)
        with tempfile.TemporaryDirectory(prefix="sweep-scale-") as out:
            t0 = time.perf_counter()
            result = run_sweep(the_spec, out, client=client)
            wall = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    done = [r for r in result.records if r["status"] == "done"]
    own = [r["wall_seconds"] for r in done]
    per_run = wall * workers / len(result.records)
    overhead = per_run - statistics.mean(own)
    return {
        "workers": workers, "runs": len(result.records), "failed": result.failed, "wall_s": wall,
        "cluster_start_s": started, "warm_up_s": max(warm.values()),
        "run_s_median": statistics.median(own), "run_s_sum": sum(own),
        "per_run_s": per_run, "overhead_s": overhead, "overhead_pct": 100 * overhead / statistics.mean(own),
        "worker_s_median": statistics.median(r["worker_seconds"] for r in done),
    }


def table(rows: list[dict]) -> str:
    lines = ["| workers | runs | wall time | speedup | run's own time (median) | time per run with overhead "
             "| overhead per run | overhead (% of a run) | cluster start + warm-up |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['runs']} | {r['wall_s']:.1f} s | {rows[0]['wall_s'] / r['wall_s']:.2f}x "
                     f"| {r['run_s_median']:.2f} s | {r['per_run_s']:.2f} s | {r['overhead_s']:.3f} s "
                     f"| {r['overhead_pct']:.1f}% | {r['cluster_start_s']:.1f} + {r['warm_up_s']:.1f} s |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, in order (default 1,2)")
    ap.add_argument("--train-size", type=int, default=10_000, help="training images per run (default 10000)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    ap.add_argument("--seeds", default="0,1", help="seeds: 12 configurations each (default 0,1: 24 runs)")
    ap.add_argument("--out", default="benchmarks/results/sweep_scale", help="prefix of the .md and .json written")
    args = ap.parse_args()
    from digitnet.training.settings import settings_from_dict, settings_to_dict

    the_spec = spec(args.train_size, args.epochs, [int(s) for s in args.seeds.split(",")])
    warm_config = settings_to_dict(*settings_from_dict({"preset": "video", "train_size": 100, "epochs": 1}))
    load = os.getloadavg()[0]
    rows = []
    for n in (int(w) for w in args.workers.split(",")):
        rows.append(measure(n, the_spec, warm_config))
        print(json.dumps(rows[-1]), flush=True)
    load = max(load, os.getloadavg()[0])
    md = table(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load average up to {load:.1f} while measuring"
    how = (f"python benchmarks/sweep_scale.py --workers {args.workers} --train-size {args.train_size} "
           f"--epochs {args.epochs} --seeds {args.seeds}")
    print(f"\n{md}\n\n{machine}\n{how}")
    from digitnet.files import atomic_write_bytes

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out.with_suffix(".md"), f"{md}\n\n{machine}. Command: `{how}`\n".encode())
    atomic_write_bytes(out.with_suffix(".json"), json.dumps({"rows": rows, "machine": machine, "command": how},
                                                            indent=2).encode())
    print(f"Wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
