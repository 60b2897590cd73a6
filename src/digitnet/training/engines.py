"""Training engines: the code that takes the gradient steps, chosen by name.

Every engine does the same thing — mini-batch gradient descent on the examples of a
shuffled order — behind one method::

    costs = engine.steps(order, start, count, batch_size, eta, decay)

``count`` batches of ``batch_size`` examples, batch ``k`` being
``order[start + k * batch_size :][:batch_size]``; ``eta`` is the epoch's learning rate and
``decay`` the L2 weight decay per step (``lmbda / n_train``). It returns each batch's
average cost *before* its step; if a cost is not finite, it is the last one returned and
its step was not taken (the :class:`~digitnet.training.train.Trainer` decides what divergence means).
``begin_epoch(epoch)`` is called before an epoch's first batch.

Weight decay is one rule in every engine: the L2 term adds ``decay * w`` to ``dC/dw``
before the update. The reference engine adds it to the gradient that it hands to the
optimizer; the fused SGD engines fold the same update into
``w <- (1 - eta decay) w - eta nabla_w``.

The table :data:`ENGINES` lists them fastest first. Each entry says which networks and
settings it can train (``supports(net, config)``: None, or the reason it cannot) and makes
the engine. ``auto`` (:func:`choose`) is the first that supports the config (where the
compiled engine cannot run on this machine, :func:`fallback_note` is the one line that says
so); the reference
engine supports everything, and the others are checked against it by one test
(``tests/test_engines.py``) that runs every entry of the table.

=============  ==============================================================================
``numba``      the whole run of batches in one compiled call (:mod:`digitnet.nn.compiled`;
               installed with digitnet where Numba has wheels). Plain SGD on dense layers.
``numpy``      one fused NumPy step per batch (:mod:`digitnet.nn.fast`). Plain SGD on dense layers.
``reference``  :func:`~digitnet.nn.network.backprop` + the optimizer (:mod:`digitnet.training.optim`):
               conv layers, momentum, Adam, dropout, augmentation, distillation — everything.
=============  ==============================================================================
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from digitnet.config import ENGINE_NAMES, TrainConfig
from digitnet.errors import ConfigError
from digitnet.nn.network import Network, backprop
from digitnet.training.augment import distort
from digitnet.training.distill import distill_backprop

ENGINE_ENV = "DIGITNET_ENGINE"


class Engine(Protocol):
    name: str

    def begin_epoch(self, epoch: int) -> None: ...

    def steps(self, order: np.ndarray, start: int, count: int, batch_size: int, eta: float,
              decay: float) -> np.ndarray: ...


@dataclass
class Batches:
    """What an engine trains: the network, its inputs as the first layer sees them, the
    labels, the settings and the optimizer (whose state checkpoints keep)."""

    net: Network
    x: object  # (n, ...) prepared inputs: an array, or for the numba engine compressed rows or None (pixels)
    y: np.ndarray  # (n,) labels
    config: TrainConfig
    optimizer: object  # digitnet.training.optim.SGD / Momentum / Adam
    pixels: np.ndarray | None = None  # the uint8 images behind x when x is exactly pixels / 255
    soft: np.ndarray | None = None  # distillation: the teacher's probabilities at the temperature, (n, k)


# --- the reference engine: backprop + the optimizer -----------------------------------
class ReferenceEngine:
    """One :func:`~digitnet.nn.network.backprop` and one optimizer step per batch: every
    layer, optimizer, dropout and augmentation."""

    name = "reference"

    def __init__(self, b: Batches):
        self.b = b
        self.epoch = 0
        self._noise: np.random.Generator | None = None  # dropout masks and augmentation, per epoch

    def begin_epoch(self, epoch: int) -> None:
        self.epoch, self._noise = epoch, None

    def steps(self, order, start, count, batch_size, eta, decay) -> np.ndarray:
        costs = []
        for k in range(count):
            i = start + k * batch_size
            costs.append(self._step(order[i : i + batch_size], eta, decay))
            if not math.isfinite(costs[-1]):
                break
        return np.array(costs)

    def _step(self, idx: np.ndarray, eta: float, decay: float) -> float:
        b, cfg = self.b, self.b.config
        x, y = b.x[idx], b.y[idx]
        if cfg.augment or cfg.dropout:
            if self._noise is None:  # one stream per epoch, like the shuffle, so resuming replays it
                self._noise = np.random.default_rng([cfg.seed, self.epoch, 1])
            if cfg.augment:
                x = distort(x, self._noise, cfg)
        with np.errstate(over="ignore", invalid="ignore"):
            if b.soft is not None:
                grad = distill_backprop(b.net, x, y, b.soft[idx], cfg.distill_temperature, cfg.distill_weight,
                                        cfg.dropout, self._noise)
            elif cfg.dropout:
                grad = backprop(b.net, x, y, cfg.dropout, self._noise)
            else:
                grad = backprop(b.net, x, y)
            if not math.isfinite(grad.cost):
                return grad.cost
            grads = grad.layers  # one dict per layer, aligned with net.params ({} for pool/flatten)
            if decay:
                # The L2 term lmbda/(2 n) sum w^2 of the cost adds (lmbda/n) w to dC/dw.
                for g, p in zip(grads, b.net.params):
                    if "w" in g:
                        g["w"] += np.asarray(decay, p["w"].dtype) * p["w"]  # in place: backprop made g["w"]
            b.optimizer.step(b.net.params, grads, eta)
        return grad.cost


def _reference_supports(net: Network, config: TrainConfig) -> str | None:
    return None


# --- the fused engines: plain SGD on dense layers -------------------------------------
def _fused_supports(name: str) -> Callable[[Network, TrainConfig], str | None]:
    def supports(net: Network, config: TrainConfig) -> str | None:
        what = f"the {name} engine runs plain SGD on dense layers"
        if any(kind != "dense" for kind in net.kinds):
            return f"{what}; this network has {', '.join(sorted(set(net.kinds) - {'dense'}))} layers"
        if config.optimizer != "sgd":
            return f"{what}; these settings use the {config.optimizer} optimizer"
        if config.dropout:
            return f"{what} without dropout; these settings use dropout {config.dropout:g}"
        if config.augment:
            return f"{what} without augmentation; these settings augment ({', '.join(config.augment)})"
        if config.teacher:
            return f"{what} with the labels' cost only; these settings learn from a teacher (distillation)"
        if name == "numba":
            from digitnet.nn import compiled

            if (why := compiled.missing()) is not None:
                return f"the numba engine cannot run here: {why}"
            if (why := compiled.too_wide(net.config.layers)) is not None:
                return f"the numba engine is for narrow networks: {why}"
        return None

    return supports


class NumpyEngine:
    """:class:`digitnet.nn.fast.FastSGD`, a batch at a time."""

    name = "numpy"

    def __init__(self, b: Batches):
        from digitnet.nn.fast import FastSGD

        self.path = FastSGD(b.net, b.x, b.y)

    def begin_epoch(self, epoch: int) -> None:
        pass

    def steps(self, order, start, count, batch_size, eta, decay) -> np.ndarray:
        costs = []
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(count):
                i = start + k * batch_size
                costs.append(self.path.step(order[i : i + batch_size], eta, decay))
                if not math.isfinite(costs[-1]):
                    break
        return np.array(costs)


class NumbaEngine:
    """:class:`digitnet.nn.compiled.CompiledSGD`: ``count`` batches in one compiled call."""

    name = "numba"

    def __init__(self, b: Batches):
        from digitnet.nn.compiled import CompiledSGD

        # Made now, so that compiling (or loading) the kernels is not counted as epoch time.
        self.path = CompiledSGD(b.net, b.x, b.y, b.pixels)
        self.compiled = self.path.compiled  # True when that compiled them (not in the cache)

    def begin_epoch(self, epoch: int) -> None:
        pass

    def steps(self, order, start, count, batch_size, eta, decay) -> np.ndarray:
        return self.path.steps(order, start, count, batch_size, eta, decay)


@dataclass(frozen=True)
class EngineSpec:
    name: str
    summary: str
    supports: Callable[[Network, TrainConfig], str | None]  # None, or why it cannot train this
    make: Callable[[Batches], Engine]


# Fastest first: `auto` takes the first that supports the config.
ENGINES: dict[str, EngineSpec] = {
    "numba": EngineSpec("numba", "compiled plain SGD on dense layers (Numba)",
                        _fused_supports("numba"), NumbaEngine),
    "numpy": EngineSpec("numpy", "fused NumPy plain SGD on dense layers", _fused_supports("numpy"), NumpyEngine),
    "reference": EngineSpec("reference", "backprop + the optimizer: everything", _reference_supports,
                            ReferenceEngine),
}
assert set(ENGINE_NAMES) == {"auto", *ENGINES}, "config.ENGINE_NAMES and engines.ENGINES must list the same engines"


def fastest(net: Network, config: TrainConfig, names=tuple(ENGINES)) -> str:
    """The first engine of ``names`` (fastest first) that can train ``net`` with ``config``."""
    for name in names:
        if ENGINES[name].supports(net, config) is None:
            return name
    return "reference"


def fallback_note(net: Network, config: TrainConfig, chosen: str, engine: str | None = None) -> str | None:
    """One line for the user when ``auto`` (``engine``, else ``config.engine``, with no
    ``$DIGITNET_ENGINE``) chose ``chosen`` only because the compiled engine cannot run on
    this machine (Numba missing, or failing to import); None otherwise."""
    requested = str(engine if engine is not None else config.engine).strip().lower()
    if requested != "auto" or os.environ.get(ENGINE_ENV, "").strip():
        return None
    if chosen != "numpy" or ENGINES["numpy"].supports(net, config) is not None:
        return None
    from digitnet.nn import compiled

    why = compiled.missing()
    if why is None:
        return None
    hint = " (`pip install numba`, where Numba has wheels, brings it back)" if why == "numba is not installed" else ""
    return f"The compiled engine cannot run here ({why}), so the numpy engine trains; it is slower{hint}."


def choose(net: Network, config: TrainConfig, engine: str | None = None) -> str:
    """The engine that will train: ``engine``, else ``config.engine``; ``auto`` is
    ``$DIGITNET_ENGINE`` if set, else :func:`fastest`. A named engine that cannot train
    this network and these settings is an error that says why — never a silent fallback."""
    name, source = (engine, "engine") if engine is not None else (config.engine, "engine")
    if name == "auto" and os.environ.get(ENGINE_ENV, "").strip():
        name, source = os.environ[ENGINE_ENV], f"${ENGINE_ENV}"
    name = str(name).strip().lower()
    if name not in ENGINE_NAMES:
        what = "{engine}" if source == "engine" else source
        raise ConfigError(f"{what} is {name!r}; choose one of {', '.join(ENGINE_NAMES)}.", setting="engine")
    if name == "auto":
        return fastest(net, config)
    why = ENGINES[name].supports(net, config)
    if why is not None:
        named = "{engine}" if source == "engine" else source
        raise ConfigError(f"The {name} engine cannot train this: {why}. Set {named} to auto or reference.",
                          setting="engine")
    return name


def make(name: str, batches: Batches) -> Engine:
    """The engine called ``name`` (as :func:`choose` returned it) for ``batches``."""
    return ENGINES[name].make(batches)
