"""Whether two versions of digitnet train to the same weights, bit for bit.

A change that only makes training faster (a kernel, a data layout, how an epoch is split
into calls) must not change a single bit of the trained weights. This trains the same set of
configurations with this checkout's code and with another checkout's ``src`` folder
(``--before``), each version in its own process, and compares the weights byte for byte:

* the video's network (784-16-16-10, sigmoid, quadratic cost) on the numba, numpy and
  reference engines, at batch 10, 100 and 37 (a partial last batch), with and without a
  progress callback (which splits an epoch into calls), with and without weight decay;
* the numba engine with ReLU + softmax + cross-entropy, tanh + sigmoid + cross-entropy,
  ReLU + identity, float64, and deskewed inputs (float values instead of pixel codes);
* ``--presets``: also a few steps of ``--preset mlp`` and ``--preset cnn`` on the reference
  engine (momentum, Adam, dropout, augmentation, conv layers).

Prints one line per configuration and exits 1 if any differs.

    python benchmarks/same_bits.py --before /tmp/old/src      # about 2 minutes
    git archive HEAD~3 src | tar -x -C /tmp/old                # an older version's src, for --before
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def configurations(presets: bool, quick: bool) -> list[dict]:
    """The configurations trained, as keyword dictionaries for :func:`train_one`."""
    out = []
    batches = (10, 37) if quick else (10, 100, 37)
    for engine in ("numba", "numpy", "reference"):
        for batch in batches:
            for progress in (False, True):
                for lmbda in ((0.0,) if quick else (0.0, 5.0)):
                    out.append(dict(engine=engine, batch=batch, progress=progress, lmbda=lmbda))
    if not quick:
        for net in ("relu-softmax-ce", "tanh-sigmoid-ce", "relu-identity", "sigmoid-float64", "sigmoid-deskew"):
            for batch in (10, 64):
                out.append(dict(engine="numba", batch=batch, progress=True, lmbda=1.0, net=net))
    if presets:
        out += [dict(preset="mlp", steps=40), dict(preset="cnn", steps=8)]  # within the first epoch (47 and 94 batches)
    return out


def name_of(c: dict) -> str:
    if "preset" in c:
        return f"preset {c['preset']}, {c['steps']} steps"
    return (f"{c.get('net', 'video')}, {c['engine']} engine, batch {c['batch']}, "
            f"{'progress' if c['progress'] else 'no progress'}, lmbda {c['lmbda']:g}")


NETS = {
    "video": {},
    "relu-softmax-ce": dict(layers=(784, 30, 10), activation="relu", output_activation="softmax", cost="cross-entropy"),
    "tanh-sigmoid-ce": dict(layers=(784, 20, 12, 10), activation="tanh", output_activation="sigmoid",
                            cost="cross-entropy"),
    "relu-identity": dict(layers=(784, 24, 10), activation="relu", output_activation="identity"),
    "sigmoid-float64": dict(dtype="float64"),
    "sigmoid-deskew": dict(preprocess="deskew"),
}


def train_one(c: dict, n_train: int) -> np.ndarray:
    """The weights and biases after training configuration ``c``, in one flat array of bytes."""
    import dataclasses

    from digitnet.config import NetworkConfig, TrainConfig
    from digitnet.data.datasets import load_mnist
    from digitnet.nn.network import Network
    from digitnet.training.train import Trainer

    split = load_mnist().train.subset(n_train)
    if "preset" in c:
        from digitnet.training.presets import get_preset

        net_cfg, train_cfg = get_preset(c["preset"])[:2]
        net = Network.create(net_cfg, seed=1)
        trainer = Trainer(net, split, dataclasses.replace(train_cfg, epochs=1, seed=3), test=None)
        for _ in range(c["steps"]):
            trainer.step()
    else:
        net = Network.create(NetworkConfig(**NETS[c.get("net", "video")]), seed=1)
        eta = 0.5 if "relu" in c.get("net", "") else 3.0
        cfg = TrainConfig(batch_size=c["batch"], eta=eta, epochs=2, seed=3, lmbda=c["lmbda"])
        trainer = Trainer(net, split, cfg, test=None, engine=c["engine"])
        while not trainer.done:
            trainer.run_epoch((lambda k: None) if c["progress"] else None)
    return np.concatenate([np.frombuffer(p[k].tobytes(), np.uint8) for p in net.params for k in sorted(p)])


def worker(args) -> None:
    """Train every configuration with the code on sys.path; save the weights to ``args.worker``."""
    cs = configurations(args.presets, args.quick)
    np.savez(args.worker, *[train_one(c, args.train_size) for c in cs])


def run_version(src: Path, out: Path, args) -> list[np.ndarray]:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", str(out), "--train-size", str(args.train_size)]
    cmd += ["--presets"] if args.presets else []
    cmd += ["--quick"] if args.quick else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"Error: training with {src} failed:\n{done.stderr[-2000:]}")
    with np.load(out) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def compare(before: list[np.ndarray], after: list[np.ndarray], names: list[str]) -> list[str]:
    """The names of the configurations whose weights differ (in length or in any byte)."""
    return [n for n, a, b in zip(names, before, after, strict=True) if a.shape != b.shape or not np.array_equal(a, b)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="example: python benchmarks/same_bits.py --before /tmp/old/src")
    p.add_argument("--before", type=Path, help="another checkout's src folder (required)")
    p.add_argument("--after", type=Path, default=ROOT / "src", help="the src folder to compare (default: this one)")
    p.add_argument("--train-size", type=int, default=6000, help="training images (default 6000)")
    p.add_argument("--presets", action="store_true", help="also a few steps of --preset mlp and --preset cnn")
    p.add_argument("--quick", action="store_true", help="fewer configurations (a smoke test)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.before is None:
        raise SystemExit("Error: --before SRC is required: the src folder of the version to compare with.")
    for flag, src in (("--before", args.before), ("--after", args.after)):
        if not (src / "digitnet" / "__init__.py").is_file():
            raise SystemExit(f"Error: {flag} {src} is not a src folder with digitnet in it "
                             "(e.g. git archive HEAD src | tar -x -C DIR, then DIR/src).")
    names = [name_of(c) for c in configurations(args.presets, args.quick)]
    with tempfile.TemporaryDirectory() as tmp:
        before = run_version(args.before.resolve(), Path(tmp) / "before.npz", args)
        after = run_version(args.after.resolve(), Path(tmp) / "after.npz", args)
    differ = set(compare(before, after, names))
    for n in names:
        print(f"{'DIFFERS' if n in differ else 'same   '}  {n}")
    print(f"{len(names) - len(differ)} of {len(names)} configurations train to the same weights, bit for bit")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
