"""How long ``digitnet predict MODEL IMAGE`` takes, the whole command, and where the time goes.

Makes a model (the video's 784-16-16-10 network, untrained: reading one image costs the same)
and three pictures in a temporary folder: MNIST test digit 0 at 200x200 (the README's
``seven.png``), a photo-like 500x560 JPEG (``digitnet.data.photolike``, all conditions
combined) and a 4000x3000 phone-sized JPEG. Then runs the command ``--repeat`` times per
picture, each in a fresh process, and prints the median wall time and the largest peak
resident memory. With ``--before SRC`` (another checkout's ``src`` folder) the two are run
interleaved (A B A B ...), so a busy machine slows both alike.

The breakdown (this code, the first picture) times growing steps the same way, each in a
fresh process: Python's start-up (``python -c pass``), then importing NumPy, then Pillow and
click, then the modules ``digitnet predict`` imports; the rest is the work itself (reading the
model and the picture, preparing it, the forward pass, the output). Bytecode is cached in a
temporary folder (``PYTHONPYCACHEPREFIX``), as ``pip install`` does, even where
PYTHONDONTWRITEBYTECODE is set.

    python benchmarks/predict_speed.py                      # about 20 s
    python benchmarks/predict_speed.py --before /tmp/old/src --repeat 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_files(folder: Path) -> None:
    import numpy as np
    from PIL import Image

    import digitnet as dn
    from digitnet.data import photolike

    model = folder / "model.safetensors"
    dn.save_model(model, dn.Network.create((784, 16, 16, 10), seed=0))
    test = dn.load_mnist().test
    seven = folder / "seven.png"
    Image.fromarray(255 - test.images[0]).resize((200, 200), Image.Resampling.LANCZOS).save(seven)
    rng = np.random.default_rng(0)
    photo = folder / "photo.jpg"
    photo.write_bytes(photolike.photo(photolike.mnist_ink(test.images[1], 300), "all combined", rng))
    big = folder / "phone.jpg"
    rng = np.random.default_rng(1)
    big.write_bytes(photolike.photo(photolike.mnist_ink(test.images[2], 1200), "jpeg", rng, size=(3000, 4000)))


def env_for(src: str, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=src, PYTHONPYCACHEPREFIX=str(cache), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one command."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per picture and code (default 5; the median is shown)")
    ap.add_argument("--before", help="another checkout's src folder, run interleaved with this one's")
    ap.add_argument("--make-files", help=argparse.SUPPRESS)  # internal: make the model and pictures in this folder
    args = ap.parse_args()
    if args.make_files:
        make_files(Path(args.make_files))
        return 0
    here = str(ROOT / "src")
    codes = {"now": here, **({"before": str(Path(args.before).resolve())} if args.before else {})}
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="digitnet-predict-speed-") as tmp:
        folder = Path(tmp)
        envs = {name: env_for(src, folder / f"pycache-{name}") for name, src in codes.items()}
        # made in a child process: this one stays small, and a child's peak memory counts the
        # process it was forked from
        subprocess.run([py, __file__, "--make-files", tmp], env=envs["now"], check=True)
        model, pictures = folder / "model.safetensors", [folder / n for n in ("seven.png", "photo.jpg", "phone.jpg")]
        cmds = {p.name: [py, "-m", "digitnet", "predict", str(model), str(p)] for p in pictures}
        for name in codes:  # warm: bytecode written, files in the page cache
            for cmd in cmds.values():
                timed(cmd, envs[name])
        runs: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for _ in range(args.repeat):
            for picture, cmd in cmds.items():
                for name in codes:
                    runs[name, picture].append(timed(cmd, envs[name]))
        print(f"`digitnet predict MODEL IMAGE`, whole command, median of {args.repeat} (wall s, peak MB); "
              f"load average {os.getloadavg()[0]:.2f}")
        for picture in cmds:
            cells = []
            for name in codes:
                walls, mbs = zip(*runs[name, picture])
                cells.append(f"{name} {statistics.median(walls):.3f} s, {max(mbs):.0f} MB")
            print(f"  {picture:10s} " + "; ".join(cells))
        # Where the time goes (this code, the first picture): each step's median wall time,
        # run interleaved like the command, minus the step before.
        steps = {
            "Python start-up": "pass",
            "import numpy": "import numpy",
            "import Pillow and click": "import numpy, PIL.Image, click",
            "import digitnet's modules for predict": "import numpy, PIL.Image, click, digitnet.cli.predict, "
                                                     "digitnet.io.model_io, digitnet.data.images, digitnet.data.ink",
        }
        env = envs["now"]
        walls: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.repeat):
            for step, code in steps.items():
                walls[step].append(timed([py, "-c", code], env)[0])
        total = statistics.median(w for w, _ in runs["now", pictures[0].name])
        print(f"Where the time goes ({pictures[0].name}, this code: median wall time of each step "
              "minus the step before):")
        previous = 0.0
        for step in steps:
            t = statistics.median(walls[step])
            print(f"  {step}: {1000 * (t - previous):.0f} ms")
            previous = t
        print(f"  the rest (reading the model and the picture, preparing it, the forward pass, the output): "
              f"{1000 * (total - previous):.0f} ms")
        print(f"  whole command: {1000 * total:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
