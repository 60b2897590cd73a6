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

Both in float32 (the model's dtype) and float64; the fastest of ``--reps`` runs counts. The
network is the video's trained for ``--epochs`` epochs with ``digitnet.train`` (0: the random
initial weights; the timing does not depend on the weights).

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
from digitnet.explain.landscape import filter_normalized_direction, landscape, perturbed  # noqa: E402
from digitnet.nn.network import Network  # noqa: E402
from digitnet.train import train  # noqa: E402


def best_of(reps: int, f):
    best, out = float("inf"), None
    for _ in range(reps):
        start = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=10_000, help="training images the cost is averaged over (default 10000)")
    ap.add_argument("--grid", type=int, default=41, help="points per axis (default 41)")
    ap.add_argument("--loop-points", type=int, default=41, help="grid points the loop really runs (default 41)")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs before slicing; 0 = random weights (default 2)")
    ap.add_argument("--reps", type=int, default=3, help="runs of the slice; the fastest counts (default 3)")
    args = ap.parse_args()

    mnist = load_mnist()
    net = Network.create((784, 16, 16, 10), seed=0)
    if args.epochs:
        train(net, mnist.train, TrainConfig(epochs=args.epochs, seed=0))
    x, y = mnist.train.x[: args.examples], mnist.train.y[: args.examples]
    d1, d2 = filter_normalized_direction(net, 1), filter_normalized_direction(net, 2)
    grid = np.linspace(-1, 1, args.grid)
    points = [(i, j) for i in range(args.grid) for j in range(args.grid)]
    picked = [points[k] for k in np.linspace(0, len(points) - 1, min(args.loop_points, len(points))).astype(int)]

    print(f"{args.grid}x{args.grid} slice of 784-16-16-10 over {len(y)} training images, "
          f"{'trained %d epochs' % args.epochs if args.epochs else 'random weights'}; "
          f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}")
    print("| dtype | slice s | loop s (extrapolated) | loop / slice | loop points run | max rel. diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for dtype in ("float32", "float64"):
        n = net.astype(dtype)
        t_slice, ls = best_of(args.reps, lambda: landscape(n, x, y, d1, d2, grid, grid))
        start = time.perf_counter()
        loop = [perturbed(n, [(grid[j], d1), (grid[i], d2)]).cost(x, y) for i, j in picked]
        t_loop = (time.perf_counter() - start) / len(picked) * len(points)
        diff = max(abs(c - ls.cost[i, j]) / abs(c) for c, (i, j) in zip(loop, picked))
        print(f"| {dtype} | {t_slice:.2f} | {t_loop:.1f} | {t_loop / t_slice:.1f} | {len(picked)} of {len(points)} | {diff:.1e} |",
              flush=True)


if __name__ == "__main__":
    main()
