"""What the web page drives: the current network, its training job, and the saved models.

A :class:`Lab` holds one *job*: a network, the initial weights it started from, its
configs and what training has recorded so far (cost points, test accuracy points, epoch
records). Training runs in one background thread at a time, a mini-batch per loop, and
can be paused, stepped one mini-batch or one epoch, and reset to the same initial
weights (with the same seed, so a reset run repeats itself exactly).

Requests never read the weights that the training thread is changing: the thread
publishes a copy (``snapshot``) a few times a second and after every change, and
predictions, weight pictures and evaluations use that copy. Between mini-batches the
thread yields the interpreter lock, and it waits while a request has asked for priority
(:meth:`Lab.priority`), so a prediction is never stuck behind training.

Nothing here speaks HTTP; :mod:`digitnet.web.app` turns these methods into endpoints
and the :class:`~digitnet.errors.DigitnetError` subclasses below into 4xx statuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import TITLES, Dataset, Split, load_mnist
from digitnet.data.folder import worst_mistakes
from digitnet.errors import ConfigError, DigitnetError, DivergenceError, ModelFileError
from digitnet.files import CHECKPOINT_SUFFIX, MODEL_SUFFIX, model_stem
from digitnet.io.model_io import load_model, save_model
from digitnet.nn.metrics import accuracy
from digitnet.nn.network import Network
from digitnet.tasks.evaluate import evaluate
from digitnet.training.presets import get_preset
from digitnet.training.train import SNAPSHOT_BYTES, History, Trainer

# A model is chosen by name, never by path: letters, digits, '_', '-' and '.', starting
# with a letter or digit, so it cannot name a parent directory or a hidden file.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z, not $: "$" also matches before a final newline
POINTS_PER_EPOCH = 100  # cost points kept per epoch (each the mean of its mini-batches)
SNAPSHOT_SECONDS = 0.2  # how often the training thread publishes its weights
ACCURACY_SECONDS = 0.5  # how often it measures test accuracy while running, at least...
ACCURACY_PER_EPOCH = 10  # ...and at least this many times per epoch
BUSY_SECONDS = 0.5  # requests this recent mean someone is using the page...
BUSY_PAUSE = 0.002  # ...and the training thread pauses this long after each mini-batch
PRIORITY_WAIT = 0.05  # the longest the training thread waits for requests between batches
LANDSCAPE_IMAGES = 2000  # training images the landscape's cost is averaged over
LANDSCAPE_SHOWN = 8  # test digits a point of the landscape is shown predicting


def _refuse_other_data(name: str, saved, data: Dataset) -> None:
    """A model of other data (Fashion-MNIST, your own arrays) is refused with what to do: the
    page would name its answers with this data's classes and test it on this data's pictures."""
    def named(classes) -> str:
        return ", ".join(classes[:3]) + (", ..." if len(classes) > 3 else "")

    page = f"this page shows {TITLES.get(data.name, data.name)} ({named(data.classes)})"
    if saved.input is not None:
        raise ModelFileError(
            f"The model {name!r} was trained on your own data ({saved.input.n_features} features; classes "
            f"{named(saved.classes)}), not on pictures, and {page}. Use it on the command line: "
            f"digitnet evaluate {name}{MODEL_SUFFIX} --data FILE.")
    if tuple(saved.classes) != tuple(data.classes):
        raise ModelFileError(
            f"The model {name!r} was trained on {TITLES.get(saved.dataset, saved.dataset)} (classes "
            f"{named(saved.classes)}), but {page}: its answers would be named and tested wrongly. Use it on "
            f"the command line: digitnet evaluate {name}{MODEL_SUFFIX}.")


class Busy(DigitnetError):
    """The request conflicts with the training job that is running (HTTP 409)."""


class NotFound(DigitnetError):
    """A named thing (a model) does not exist (HTTP 404)."""


def check_model_name(name) -> str:
    """A model name as typed in the page -> the same name, or a clear error."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ModelFileError(
            "A model name is 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit "
            f"(no folders or paths); got {name!r}."
        )
    name = model_stem(name)
    if not name or name.endswith(".ckpt"):
        raise ModelFileError(f"{name!r} is a checkpoint name; choose a model name without '.ckpt'.")
    if name.endswith(MODEL_SUFFIX):  # "h.safetensors.safetensors": which file is meant is unclear
        raise ModelFileError(f"{name + MODEL_SUFFIX!r} ends in {MODEL_SUFFIX} twice; choose a name with it once or not at all.")
    return name


@dataclass
class Job:
    """One network and everything its training has recorded."""

    id: int
    net: Network
    initial: Network
    train_config: TrainConfig
    train_size: int
    name: str | None = None  # the saved model it came from or was saved as
    trainer: Trainer | None = None
    history: History = field(default_factory=History)
    points: list[tuple[int, float]] = field(default_factory=list)  # (mini-batches done, mean cost)
    accuracy: list[tuple[int, float]] = field(default_factory=list)  # (mini-batches done, test accuracy)
    batches: int = 0  # mini-batches done in all
    batch_in_epoch: int = 0
    status: str = "ready"  # ready, running, paused, done, diverged
    message: str | None = None
    pending: list[float] = field(default_factory=list)  # batch costs not yet averaged into a point
    saved_batches: int | None = None  # `batches` when it was last loaded or saved (None: never)
    snapshots: list = field(default_factory=list)  # the file's weight snapshots (params lists, initial first)

    @property
    def unsaved(self) -> bool:
        """Training that no model file holds: what replacing this job would lose."""
        return self.batches > 0 and self.batches != self.saved_batches

    @property
    def epoch(self) -> int:
        """Epochs completed: the Trainer's count once training has begun."""
        return self.trainer.epoch if self.trainer is not None else len(self.history.epochs)


class Lab:
    """The state behind one web app: see the module docstring.

    ``dataset`` defaults to MNIST (from ``data_dir`` or the copy shipped with digitnet);
    ``model_dir`` is the only directory models are listed from, loaded from and saved to.
    """

    def __init__(self, model_dir, dataset: Dataset | None = None, data_dir=None, engine: str = "auto"):
        self.model_dir = Path(model_dir)
        self.engine = engine  # the training engine setting: "auto" picks the fastest that is installed
        if not self.model_dir.is_dir():
            raise ModelFileError(f"The model directory {self.model_dir} does not exist. Create it or pass another one.")
        self.data = dataset if dataset is not None else load_mnist(data_dir)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting = 0  # requests that asked the training thread to wait
        self._last_request = float("-inf")  # when the last prediction request ended
        self._waiting_lock = threading.Lock()
        self._next_id = 0
        self.version = 0  # bumped on every change the page may want to redraw
        self.snapshot_version = 0  # bumped when the published weights change
        self.snapshot: Network
        self._eval_cache: tuple[int, dict] | None = None
        self._landscape_cache: tuple[tuple, dict] | None = None
        self._splits: dict[tuple[bool, int], Split] = {}
        self._splits_validation: dict[str, tuple[Split, Split]] = {}
        self.skipped: list[str] = []  # model files that could not be opened at start, one line each
        for newest in sorted(self.list_models(), key=lambda m: m["modified"], reverse=True):
            try:  # a foreign, truncated or altered file must not stop the page: try the next one
                self.job = self._job_from_file(newest["name"])
                break
            except ModelFileError as e:
                self.skipped.append(str(e))
        else:
            net_cfg, train_cfg = get_preset("video")
            self.job = self._new_job(net_cfg, train_cfg, len(self.data.train))
        self._publish()

    # --- jobs -----------------------------------------------------------------------
    def _new_job(self, net_cfg: NetworkConfig, train_cfg: TrainConfig, train_size: int) -> Job:
        net = Network.create(net_cfg, seed=train_cfg.seed)
        self._next_id += 1
        job = Job(self._next_id, net, net.copy(), train_cfg, train_size)
        self._measure_initial(job)
        return job

    def _measure_initial(self, job: Job) -> None:
        train = self._train_split(job)
        with np.errstate(over="ignore", invalid="ignore"):
            job.history.initial_cost = job.net.cost(train.x, train.y)
            job.history.initial_test_accuracy = accuracy(self.data.test.y, job.net.predict(self.data.test.x))
        if math.isfinite(job.history.initial_cost):
            job.points.append((0, job.history.initial_cost))
        job.accuracy.append((0, job.history.initial_test_accuracy))

    def _train_split(self, job: Job) -> Split:
        train = self._validation_splits()[0] if job.train_config.validation else self.data.train
        n = min(job.train_size, len(train))
        if n == len(train):
            return train
        key = (job.train_config.validation, n)
        if key not in self._splits:  # a Split converts its pixels to floats once: keep it
            self._splits = {key: train.subset(n)}
        return self._splits[key]

    def _validation_splits(self) -> tuple[Split, Split]:
        if "validation" not in self._splits_validation:
            self._splits_validation["validation"] = self.data.with_validation()
        return self._splits_validation["validation"]

    def _job_from_file(self, name: str) -> Job:
        saved = load_model(self.model_path(name))
        _refuse_other_data(name, saved, self.data)
        if saved.net.config.layers[0] != self.data.train.x.shape[1] or len(saved.classes) != len(self.data.classes):
            raise ModelFileError(
                f"The model {name!r} was made for {saved.net.config.layers[0]} inputs and {len(saved.classes)} "
                f"classes; this app's data has {self.data.train.x.shape[1]} and {len(self.data.classes)}."
            )
        train_cfg = saved.train_config or TrainConfig()
        self._next_id += 1
        job = Job(self._next_id, saved.net, saved.initial or saved.net.copy(), train_cfg,
                  train_cfg.train_size or len(self.data.train), name=name)
        job.train_size = len(self._train_split(job))
        history = saved.history or History()
        job.history = history
        per_epoch = math.ceil(job.train_size / train_cfg.batch_size)
        if history.initial_cost is not None and math.isfinite(history.initial_cost):
            job.points.append((0, history.initial_cost))
        if history.initial_test_accuracy is not None:
            job.accuracy.append((0, history.initial_test_accuracy))
        k = max(1, per_epoch // POINTS_PER_EPOCH)
        costs = np.asarray(history.batch_costs, dtype=np.float64)
        for start in range(0, len(costs) - len(costs) % k, k):
            job.points.append((start + k, float(costs[start : start + k].mean())))
        for rec in history.epochs:
            if rec.test_accuracy is not None:
                job.accuracy.append((rec.epoch * per_epoch, rec.test_accuracy))
        job.batches = max(len(costs), len(history.epochs) * per_epoch)
        job.status = "done" if job.epoch >= train_cfg.epochs else "paused" if job.epoch else "ready"
        job.saved_batches = job.batches
        job.snapshots = list(saved.snapshots)
        return job

    def _replace_job(self, job: Job) -> None:
        self.job = job
        self._publish()

    def _trainer(self) -> Trainer:
        job = self.job
        if job.trainer is None:
            # The engine setting, as everywhere else. Whatever the engine, the page trains one
            # mini-batch per call and yields to predictions between batches (see _run).
            t = Trainer(job.net, self._train_split(job), job.train_config, test=self.data.test,
                        validation=self._validation_splits()[1] if job.train_config.validation else None,
                        engine=self.engine)
            t.history = job.history
            t.epoch = job.epoch
            job.trainer = t
        return job.trainer

    # --- what requests call ----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _refuse_while_running(self, what: str) -> None:
        if self.running:
            raise Busy(f"A training job is running; pause it before you {what}. Only one training job runs at a time.")

    def configure(self, net_cfg: NetworkConfig, train_cfg: TrainConfig, train_size: int) -> dict:
        """Start over with a new network (random weights from ``train_cfg.seed``)."""
        with self._lock:
            self._refuse_while_running("set up a new network")
            self._replace_job(self._new_job(net_cfg, train_cfg, train_size))
            return self.state()

    def reset(self) -> dict:
        """Pause, then go back to the job's initial weights and forget its training."""
        self.pause()
        with self._lock:
            self._refuse_while_running("reset")
            old = self.job
            self._next_id += 1
            job = Job(self._next_id, old.initial.copy(), old.initial, old.train_config, old.train_size)
            self._measure_initial(job)
            self._replace_job(job)
            return self.state()

    def step(self) -> dict:
        """Train one mini-batch now (training must not be running)."""
        with self._lock:
            self._refuse_while_running("step one mini-batch")
            self._check_can_train()
            trainer = self._trainer()
            try:
                self._one_batch(trainer, measure=True)
                job = self.job
                if job.pending:  # a single step shows on the cost curve at once
                    job.points.append((job.batches, float(np.mean(job.pending))))
                    job.pending.clear()
            except DivergenceError as e:
                self._diverged(e)
            else:
                if self.job.status != "done":
                    self.job.status = "paused"
            self._publish()
            return self.state()

    def start(self, until: str = "end", more_epochs: int = 0) -> dict:
        """Train in the background until the last epoch (``"end"``) or this epoch's end.

        ``more_epochs`` > 0 first adds that many epochs to a job whose epochs are all done
        (e.g. a loaded model), so it trains on from its weights.
        """
        with self._lock:
            if self.running:
                raise Busy("A training job is already running. Pause it first, or wait for it to finish: "
                           "only one training job runs at a time.")
            job = self.job
            if more_epochs > 0 and (job.status == "diverged" or job.epoch < job.train_config.epochs):
                raise Busy(f"'more_epochs' adds epochs to a finished run; this one has "
                           f"{job.train_config.epochs - job.epoch} of its {job.train_config.epochs} epochs to go."
                           if job.status != "diverged" else
                           "'more_epochs' cannot continue a run that diverged: reset it, or set up a new network.")
            if more_epochs > 0:
                job.train_config = dataclasses.replace(job.train_config, epochs=job.epoch + more_epochs)
                if job.trainer is not None:
                    job.trainer.config = job.train_config
                job.status = "paused"
            self._check_can_train()
            trainer = self._trainer()
            self._stop.clear()
            self.job.status, self.job.message = "running", None
            self._thread = threading.Thread(target=self._run, args=(self.job, trainer, until == "epoch"),
                                            name="digitnet-training", daemon=True)
            self._thread.start()
            self.version += 1
            return self.state()

    def pause(self) -> dict:
        """Stop the training thread after its current mini-batch (a no-op when idle).

        Starting and stopping happen under one lock, so a pause racing a start sees either
        no thread or one that has started (joining a thread that has not started raises).
        The training thread never takes this lock, so waiting for it here cannot deadlock.
        """
        with self._lock:
            thread = self._thread
            if thread is not None and thread.ident is not None:
                self._stop.set()
                thread.join(timeout=30)
            if self.job.status == "running" and not self.running:
                self.job.status = "paused"
            self.version += 1
            return self.state()

    def close(self) -> None:
        self.pause()

    def _check_can_train(self) -> None:
        job = self.job
        if job.epoch >= job.train_config.epochs:
            raise Busy(f"All {job.train_config.epochs} epochs are done. Reset, or set up a network with more epochs.")
        if job.status == "diverged":
            raise Busy("Training diverged (the cost became NaN or infinite). Reset, or use a smaller learning rate.")

    @contextlib.contextmanager
    def priority(self):
        """While inside, the training thread waits between mini-batches (up to 50 ms)."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            yield
        finally:
            with self._waiting_lock:
                self._waiting -= 1
            self._last_request = time.perf_counter()

    # --- the training thread ----------------------------------------------------------
    def _run(self, job: Job, trainer: Trainer, one_epoch: bool) -> None:
        last_snapshot = last_accuracy = time.perf_counter()
        accuracy_every = max(1, trainer.batches_per_epoch // ACCURACY_PER_EPOCH)
        try:
            # The page's first wait: the engine is made before the first batch, and the numba
            # engine compiles for a network shape it has not met on this machine (up to a minute).
            job.message = (f"Starting the {trainer.engine} engine… (the first time for a network of this shape, "
                           "it compiles: up to a minute)")
            self.version += 1
            trainer.start_engine()
            job.message = None
            self.version += 1
            while not self._stop.is_set() and not trainer.done:
                if self._one_batch(trainer) and one_epoch:
                    break
                now = time.perf_counter()
                if now - last_accuracy >= ACCURACY_SECONDS or job.batches % accuracy_every == 0:
                    self._measure_accuracy(job)
                    last_accuracy = now
                if now - last_snapshot >= SNAPSHOT_SECONDS:
                    self._publish()
                    last_snapshot = now
                self._yield()
            job.status = "done" if trainer.done else "paused"
        except DivergenceError as e:
            self._diverged(e)
        except Exception as e:  # a bug: show it on the page rather than lose it in a thread
            job.status, job.message = "paused", f"Training stopped: {type(e).__name__}: {e}"
        finally:
            self._publish()

    def _yield(self) -> None:
        # While people are using the page, give the server's threads the interpreter lock
        # between mini-batches for a moment: without that a busy training thread would keep
        # them waiting for it (a "convoy"), and predictions would take hundreds of ms.
        busy = time.perf_counter() - self._last_request < BUSY_SECONDS
        time.sleep(BUSY_PAUSE if busy else 0)
        deadline = time.perf_counter() + PRIORITY_WAIT
        while self._waiting and time.perf_counter() < deadline:
            time.sleep(0.0005)

    def _one_batch(self, trainer: Trainer, measure: bool = False) -> bool:
        """One mini-batch (and the epoch's end if it was the last). True at an epoch's end."""
        job = self.job
        if job.batch_in_epoch >= trainer.batches_per_epoch:
            job.batch_in_epoch = 0
        cost = trainer.step()
        job.batches += 1
        job.batch_in_epoch += 1
        job.pending.append(cost)
        k = max(1, trainer.batches_per_epoch // POINTS_PER_EPOCH)
        if len(job.pending) >= k:
            job.points.append((job.batches, float(np.mean(job.pending))))
            job.pending.clear()
        if job.batch_in_epoch >= trainer.batches_per_epoch:
            rec = trainer.run_epoch()  # no mini-batches left: this records the epoch
            job.batch_in_epoch = 0
            if rec.test_accuracy is not None:
                job.accuracy.append((job.batches, rec.test_accuracy))
            if trainer.done:
                trainer.finish()
                job.status = "done"
            self.version += 1
            return True
        if measure:
            self._measure_accuracy(job)
        return False

    def _measure_accuracy(self, job: Job) -> None:
        if job.accuracy and job.accuracy[-1][0] == job.batches:
            return
        job.accuracy.append((job.batches, accuracy(self.data.test.y, job.net.predict(self.data.test.x))))
        self.version += 1

    def _diverged(self, e: DivergenceError) -> None:
        self.job.status, self.job.message = "diverged", str(e)
        self.job.trainer = None  # its position within the epoch is no longer meaningful

    def _publish(self) -> None:
        self.snapshot = self.job.net.copy()
        self.snapshot_version += 1
        self.version += 1

    # --- reading ----------------------------------------------------------------------
    def state(self) -> dict:
        """The job as the page shows it (no arrays)."""
        job = self.job
        per_epoch = math.ceil(job.train_size / job.train_config.batch_size)
        return {
            "job": job.id,
            "status": "running" if self.running and job.status == "running" else job.status,
            "message": job.message,
            "model": job.name,
            "network": job.net.config.to_dict(),
            "train": job.train_config.to_dict(),
            "train_size": job.train_size,
            "epoch": job.epoch,
            "epochs": job.train_config.epochs,
            "batch": job.batches,
            "batch_in_epoch": job.batch_in_epoch,
            "batches_per_epoch": per_epoch,
            "cost": job.points[-1][1] if job.points else None,
            "test_accuracy": job.accuracy[-1][1] if job.accuracy else None,
            "weights_version": self.snapshot_version,
            "n_params": job.net.n_params,
            "unsaved": job.unsaved,
        }

    def progress_since(self, cursor: tuple[int, int, int, int] | None) -> tuple[dict, tuple[int, int, int, int]]:
        """The state plus the points, accuracies and epoch records added since ``cursor``."""
        job = self.job
        job_id, n_points, n_acc, n_epochs = cursor if cursor is not None and cursor[0] == job.id else (job.id, 0, 0, 0)
        points, acc, epochs = list(job.points), list(job.accuracy), list(job.history.epochs)
        out = self.state()
        out["reset"] = cursor is None or cursor[0] != job.id
        out["points"] = points[n_points:]
        out["accuracy"] = acc[n_acc:]
        out["epoch_records"] = [asdict(r) for r in epochs[n_epochs:]]
        return out, (job.id, len(points), len(acc), len(epochs))

    def predict(self, x: np.ndarray) -> tuple[Network, list[np.ndarray]]:
        """Every layer's activations for one input ``x`` (784,), from the published weights."""
        net = self.snapshot
        fw = net.forward(x[None, :])
        return net, [a[0] for a in fw.activations]

    @staticmethod
    def describe(net: Network) -> dict:
        """What the page says about ``net``: its layers in words, its true parameter count, and
        the first conv layer's filters (the pictures a conv net has instead of 784-weight neurons)."""
        cfg = net.config
        layers = []
        for (kind, args, _, out), params in zip(cfg.plan() if cfg.features else [], net.params):
            if kind == "conv":
                text = f"conv {args[0]} of {args[1]}x{args[1]}"
            elif kind == "pool":
                text = f"pool {args[0]}x{args[0]}"
            else:
                text = f"{kind} {args[0]}" if args else kind
            n = sum(v.size for v in params.values())
            layers.append({"kind": kind, "text": text, "out": list(out), "params": int(n)})
        filters = None
        conv = [p for p, kind in zip(net.params, net.kinds) if kind == "conv"]
        if conv:
            w = conv[0]["w"]  # (c_out, c_in, k, k): filter o on input channel 0 is a k x k picture
            filters = {"count": int(w.shape[0]), "side": int(w.shape[2]), "channels": int(w.shape[1]),
                       "weights": [round(float(v), 5) for v in w[:, 0].ravel()]}
        n_dense_inputs = net.weights[len(net.weights) - len(cfg.layers) + 1].shape[1]
        return {"text": cfg.describe(), "n_params": int(net.n_params), "features": layers,
                "dense_inputs": int(n_dense_inputs), "filters": filters}

    def evaluation(self) -> dict:
        """Accuracy, confusion matrix and the mistakes the network was surest of, on the test split."""
        version, net = self.snapshot_version, self.snapshot
        cached = self._eval_cache
        if cached is not None and cached[0] == version:
            return cached[1]
        test = self.data.test
        r = evaluate(net, test, self.data.classes)
        # The mistakes the network was surest of, ranked as `digitnet evaluate` ranks them.
        order = worst_mistakes(r.outputs, test.y, k=48)
        result = {
            "accuracy": r.accuracy,
            "n": r.n,
            "classes": list(self.data.classes),
            "confusion": r.confusion.tolist(),
            "per_class": [None if not math.isfinite(v) else float(v) for v in r.per_class],
            "wrong": int(np.count_nonzero(r.predictions != test.y)),
            "misclassified": [
                {"index": int(i), "label": int(test.y[i]), "predicted": int(r.predictions[i]),
                 "confidence": float(r.outputs[i, r.predictions[i]])}
                for i in order
            ],
        }
        self._eval_cache = (version, result)
        return result

    # --- the cost landscape ------------------------------------------------------------
    def snapshots(self, job: Job | None = None) -> list:
        """The job's weight snapshots, initial first: the model file's, then those its training
        in this page took (one per epoch, when the network is small enough to keep them)."""
        job = job or self.job
        snaps = list(job.snapshots)
        trainer = job.trainer
        more = list(trainer.snapshots) if trainer is not None and trainer.snapshots else []
        if snaps and more and all(np.array_equal(v, more[0][l][k]) for l, p in enumerate(snaps[-1]) for k, v in p.items()):
            more = more[1:]  # training went on from the file's last snapshot
        return snaps + more

    @staticmethod
    def _no_path_reason(job: Job, net) -> str:
        """Why a job has no snapshots of its training path, in the page's words."""
        if job.batches == 0:
            return "this network is not trained yet (train it for 2 or more epochs)"
        if job.trainer is not None and job.trainer.snapshots is None:
            mib = sum(v.nbytes for p in net.params for v in p.values()) * (job.train_config.epochs + 1) / 2**20
            return (f"it is too large to keep them ({mib:.1f} MiB of snapshots over its epochs; "
                    f"they are kept up to {SNAPSHOT_BYTES / 2**20:g} MiB)")
        return "its model file holds no snapshots of its training path (saved by an older digitnet, or trained too large to keep them)"

    def _landscape_setup(self, directions: str, seed: int):
        from digitnet.explain.landscape import slice_directions

        with self._lock:  # a model being loaded replaces the job and then its published weights
            job, net, version = self.job, self.snapshot, self.snapshot_version
        if any(k != "dense" for k in net.kinds):
            raise ConfigError("The Landscape view needs a fully connected network; this model has "
                              f"convolutional layers ({net.config.describe()}). Pick another model, or set up "
                              "a new network above.")
        snapshots = self.snapshots(job)
        sd = slice_directions(net, snapshots, directions, seed)
        if not snapshots and sd.kind == "random" and directions == "auto":  # say which reason applies
            why = self._no_path_reason(job, net)
            sd = dataclasses.replace(sd, note=f"{sd.note.split(' Not the training path')[0]} Not the training path's: {why}.")
        train = self._train_split(job)
        part = train if len(train) <= LANDSCAPE_IMAGES else train.subset(LANDSCAPE_IMAGES)
        return net, version, sd, part

    def landscape(self, directions: str = "auto", grid: int = 31, extent: float | None = None, seed: int = 0) -> dict:
        """The cost on a grid x grid slice through the published weights (over the first
        LANDSCAPE_IMAGES training images), with the training path when the directions are the
        trajectory's; ``extent`` (half-width) defaults to the directions' own."""
        from digitnet.explain.landscape import landscape

        key = (directions, grid, extent, seed)
        cached = self._landscape_cache
        if cached is not None and cached[0] == (self.snapshot_version, key):
            return cached[1]
        net, version, sd, part = self._landscape_setup(directions, seed)
        ra, rb = (extent, extent) if extent is not None else sd.extent
        with np.errstate(over="ignore", invalid="ignore"):
            r = landscape(net, part.x, part.y, sd.d1, sd.d2, np.linspace(-ra, ra, grid), np.linspace(-rb, rb, grid))
        result = {**r.to_dict(), "directions": sd.kind, "asked": directions, "seed": seed, "note": sd.note,
                  "path": None if sd.path is None else sd.path.tolist(),
                  "explained": None if sd.explained is None else sd.explained.tolist(),
                  "layers": list(net.config.layers), "weights_version": version}
        self._landscape_cache = ((version, key), result)
        return result

    def landscape_point(self, alpha: float, beta: float, directions: str = "auto", seed: int = 0) -> dict:
        """The network at W + alpha D1 + beta D2 (the directions as :meth:`landscape` chose them):
        its cost over the landscape's training images, its test accuracy, and its answers for
        the first LANDSCAPE_SHOWN test digits."""
        from digitnet.explain.landscape import perturbed

        net, version, sd, part = self._landscape_setup(directions, seed)
        moved = perturbed(net, [(alpha, sd.d1), (beta, sd.d2)])
        test = self.data.test
        with np.errstate(over="ignore", invalid="ignore"):
            cost = moved.cost(part.x, part.y)
            outputs = moved.feedforward(test.x)
        predicted = outputs.argmax(axis=1)
        shown = range(min(LANDSCAPE_SHOWN, len(test)))
        return {
            "alpha": alpha, "beta": beta, "directions": sd.kind, "weights_version": version,
            "cost": cost if math.isfinite(cost) else None, "n": len(part.y),
            "accuracy": float((predicted == test.y).mean()), "n_test": len(test.y),
            "distance": float(np.linalg.norm(alpha * sd.d1.vector() + beta * sd.d2.vector())),
            "predictions": [{"index": i, "label": int(test.y[i]), "predicted": int(predicted[i]),
                             "confidence": float(outputs[i, predicted[i]])} for i in shown],
        }

    # --- model files ------------------------------------------------------------------
    def model_path(self, name: str) -> Path:
        """The file of model ``name`` inside the model directory (never anywhere else)."""
        name = check_model_name(name)
        root = self.model_dir.resolve()
        path = (root / f"{name}{MODEL_SUFFIX}").resolve()
        if path.parent != root:
            raise ModelFileError(f"The model name {name!r} does not stay inside the model directory.")
        return path

    def list_models(self) -> list[dict]:
        """The models in the model directory, by name (checkpoints are left out)."""
        out = []
        for p in sorted(self.model_dir.glob(f"*{MODEL_SUFFIX}")):
            name = p.name[: -len(MODEL_SUFFIX)]
            if p.name.endswith(CHECKPOINT_SUFFIX) or not NAME_RE.match(name) or not p.is_file():
                continue
            st = p.stat()
            out.append({"name": name, "size": st.st_size, "modified": st.st_mtime})
        return out

    def load(self, name: str) -> dict:
        """Make the model ``name`` from the model directory the current one."""
        with self._lock:
            self._refuse_while_running("switch models")
            path = self.model_path(name)
            if not path.is_file():
                raise NotFound(f"There is no model named {check_model_name(name)!r} in the model directory. "
                               "Pick one from the list, or train and save one.")
            self._replace_job(self._job_from_file(check_model_name(name)))
            return self.state()

    def save(self, name: str, overwrite: bool = False) -> dict:
        """Save the current network (with its history and initial weights) as ``name``."""
        with self._lock:
            self._refuse_while_running("save")
            name = check_model_name(name)
            path = self.model_path(name)
            if path.exists() and not overwrite:
                raise Busy(f"A model named {name!r} exists already. Choose another name, or overwrite it.")
            job = self.job
            snapshots = self.snapshots(job)
            save_model(path, job.net, job.history, job.train_config, job.initial, self.data.name, self.data.classes,
                       snapshots=snapshots or None)
            job.name = name
            job.saved_batches = job.batches
            self.version += 1
            return {"name": name, "file": path.name, **self.state()}
