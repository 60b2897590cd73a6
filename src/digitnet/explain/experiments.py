"""The video's experiments on a trained network: noise, dreams and shuffled labels.

* :func:`noise_experiment` feeds random-noise images to the network. It has never seen
  anything like them and has no way to say "none of these", so it names a digit anyway,
  often as confidently as it names real digits.
* :func:`dream` asks the network what each digit looks like: starting from a grey image it
  climbs the gradient of one output neuron's activation with respect to the input pixels.
  The images that excite the outputs most look like noise, not like digits.
* :func:`shuffled_labels_experiment` trains the same network on training labels shuffled
  at random (Zhang et al. 2017, "Understanding deep learning requires rethinking
  generalization"): training accuracy climbs as it memorises the examples, test accuracy
  stays at chance, because there was nothing to learn. A run on the true labels is beside it.

Every function takes a ``seed`` and gives the same numbers for the same seed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Split
from digitnet.errors import ConfigError
from digitnet.explain.gradients import input_gradient
from digitnet.nn.network import Network, feedforward
from digitnet.training.train import EpochRecord, History, Trainer


def confidence(outputs: np.ndarray) -> np.ndarray:
    """How sure the network is: the activation of its most active output neuron, (n,)."""
    return outputs.max(axis=1)


# --- noise ----------------------------------------------------------------------------
@dataclass
class NoiseResult:
    """The network's answers on random noise and on real digits."""

    noise: np.ndarray  # (n, n_in) the noise inputs, pixels uniform in [0, 1]
    noise_outputs: np.ndarray  # (n, k)
    real_outputs: np.ndarray  # (m, k) on real digits
    real_labels: np.ndarray  # (m,)
    seed: int

    @property
    def noise_confidence(self) -> np.ndarray:
        return confidence(self.noise_outputs)

    @property
    def real_confidence(self) -> np.ndarray:
        return confidence(self.real_outputs)

    @property
    def noise_predictions(self) -> np.ndarray:
        return self.noise_outputs.argmax(axis=1)

    def summary(self) -> dict:
        nc, rc = self.noise_confidence, self.real_confidence
        k = self.noise_outputs.shape[1]
        real_pred = self.real_outputs.argmax(axis=1)
        return {
            "n_noise": int(len(nc)),
            "n_real": int(len(rc)),
            "seed": self.seed,
            "noise_mean_confidence": float(nc.mean()),
            "noise_median_confidence": float(np.median(nc)),
            "noise_fraction_confident": float((nc > 0.5).mean()),  # most active output above 0.5
            "real_mean_confidence": float(rc.mean()) if len(rc) else None,
            "real_median_confidence": float(np.median(rc)) if len(rc) else None,
            "real_fraction_confident": float((rc > 0.5).mean()) if len(rc) else None,
            "real_accuracy": float((real_pred == self.real_labels).mean()) if len(rc) else None,
            "noise_predicted_counts": np.bincount(self.noise_predictions, minlength=k).tolist(),
        }


def noise_images(n: int, n_in: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """``n`` noise images (n, n_in): every pixel uniform in [0, 1], from ``default_rng(seed)``."""
    if n < 1:
        raise ConfigError(f"The number of noise images must be >= 1. Got {n}.")
    return np.random.default_rng(seed).random((n, n_in), dtype=np.float64).astype(dtype)


def noise_experiment(net: Network, real_x: np.ndarray, real_y: np.ndarray, n: int = 1000, seed: int = 0) -> NoiseResult:
    """Feed ``n`` uniform-noise images to ``net`` and compare its confidence with that on ``real_x``."""
    noise = noise_images(n, net.config.layers[0], seed, np.dtype(net.config.dtype))
    real_x = np.asarray(real_x)
    real_out = net.feedforward(real_x) if len(real_x) else np.zeros((0, net.config.layers[-1]), np.float32)
    return NoiseResult(noise, net.feedforward(noise), real_out, np.asarray(real_y), seed)


# --- dream ----------------------------------------------------------------------------
@dataclass
class DreamResult:
    """For each target output neuron, the input that gradient ascent found to excite it."""

    digits: np.ndarray  # (m,) the target output neurons
    start: np.ndarray  # (n_in,) the common starting image
    images: np.ndarray  # (m, n_in) the final images, pixels in [0, 1]
    start_outputs: np.ndarray  # (k,) the outputs on the starting image
    outputs: np.ndarray  # (m, k) the outputs on each final image
    trace: np.ndarray  # (steps + 1, m) the target's activation after each step
    steps: int
    step_size: float
    seed: int
    class_means: np.ndarray | None = None  # (k, n_in) average real image of each class, if given

    @property
    def start_activation(self) -> np.ndarray:
        """(m,) the target's activation on the starting image."""
        return self.start_outputs[self.digits]

    @property
    def final_activation(self) -> np.ndarray:
        """(m,) the target's activation on its dream image."""
        return self.outputs[np.arange(len(self.digits)), self.digits]

    def similarity_to_digits(self) -> np.ndarray | None:
        """(m,) correlation of each dream image with the average real image of its digit
        (1 would be the digit's average shape, 0 no resemblance); None without class means."""
        if self.class_means is None:
            return None
        out = []
        for i, d in zip(range(len(self.digits)), self.digits):
            a = self.images[i].astype(np.float64) - self.images[i].mean()
            b = self.class_means[d].astype(np.float64) - self.class_means[d].mean()
            den = np.linalg.norm(a) * np.linalg.norm(b)
            out.append(float(a @ b / den) if den > 0 else float("nan"))
        return np.asarray(out)

    def summary(self) -> dict:
        sim = self.similarity_to_digits()
        per = []
        for i, d in enumerate(self.digits):
            row = {"digit": int(d), "start_activation": float(self.start_activation[i]),
                   "final_activation": float(self.final_activation[i]),
                   "predicted": int(self.outputs[i].argmax()), "outputs": [float(v) for v in self.outputs[i]]}
            if sim is not None:
                row["correlation_with_average_digit"] = float(sim[i])
            per.append(row)
        return {
            "steps": self.steps, "step_size": self.step_size, "seed": self.seed,
            "mean_start_activation": float(self.start_activation.mean()),
            "mean_final_activation": float(self.final_activation.mean()),
            "recognised": int(sum(p["predicted"] == p["digit"] for p in per)),
            "mean_correlation_with_average_digit": None if sim is None else float(np.nanmean(sim)),
            "digits": per,
        }


def dream(
    net: Network,
    digits: list[int] | np.ndarray | None = None,
    steps: int = 200,
    step_size: float = 0.02,
    seed: int = 0,
    class_means: np.ndarray | None = None,
) -> DreamResult:
    """Gradient ascent on the input: the image that makes each output neuron most active.

    Every digit starts from the same image: black, MNIST's background, with faint noise
    (|N(0, 0.05)| per pixel) drawn from ``default_rng(seed)``. (From mid-grey, a trained
    sigmoid network's hidden neurons are saturated and the climb stalls at once for some
    digits.) Each step moves the image along the gradient d a_j / dx (from
    :func:`~digitnet.explain.gradients.input_gradient`), scaled so that the pixels move by
    ``step_size`` on average (root mean square): a sigmoid output's gradient shrinks as it
    saturates, and a normalised step keeps climbing at the same pace. Pixels are then
    clipped to [0, 1], the range of real images. The images are what the first layer sees
    (for a network that deskews its inputs, after deskewing). ``class_means`` (k, n_in),
    the average real image of each class, is kept to compare the dreams with.
    """
    k = net.config.layers[-1]
    n_in = net.config.layers[0]
    digits = np.arange(k) if digits is None else np.asarray(digits, dtype=np.int64).ravel()
    if digits.size == 0 or digits.min() < 0 or digits.max() >= k:
        raise ConfigError(f"Digits to dream of must be between 0 and {k - 1}. Got {digits.tolist()}.")
    if not (isinstance(steps, int) and steps >= 0):
        raise ConfigError(f"The number of steps must be a whole number >= 0. Got {steps!r}.")
    if not (step_size > 0 and math.isfinite(step_size)):
        raise ConfigError(f"The step size must be > 0. Got {step_size!r}.")
    dtype = np.dtype(net.config.dtype)
    rng = np.random.default_rng(seed)
    start = np.clip(np.abs(0.05 * rng.standard_normal(n_in)), 0, 1).astype(dtype)  # (n_in,)
    x = np.repeat(start[None, :], len(digits), axis=0)  # (m, n_in): one image per target
    rows = np.arange(len(digits))
    trace = [feedforward(net, x)[rows, digits]]
    tiny = np.finfo(dtype).tiny
    for _ in range(steps):
        g = input_gradient(net, x, output=digits, prepared=True).astype(dtype)  # (m, n_in) d a_j / dx
        rms = np.sqrt((g * g).mean(axis=1, keepdims=True))  # (m, 1)
        x = np.clip(x + np.asarray(step_size, dtype) * g / np.maximum(rms, tiny), 0, 1).astype(dtype)
        trace.append(feedforward(net, x)[rows, digits])
    return DreamResult(
        digits=digits, start=start, images=x, start_outputs=feedforward(net, start[None, :])[0],
        outputs=feedforward(net, x), trace=np.asarray(trace), steps=steps, step_size=float(step_size), seed=seed,
        class_means=None if class_means is None else np.asarray(class_means),
    )


def class_means(split: Split, k: int = 10) -> np.ndarray:
    """The average image of each class in ``split``: (k, n_in), zeros for an absent class."""
    x, y = split.x, split.y
    onehot = (y[None, :] == np.arange(k)[:, None]).astype(x.dtype)  # (k, n)
    counts = onehot.sum(axis=1, keepdims=True)
    return (onehot @ x / np.maximum(counts, 1)).astype(np.float32)  # (k, n_in)


# --- shuffled labels ------------------------------------------------------------------
@dataclass
class ShuffledResult:
    """Two trainings of the same network from the same initial weights: true and shuffled labels."""

    normal: History  # trained on the true labels
    shuffled: History  # trained on the shuffled labels (test accuracy always on the true test labels)
    n_train: int
    n_test: int
    n_classes: int
    seed: int
    seconds: float
    label_agreement: float  # fraction of shuffled training labels that happen to equal the true ones

    @property
    def chance(self) -> float:
        """The accuracy of guessing: 1 / number of classes."""
        return 1.0 / self.n_classes

    def summary(self) -> dict:
        def run(h: History) -> dict:
            last = h.epochs[-1]
            return {
                "final_train_accuracy": last.train_accuracy,
                "final_test_accuracy": last.test_accuracy,
                "final_cost": last.cost,
                "initial_test_accuracy": h.initial_test_accuracy,
                "train_accuracy": [e.train_accuracy for e in h.epochs],
                "test_accuracy": [e.test_accuracy for e in h.epochs],
                "cost": [e.cost for e in h.epochs],
            }

        return {
            "n_train": self.n_train, "n_test": self.n_test, "epochs": len(self.shuffled.epochs),
            "seed": self.seed, "chance": self.chance, "seconds": self.seconds,
            "shuffled_label_agreement": self.label_agreement,
            "normal": run(self.normal), "shuffled": run(self.shuffled),
        }


def shuffle_labels(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """A random permutation of the labels ``y`` (n,): the same labels, now on random images."""
    return np.asarray(y)[np.random.default_rng(seed).permutation(len(y))]


def shuffled_labels_experiment(
    net_config: NetworkConfig,
    train_config: TrainConfig,
    train: Split,
    test: Split,
    n_train: int = 2000,
    epochs: int = 60,
    seed: int = 0,
    on_epoch: Callable[[str, EpochRecord], None] | None = None,
) -> ShuffledResult:
    """Train the network on the first ``n_train`` training images twice, from the same initial weights.

    Once with their true labels, once with the labels randomly permuted among the images
    (``default_rng(seed)``); ``train_config`` gives the learning rate, batch size and
    optimiser, ``epochs`` and ``seed`` replace its own. Test accuracy is measured on
    ``test`` with its true labels after every epoch. ``on_epoch(run, record)`` is called
    with run ``"normal"`` or ``"shuffled"`` after each epoch.
    """
    if not 1 <= n_train <= len(train):
        raise ConfigError(f"n_train must be between 1 and the {len(train)} training images. Got {n_train}.")
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1. Got {epochs}.")
    sub = train.subset(n_train)
    shuffled = Split(sub.images, shuffle_labels(sub.labels, seed))
    cfg = train_config.replace(epochs=epochs, seed=seed, validation=False, keep_best=False, record_batch_cost=False)
    initial = Network.create(net_config, seed=seed)
    start = time.perf_counter()
    histories = {}
    for name, split in (("normal", sub), ("shuffled", shuffled)):
        trainer = Trainer(initial.copy(), split, cfg, test=test)
        trainer.measure_initial()
        while not trainer.done:
            rec = trainer.run_epoch()
            if on_epoch is not None:
                on_epoch(name, rec)
        histories[name] = trainer.history
    return ShuffledResult(
        normal=histories["normal"], shuffled=histories["shuffled"], n_train=n_train, n_test=len(test),
        n_classes=net_config.layers[-1], seed=seed, seconds=time.perf_counter() - start,
        label_agreement=float((shuffled.labels == sub.labels).mean()),
    )
