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

import math
import time
from typing import Callable

import numpy as np

from digitnet.augment import distort
from digitnet.config import TrainConfig
from digitnet.data.datasets import Split
from digitnet.errors import ConfigError, DivergenceError
from digitnet.metrics import accuracy
from digitnet.nn import compiled, fast
from digitnet.nn.network import Network, backprop, feedforward_batched, total_cost
from digitnet.optim import make_optimizer


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


def _finite(net: Network) -> bool:
    return all(np.isfinite(v).all() for p in net.params for v in p.values())


class Trainer:
    """Trains a network on a training split; can run, step one mini-batch, or one epoch.

    The web app drives it a batch at a time; :func:`train` runs it to the end.
    """

    def __init__(
        self,
        net: Network,
        train: Split,
        config: TrainConfig = TrainConfig(),
        test: Split | None = None,
        validation: Split | None = None,
        engine: str | None = None,
    ):
        if len(train) == 0:
            raise ConfigError("The training set is empty.")
        n_pixels = int(np.prod(train.images.shape[1:]))
        if n_pixels != net.config.layers[0]:
            raise ConfigError(
                f"The network's first layer has {net.config.layers[0]} inputs but the images have "
                f"{n_pixels} pixels. Use --layers {n_pixels},...,10."
            )
        if int(train.y.max()) >= net.config.layers[-1]:
            raise ConfigError(
                f"The labels go up to {int(train.y.max())} but the output layer has only "
                f"{net.config.layers[-1]} neurons."
            )
        self.net = net
        self.train_split = train
        self.config = config
        self.test = test
        self.validation = validation
        self.dtype = np.dtype(net.config.dtype)
        # Inputs as the first layer sees them (deskewed if the network says so), once.
        self.x = net.prepare_split(train)
        self._test_x = net.prepare_split(test) if test is not None else None
        self._validation_x = net.prepare_split(validation) if validation is not None else None
        self.y = train.y
        self.optimizer = make_optimizer(config.optimizer, net.params, config.momentum, config.beta2)
        self.history = History()
        self.epoch = 0  # epochs completed
        self._order: np.ndarray | None = None
        self._batch = 0  # next batch index within the current epoch
        self._epoch_seconds = 0.0
        self._best: tuple[float, int, list] | None = None
        self._noise: np.random.Generator | None = None  # dropout masks and augmentation, per epoch
        self._cost_sum = 0.0  # sum of this epoch's mini-batch costs (train_metrics="batches")
        if config.augment:
            side = math.isqrt(n_pixels)
            if side * side != n_pixels:
                raise ConfigError(
                    f"Augmentation moves pixels of square images, but the inputs have {n_pixels} "
                    "values. Turn augmentation off for this data."
                )
        self.use_fast = True  # False forces the reference path (backprop + optimizer) for every step
        # Which fast path trains dense networks with plain SGD: 'numba' (nn/compiled.py) or
        # 'numpy' (nn/fast.py); `engine` (or $DIGITNET_ENGINE) 'auto' picks numba where installed.
        self.engine = compiled.choose_engine(engine)
        self._fast: tuple[TrainConfig, fast.FastSGD | compiled.CompiledSGD | None] | None = None  # (config, path)
        self._fast_path()  # made now, so that compiling (or loading) the numba engine is not epoch time

    @property
    def step_engine(self) -> str:
        """What takes the gradient steps: 'numba', 'numpy' (the fused paths) or 'reference'
        (backprop + optimizer: conv layers, momentum/Adam, dropout, augmentation)."""
        path = self._fast_path()
        return "reference" if path is None else ("numba" if isinstance(path, compiled.CompiledSGD) else "numpy")

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.x) / self.config.batch_size)

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

    def _accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on inputs already prepared for the network."""
        return accuracy(y, feedforward_batched(self.net, x).argmax(axis=1))

    def measure_initial(self) -> None:
        """Record the cost and test accuracy of the untrained network.

        With ``train_metrics="batches"`` the initial cost is estimated on the first 10,000
        training examples only (for a conv net a pass over all of them costs a third of an epoch).
        """
        n = 10_000 if self.config.train_metrics == "batches" else len(self.y)
        self.history.initial_cost = total_cost(self.net, feedforward_batched(self.net, self.x[:n]), self.y[:n]) / len(self.y[:n])
        if self.test is not None:
            self.history.initial_test_accuracy = self._accuracy(self._test_x, self.test.y)

    def step(self) -> float:
        """One mini-batch: backpropagate and step downhill. Returns the batch's cost.

        Raises :class:`DivergenceError` if the cost is no longer finite.
        """
        cfg = self.config
        self._start_epoch()
        idx = self._order[self._batch * cfg.batch_size : (self._batch + 1) * cfg.batch_size]
        path = self._fast_path()
        if path is not None:
            return self._fast_step(path, idx)
        x, y = self.x[idx], self.y[idx]
        if cfg.augment or cfg.dropout:
            if self._noise is None:  # one stream per epoch, like the shuffle, so resuming replays it
                self._noise = np.random.default_rng([cfg.seed, self.epoch, 1])
            if cfg.augment:
                x = distort(x, self._noise, cfg)
        with np.errstate(over="ignore", invalid="ignore"):
            grad = backprop(self.net, x, y, cfg.dropout, self._noise) if cfg.dropout else backprop(self.net, x, y)
            if not math.isfinite(grad.cost):
                raise DivergenceError(self._divergence_message())
            grads = grad.layers  # one dict per layer, aligned with net.params ({} for pool/flatten)
            if cfg.lmbda:
                # L2 regularisation adds lmbda/(2 n) sum w^2 to the cost, so dC/dw gains (lmbda/n) w.
                decay = cfg.lmbda / len(self.x)
                for g, p in zip(grads, self.net.params):
                    if "w" in g:
                        g["w"] = g["w"] + np.asarray(decay, self.dtype) * p["w"]
            self.optimizer.step(self.net.params, grads, epoch_eta(cfg, self.epoch))
        if cfg.record_batch_cost:
            self.history.batch_costs.append(grad.cost)
        self._cost_sum += grad.cost
        self._batch += 1
        return grad.cost

    def _start_epoch(self) -> None:
        if self._order is None:
            self._order = epoch_order(self.config.seed, self.epoch, len(self.x))
            self._batch = 0

    def _fast_path(self) -> "fast.FastSGD | compiled.CompiledSGD | None":
        """The fused path for the current config (made on first use), or None where the
        config needs the reference path (other layers, optimizers, dropout, ...)."""
        cfg = self.config
        if not self.use_fast:
            return None
        if self._fast is None or self._fast[0] is not cfg:
            path = None
            if fast.supports(self.net, cfg):
                if self.engine == "numba":
                    images = np.asarray(self.train_split.images)
                    raw = (self.net.config.preprocess == "none" and self.dtype == np.float32
                           and images.dtype == np.uint8)  # then self.x is exactly images / 255
                    path = compiled.CompiledSGD(self.net, self.x, self.y, images if raw else None)
                else:
                    path = fast.FastSGD(self.net, self.x, self.y)
            self._fast = (cfg, path)
        return self._fast[1]

    def _compiled_steps(self, path: "compiled.CompiledSGD", k: int) -> None:
        """Up to ``k`` more mini-batches of this epoch in one compiled call."""
        cfg = self.config
        self._start_epoch()
        n, m = len(self.x), cfg.batch_size
        start = self._batch * m
        full = min(k, (n - start) // m)
        costs = path.steps(self._order, start, max(full, 1), m if full else n - start,
                           epoch_eta(cfg, self.epoch), cfg.lmbda / n)
        for cost in costs.tolist():
            self._count_fast_batch(cost)

    def _fast_step(self, path: "fast.FastSGD | compiled.CompiledSGD", idx: np.ndarray) -> float:
        """:meth:`step` by a fused path (plain SGD, same math as the reference)."""
        cfg = self.config
        with np.errstate(over="ignore", invalid="ignore"):
            cost = path.step(idx, epoch_eta(cfg, self.epoch), cfg.lmbda / len(self.x))
        self._count_fast_batch(cost)
        return cost

    def _count_fast_batch(self, cost: float) -> None:
        """Book a batch a fused path has stepped, or raise if its cost was not finite
        (the path then left the weights alone)."""
        if not math.isfinite(cost):
            raise DivergenceError(self._divergence_message())
        if self.config.record_batch_cost:
            self.history.batch_costs.append(cost)
        self._cost_sum += cost
        self._batch += 1

    def _divergence_message(self) -> str:
        return (
            f"Training diverged in epoch {self.epoch + 1}: the cost became NaN or infinite "
            f"(learning rate {epoch_eta(self.config, self.epoch):g}). Try a smaller learning rate, "
            f"e.g. --eta {self.config.eta / 10:g}. The weights from the last good epoch were kept."
        )

    def run_epoch(self, progress: Callable[[int], None] | None = None) -> EpochRecord:
        """Finish the current epoch (all its remaining mini-batches) and record it.

        ``progress(k)`` is called now and then with the number of batches done since the
        last call. On divergence the weights are reset to the last completed epoch's.
        """
        good = self.net.copy()
        start = time.perf_counter()
        n_batches = self.batches_per_epoch
        try:
            tick = max(1, n_batches // 100)
            last = self._batch
            while self._batch < n_batches:
                path = self._fast_path()
                if isinstance(path, compiled.CompiledSGD):
                    self._compiled_steps(path, min(tick, n_batches - self._batch))
                else:
                    self.step()
                if progress is not None and (self._batch - last >= tick or self._batch == n_batches):
                    progress(self._batch - last)
                    last = self._batch
        except DivergenceError:
            self.net.params[:] = good.params
            self._order = None
            raise
        self._epoch_seconds += time.perf_counter() - start
        return self._finish_epoch(good)

    def _finish_epoch(self, good: Network) -> EpochRecord:
        cfg = self.config
        eta = epoch_eta(cfg, self.epoch)
        if cfg.train_metrics == "batches":
            # The mean cost of the epoch's mini-batches (taken before each step): no extra pass.
            out, cost = None, self._cost_sum / max(self._batch, 1)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                out = feedforward_batched(self.net, self.x)
                cost = total_cost(self.net, out, self.y) / len(self.y)
        if not (math.isfinite(cost) and _finite(self.net)):
            self.net.params[:] = good.params
            self._order = None
            raise DivergenceError(self._divergence_message())
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
        if cfg.keep_best and rec.validation_accuracy is not None:
            if self._best is None or rec.validation_accuracy > self._best[0]:
                self._best = (rec.validation_accuracy, rec.epoch, self.net.copy().params)
        if self._patience_ran_out():
            self.history.stopped_epoch = rec.epoch
        self.epoch += 1
        self._order = None
        self._noise = None
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
    last completed epoch's weights, so the caller can save them. ``engine`` picks the fast
    path of plain SGD on dense networks: 'auto' (the default, or $DIGITNET_ENGINE), 'numba'
    or 'numpy' (see :mod:`digitnet.nn.compiled`).
    """
    trainer = Trainer(net, train_split, config, test, validation, engine=engine)
    trainer.measure_initial()
    while not trainer.done:
        rec = trainer.run_epoch(progress)
        if on_epoch is not None:
            on_epoch(rec)
    trainer.finish()
    return trainer.history
