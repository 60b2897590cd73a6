"""Looking inside a trained network: what it learned, and which weights matter.

* :mod:`~digitnet.explain.gradients`: the gradient of the cost component by component
  (for one example or the whole training set), the first layer's |dC/dw| as images,
  the top-k components and each layer's share of the squared norm; the gradient with
  respect to the input.
* :mod:`~digitnet.explain.weights`: the first layer's weights as 28x28 images, before and
  after training, and how far each weight moved.
* :mod:`~digitnet.explain.experiments`: the video's experiments: random noise, dreams
  (gradient ascent on the input) and training on shuffled labels.
* :func:`activations`, :func:`misclassified`: every layer's activations for one input, and
  the most confident mistakes on a labelled split.

Everything here returns numbers; :mod:`digitnet.plots` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitnet.explain.experiments import (
    DreamResult,
    NoiseResult,
    ShuffledResult,
    class_means,
    confidence,
    dream,
    noise_experiment,
    noise_images,
    shuffle_labels,
    shuffled_labels_experiment,
)
from digitnet.explain.gradients import (
    Component,
    GradientReport,
    LayerShare,
    analyse_gradient,
    dataset_gradient,
    example_gradient,
    gradient_images,
    image_shape,
    input_gradient,
)
from digitnet.explain.weights import WeightsReport, initial_network, weight_images, weights_report
from digitnet.nn.network import Network

__all__ = [
    "Activations",
    "Component",
    "DreamResult",
    "GradientReport",
    "LayerShare",
    "Mistakes",
    "NoiseResult",
    "ShuffledResult",
    "WeightsReport",
    "activations",
    "analyse_gradient",
    "class_means",
    "confidence",
    "dataset_gradient",
    "dream",
    "example_gradient",
    "gradient_images",
    "image_shape",
    "initial_network",
    "input_gradient",
    "misclassified",
    "noise_experiment",
    "noise_images",
    "shuffle_labels",
    "shuffled_labels_experiment",
    "weight_images",
    "weights_report",
]


@dataclass
class Activations:
    """Every layer's activations for one input, as the video draws its columns of neurons."""

    x: np.ndarray  # (n_in,) the input
    layers: list[np.ndarray]  # activations of each layer with weights; layers[-1] is the output (k,)
    kinds: list[str]

    @property
    def output(self) -> np.ndarray:
        return self.layers[-1]

    @property
    def prediction(self) -> int:
        return int(self.output.argmax())

    def summary(self) -> dict:
        return {
            "prediction": self.prediction,
            "confidence": float(self.output.max()),
            "outputs": [float(v) for v in self.output],
            # Flattened: a conv layer's feature maps (h, w, channels) become one list each.
            "layers": [[float(v) for v in np.ravel(a)] for a in self.layers],
            "layer_kinds": list(self.kinds),
            "layer_shapes": [list(np.shape(a)) for a in self.layers],
            "input_mean": float(self.x.mean()),
        }


def activations(net: Network, x: np.ndarray) -> Activations:
    """Run one input ``x`` (n_in,) through ``net`` and keep every layer's activations."""
    x = np.asarray(x).reshape(-1)
    fw = net.forward(x[None, :])
    return Activations(x.astype(net.config.dtype), [a[0].copy() for a in fw.activations[1:]], list(net.kinds))


@dataclass
class Mistakes:
    """Misclassified examples of a labelled split, most confident mistakes first."""

    index: np.ndarray  # (m,) positions in the split
    true: np.ndarray  # (m,) true labels
    predicted: np.ndarray  # (m,)
    confidence: np.ndarray  # (m,) activation of the predicted output
    n: int  # examples in the split

    def to_list(self, limit: int | None = None) -> list[dict]:
        rows = zip(self.index, self.true, self.predicted, self.confidence)
        return [{"index": int(i), "true": int(t), "predicted": int(p), "confidence": float(c)}
                for i, t, p, c in list(rows)[:limit]]


def misclassified(outputs: np.ndarray, y: np.ndarray) -> Mistakes:
    """The wrongly classified rows of ``outputs`` (n, k) for labels ``y`` (n,), sorted by
    the network's confidence in its wrong answer, highest first (ties by index)."""
    outputs, y = np.asarray(outputs), np.asarray(y)
    pred = outputs.argmax(axis=1)
    conf = outputs.max(axis=1)
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-conf[wrong], kind="stable")]
    return Mistakes(order, y[order], pred[order], conf[order], len(y))
