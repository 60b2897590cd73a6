"""Sweeps: many trainings of a grid of settings and seeds, run on a Dask cluster.

A sweep is described by a TOML spec::

    seeds = [0, 1, 2]            # every configuration runs once per seed

    [base]                       # settings shared by every run (the names of `digitnet train --config`)
    preset = "video"
    epochs = 10

    [grid]                       # settings to vary: every combination is a configuration
    eta = [0.5, 1.0, 3.0]
    batch_size = [10, 32]

    [[runs]]                     # optional: configurations listed one by one (on top of [base]),
    name = "relu"                # e.g. cumulative steps that a grid product cannot express;
    activation = "relu"          # with a [grid] too, every listed run is crossed with the grid
    eta = 0.1

:func:`load_spec` reads and validates it: every run's settings go through the one config
language, :func:`digitnet.training.settings.settings_from_dict`, before anything runs, and a
mistake is a :class:`ConfigError` naming the spec, its section and the setting.

:func:`run_sweep` runs the runs not yet done in the output folder ``DIR``:

* each run trains exactly as ``digitnet train`` does for the same settings and seed
  (:func:`digitnet.tasks.run.run_training` on a worker), and its model comes back to the
  client, which saves it atomically as ``DIR/models/KEY.safetensors`` (workers need no shared
  folder; MNIST ships inside the package, so they need nothing staged);
* each finished run is appended to ``DIR/results.jsonl`` (one JSON object a line, one
  ``write`` each) as it arrives; a run is known by its key, a hash of every setting and the
  seed, so running the same spec again skips the runs already ``done`` (a run recorded
  ``failed`` runs again; a partial last line left by a killed client is ignored);
* a run that diverges or raises is recorded as ``failed`` with its error, and the sweep goes
  on; a worker that dies loses only the runs it had in flight, which Dask runs again elsewhere;
* at the end, one summary row per configuration (median, lowest and highest test accuracy
  over the seeds, median time, and the median validation accuracy when the runs held out a
  validation set: choose by that, not by the test set), written to ``DIR/summary.md``.

The engine is Dask (``pip install 'digitnet[cluster]'``), imported only when a sweep runs:
with no scheduler, a local cluster of worker processes on this machine (one thread each, BLAS
and OpenMP on one thread); with ``scheduler="tcp://HOST:PORT"``, an existing cluster, by the
same code. The library never prints: progress goes to the ``on_start`` and ``on_result``
callbacks; the figure (``summary.png``) is :func:`digitnet.plots.sweep_figure`'s.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import logging
import math
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from digitnet._version import __version__
from digitnet.config import unknown_key_hint
from digitnet.errors import ConfigError, DataError, DigitnetError, FileWriteError
from digitnet.files import atomic_write_bytes
from digitnet.jsonable import jsonable
from digitnet.training.settings import MAX_CONFIG_BYTES, settings_from_dict, settings_to_dict

RESULTS = "results.jsonl"
SUMMARY = "summary.md"
FIGURE = "summary.png"
MODELS = "models"
LOCK = ".sweep.lock"
SPEC_KEYS = ("seeds", "base", "grid", "runs")
RUN_LABEL_KEYS = ("name", "description")  # what a [[runs]] table may hold besides settings
# Set in every local worker before it starts (and so before NumPy loads there): one thread
# each for BLAS and OpenMP, since the parallelism is the workers'.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}
CLUSTER_HINT = "pip install 'digitnet[cluster]'"
CONNECT_TIMEOUT = 10.0  # seconds to reach a given scheduler and finish Dask's handshake with it
MAX_RUNS = 10_000  # runs in one spec: more is a mistake (a grid too fine), refused before expanding it


# --- the spec ----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One training of a sweep: a configuration and a seed."""

    key: str  # hash of every setting and the seed: the run's name in results.jsonl and models/
    config_key: str  # hash of every setting but the seed: the configuration it belongs to
    label: str  # the configuration in a few words: what differs from [base]
    seed: int
    config: dict  # every setting (the seed included), as settings_from_dict reads them back
    settings: dict  # what the spec gave beyond [base] (a [[runs]] table's and the [grid]'s)
    description: str = ""


@dataclass
class Spec:
    """A parsed sweep spec (see the module docstring); :meth:`expand` validates it."""

    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)  # setting -> list of values
    runs: list = field(default_factory=list)  # [[runs]] tables
    seeds: list = field(default_factory=lambda: [0])
    source: str = "the spec"  # how errors name it: the file's name

    def expand(self) -> list[Run]:
        """Every run, each one's settings validated; a :class:`ConfigError` names the first
        bad one by the spec's section and key (``sweep.toml [grid] eta: ...``)."""
        entries = self.runs or [{}]
        names = list(self.grid)
        combos = list(itertools.product(*(self.grid[k] for k in names))) if names else [()]
        out: list[Run] = []
        seen: dict[str, str] = {}
        for i, entry in enumerate(entries, 1):
            run_settings = {k: v for k, v in entry.items() if k not in RUN_LABEL_KEYS}
            for combo in combos:
                varied = dict(zip(names, combo))
                settings = {**self.base, **run_settings, **varied}
                try:
                    net, train = settings_from_dict(settings)
                except ConfigError as e:
                    raise self._error(e, i, entry, varied) from None
                label = _label(entry.get("name"), run_settings, varied)
                config_key = _digest(settings_to_dict(net, train.replace(seed=0)))
                if config_key in seen:
                    raise ConfigError(f"{self.source}: the configurations {seen[config_key]!r} and {label!r} are the "
                                      "same settings; list each configuration once.")
                seen[config_key] = label
                for seed in self.seeds:
                    config = canonical(settings_to_dict(net, train.replace(seed=seed)))
                    out.append(Run(_digest(config), config_key, label, seed, config,
                                   jsonable({**run_settings, **varied}), str(entry.get("description", ""))))
        return out

    def _error(self, e: ConfigError, i: int, entry: Mapping, varied: Mapping) -> ConfigError:
        """``e`` (about settings) as the spec's mistake: the section and key that gave the setting."""
        where = []
        for s in e.settings or ("",):
            if s in varied:
                where.append(f"[grid] {s} = {_toml(varied[s])}")
            elif s in entry:
                where.append(f"[[runs]] #{i}{_named(entry)} {s}")
            elif s in self.base:
                where.append(f"[base] {s}")
            elif s == "preset":
                where.append("preset")
        place = " ".join(dict.fromkeys(where)) if where else f"[[runs]] #{i}{_named(entry)}" if self.runs else ""
        return ConfigError(f"{self.source} {place}: {e.render(str)}" if place else f"{self.source}: {e.render(str)}")


def _named(entry: Mapping) -> str:
    return f" ({entry['name']})" if "name" in entry else ""


def _toml(v: Any) -> str:
    """``v`` as TOML writes it (``nan``, ``inf`` and ``-inf`` included)."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(_toml, v)) + "]"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
    return json.dumps(jsonable(v))


_TOML_TIME = (datetime.date, datetime.time)  # datetime.datetime is a date


def _value_error(v: Any) -> str | None:
    """Why ``v`` cannot be a setting's value (a date, a time, a table), or None."""
    if isinstance(v, _TOML_TIME):
        return (f"a date or time ({v.isoformat()}); settings are numbers, strings, true/false or lists of them "
                "(quote it to give a string)")
    if isinstance(v, dict):
        return "a table inside a table; settings are values (e.g. eta = 0.5)"
    if isinstance(v, list):
        return next((why for why in map(_value_error, v) if why), None)
    return None


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _label(name: str | None, run_settings: Mapping, varied: Mapping) -> str:
    """A configuration in a few words: its [[runs]] name (or the run's settings), then the grid's values."""
    parts = [str(name)] if name else [f"{k}={_show(v)}" for k, v in run_settings.items()]
    parts += [f"{k}={_show(v)}" for k, v in varied.items()]
    return ", ".join(parts) or "base"


def _float_settings() -> frozenset:
    from digitnet.training.settings import setting_fields

    return frozenset(f.name for _, f in setting_fields() if str(f.type).replace(" ", "") in ("float", "float|None"))


def canonical(config: Mapping) -> dict:
    """Every setting as JSON holds it, a whole number given to a float setting as a float
    (``eta = 1`` is ``eta = 1.0``, as the ``--eta`` flag reads it), so that both are one run."""
    floats = _float_settings()
    return {k: float(v) if k in floats and isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in jsonable(dict(config)).items()}


def _digest(config: Mapping) -> str:
    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_from_dict(data: Mapping[str, Any], source: str = "the spec") -> Spec:
    """A :class:`Spec` from the spec's tables (as TOML reads them), its shape checked; the
    settings themselves are checked by :meth:`Spec.expand` (:func:`load_spec` does both)."""
    if not data:
        raise ConfigError(f"{source}: the spec sets nothing; give a [base] table, a [grid] table of lists or "
                          "[[runs]] tables (`digitnet sweep --help` shows an example).")
    if isinstance(data.get("base"), dict) and "seeds" in data["base"]:
        raise ConfigError(f"{source} [base] seeds: TOML puts every line after [base] into that table; move "
                          "seeds = [...] above the first [table].")
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        raise ConfigError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''}: "
                          f"{'; '.join(unknown_key_hint(k, SPEC_KEYS) for k in unknown)}. A spec has seeds = [...], "
                          "a [base] table, a [grid] table of lists and optionally [[runs]] tables.")
    base = data.get("base", {})
    grid = data.get("grid", {})
    runs = data.get("runs", [])
    seeds = data.get("seeds", [0])
    if not isinstance(base, dict):
        raise ConfigError(f"{source}: base must be a table of settings ([base], then one setting a line).")
    if not isinstance(grid, dict):
        raise ConfigError(f"{source}: grid must be a table of lists ([grid], then e.g. eta = [0.5, 1.0]).")
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError(f"{source}: runs must be tables ([[runs]], then its settings, one a line).")
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ConfigError(f"{source} seeds: give a list of whole numbers >= 0, e.g. seeds = [0, 1, 2]. "
                          f"Got {_toml(seeds)}.")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source} seeds: each seed once, please. Got {_toml(seeds)}.")
    for section, table in (("[base]", base), ("[grid]", grid)) + tuple(
            (f"[[runs]] #{i}{_named(r)}", r) for i, r in enumerate(runs, 1)):
        if "seed" in table:
            raise ConfigError(f"{source} {section} seed: the seeds of a sweep are its seeds = [...] list; "
                              "remove seed here.")
        for key, value in table.items():
            why = _value_error(value)
            if why:
                raise ConfigError(f"{source} {section} {key}: {why}.")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source} [grid] {key}: give a list of the values to try, e.g. {key} = [..., ...]. "
                              f"Got {_toml(values)}.")
    for i, r in enumerate(runs, 1):
        both = sorted(set(r) & set(grid))
        if both:
            raise ConfigError(f"{source} [[runs]] #{i}{_named(r)} {both[0]}: also in [grid], which would replace it; "
                              "set it in one place.")
    for i, r in enumerate(runs, 1):
        for key in RUN_LABEL_KEYS:
            if key in r and (not isinstance(r[key], str) or any(ord(c) < 32 or ord(c) == 127 for c in r[key])):
                what = "has a control character (a newline, a tab, ...)" if isinstance(r[key], str) else \
                    f"is {_toml(r[key])}"
                raise ConfigError(f"{source} [[runs]] #{i} {key}: give one line of text, e.g. {key} = \"relu\"; "
                                  f"this one {what}.")
    names = [r["name"] for r in runs if "name" in r]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source} [[runs]]: each run's name once, please.")
    count = max(len(runs), 1) * math.prod(len(v) for v in grid.values()) * len(seeds)
    if count > MAX_RUNS:
        shape = " x ".join([f"{len(runs)} [[runs]]"] * bool(runs) + [f"{len(v)} {k}" for k, v in grid.items()]
                           + [f"{len(seeds)} seed{'s' * (len(seeds) > 1)}"])
        raise ConfigError(f"{source}: {count:,} runs ({shape}); a sweep runs at most {MAX_RUNS:,}. Narrow it: "
                          "fewer values in [grid], fewer [[runs]] or fewer seeds, or split it into several sweeps.")
    return Spec(dict(base), dict(grid), [dict(r) for r in runs], list(seeds), source)


def load_spec(path: str | os.PathLike) -> Spec:
    """The spec in the TOML file ``path``, with every run's settings validated (so that a
    mistake is found before anything runs)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    source = path.name
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path} is not a file (a folder, a FIFO or a device); give a TOML sweep spec.")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is {path.stat().st_size:,} bytes; a sweep spec is a few lines.")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"No sweep spec at {path}. Check the name; `digitnet sweep --help` shows an example.") \
            from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Cannot read the sweep spec {path}: {getattr(e, 'strerror', None) or e}.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML ({e}).") from None
    spec = spec_from_dict(data, source)
    spec.expand()
    return spec


# --- one run, on a worker ------------------------------------------------------------

_DATA: dict = {}  # the data set, loaded once per worker process


def _dataset():
    from digitnet.data.datasets import load_dataset

    data_dir = os.environ.get("DIGITNET_DATA")  # as `digitnet train` reads it (--data-dir's variable)
    if data_dir not in _DATA:
        _DATA.clear()
        _DATA[data_dir] = load_dataset("mnist", data_dir)
    return _DATA[data_dir]


def final_accuracies(history) -> tuple[float | None, float | None]:
    """The test and validation accuracy of the weights a run keeps, as ``digitnet train``
    reports them: the last epoch's (or the best epoch's with keep_best)."""
    if not history.epochs:
        return history.initial_test_accuracy, None
    rec = history.epochs[(history.best_epoch or len(history.epochs)) - 1]
    return rec.test_accuracy, rec.validation_accuracy


def train_run(run: Mapping[str, Any]) -> dict:
    """Train one run (``run``: its ``key``, ``config`` and ``label``) as ``digitnet train`` would,
    and return ``{"record": ..., "model": bytes or None}``. Runs on a worker; never raises for
    a run that fails (the record says ``failed`` and why)."""
    from digitnet.tasks.run import run_training

    started = time.perf_counter()
    record: dict[str, Any] = {
        "key": run["key"], "label": run["label"], "config": run["config"], "seed": run["config"]["seed"],
        "status": "failed", "error": None, "test_accuracy": None, "validation_accuracy": None, "epochs": [],
        "seconds": None, "wall_seconds": None, "engine": None, "host": socket.gethostname(), "pid": os.getpid(),
        "worker": None, "model": None, "digitnet": __version__,
    }
    try:
        from distributed import get_worker

        record["worker"] = get_worker().address
    except (ImportError, ValueError):
        pass
    model = None
    try:
        net_cfg, train_cfg = settings_from_dict(run["config"])
        if _digest(settings_to_dict(net_cfg, train_cfg)) != run["key"]:
            raise ConfigError(f"This worker reads the run's settings differently (digitnet {__version__} here); "
                              "give every worker the client's digitnet version.")
        data = _dataset()
        with tempfile.TemporaryDirectory(prefix="digitnet-sweep-") as tmp:
            out = Path(tmp) / "model.safetensors"
            engine: dict = {}
            start = time.perf_counter()
            try:
                result = run_training(net_cfg, train_cfg, out, data,
                                      on_start=lambda s: engine.setdefault("name", s.trainer.engine))
            finally:
                record["wall_seconds"] = time.perf_counter() - start  # with the engine's start-up (compiling)
                record["engine"] = engine.get("name")
            if result.interrupted:
                raise DigitnetError("Interrupted on the worker.")
            h = result.history
            record["test_accuracy"], record["validation_accuracy"] = final_accuracies(h)
            record["epochs"] = [{"epoch": e.epoch, "cost": e.cost, "test_accuracy": e.test_accuracy,
                                 "train_accuracy": e.train_accuracy, "validation_accuracy": e.validation_accuracy,
                                 "seconds": e.seconds, "eta": e.eta} for e in h.epochs]
            record["best_epoch"], record["stopped_epoch"] = h.best_epoch, h.stopped_epoch
            # the training time: the epochs' gradient steps, without the worker's start-up (loading the
            # data, compiling the engine's kernels), which a worker's first run alone pays
            record["seconds"] = sum(e.seconds for e in h.epochs) if h.epochs else record["wall_seconds"]
            model = out.read_bytes()
            record["status"] = "done"
    except DigitnetError as e:  # a divergence, a setting the engine cannot run, ...
        record["error"] = f"{type(e).__name__}: {e}"
    except Exception as e:  # a bug: recorded too, so that the sweep goes on
        record["error"] = f"{type(e).__name__}: {e}"
    record["worker_seconds"] = time.perf_counter() - started
    return {"record": jsonable(record), "model": model}


# --- results on disk --------------------------------------------------------------------


def read_results(out: str | os.PathLike) -> list[dict]:
    """The records in ``out/results.jsonl``, oldest first. A partial last line (a client killed
    while writing it) is left out; any other line that is not a record is a :class:`DataError`."""
    return _read_results(Path(out) / RESULTS)[0]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _done_record(rec: Mapping) -> bool:
    """Whether a record said ``done`` has what the summary reads from it."""
    return (_number(rec.get("test_accuracy")) and 0 <= rec["test_accuracy"] <= 1
            and isinstance(rec.get("seed"), int) and not isinstance(rec["seed"], bool)
            and (rec.get("seconds") is None or _number(rec["seconds"]) and rec["seconds"] >= 0)
            and (rec.get("validation_accuracy") is None or _number(rec["validation_accuracy"])))


def _read_results(path: Path) -> tuple[list[dict], int]:
    """The records, and the length of the file's complete part (without a partial last line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    except OSError as e:
        raise DataError(f"Cannot read {path}: {e.strerror or e}.") from None
    records, pos = [], 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines, 1):
        last = i == len(lines)
        if line.strip():
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                    raise ValueError("not a run's record")
            except (ValueError, RecursionError):
                if last:  # the partial line of an interrupted write: the run is simply not done
                    return records, pos
                raise DataError(f"{path}, line {i}: not a run's record (a JSON object with its key). The file was "
                                "edited; remove the line, or move the file away to run everything again.") from None
            if rec.get("status") == "done" and not _done_record(rec):
                raise DataError(f"{path}, line {i}: a run recorded done without its test_accuracy (a number from 0 to "
                                "1), seed (a whole number) or seconds (a number). The file was edited; remove the "
                                "line to run that run again.")
            records.append(rec)
        pos += len(line) + (0 if last else 1)
    return records, pos


class _Results:
    """``DIR/results.jsonl`` open for appending, one record a write."""

    def __init__(self, out: Path):
        self.path = out / RESULTS
        records, complete = _read_results(self.path)
        self.records = records
        if self.path.exists() and self.path.stat().st_size != complete:
            # a partial last line: rewrite the complete part (atomically) before appending after it
            atomic_write_bytes(self.path, self.path.read_bytes()[:complete])

    def append(self, record: Mapping) -> None:
        line = (json.dumps(jsonable(dict(record)), separators=(",", ":"), allow_nan=False) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise FileWriteError(f"Cannot append to {self.path}: {e.strerror or e}. Check that the folder is "
                                 "writable and the disk has free space; the runs recorded so far are kept.") from None
        self.records.append(dict(record))


def _prepare(out: Path):
    """Create ``out`` and ``out/models``, check they are writable, and lock ``out`` against a
    second sweep writing there at the same time; returns the open lock file."""
    if out.is_symlink() and not out.exists():
        raise FileWriteError(f"{out} is a broken link (to {os.readlink(out)}, which does not exist). Remove it, "
                             "or choose another {out}.", setting="out")
    for d in (out, out / MODELS):
        if d.is_dir() and not os.access(d, os.W_OK | os.X_OK):
            raise FileWriteError(f"Cannot write in the sweep's folder {d} (no permission). Choose another {{out}}.",
                                 setting="out")
    try:
        (out / MODELS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileWriteError(f"Cannot create the sweep's folder {out}: {e.strerror or e}. Choose another {{out}}.",
                             setting="out") from None
    for d in (out, out / MODELS):
        if not os.access(d, os.W_OK | os.X_OK):
            raise FileWriteError(f"The sweep's folder {d} is not writable. Choose another {{out}}.", setting="out")
    try:
        lock = open(out / LOCK, "a")
    except OSError as e:
        raise FileWriteError(f"Cannot write in the sweep's folder {out}: {e.strerror or e}. Choose another "
                             "{out}.", setting="out") from None
    try:
        import fcntl

        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # not on Windows: no lock there
        pass
    except OSError:
        lock.close()
        raise FileWriteError(f"Another sweep is writing to {out}. Wait for it to end, or choose another {{out}}.",
                             setting="out") from None
    return lock


# --- the summary -------------------------------------------------------------------------


def summarise(runs: Sequence[Run], records: Sequence[Mapping]) -> list[dict]:
    """One row per configuration of ``runs``, in the spec's order, from the newest record of
    each run: the seeds done, the failures, and the median, lowest and highest test accuracy,
    the median validation accuracy (None without validation) and the median seconds of the
    runs done."""
    latest = {r["key"]: r for r in records}
    rows: dict[str, dict] = {}
    for run in runs:
        row = rows.setdefault(run.config_key, {"label": run.label, "description": run.description,
                                               "settings": run.settings, "config_key": run.config_key,
                                               "epochs": run.config.get("epochs"), "seeds": [], "failed_seeds": [],
                                               "missing_seeds": [], "_done": []})
        rec = latest.get(run.key)
        if rec is None:
            row["missing_seeds"].append(run.seed)
        elif rec.get("status") == "done":
            row["seeds"].append(run.seed)
            row["_done"].append(rec)
        else:
            row["failed_seeds"].append(run.seed)
    out = []
    for row in rows.values():
        done = row.pop("_done")
        acc = [r["test_accuracy"] for r in done if r.get("test_accuracy") is not None]
        val = [r["validation_accuracy"] for r in done if r.get("validation_accuracy") is not None]
        secs = [r["seconds"] for r in done if r.get("seconds") is not None]
        row.update({
            "test_accuracy_median": statistics.median(acc) if acc else None,
            "test_accuracy_min": min(acc) if acc else None,
            "test_accuracy_max": max(acc) if acc else None,
            "validation_accuracy_median": statistics.median(val) if val else None,
            "seconds_median": statistics.median(secs) if secs else None,
            "engines": sorted({r.get("engine") for r in done if r.get("engine")}),
            "errors": sorted({r.get("error") for r in records if r.get("key") in
                              {k.key for k in runs if k.config_key == row["config_key"]}
                              and r.get("status") != "done" and r.get("error")})[:3],
        })
        out.append(row)
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def summary_markdown(rows: Sequence[Mapping], title: str = "Sweep summary") -> str:
    """The summary as a Markdown table (one row per configuration)."""
    with_val = any(r.get("validation_accuracy_median") is not None for r in rows)
    head = ["configuration", "epochs", "seeds", "test accuracy (median)", "min - max"]
    head += ["validation accuracy (median)"] if with_val else []
    head += ["time (median)", "failed"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |",
             "| --- | ---: | --- | ---: | ---: |" + (" ---: |" if with_val else "") + " ---: | --- |"]
    for r in rows:
        cells = [r["label"].replace("|", "\\|"), str(r.get("epochs", "")), ",".join(map(str, r["seeds"])) or "-",
                 _pct(r["test_accuracy_median"]),
                 "-" if r["test_accuracy_min"] is None else
                 f"{100 * r['test_accuracy_min']:.2f} - {100 * r['test_accuracy_max']:.2f}%"]
        cells += [_pct(r["validation_accuracy_median"])] if with_val else []
        cells += ["-" if r["seconds_median"] is None else f"{r['seconds_median']:.1f} s",
                  ",".join(map(str, r["failed_seeds"])) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    missing = sum(len(r["missing_seeds"]) for r in rows)
    if missing:
        lines += ["", f"{missing} run{'s' if missing > 1 else ''} not run yet (the sweep was interrupted): run it "
                  "again to run the rest."]
    return "\n".join(lines) + "\n"


# --- the sweep ------------------------------------------------------------------------------


@dataclass
class SweepPlan:
    """What :func:`run_sweep` tells ``on_start`` before the first run."""

    runs: int  # in the spec
    skipped: int  # already done in DIR
    todo: int  # to run now
    workers: int  # in the cluster
    scheduler: str  # the scheduler's address


@dataclass
class SweepResult:
    runs: int
    new: int  # runs that ran now (done or failed)
    skipped: int  # already done before
    failed: int  # of the new runs
    summary: list[dict]
    out: Path
    records: list[dict]  # the new runs' records, in the order they finished
    interrupted: bool = False  # Ctrl-C: the runs in flight were cancelled, those done are kept
    foreign: int = 0  # runs in results.jsonl that are no run of this spec (kept there, left out of the summary)

    def to_dict(self) -> dict:
        return {"runs": self.runs, "new": self.new, "skipped": self.skipped, "failed": self.failed,
                "interrupted": self.interrupted, "foreign": self.foreign, "out": str(self.out), "summary": self.summary}


def local_cluster(workers: int | None = None, **kwargs):
    """A Dask ``LocalCluster`` on this machine: ``workers`` processes (default: one per core)
    of one thread each, with BLAS and OpenMP on one thread (set before each worker starts, so
    before NumPy loads there), listening on 127.0.0.1 only (its dashboard too, on a free port)."""
    try:
        import dask
        from distributed import LocalCluster
    except ImportError:
        raise DigitnetError(f"Sweeps run on Dask, which is not installed: {CLUSTER_HINT}") from None
    if workers is None:
        workers = default_workers()
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **ONE_THREAD}
    options = dict(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", silence_logs=logging.ERROR,
                   dashboard_address="127.0.0.1:0", env=dict(ONE_THREAD))
    options.update(kwargs)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(**options)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def connect(scheduler: str | None = None, workers: int | None = None):
    """A ``distributed.Client``: to the scheduler at ``scheduler`` (``tcp://HOST:PORT``), or to a
    new :func:`local_cluster` (closed with the client)."""
    try:
        from distributed import Client
    except ImportError:
        raise DigitnetError(f"Sweeps run on Dask, which is not installed: {CLUSTER_HINT}") from None
    if scheduler is None:
        cluster = local_cluster(workers)
        client = Client(cluster)
        client._digitnet_cluster = cluster
        return client
    try:
        return _client_within(Client, scheduler, CONNECT_TIMEOUT)
    except Exception as e:  # anything that is not a scheduler's answer: refused, silence, HTTP, garbage
        if isinstance(e, MemoryError):  # Dask read an HTTP answer's first bytes as a frame's length
            reason = "something answered, but not in Dask's protocol"
        elif isinstance(e, TimeoutError) and not str(e):
            reason = f"no Dask handshake within {CONNECT_TIMEOUT:g} s"
        else:
            reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise DigitnetError(f"{{scheduler}} {scheduler}: no Dask scheduler answered there ({reason}): start one with "
                            "`dask scheduler` or check the address (the dashboard's port is not the scheduler's), "
                            "or leave out {scheduler} to run on this machine.", setting="scheduler") from None


def _client_within(client_class, address: str, seconds: float):
    """``client_class(address)``, or a :class:`TimeoutError` after ``seconds``: Dask's own timeout
    covers the connection but not every handshake (a server that reads and never answers, an
    HTTP server waiting for the end of a request), so the whole of it runs in a thread that is
    given up on after ``seconds`` (a client it makes after that is closed at once)."""
    box: dict = {}
    lock = threading.Lock()

    def connect_now():
        try:
            client = client_class(address, timeout=seconds)
        except BaseException as e:  # handed to the caller
            box["error"] = e
            return
        with lock:
            if box.get("abandoned"):
                client.close()
            else:
                box["client"] = client

    thread = threading.Thread(target=connect_now, name="digitnet-sweep-connect", daemon=True)
    thread.start()
    thread.join(seconds + 2)
    with lock:
        if "client" in box:
            return box["client"]
        if "error" in box:
            raise box["error"]
        box["abandoned"] = True
    raise TimeoutError()


def _close(client) -> None:
    cluster = getattr(client, "_digitnet_cluster", None)
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _lost(run: Run, e: BaseException) -> dict:
    """The record of a run whose task Dask gave up on (its workers kept dying)."""
    return jsonable({"key": run.key, "label": run.label, "config": run.config, "seed": run.seed, "status": "failed",
                     "error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}", "test_accuracy": None,
                     "validation_accuracy": None, "epochs": [], "seconds": None, "wall_seconds": None, "engine": None, "host": None,
                     "pid": None, "worker": None, "model": None, "digitnet": __version__})


def run_sweep(
    spec: Spec | str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    retries: int = 2,
    on_start: Callable[[SweepPlan], None] | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> SweepResult:
    """Run the runs of ``spec`` (a :class:`Spec` or a spec file) not yet done in ``out``; see the
    module docstring. The cluster: ``client`` (a ``distributed.Client`` you made), else the
    scheduler at ``scheduler``, else a local cluster of ``workers`` processes. ``retries``: how
    often Dask runs a task again whose worker died. ``on_result`` gets each new record as it is
    written. Ctrl-C cancels the runs in flight and returns (``interrupted``) with those done kept.
    """
    if workers is not None and (scheduler is not None or client is not None):
        raise ConfigError("{workers} is the size of the local cluster; a cluster given by {scheduler} has its own "
                          "workers. Leave out one of them.", setting=("workers", "scheduler"))
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    runs = spec.expand()
    out = Path(out)
    lock = _prepare(out)
    try:
        results = _Results(out)
        # a run is done when its record says so and its model is still there (a deleted model runs again)
        done = {r["key"] for r in results.records if r.get("status") == "done"
                and (out / MODELS / f"{r['key']}.safetensors").is_file()}
        todo = [r for r in runs if r.key not in done]
        keys = {r.key for r in runs}
        foreign = len({r["key"] for r in results.records} - keys)
        new: list[dict] = []
        interrupted = False
        if todo:
            own = client is None
            if own:
                client = connect(scheduler, workers)
            futures: dict = {}
            try:
                info = client.scheduler_info()
                if on_start is not None:
                    on_start(SweepPlan(len(runs), len(runs) - len(todo), len(todo), len(info.get("workers", {})),
                                       str(client.scheduler.address)))
                from distributed import as_completed

                token = uuid.uuid4().hex[:8]
                for run in todo:
                    payload = {"key": run.key, "label": run.label, "config": run.config}
                    fut = client.submit(train_run, payload, key=f"digitnet-run-{run.key}-{token}", retries=retries)
                    futures[fut] = run
                for fut in as_completed(list(futures)):
                    run = futures.pop(fut)
                    try:
                        answer = fut.result()
                    except Exception as e:  # KilledWorker: its workers died more often than Dask allows
                        answer = {"record": _lost(run, e), "model": None}
                    record = answer["record"]
                    if answer["model"] is not None:
                        path = out / MODELS / f"{run.key}.safetensors"
                        atomic_write_bytes(path, answer["model"])
                        record["model"] = f"{MODELS}/{path.name}"
                    results.append(record)
                    new.append(record)
                    if on_result is not None:
                        on_result(record)
            except KeyboardInterrupt:
                interrupted = True
                if futures:
                    try:
                        client.cancel(list(futures))
                    except Exception:  # the cluster may be going away too
                        pass
            finally:
                if own:
                    _close(client)
        summary = summarise(runs, results.records)
        atomic_write_bytes(out / SUMMARY, summary_markdown(summary, f"Sweep {spec.source}").encode())
        return SweepResult(len(runs), len(new), len(runs) - len(todo), sum(r["status"] != "done" for r in new),
                           summary, out, new, interrupted, foreign)
    finally:
        lock.close()
