"""How well `digitnet predict` reads photographed digits: accuracy per photo condition,
with the picture preparation before and after ink-finding (digitnet.data.ink).

The photo-like test set is made here, seeded, by ``digitnet.data.photolike``: MNIST test
digits (the first N) and digits rendered in the font Pillow ships, as ink on paper, under
each condition (clean, grey paper, tinted paper, uneven light, shadow, sensor noise, JPEG
quality 30, off-centre, lined paper, squared paper, a table around the paper, all
combined). Each picture goes through the old preparation (kept below as
``old_prepare``: the border's grey level is the paper, everything else is ink) and the
new ``digitnet.data.images.prepare``; the model reads both.

The model is the default ``digitnet train`` network, trained once into
``benchmarks/.cache/`` (``--model PATH`` reads another). Prints a Markdown table and
writes it to ``benchmarks/results/photos.md``, with the time ``prepare`` takes per
600x600 photo.

Run:  python benchmarks/photos.py [--model PATH] [--mnist 100] [--font 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def old_prepare(data: bytes) -> np.ndarray:
    """digitnet.data.images.prepare as it was before ink-finding (commit b704ed7): transparency
    on white, the border's median grey is the paper, the rest of the picture is ink."""
    from PIL import Image

    from digitnet.data.images import centre_like_mnist

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
        grey = np.asarray(im.convert("L"), dtype=np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    paper = float(np.median(border))
    ink = 255.0 - grey if paper > 127.5 else grey.copy()
    background = 255.0 - paper if paper > 127.5 else paper
    ink = np.clip(ink - background, 0, None)
    top = ink.max()
    if top < 8.0:
        return np.zeros(784, np.float32)  # "The image is blank": counted as wrong
    ink *= 255.0 / top
    return (centre_like_mnist(ink.astype(np.float32)) / 255.0).reshape(784).astype(np.float32)


def new_prepare(data: bytes) -> np.ndarray:
    from digitnet.data.images import prepare
    from digitnet.errors import ImageError

    try:
        return prepare(data)
    except ImageError:
        return np.zeros(784, np.float32)  # counted as wrong


def default_model() -> Path:
    path = ROOT / "benchmarks" / ".cache" / "photos-default-model.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"Training the default network once into {path} ...", file=sys.stderr)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        subprocess.run([sys.executable, "-m", "digitnet", "train", "--out", str(path)], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    return path


def time_prepare(n: int, seed: int) -> float:
    """Median milliseconds of prepare on 600x600 'all combined' photos (as JPEG bytes)."""
    import digitnet
    from digitnet.data import photolike
    from digitnet.data.images import prepare

    test = digitnet.load_mnist().test
    rng = np.random.default_rng([seed, 99])
    files = [photolike.photo(photolike.mnist_ink(test.images[i], 200), "all combined", rng, size=(600, 600))
             for i in range(n)]
    times = []
    for f in files:
        t = time.perf_counter()
        prepare(f)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a model file (default: the default `digitnet train` network, trained once)")
    ap.add_argument("--mnist", type=int, default=100, help="MNIST test digits per condition (default 100)")
    ap.add_argument("--font", type=int, default=50, help="rendered digits per condition (default 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--conditions", help="comma-separated subset of the conditions")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "photos.md"))
    args = ap.parse_args()

    import digitnet
    from digitnet.data import photolike
    from digitnet.io.model_io import load_model

    model = Path(args.model) if args.model else default_model()
    net = load_model(model).net
    test = digitnet.load_mnist().test
    conditions = args.conditions.split(",") if args.conditions else list(photolike.CONDITIONS)
    rows = []
    total = {"old": 0, "new": 0, "n": 0}
    for cond in conditions:
        files, y = photolike.photo_set(test.images, test.y, args.mnist, args.font, cond, seed=args.seed)
        cols = {}
        for name, prep in (("old", old_prepare), ("new", new_prepare)):
            x = np.stack([prep(f) for f in files])
            pred = net.feedforward(x).argmax(axis=1)
            right = pred == y
            cols[name] = (right[: args.mnist].mean(), right[args.mnist :].mean(), right.mean())
            total[name] += int(right.sum())
        total["n"] += len(y)
        rows.append((cond, cols))
        print(f"{cond}: before {cols['old'][2]:.0%}, after {cols['new'][2]:.0%}", file=sys.stderr)

    def pct(v):
        return "-" if np.isnan(v) else f"{100 * v:.0f}%"

    ms = time_prepare(20, args.seed)
    lines = [
        f"Accuracy of `{model.name if args.model else 'the default digitnet train network'}` on photo-like digits "
        f"({args.mnist} MNIST test digits + {args.font} rendered digits per condition, seed {args.seed}); "
        "before: the preparation without ink-finding, after: `digitnet.data.images.prepare` now.",
        "",
        "| condition | before (MNIST / font / all) | after (MNIST / font / all) |",
        "|---|---|---|",
    ]
    for cond, cols in rows:
        o, n = cols["old"], cols["new"]
        lines.append(f"| {cond} | {pct(o[0])} / {pct(o[1])} / **{pct(o[2])}** | "
                     f"{pct(n[0])} / {pct(n[1])} / **{pct(n[2])}** |")
    lines.append(f"| **all conditions** | **{100 * total['old'] / total['n']:.1f}%** | "
                 f"**{100 * total['new'] / total['n']:.1f}%** |")
    lines += ["", f"`prepare` takes {ms:.0f} ms per 600x600 photo (median of 20, 'all combined', "
              f"{platform.processor() or platform.machine()}, Python {platform.python_version()})."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("Made by `python benchmarks/photos.py`.\n\n" + text)
    tmp.replace(out)


if __name__ == "__main__":
    main()
