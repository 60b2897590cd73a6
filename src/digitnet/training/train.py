"""Training: the epoch loop of mini-batch stochastic gradient descent, and its history.

One epoch shuffles the training set, cuts it into mini-batches, and for each batch
computes the gradient of the batch's average cost by backpropagation and takes one step
downhill. After each epoch the history records the average cost over *all* training
examples (as in the video), the accuracies and the time taken.

Randomness is reproducible and resumable: epoch ``e`` shuffles with
``default_rng([seed, e])``, so a run resumed at epoch ``e`` sees the same batches as
one that never stopped.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from digitnet.config import TrainConfig
from digitnet.data.datasets import Split
from digitnet.data.resample import DESKEW_CHUNK, deskew_images
from digitnet.errors import ConfigError, DivergenceError, NotLearning
from digitnet.files import uninterrupted
from digitnet.nn.metrics import accuracy
from digitnet.nn.network import Network, feedforward, feedforward_batched, feedforward_chunk, total_cost
from digitnet.training import distill, engines
from digitnet.training.history import EpochRecord, History
from digitnet.training.optim import make_optimizer

if TYPE_CHECKING:
    from digitnet.nn.compiled import SparseRows


def epoch_eta(config: TrainConfig, epoch: int) -> float:
    """The learning rate for 0-based ``epoch`` under the configured schedule and warm-up."""
    eta, e, n = config.eta, epoch, config.epochs
    if config.warmup_epochs and e < config.warmup_epochs:
        return eta * (e + 1) / (config.warmup_epochs + 1)
    if config.schedule == "step":
        return eta / config.step_factor ** (e // config.step_every)
    if config.schedule in ("cosine", "linear"):
        w = config.warmup_epochs
        # 0 at the first epoch after warm-up, 1 just after the last: every epoch still learns.
        t = (e - w) / max(n - w, 1)
        if config.schedule == "cosine":
            return config.eta_min + (eta - config.eta_min) * 0.5 * (1 + math.cos(math.pi * t))
        return eta + (config.eta_min - eta) * t
    return eta


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled example order of 0-based ``epoch``: a permutation of range(n)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


SNAPSHOT_BYTES = 4 << 20  # keep the trajectory when all its snapshots fit in 4 MiB
PROGRESS_SECONDS = 0.02  # the work between two progress reports, once an epoch's first 1/100 is done (run_epoch)


def snapshot_budget(net: Network, epochs: int) -> bool:
    """Whether a run of ``epochs`` keeps snapshots of ``net``'s weights: the initial ones and one
    after every epoch, (epochs + 1) copies of the parameters, when they total at most
    ``SNAPSHOT_BYTES`` (4 MiB). The video's 784-16-16-10 network (13,002 float32 values, 52 KB a
    copy) keeps them for up to 79 epochs; a larger network or a longer run keeps none (the model
    file still holds the initial weights, but no path for ``show landscape --directions
    trajectory``)."""
    size = sum(v.nbytes for p in net.params for v in p.values())
    return (epochs + 1) * size <= SNAPSHOT_BYTES


# Rows prepared at a time: one deskew chunk (deskew_images' chunks, so the same numbers), done
# in this thread: a pool's threads would each keep a heap of their temporaries (13 MB more).
_BLOCK = DESKEW_CHUNK


def _input_blocks(net: Network, split: Split) -> Iterator[tuple[int, np.ndarray]] | None:
    """``(start, rows)``: the split's inputs exactly as :meth:`Network.prepare_split` makes
    them, a few hundred rows at a time, so that the whole float array never exists (it
    would be 188 MB for MNIST); None for inputs that are not uint8 images."""
    images = np.asarray(split.images)
    d = int(np.prod(images.shape[1:]))
    cfg = net.config
    if images.dtype != np.uint8 or d != cfg.layers[0] or cfg.preprocess not in ("none", "deskew"):
        return None

    def block(i: int) -> np.ndarray:
        part = images[i : i + _BLOCK]
        if cfg.preprocess == "deskew":  # deskew_images' chunks, from the same starts: the same numbers
            return deskew_images(part).astype(cfg.dtype, copy=False)
        x = np.divide(part.reshape(len(part), d), np.float32(255), dtype=np.float32)  # as Split.x
        return x.astype(cfg.dtype, copy=False)

    return ((i, block(i)) for i in range(0, len(images), _BLOCK))


def _sparse_inputs(net: Network, split: Split) -> SparseRows | None:
    """The split's inputs as compressed rows, made a block at a time, when at most
    ``SPARSE_BELOW`` of them are not 0 (MNIST: a fifth); else None."""
    blocks = _input_blocks(net, split)
    if blocks is None or len(split) == 0:
        return None
    from digitnet.nn.compiled import SPARSE_BELOW, SparseRows

    n, n_in = len(split), net.config.layers[0]
    return SparseRows.compress(blocks, n, n_in, net.config.dtype, int(SPARSE_BELOW * n * n_in))


def _chunked_outputs(net: Network, rows: Callable[[int, int], np.ndarray], n: int) -> np.ndarray:
    """:func:`feedforward_batched` of the first ``n`` inputs, given as ``rows(start, stop)``: the
    same chunks, so the same numbers (a product's rounding depends on how many rows it has)."""
    chunk = feedforward_chunk(net)
    return np.concatenate([feedforward(net, rows(i, min(i + chunk, n))) for i in range(0, n, chunk)])


def _finite(net: Network) -> bool:
    return all(np.isfinite(v).all() for p in net.params for v in p.values())


class Trainer:
    """Trains a network on a training split: one mini-batch (:meth:`step`), the rest of an
    epoch (:meth:`run_epoch`), or, through :func:`train`, every epoch.

    The engine that takes the steps (:mod:`digitnet.training.engines`) is chosen once, here:
    ``engine`` if given, else ``config.engine`` (``auto``: the fastest that supports the
    config). ``self.config`` is the config with the engine that runs, so a model file saved
    from it records that engine. The web app drives a Trainer a batch at a time.
    """

    def __init__(
        self,
        net: Network,
        train: Split,
        config: TrainConfig = TrainConfig(),
        test: Split | None = None,
        validation: Split | None = None,
        engine: str | None = None,
        teacher: Network | None = None,
    ):
        if len(train) == 0:
            raise ConfigError("The training set is empty.")
        if test is not None and len(test) == 0:
            test = None  # e.g. your own arrays with no test examples: no test accuracy, not 0%
        n_pixels = int(np.prod(train.images.shape[1:]))
        if n_pixels != net.config.layers[0]:
            raise ConfigError(
                f"The network's first layer has {net.config.layers[0]} inputs but the images have "
                f"{n_pixels} pixels. Set {{layers}} to {n_pixels},...,10.", setting="layers"
            )
        if len(train.y) and int(train.y.min()) < 0:  # the engines would read -1 differently (no class, the last)
            raise ConfigError(f"The labels must be class numbers 0, 1, 2, ...; one is {int(train.y.min())}.")
        if int(train.y.max()) >= net.config.layers[-1]:
            raise ConfigError(
                f"The labels go up to {int(train.y.max())} but the output layer has only "
                f"{net.config.layers[-1]} neurons (see {{layers}}).", setting="layers"
            )
        if config.augment and math.isqrt(n_pixels) ** 2 != n_pixels:
            raise ConfigError(
                f"Augmentation moves pixels of square images, but the inputs have {n_pixels} "
                "values. Turn {augment} off for this data.", setting="augment"
            )
        soft = distill.prepare(net, train, config, teacher)  # distillation's soft targets, or None
        name = engines.choose(net, config, engine)
        # Why auto did not pick the compiled engine, when only this machine stands in the way:
        # one line for the CLI to show (the library does not print).
        self.engine_note = engines.fallback_note(net, config, name, engine)
        self.config = config = config.replace(engine=name)
        self.engine = name  # 'numba', 'numpy' or 'reference'
        self.net = net
        self.test = test
        self.validation = validation
        # Inputs as the first layer sees them (deskewed if the network says so), held once, in
        # the form the engine reads: the compiled engine's compressed rows, made a block at a
        # time (see _input_blocks), or the dense array the other engines gather batches from.
        # The images are not kept beside them (the caller may let them go: `digitnet train` does).
        self.n_train = len(train)
        images = np.asarray(train.images)
        raw = net.config.preprocess == "none" and net.config.dtype == "float32" and images.dtype == np.uint8
        self._x: np.ndarray | SparseRows | None = None  # None: raw pixels only (compiled engine, dense)
        if name == "numba":  # the test and validation inputs too, when they are sparse
            self._x = _sparse_inputs(net, train)
        if self._x is None and not (name == "numba" and raw):
            self._x = net.prepare_split(train)
        self._images = images if self._x is None else None  # the raw pixels the engine reads
        held = (lambda split: _sparse_inputs(net, split) or net.prepare_split(split)) if name == "numba" else net.prepare_split
        self._buffer: np.ndarray | None = None  # dense rows of compressed inputs, for the measurements
        self._held: tuple | None = None  # (rows, start, stop): what the buffer holds besides zeros
        self._test_x = held(test) if test is not None else None
        self._validation_x = held(validation) if validation is not None else None
        self.y = train.y
        self.decay = config.lmbda / self.n_train  # L2 weight decay per step, in every engine
        self.optimizer = make_optimizer(config.optimizer, net.params, config.momentum, config.beta2)
        # The engine itself is made at the first epoch or step (_start_engine), not here.
        self._engine: engines.Engine | None = None
        pixels = images if raw and self._x is None else None  # the compiled engine's inputs: images / 255
        self._engine_inputs: engines.Batches | None = engines.Batches(net, self._x, self.y, config, self.optimizer,
                                                                      pixels, soft)
        self.history = History()
        self.epoch = 0  # epochs completed
        self._order: np.ndarray | None = None  # this epoch's shuffle; None between epochs
        self._eta = 0.0  # this epoch's learning rate
        self._batch = 0  # next batch index within the current epoch
        self._epoch_seconds = 0.0
        self.steps_cpu_seconds = 0.0  # CPU time (all threads: time.process_time) of the gradient steps so far
        self._best: tuple[float, int, list] | None = None
        self._cost_sum = 0.0  # sum of this epoch's mini-batch costs (train_metrics="batches")
        # The weights' trajectory (initial, then after every epoch) when small: see snapshot_budget.
        self.snapshots: list[list[dict[str, np.ndarray]]] | None = (
            [net.copy().params] if snapshot_budget(net, config.epochs) else None)

    @property
    def x(self) -> np.ndarray:
        """The training inputs as the first layer sees them, (n, n_in). The compiled engine
        holds them compressed, so there this is a new dense array each time: use
        :meth:`inputs` for a part."""
        return self._x if isinstance(self._x, np.ndarray) else self.inputs(0, self.n_train)

    def inputs(self, start: int, stop: int) -> np.ndarray:
        """Training inputs ``start:stop`` as the first layer sees them, bit for bit."""
        if isinstance(self._x, np.ndarray):
            return self._x[start:stop]
        if self._x is not None:
            return self._x.dense(start, stop)
        block = self._images[start:stop]
        return np.divide(block.reshape(len(block), -1), np.float32(255), dtype=np.float32)  # as Split.x

    def _measuring(self):
        """The BLAS threads of a measurement pass: one, where the engine's steps keep BLAS on
        one thread (numba, numpy). A second BLAS thread spin-waits for work for a while after
        each product, into the next epoch's steps: on the 2-core machine that made them
        1.5-2x slower (README, "Speed"). The reference engine's steps use BLAS's threads."""
        from digitnet.nn.fast import blas_threads

        return blas_threads(1) if self.engine in ("numba", "numpy") else contextlib.nullcontext()

    def _train_outputs(self, n: int) -> np.ndarray:
        """The output activations of the first ``n`` training inputs: feedforward_batched's
        chunks, from the inputs as held (so the same numbers, without a dense copy of all)."""
        with self._measuring():
            if isinstance(self._x, np.ndarray):
                return feedforward_batched(self.net, self._x[:n])
            if self._x is None:
                return _chunked_outputs(self.net, self.inputs, n)
            return _chunked_outputs(self.net, lambda i, j: self._dense(self._x, i, j), n)

    def _dense(self, rows: SparseRows, start: int, stop: int) -> np.ndarray:
        """``rows.dense(start, stop)`` in the one buffer that every measurement pass shares
        (valid until the next call): no fresh 31 MB array per 10,000 rows, no pass of zeros."""
        out = rows.dense(start, stop, self._buffer, self._held)
        if self._buffer is None or not np.shares_memory(out, self._buffer):
            self._buffer = out if out.base is None else out.base
        self._held = (rows, start, start + len(out))
        return out

    @property
    def step_engine(self) -> str:
        """The engine's name (as :attr:`engine`)."""
        return self.engine

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.config.batch_size)

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs or self.history.stopped_epoch is not None

    def _patience_ran_out(self) -> bool:
        """Early stopping: the best validation accuracy is ``patience`` or more epochs old."""
        accs = [e.validation_accuracy for e in self.history.epochs]
        if not self.config.patience or not accs or accs[-1] is None:
            return False
        best = max(range(len(accs)), key=lambda i: accs[i])  # the first of equal bests
        return len(accs) - 1 - best >= self.config.patience

    def _accuracy(self, x: np.ndarray | SparseRows, y: np.ndarray) -> float:
        """Accuracy on inputs already prepared for the network (dense, or compressed rows)."""
        with self._measuring():
            if isinstance(x, np.ndarray):
                out = feedforward_batched(self.net, x)
            else:
                out = _chunked_outputs(self.net, lambda i, j: self._dense(x, i, j), len(x))
        return accuracy(y, out.argmax(axis=1))

    def measure_initial(self) -> None:
        """Record the cost and test accuracy of the untrained network.

        With ``train_metrics="batches"`` the initial cost is estimated on the first 10,000
        training examples only (for a conv net a pass over all of them costs a third of an epoch).
        """
        n = 10_000 if self.config.train_metrics == "batches" else len(self.y)
        self.history.initial_cost = total_cost(self.net, self._train_outputs(n), self.y[:n]) / len(self.y[:n])
        if self.test is not None:
            self.history.initial_test_accuracy = self._accuracy(self._test_x, self.test.y)

    def start_engine(self) -> bool:
        """Make the engine now, rather than at the first epoch or step, so that a caller can
        say what the wait is for. Returns True when this compiled the engine's code: the
        compiled engine, the first time on this machine for a network of this number of
        layers and dtype (seconds to a minute; then it is cached). False when it was loaded
        from the cache, was made already, or needs no compiling."""
        made = self._engine is not None
        engine = self._start_engine()
        return not made and bool(getattr(engine, "compiled", False))

    def _start_engine(self) -> engines.Engine:
        """The engine, made at the first epoch or step rather than in ``__init__``: loading
        the compiled kernels (about 50 MB with Numba) then comes after the caller has let the
        images go (``digitnet train`` does, once the Trainer holds the inputs), and before
        the first epoch's clock starts."""
        if self._engine is None:
            with uninterrupted():  # a Ctrl-C inside Numba's compiler is lost or breaks it: it comes after
                self._engine = engines.make(self.engine, self._engine_inputs)
            self._engine_inputs = None
        return self._engine

    def _batches(self, k: int) -> float:
        """The one door to the engine: up to ``k`` more mini-batches of the current epoch
        (starting it if needed). Returns the last batch's cost; raises
        :class:`DivergenceError` at a cost that is not finite (that step was not taken)."""
        engine = self._start_engine()
        cfg, n, m = self.config, self.n_train, self.config.batch_size
        if self._order is None:  # a new epoch: its shuffle and learning rate, once
            self._order, self._batch = epoch_order(cfg.seed, self.epoch, n), 0
            self._eta = epoch_eta(cfg, self.epoch)
            engine.begin_epoch(self.epoch)
        start = self._batch * m
        full = min(k, (n - start) // m)  # whole batches; else the epoch's last, partial one
        cpu = time.process_time()
        costs = engine.steps(self._order, start, max(full, 1), m if full else n - start, self._eta, self.decay)
        self.steps_cpu_seconds += time.process_time() - cpu
        for cost in costs.tolist():
            if not math.isfinite(cost):
                raise DivergenceError(self._divergence_message(), setting="eta")
            if cfg.record_batch_cost:
                self.history.batch_costs.append(cost)
            self._cost_sum += cost
            self._batch += 1
        return cost

    def step(self) -> float:
        """One mini-batch: backpropagate and step downhill. Returns the batch's cost (before
        the step). Raises :class:`DivergenceError` if the cost is no longer finite. After the
        epoch's last batch, :meth:`run_epoch` records the epoch; only then does ``step`` go on."""
        if self._order is not None and self._batch >= self.batches_per_epoch:
            raise RuntimeError("This epoch's mini-batches are all done: call run_epoch() to record the epoch, "
                               "then step() starts the next one.")
        return self._batches(1)

    def _divergence_message(self) -> str:
        return (
            f"Training diverged in epoch {self.epoch + 1}: the cost became NaN or infinite "
            f"(learning rate {self._eta:g}). Try a smaller learning rate ({{eta}}), "
            f"e.g. {self.config.eta / 10:g}."
            + (" The weights from the last good epoch were kept." if self.epoch > 0 else "")
        )

    def run_epoch(self, progress: Callable[[int], None] | None = None) -> EpochRecord:
        """Finish the current epoch (all its remaining mini-batches) and record it.

        ``progress(k)`` is called with the number of batches done since the last call: after
        the first 1/100 of the epoch, then every :data:`PROGRESS_SECONDS` of work or so (every
        1/100 where that takes longer); the epoch's ``seconds`` leave out the time spent in it.
        On divergence, or a ``KeyboardInterrupt`` (Ctrl-C) mid-epoch, the weights are reset to
        the last completed epoch's (the epoch starts again at its first batch) and the
        exception propagates.
        """
        self._start_engine()  # not on the epoch's clock
        good = self.net.copy()
        start = time.perf_counter()
        n_batches = self.batches_per_epoch
        # Each call into the engine costs some microseconds (the compiled engine copies the
        # weights in and out), and the weights do not depend on how the epoch is split: so the
        # first call takes 1/100 of the epoch, and the next ones at least PROGRESS_SECONDS each.
        tick = max(1, n_batches // 100)
        reporting = 0.0  # seconds spent in progress(): not the epoch's
        try:
            while self._order is None or self._batch < n_batches:
                before = self._batch if self._order is not None else 0
                t = time.perf_counter()
                self._batches(min(tick, n_batches - before))
                done, seconds = self._batch - before, time.perf_counter() - t
                if progress is not None:
                    progress(done)
                    reporting += time.perf_counter() - t - seconds
                if seconds < PROGRESS_SECONDS:
                    tick = max(tick, int(done * PROGRESS_SECONDS / max(seconds, 1e-6)))
        except (DivergenceError, KeyboardInterrupt):
            self.net.params[:] = good.params
            self._order, self._batch, self._cost_sum = None, 0, 0.0
            raise
        self._epoch_seconds += time.perf_counter() - start - reporting
        return self._finish_epoch(good)

    def _finish_epoch(self, good: Network) -> EpochRecord:
        cfg = self.config
        eta = self._eta
        if cfg.train_metrics == "batches":
            # The mean cost of the epoch's mini-batches (taken before each step): no extra pass.
            out, cost = None, self._cost_sum / max(self._batch, 1)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                out = self._train_outputs(self.n_train)
                cost = total_cost(self.net, out, self.y) / len(self.y)
        if not (math.isfinite(cost) and _finite(self.net)):
            self.net.params[:] = good.params
            self._order = None
            raise DivergenceError(self._divergence_message(), setting="eta")
        rec = EpochRecord(
            epoch=self.epoch + 1,
            cost=cost,
            train_accuracy=accuracy(self.y, out.argmax(axis=1)) if out is not None else float("nan"),
            test_accuracy=self._accuracy(self._test_x, self.test.y) if self.test is not None else None,
            validation_accuracy=(
                self._accuracy(self._validation_x, self.validation.y) if self.validation is not None else None
            ),
            seconds=self._epoch_seconds,
            eta=eta,
        )
        self.history.epochs.append(rec)
        if self.snapshots is not None:
            self.snapshots.append(self.net.copy().params)
        if cfg.keep_best and rec.validation_accuracy is not None:
            if self._best is None or rec.validation_accuracy > self._best[0]:
                self._best = (rec.validation_accuracy, rec.epoch, self.net.copy().params)
        if self._patience_ran_out():
            self.history.stopped_epoch = rec.epoch
        self.epoch += 1
        self._order = None
        self._cost_sum = 0.0
        self._batch = 0
        self._epoch_seconds = 0.0
        return rec

    def finish(self) -> None:
        """After the last epoch: with ``keep_best``, restore the best validation epoch's weights."""
        if self._best is not None and self._best[1] != self.epoch:
            self.net.params[:] = self._best[2]
            self.history.best_epoch = self._best[1]


def train(
    net: Network,
    train_split: Split,
    config: TrainConfig = TrainConfig(),
    test: Split | None = None,
    validation: Split | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: Callable[[int], None] | None = None,
    engine: str | None = None,
) -> History:
    """Train ``net`` in place by mini-batch SGD and return its :class:`History`.

    ``on_epoch(record)`` is called after every epoch; ``progress(k)`` as batches complete.
    Raises :class:`DivergenceError` (with the last good weights restored) when the cost
    becomes NaN or infinite. A ``KeyboardInterrupt`` propagates with ``net`` holding the
    last completed epoch's weights, so the caller can save them. ``engine`` (else
    ``config.engine``) names the engine that takes the steps: 'auto' (the fastest that
    supports the config), 'numba', 'numpy' or 'reference' (see :mod:`digitnet.training.engines`).
    """
    trainer = Trainer(net, train_split, config, test, validation, engine=engine)
    trainer.measure_initial()
    while not trainer.done:
        rec = trainer.run_epoch(progress)
        if on_epoch is not None:
            on_epoch(rec)
    trainer.finish()
    return trainer.history


def not_learning(history: History, net: Network) -> NotLearning | None:
    """A warning when the last epoch shows the network is not learning, else None.

    Not a NaN (a sigmoid's cost cannot overflow), but no progress either: the cost is no
    lower than before training, or the training accuracy is near chance while the weights
    have blown up — typically steps so long that every neuron saturates. The CLI and the
    web page show it; its message names the setting ``{eta}`` (see :meth:`NotLearning.render`).
    """
    if not history.epochs:
        return None
    rec, before, chance = history.epochs[-1], history.initial_cost, 1 / net.config.layers[-1]
    acc = rec.train_accuracy
    stuck = acc == acc and acc < 2 * chance  # (NaN: not measured)
    blown = max(float(abs(v).max()) for p in net.params for v in p.values()) > 1e3
    if not ((stuck and blown) or (before is not None and rec.cost >= before)):
        return None
    shown = "-" if acc != acc else f"{100 * acc:.2f}%"
    return NotLearning(
        f"after epoch {rec.epoch} the network is not learning (cost {rec.cost:.4f}, training accuracy "
        f"{shown}). The learning rate {rec.eta:g} is probably too large; try a smaller {{eta}}, "
        f"e.g. {rec.eta / 10:g}.", setting="eta")
