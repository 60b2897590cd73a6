"""Group digitnet's flat top-level modules into subpackages by layer (issue 14).

Run from the repository root, on a clean working tree::

    python tools/relayout.py            # git mv the modules, rewrite every import and path
    python tools/relayout.py --dry-run  # only say what would change

It moves each module of MOVES that exists (``git mv``; modules other branches add, such
as ``history.py`` and ``engines.py``, are moved too when present), creates the new
packages' ``__init__.py``, and rewrites the references in src/, tests/, benchmarks/,
fuzz/, docs/ and README.md:

* dotted names: ``digitnet.train`` -> ``digitnet.training.train`` (imports, ``mock`` strings,
  ``:mod:`` references, ``python -m``), never touching longer names (``digitnet.training``);
* ``from digitnet import run`` -> ``from digitnet.tasks import run`` for module names only:
  names the package itself exports (``digitnet.train`` the function, ``digitnet.evaluate``)
  are left alone, so ``import digitnet as dn; dn.train(...)`` keeps working;
* file paths: ``digitnet/train.py`` -> ``digitnet/training/train.py``.

Running it again changes nothing (every rule only matches the old names).
tests/test_architecture.py is written for both layouts and is left as it is.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "digitnet"

# Today's module -> its place by layer (tests/test_architecture.py's TODAY is the same table).
MOVES = {
    "images": "data.images",
    "metrics": "nn.metrics",
    "optim": "training.optim",
    "augment": "training.augment",
    "history": "training.history",
    "engines": "training.engines",
    "train": "training.train",
    "presets": "training.presets",
    "settings": "training.settings",
    "model_io": "io.model_io",
    "run": "tasks.run",
    "evaluate": "tasks.evaluate",
    "robustness": "tasks.robustness",
}
NEW_PACKAGES = {
    "training": '"""Training: optimizers, augmentation, the training history, the engines and the Trainer, presets."""\n',
    "io": '"""Model files: the safetensors format digitnet saves and loads networks in."""\n',
    "tasks": '"""What the front ends ask for: a whole training run, evaluation, robustness curves."""\n',
}
SCOPE = ("src", "tests", "benchmarks", "fuzz", "docs", "README.md", "pyproject.toml")
SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".html", ".js"}
SKIP = {"tests/test_architecture.py", "tools/relayout.py"}


def git(*args: str) -> None:
    subprocess.run(["git", *args], cwd=ROOT, check=True)


def public_names() -> set[str]:
    """The names ``digitnet/__init__.py`` binds itself (``train``, ``evaluate``...): not modules to rewrite."""
    tree = ast.parse((PKG / "__init__.py").read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def move_modules(dry: bool) -> dict[str, str]:
    """``git mv`` every module of MOVES that is still flat; returns the moves in effect
    (done now or before), old dotted tail -> new dotted tail."""
    done = {}
    for old, new in MOVES.items():
        src, dst = PKG / f"{old}.py", PKG / (new.replace(".", "/") + ".py")
        if src.exists() and not dst.exists():
            print(f"git mv {src.relative_to(ROOT)} {dst.relative_to(ROOT)}")
            if not dry:
                package = dst.parent
                if not (package / "__init__.py").exists():
                    package.mkdir(parents=True, exist_ok=True)
                    (package / "__init__.py").write_text(NEW_PACKAGES[package.name], encoding="utf-8")
                    git("add", str(package / "__init__.py"))
                git("mv", str(src), str(dst))
            done[old] = new
        elif dst.exists() and not src.exists():
            done[old] = new  # moved by an earlier run: keep rewriting stragglers
        elif src.exists() and dst.exists():
            sys.exit(f"Both {src} and {dst} exist; resolve by hand.")
    return done


def rewrite(text: str, moves: dict[str, str], public: set[str]) -> str:
    for old, new in moves.items():
        # digitnet.old (not digitnet.old_x, not digitnet.oldish, not already digitnet.pkg.old)
        text = re.sub(rf"\bdigitnet\.{old}\b(?![\w])", f"digitnet.{new}", text)
        text = re.sub(rf"\bdigitnet/{old}\.py\b", f"digitnet/{new.replace('.', '/')}.py", text)

    def split_from_import(m: re.Match) -> str:
        indent, body = m.group(1), m.group(2)
        inner = body.strip()
        paren = inner.startswith("(")
        items = [s.strip() for s in inner.strip("()").replace("\n", " ").split(",") if s.strip()]
        keep, moved = [], []
        for item in items:
            name = item.split(" as ")[0].strip()
            if name in moves and name not in public:
                package, _, module = moves[name].rpartition(".")
                moved.append(f"{indent}from digitnet.{package} import {item.replace(name, module, 1)}")
            else:
                keep.append(item)
        if not moved:
            return m.group(0)
        lines = ([f"{indent}from digitnet import {', '.join(keep)}"] if keep else []) + moved
        trail = "" if paren else body[len(body.rstrip()):]  # the spaces before a "# comment"
        return "\n".join(lines) + trail

    text = re.sub(r"(?m)^([ \t]*)from digitnet import (\([^)]*\)|[^\n#]*)", split_from_import, text)
    return sort_import_runs(text)


_ONE_LINE_IMPORT = re.compile(r"([ \t]*)from (digitnet[\w.]*) import [^()\n]*$")


def sort_import_runs(text: str) -> str:
    """Put each run of consecutive one-line ``from digitnet... import`` lines (same indent)
    back in module order, as isort would, since renamed modules sort elsewhere."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _ONE_LINE_IMPORT.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (n := _ONE_LINE_IMPORT.match(lines[j])) and n.group(1) == m.group(1):
            j += 1
        lines[i:j] = sorted(lines[i:j], key=lambda line: _ONE_LINE_IMPORT.match(line).group(2))
        i = j
    return "\n".join(lines)


def files_in_scope():
    for entry in SCOPE:
        path = ROOT / entry
        if path.is_file():
            yield path
        elif path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts:
                    yield p


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    args = parser.parse_args(argv)
    public = public_names()
    moves = move_modules(args.dry_run)
    if args.dry_run:  # rewrite as if every present module had moved
        moves = {old: new for old, new in MOVES.items()
                 if (PKG / f"{old}.py").exists() or (PKG / (new.replace(".", "/") + ".py")).exists()}
    changed = 0
    for path in files_in_scope():
        rel = path.relative_to(ROOT).as_posix()
        if rel in SKIP:
            continue
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, moves, public)
        if new != text:
            changed += 1
            print(f"rewrote {rel}")
            if not args.dry_run:
                path.write_text(new, encoding="utf-8")
    print(f"{len(moves)} modules in their layer packages; {changed} files rewritten.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
