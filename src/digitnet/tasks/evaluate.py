"""Evaluating a network on a labelled split: accuracy, per-class accuracy, confusion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitnet.data.datasets import DIGITS, Split
from digitnet.nn.metrics import accuracy, confusion_matrix, per_class_accuracy
from digitnet.nn.network import Network


@dataclass
class Evaluation:
    accuracy: float  # 0..1
    per_class: np.ndarray  # (k,) accuracy of each true class
    confusion: np.ndarray  # (k, k) rows true, columns predicted
    predictions: np.ndarray  # (n,) predicted labels
    outputs: np.ndarray  # (n, k) output activations
    n: int


def evaluate(net: Network, split: Split, classes: tuple[str, ...] = DIGITS) -> Evaluation:
    """Run ``net`` on every example of ``split`` and summarise how it did."""
    outputs = net.feedforward(split.x)
    pred = outputs.argmax(axis=1)
    conf = confusion_matrix(split.y, pred, len(classes))
    return Evaluation(accuracy(split.y, pred), per_class_accuracy(conf), conf, pred, outputs, len(split))
