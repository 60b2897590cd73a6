"""A 2-D slice of the cost landscape: the slice method against a point-by-point loop.

The slice W + alpha D1 + beta D2 (D1, D2 filter-normalised random directions) of the video's
network (784-16-16-10, sigmoid, quadratic cost), over the first ``--examples`` training
images, on a ``--grid`` x ``--grid`` grid from -1 to 1, computed two ways:

* slice: :func:`digitnet.explain.landscape.landscape`, which does the first layer's big
  products once and runs the grid points through the small layers in batches;
* loop: for every grid point, build the network at those weights and call ``net.cost`` (what
  one would write first). It is slow, so only ``--loop-points`` points spread over the grid
  are timed and the time is extrapolated to the whole grid (said so in the output); their
  costs are also compared with the slice's.

Both in float32 (the model's dtype) and float64; the fastest of ``--reps`` runs counts, as
wall-clock seconds and as CPU seconds of this process (all its threads together: with
``--threads 2`` the CPU seconds stay about the same while the wall-clock time halves on an
idle machine). The slice runs in ``--threads`` threads (default: the library's, 2 where the
machine has 2 cores); BLAS keeps one thread.
The network is the video's trained for ``--epochs`` epochs with ``digitnet.training.train`` (0: the
random initial weights; the timing does not depend on the weights). With 2 or more epochs it
also reports the training trajectory's principal directions: the variance they explain, the
path, and where the lowest point of a slice along them lies.

Run:  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/landscape.py
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core, as the target says
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from digitnet.config import TrainConfig  # noqa: E402
from digitnet.data.datasets import load_mnist  # noqa: E402
import digitnet.explain.landscape as landscape_module  # noqa: E402
from digitnet.explain.landscape import (  # noqa: E402
    filter_normalized_direction,
    landscape,
    perturbed,
    trajectory_directions,
)
from digitnet.nn.network import Network  # noqa: E402
from digitnet.training.train import train  # noqa: E402


def best_of(reps: int, f):
    """(fastest wall-clock s, fastest CPU s, result) of ``reps`` calls of ``f``."""
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = f()
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return wall, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=10_000, help="training images the cost is averaged over (default 10000)")
    ap.add_argument("--grid", type=int, default=41, help="points per axis (default 41)")
    ap.add_argument("--loop-points", type=int, default=41, help="grid points the loop really runs (default 41)")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs before slicing; 0 = random weights (default 2)")
    ap.add_argument("--reps", type=int, default=3, help="runs of the slice; the fastest counts (default 3)")
    ap.add_argument("--threads", type=int, default=landscape_module.THREADS,
                    help=f"threads the slice runs in (default {landscape_module.THREADS}, the library's)")
    args = ap.parse_args()
    landscape_module.THREADS = max(1, args.threads)

    mnist = load_mnist()
    net = Network.create((784, 16, 16, 10), seed=0)
    snapshots = [net.copy()]
    if args.epochs:
        train(net, mnist.train, TrainConfig(epochs=args.epochs, seed=0), on_epoch=lambda rec: snapshots.append(net.copy()))
    x, y = mnist.train.x[: args.examples], mnist.train.y[: args.examples]
    d1, d2 = filter_normalized_direction(net, 1), filter_normalized_direction(net, 2)
    grid = np.linspace(-1, 1, args.grid)
    points = [(i, j) for i in range(args.grid) for j in range(args.grid)]
    picked = [points[k] for k in np.linspace(0, len(points) - 1, min(args.loop_points, len(points))).astype(int)]

    print(f"{args.grid}x{args.grid} slice of 784-16-16-10 over {len(y)} training images, "
          f"{'trained %d epochs' % args.epochs if args.epochs else 'random weights'}; "
          f"slice threads {landscape_module.THREADS}, BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}")
    print("| dtype | slice s (CPU s) | loop s (CPU s), extrapolated | loop / slice (CPU) | loop points run | max rel. diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for dtype in ("float32", "float64"):
        n = net.astype(dtype)
        wall, cpu, ls = best_of(args.reps, lambda: landscape(n, x, y, d1, d2, grid, grid))
        start, start_cpu = time.perf_counter(), time.process_time()
        loop = [perturbed(n, [(grid[j], d1), (grid[i], d2)]).cost(x, y) for i, j in picked]
        scale = len(points) / len(picked)
        loop_wall, loop_cpu = (time.perf_counter() - start) * scale, (time.process_time() - start_cpu) * scale
        diff = max(abs(c - ls.cost[i, j]) / abs(c) for c, (i, j) in zip(loop, picked))
        print(f"| {dtype} | {wall:.2f} ({cpu:.2f}) | {loop_wall:.1f} ({loop_cpu:.1f}) | {loop_wall / wall:.1f} "
              f"({loop_cpu / cpu:.1f}) | {len(picked)} of {len(points)} | {diff:.1e} |", flush=True)

    if len(snapshots) >= 3:
        tr = trajectory_directions(snapshots)
        print(f"\ntrajectory of {len(snapshots)} snapshots: explained variance {tr.explained[0]:.1%}, {tr.explained[1]:.1%}; "
              f"path {np.round(tr.path, 2).tolist()}")
        reach = 1.25 * np.abs(tr.path).max()
        axis = np.linspace(-reach, reach, args.grid)
        ls = landscape(net, x, y, tr.d1, tr.d2, axis, axis)
        a, b, c = ls.lowest
        print(f"slice along them ({args.grid}x{args.grid}, +-{reach:.2f}): centre cost {ls.center_cost:.5f}, lowest "
              f"{c:.5f} at [{a:.2f}, {b:.2f}] = {max(abs(a), abs(b)) / (axis[1] - axis[0]):.1f} cells from the trained weights")


if __name__ == "__main__":
    main()
