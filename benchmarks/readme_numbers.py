"""Regenerate the README's numbers about the default model, so that they cannot drift.

The README's `digitnet show` table and its robustness table describe "the default model":
what `digitnet train` with no options saves (the video's network, seed 0) on the numpy
engine, which is what `pip install .` trains with. This script trains that model (or
takes one given with --model), runs the same commands a reader would run, with --json,
and writes the tables from what they print:

    python benchmarks/readme_numbers.py                  # print the README snippets
    python benchmarks/readme_numbers.py --write          # rewrite them in README.md
    python benchmarks/readme_numbers.py --model digitnet-model.safetensors --write

In README.md each generated region sits between two comment lines,
``<!-- numbers:NAME -->`` and ``<!-- /numbers -->``; --write replaces what is between
them and nothing else. Training takes about 15 s on an idle core; the `show` and
robustness commands about a minute more (the shuffled-labels experiment trains two
networks).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TRAIN = ["train", "--engine", "numpy", "--seed", "0"]  # the default run, engine pinned


def digitnet(*args: str, cwd: Path) -> dict:
    """Run ``python -m digitnet ARGS --json`` as a reader would, and return its JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "digitnet", *args, "--json"], cwd=cwd, env=env,
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"digitnet {' '.join(args)} failed:\n{p.stderr}")
    return json.loads(p.stdout)


def pct(v: float, digits: int = 2) -> str:
    return f"{100 * v:.{digits}f}%"


def show_table(model: str, cwd: Path) -> tuple[str, dict]:
    out = lambda name: ["--out", str(cwd / f"{name}.png")]  # noqa: E731
    tr = digitnet("show", "training", model, *out("training"), cwd=cwd)
    we = digitnet("show", "weights", model, *out("weights"), cwd=cwd)
    er = digitnet("show", "errors", model, *out("errors"), cwd=cwd)
    gr = digitnet("show", "gradient", model, *out("gradient"), cwd=cwd)
    no = digitnet("show", "noise", model, *out("noise"), cwd=cwd)
    dr = digitnet("show", "dream", model, *out("dream"), cwd=cwd)
    sh = digitnet("show", "shuffled", model, *out("shuffled"), cwd=cwd)

    last = tr["epochs"][-1]
    first_mistake = er["mistakes"][0]
    classes = er["classes"]
    avg = gr["average"]
    first_layer = avg["layers"][0]["share"]
    s, n = sh["shuffled"], sh["normal"]
    rows = [
        ("`training`", "average cost and training/test accuracy per epoch, and every mini-batch's cost (smoothed)",
         f"cost {tr['initial_cost']:.2f} → {last['cost']:.3f}; test accuracy {pct(tr['initial_test_accuracy'])} → "
         f"{pct(last['test_accuracy'])}"),
        ("`weights`", "each first-layer neuron's 784 weights as a 28x28 image (blue +, red −), beside the initial "
         "weights and how far each moved",
         f"weights moved {we['relative_move']:.0f}x their initial size; learned patterns are blotches, not the edges "
         "one hoped for"),
        ("`errors`", "the confusion matrix and a gallery of misread test digits, most confident first",
         f"{er['wrong']} of {er['n']:,} wrong; the most confident: test image {first_mistake['index']}, a "
         f"{classes[first_mistake['true']]} read as {classes[first_mistake['predicted']]}"),
        ("`gradient [--image N]`", "\\|dC/dw\\| for every weight and bias, per layer; the first layer's as 28x28 "
         "images; the top-k components and their share of ‖∇C‖²",
         f"over the training set, {avg['components_for_half']} of the {avg['n_components']:,} components carry half "
         f"of ‖∇C‖²; the first layer carries {first_layer:.0%}"),
        ("`activations MODEL IMAGE` (or `--test-index N`)", "the input, every layer's activations as the video's "
         "columns of neurons (lines: weights, blue +, red −), the 10 outputs", ""),
        ("`noise`", "random-noise images fed to the network: it answers anyway",
         f"top output {no['noise_mean_confidence']:.2f} on average on noise ({no['real_mean_confidence']:.2f} on "
         "real digits)"),
        ("`dream`", "for each digit, the input found by gradient ascent on that output",
         f"every output driven from {dr['mean_start_activation']:.2f} to {dr['mean_final_activation']:.2f} on "
         "average, with images of scattered specks"),
        ("`shuffled`", f"the same network trained on {sh['n_train']:,} images with their labels randomly permuted, "
         "against true labels",
         f"training accuracy climbs {pct(s['train_accuracy'][0], 1)} → {pct(s['final_train_accuracy'], 1)} while "
         f"test accuracy stays near chance ({pct(s['final_test_accuracy'], 1)}); true labels: "
         f"{pct(n['final_test_accuracy'], 1)} test"),
    ]
    lines = ["| command | what it shows | the numbers |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines), {"test_accuracy": last["test_accuracy"]}


def robustness_table(model: str, cwd: Path) -> str:
    d = digitnet("evaluate", model, "--robustness", "--robustness-png", str(cwd / "robustness.png"), cwd=cwd)
    lines = ["| change | accuracy at each level |", "|---|---|"]
    for name, c in d["robustness"].items():
        levels = ", ".join(f"{_level(v)}: {pct(a, 1)}" for v, a in zip(c["levels"], c["accuracy"]))
        lines.append(f"| {name} ({c['unit']}) | {levels} |")
    return "\n".join(lines)


def _level(v: float) -> str:
    text = f"{v:g}"
    return text.replace("-", "−")


def replace_region(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- numbers:{name} -->\n)(.*?)(<!-- /numbers -->)", re.S)
    if not pattern.search(text):
        sys.exit(f"README.md has no region <!-- numbers:{name} --> ... <!-- /numbers -->")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text, count=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="use this model file instead of training the default one")
    ap.add_argument("--write", action="store_true", help="rewrite the marked regions of README.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        if args.model:
            model = str(Path(args.model).resolve())
            trained = None
        else:
            model = str(cwd / "digitnet-model.safetensors")
            started = time.perf_counter()
            trained = digitnet(*TRAIN, "--out", model, cwd=cwd)
            wall = time.perf_counter() - started
            print(f"# digitnet {' '.join(TRAIN)}: test accuracy {pct(trained['test_accuracy'])}, "
                  f"{wall:.1f} s wall (machine not necessarily idle)", file=sys.stderr)
        show, facts = show_table(model, cwd)
        robust = robustness_table(model, cwd)

    accuracy = pct(facts["test_accuracy"])
    source = ("the default model (`digitnet train`, seed 0, numpy engine, " + accuracy + ")" if trained is not None
              else f"`{args.model}` ({accuracy})")
    regions = {
        "show": f"Measured on {source} by `python benchmarks/readme_numbers.py`:\n\n{show}",
        "robustness": f"On {source}, measured by `python benchmarks/readme_numbers.py`:\n\n{robust}",
    }
    if args.write:
        text = README.read_text()
        for name, body in regions.items():
            text = replace_region(text, name, body)
        README.write_text(text)
        print(f"Rewrote {len(regions)} regions of {README}", file=sys.stderr)
    else:
        for name, body in regions.items():
            print(f"<!-- numbers:{name} -->\n{body}\n<!-- /numbers -->\n")


if __name__ == "__main__":
    main()
