"""What the first layer learned: its weights as pictures, before and after training.

Row j of the first layer's ``w`` (n_neurons, 784) is neuron j's 784 weights, one per input
pixel; reshaped to 28x28 it shows which pixels push the neuron up (positive) or down
(negative). The video hoped for edges and loops and found something close to noise. Seeing
the initial weights and how far each weight moved beside the learned ones shows why: the
learned pattern is mostly the random starting pattern plus a faint smear of digit shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitnet.errors import ModelFileError
from digitnet.explain.gradients import first_layer_images, require_dense_first_layer
from digitnet.nn.network import Network


def weight_images(net: Network) -> np.ndarray:
    """The first layer's weights as images: (n_neurons, side, side), row j of ``w`` reshaped
    (for a convolutional first layer: its filters, (channels, k, k))."""
    require_dense_first_layer(net, "Drawing the first-layer weights")
    return first_layer_images(net.params[0]["w"]).copy()


def initial_network(saved) -> tuple[Network | None, str]:
    """The network before training for a :class:`~digitnet.io.model_io.SavedModel`, and where it came from.

    Model files keep the initial weights; for files that do not, they are recreated from the
    training seed (``digitnet train`` draws them with ``Network.create(config, seed)``).
    Returns ``(None, reason)`` when neither is available.
    """
    if saved.initial is not None:
        return saved.initial, "stored in the model file"
    if saved.train_config is not None:
        return Network.create(saved.net.config, seed=saved.train_config.seed), f"recreated from seed {saved.train_config.seed}"
    return None, "not stored and no training seed to recreate them"


@dataclass
class WeightsReport:
    """The first layer's weights before and after training, and how they moved."""

    learned: np.ndarray  # (n_neurons, side, side)
    initial: np.ndarray | None  # (n_neurons, side, side), or None if unknown
    initial_source: str  # "stored in the model file", "recreated from seed 0", ...
    learned_bias: np.ndarray  # (n_neurons,)

    @property
    def moved(self) -> np.ndarray | None:
        """learned - initial: how far each weight moved, (n_neurons, side, side)."""
        return None if self.initial is None else self.learned - self.initial

    def neuron_stats(self) -> list[dict]:
        """Per neuron: norms, the relative movement and the learned/initial correlation."""
        out = []
        for j, w in enumerate(self.learned):
            d = {"neuron": j, "norm": float(np.linalg.norm(w)), "mean_abs": float(np.abs(w).mean()),
                 "bias": float(self.learned_bias[j])}
            if self.initial is not None:
                w0 = self.initial[j].astype(np.float64).ravel()
                w1 = w.astype(np.float64).ravel()
                d["initial_norm"] = float(np.linalg.norm(w0))
                d["moved_norm"] = float(np.linalg.norm(w1 - w0))
                d["relative_move"] = d["moved_norm"] / d["initial_norm"] if d["initial_norm"] > 0 else float("nan")
                d["correlation_with_initial"] = _correlation(w0, w1)
            out.append(d)
        return out

    def summary(self) -> dict:
        """The numbers behind the picture, for all neurons together."""
        d = {
            "n_neurons": int(self.learned.shape[0]),
            "image_shape": list(self.learned.shape[1:]),
            "initial_weights": self.initial_source,
            "learned_mean_abs": float(np.abs(self.learned).mean()),
            "learned_range": [float(self.learned.min()), float(self.learned.max())],
        }
        if self.initial is not None:
            stats = self.neuron_stats()
            moved = self.moved
            d.update({
                "initial_mean_abs": float(np.abs(self.initial).mean()),
                "moved_mean_abs": float(np.abs(moved).mean()),
                # ||w - w0|| / ||w0|| over the whole layer: 0.1 means the weights moved by a tenth of their size.
                "relative_move": float(np.linalg.norm(moved) / max(np.linalg.norm(self.initial), 1e-30)),
                "mean_correlation_with_initial": float(np.mean([s["correlation_with_initial"] for s in stats])),
                "fraction_of_weights_moved_over_0.1": float((np.abs(moved) > 0.1).mean()),
            })
        d["neurons"] = self.neuron_stats()
        return d


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float("nan")


def weights_report(net: Network, initial: Network | None = None, initial_source: str = "given") -> WeightsReport:
    """First-layer weight images of ``net`` and, if given, of ``initial`` (same architecture)."""
    learned = weight_images(net)
    init = None
    if initial is not None:
        init = weight_images(initial)
        if init.shape != learned.shape:
            raise ModelFileError(
                f"The initial weights have shape {init.shape} but the trained ones {learned.shape}; they belong "
                "to different networks."
            )
    elif initial_source == "given":
        initial_source = "not available"
    return WeightsReport(learned, init, initial_source, net.params[0]["b"].copy())
