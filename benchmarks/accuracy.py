"""The video's headline: test accuracy of the video's network, per seed and the median.

Trains 784-16-16-10 sigmoid neurons with the quadratic cost, mini-batch SGD, batch size
10, initial learning rate 3.0 and 30 epochs on the 60,000 MNIST training images, and
tests on the 10,000 test images, for seeds 0, 1, 2. By default it measures what
``digitnet train`` does with no options (the ``video`` preset); ``--ablation`` also
measures the steps that led there, each changing one thing (none changes the layers,
the activation or the cost):

    plain          Nielsen's network.py: N(0,1) initial weights, constant eta
    scaled-init    initial weights N(0, 1/n_in) (Nielsen's network2.py)
    linear-eta     + eta falling linearly from 3.0 to 0 over the 30 epochs
    deskew         + slanted digits straightened before the first layer (the default)

Run:  python benchmarks/accuracy.py [--ablation] [--seeds 0,1,2] [--epochs 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import load_mnist
from digitnet.nn.network import Network
from digitnet.training.presets import get_preset
from digitnet.training.train import train

VIDEO = NetworkConfig(layers=(784, 16, 16, 10), activation="sigmoid", output_activation="sigmoid", cost="quadratic")
STEPS = {
    "plain": (dataclasses.replace(VIDEO, init="standard"), TrainConfig(schedule="constant")),
    "scaled-init": (dataclasses.replace(VIDEO, init="scaled"), TrainConfig(schedule="constant")),
    "linear-eta": (dataclasses.replace(VIDEO, init="scaled"), TrainConfig(schedule="linear")),
    "deskew": (dataclasses.replace(VIDEO, init="scaled", preprocess="deskew"), TrainConfig(schedule="linear")),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablation", action="store_true", help="measure every step, not only the default")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs per run (default 30, the video's)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    mnist = load_mnist()
    runs = dict(STEPS) if args.ablation else {"default (video preset)": get_preset("video")}
    rows = []
    for name, (net_cfg, train_cfg) in runs.items():
        accs = []
        for seed in seeds:
            cfg = dataclasses.replace(train_cfg, seed=seed, epochs=args.epochs, record_batch_cost=False)
            net = Network.create(net_cfg, seed=seed)
            t = time.perf_counter()
            h = train(net, mnist.train, cfg, test=mnist.test)
            accs.append(h.epochs[-1].test_accuracy)
            print(f"{name:24s} seed {seed}: test accuracy {100 * accs[-1]:.2f}%  ({time.perf_counter() - t:.1f} s)",
                  flush=True)
        rows.append((name, accs))
    print("\n| configuration | " + " | ".join(f"seed {s}" for s in seeds) + " | median |")
    print("|---|" + "---|" * (len(seeds) + 1))
    for name, accs in rows:
        print(f"| {name} | " + " | ".join(f"{100 * a:.2f}%" for a in accs) + f" | **{100 * statistics.median(accs):.2f}%** |")


if __name__ == "__main__":
    main()
