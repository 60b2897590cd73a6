"""Imports point one way: the layers of docs/ARCHITECTURE.md, checked over every module.

Each module of the package belongs to one layer (LAYERS, lowest first: the longest
matching name decides). A module may import modules of its own layer and of the layers
below it, never above. Every ``import`` counts, including those inside functions, so a
lazy import cannot hide an upward dependency. On top of that:

* no library module (anything outside ``digitnet.cli``, ``digitnet.web`` and the plots)
  imports the CLI, the web app or the plots, nor click, starlette or uvicorn;
* the model-file format does not import the training loop;
* no library module calls ``print()``: the library returns data, front ends print it.

LAYERS is written for the layout ``tools/relayout.py`` produces; TODAY maps the flat
module names that exist before it is run onto that layout, so the test holds either way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitnet"

# The allowed direction, written down once (docs/ARCHITECTURE.md shows the same table).
# Lowest first; a module may import only from its own layer and the layers above it here.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("digitnet.errors", "digitnet.jsonable", "digitnet.files", "digitnet._version", "digitnet._display")),
    ("formulas", ("digitnet.nn.activations", "digitnet.nn.costs")),  # numpy only; config checks names against them
    ("config", ("digitnet.config",)),
    ("data", ("digitnet.data",)),  # IDX files, data sets, folders of pictures, images, the sampler, deskewing
    ("nn", ("digitnet.nn",)),  # the network's math, the fused and compiled kernels, metrics
    ("training", ("digitnet.training",)),  # optimizers, augmentation, history, engines, the Trainer, presets
    ("model files", ("digitnet.io", "digitnet.export")),  # the safetensors format; ONNX and PyTorch export
    ("tasks", ("digitnet.tasks", "digitnet.explain", "digitnet.playground.descent", "digitnet.playground.expr",
               "digitnet.sklearn")),  # digitnet.sklearn: the scikit-learn estimator (trains, so above training)
    ("api", ("digitnet",)),  # the package's __init__ (only): the public names, re-exported
    ("plots", ("digitnet.plots", "digitnet.playground", "digitnet._figure")),  # matplotlib figures (playground.plot and its re-export)
    ("front ends", ("digitnet.cli", "digitnet.web", "digitnet.__main__")),
]
FRONT_ENDS = ("digitnet.cli", "digitnet.web", "digitnet.__main__")
PLOTS = ("digitnet.plots", "digitnet.playground.plot")
FRONT_END_LIBRARIES = ("click", "starlette", "uvicorn")
MODEL_FILES = ("digitnet.io.model_io",)
TRAINING_LOOP = ("digitnet.training.train", "digitnet.training.engines", "digitnet.training.optim",
                 "digitnet.training.augment", "digitnet.tasks.run")

# Today's flat modules -> where tools/relayout.py puts them (the same table as its MOVES).
TODAY = {
    "digitnet.images": "digitnet.data.images",
    "digitnet.metrics": "digitnet.nn.metrics",
    "digitnet.optim": "digitnet.training.optim",
    "digitnet.augment": "digitnet.training.augment",
    "digitnet.history": "digitnet.training.history",
    "digitnet.engines": "digitnet.training.engines",
    "digitnet.train": "digitnet.training.train",
    "digitnet.presets": "digitnet.training.presets",
    "digitnet.settings": "digitnet.training.settings",
    "digitnet.model_io": "digitnet.io.model_io",
    "digitnet.run": "digitnet.tasks.run",
    "digitnet.evaluate": "digitnet.tasks.evaluate",
    "digitnet.robustness": "digitnet.tasks.robustness",
}

# Imports that break a rule today, each waiting for a change another branch makes.
# Notebook display hooks: History._repr_png_ and the descent runs' _repr_png_ draw their picture
# with the plots, imported inside the method only when a notebook asks for the picture (Jupyter
# finds these methods on the object itself, so they cannot live in a front end).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = {
    ("digitnet.training.history", "digitnet.plots"),
    ("digitnet.playground.descent", "digitnet.playground.plot"),
}


def new_name(module: str) -> str:
    for old, new in TODAY.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old):]
    return module


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest entry naming ``module`` or a package above it."""
    module = new_name(module)
    best, best_len = None, -1
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            inside = module.startswith(name + ".") and name != "digitnet"  # "digitnet" is the __init__ only
            if (module == name or inside) and len(name) > best_len:
                best, best_len = i, len(name)
    return best


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str, root: Path) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def imports(source: str, module: str, is_package: bool, root: Path = PACKAGE) -> list[tuple[str, int]]:
    """Every module that ``source`` imports (anywhere in it, functions included), with its line.

    ``from digitnet import run`` counts as importing ``digitnet.run`` when that is a module.
    """
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if base.startswith("digitnet") and _is_module(full, root) else base, node.lineno))
    return found


def prints(source: str) -> list[int]:
    """Lines that call the built-in print()."""
    return [n.lineno for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]


def modules(root: Path = PACKAGE):
    for path in sorted(root.rglob("*.py")):
        yield module_name(path, root), path


def _within(module: str, prefixes) -> bool:
    module = new_name(module)
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(root: Path = PACKAGE) -> list[str]:
    """Every broken rule in the package at ``root``, one line each."""
    out = []
    for module, path in modules(root):
        source = path.read_text(encoding="utf-8")
        here = layer_of(module)
        if here is None:
            out.append(f"{module}: in no layer; add it to LAYERS in tests/test_architecture.py")
            continue
        library = not _within(module, FRONT_ENDS)
        for target, line in imports(source, module, path.name == "__init__.py", root):
            top = target.split(".")[0]
            if library and top in FRONT_END_LIBRARIES:
                out.append(f"{module}:{line} imports {target}: only the CLI and the web app may")
            if top != "digitnet":
                continue
            pair = (new_name(module), new_name(target))
            if pair in KNOWN_EXCEPTIONS:
                continue
            there = layer_of(target)
            if there is not None and there > here:
                out.append(f"{module}:{line} imports {target} upward: {LAYERS[here][0]} -> {LAYERS[there][0]}")
            if library and _within(target, FRONT_ENDS):
                out.append(f"{module}:{line} imports the front end {target}")
            if library and _within(target, PLOTS) and not _within(module, ("digitnet.plots", "digitnet.playground")):
                out.append(f"{module}:{line} imports the plots ({target}): only the CLI and the web app may")
            if _within(module, MODEL_FILES) and _within(target, TRAINING_LOOP):
                out.append(f"{module}:{line} imports the training loop ({target}): the model-file format must not")
        if library:
            out += [f"{module}:{line} calls print(): return the data, let the CLI print it" for line in prints(source)]
    return out


def test_imports_point_one_way():
    assert violations() == []


def test_every_module_is_in_a_layer():
    assert [m for m, _ in modules() if layer_of(m) is None] == []


def test_known_exceptions_are_still_needed():
    """An exception that no import needs any more is removed from the list."""
    used = set()
    for module, path in modules():
        for target, _ in imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            used.add((new_name(module), new_name(target)))
    assert KNOWN_EXCEPTIONS <= used, KNOWN_EXCEPTIONS - used


def test_nn_depends_on_nothing_above_it():
    nn = layer_of("digitnet.nn.network")
    for module, path in modules():
        if new_name(module).startswith("digitnet.nn"):
            for target, line in imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
                if target.startswith("digitnet"):
                    assert layer_of(target) <= nn, f"{module}:{line} imports {target}"


# --- the checker can fail -------------------------------------------------------------


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "digitnet"
    for name, text in {"__init__.py": "", "nn/__init__.py": "", "cli/__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"nn/network.py": "def f():\n    from digitnet.train import Trainer\n"}, "imports digitnet.train upward: nn -> training"),
        ({"nn/network.py": "from digitnet import run\n", "run.py": ""}, "imports digitnet.run upward: nn -> tasks"),
        ({"errors.py": "import digitnet.cli\n"}, "imports the front end digitnet.cli"),
        ({"evaluate.py": "from digitnet.plots import save_figure\n", "plots.py": ""}, "imports the plots"),
        ({"model_io.py": "from digitnet.engines import ENGINES\n"}, "imports the training loop"),
        ({"train.py": "import click\n"}, "imports click"),
        ({"train.py": "def f():\n    print('hi')\n"}, "calls print()"),
        ({"newthing.py": ""}, "in no layer"),
    ],
)
def test_the_checker_finds_each_kind_of_violation(tmp_path, files, expected):
    found = violations(_fake_package(tmp_path, files))
    assert any(expected in v for v in found), found


def test_the_checker_accepts_downward_imports_and_front_ends(tmp_path):
    root = _fake_package(tmp_path, {
        "errors.py": "",
        "nn/network.py": "from digitnet.errors import ConfigError\nfrom . import activations\n",
        "nn/activations.py": "",
        "cli/train.py": "import click\nfrom digitnet.plots import save_figure\nprint('ok')\n",
        "plots.py": "",
    })
    assert violations(root) == []


def test_docs_show_the_same_layers():
    """docs/ARCHITECTURE.md's table of layers is this one, in this order."""
    doc = (PACKAGE.parents[1] / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = [line.split("|")[2].strip() for line in doc.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert rows == [name for name, _ in LAYERS]
