"""When the numba engine's sparse first layer pays: sparse against dense, per data set.

The numba engine (``digitnet.nn.compiled``) runs the first layer on the inputs that are
not 0 (compressed rows, one vector multiply-add per nonzero input) where at most
``SPARSE_BELOW`` (30%) of the training inputs are not 0, and on BLAS otherwise. This
script measures both ways on the same data, so that the threshold rests on numbers: a
whole epoch of SGD steps (the kernel alone, no Trainer), the fastest of ``--reps`` runs,
each on a fresh shuffle, for a few networks and batch sizes.

MNIST is 19% nonzero pixels; Fashion-MNIST (Debian's ``dataset-fashion-mnist``) 50%.

Run:  python benchmarks/sparse.py [--data mnist,fashion-mnist] [--reps 3]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the small products want one thread (see speed.py)

import time  # noqa: E402

import numpy as np  # noqa: E402

from digitnet.config import NetworkConfig  # noqa: E402
from digitnet.data.datasets import load_dataset  # noqa: E402
from digitnet.nn.compiled import CompiledSGD  # noqa: E402
from digitnet.nn.network import Network  # noqa: E402

VIDEO = NetworkConfig(layers=(784, 16, 16, 10))
CASES = [  # (network, batch size, learning rate)
    (VIDEO, 10, 3.0),
    (VIDEO, 100, 3.0),
    (NetworkConfig(layers=(784, 30, 10)), 10, 3.0),
    (NetworkConfig(layers=(784, 100, 10)), 10, 0.5),
    (NetworkConfig(layers=(784, 256, 128, 10), activation="relu", output_activation="softmax",
                   cost="cross-entropy", init="he"), 128, 0.1),
]


def epoch_seconds(cfg: NetworkConfig, train, m: int, eta: float, sparse: bool, reps: int) -> float:
    path = CompiledSGD(Network.create(cfg, seed=1), train.x, train.y, train.images, sparse=sparse)
    n = len(train.y)
    rng = np.random.default_rng(0)
    best = float("inf")
    for _ in range(reps):
        order = rng.permutation(n)
        start = time.perf_counter()
        path.steps(order, 0, n // m, m, eta)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="mnist,fashion-mnist", help="comma-separated: mnist, fashion-mnist (default both)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each case; the fastest counts (default 3)")
    args = ap.parse_args()
    print("| data (nonzero) | network | batch | sparse s/epoch | dense s/epoch | dense / sparse |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in args.data.split(","):
        train = load_dataset(name).train
        density = np.count_nonzero(train.images) / train.images.size
        for cfg, m, eta in CASES:
            t = {sparse: epoch_seconds(cfg, train, m, eta, sparse, args.reps) for sparse in (True, False)}
            print(f"| {name} ({density:.0%}) | {cfg.describe()} {cfg.activation} | {m} | "
                  f"{t[True]:.3f} | {t[False]:.3f} | {t[False] / t[True]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
