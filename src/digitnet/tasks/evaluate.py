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
    classes: tuple = DIGITS  # the class names; a model of your own arrays: your labels, of their own type

    def _names(self) -> tuple[str, ...]:
        k = len(self.per_class)
        return tuple(self.classes) if len(self.classes) == k else tuple(map(str, range(k)))

    def __repr__(self) -> str:
        weakest = ""
        if len(self.per_class):
            i = int(np.argmin(self.per_class))
            weakest = f"; weakest class {self._names()[i]}: {self.per_class[i]:.1%}"
        return f"Evaluation(accuracy {self.accuracy:.2%}: {int(np.trace(self.confusion)):,} of {self.n:,} right{weakest})"

    def _repr_html_(self) -> str:
        from digitnet._display import html_table, pct

        names, rows = self._names(), []
        for i, (name, acc) in enumerate(zip(names, self.per_class)):
            wrong = self.confusion[i].copy()
            wrong[i] = 0
            rows.append((name, pct(acc), f"{int(self.confusion[i].sum()):,}",
                         names[int(wrong.argmax())] if wrong.max() > 0 else "-"))
        return html_table(f"Accuracy {self.accuracy:.2%} ({int(np.trace(self.confusion)):,} of {self.n:,} right)",
                          ["class", "accuracy", "examples", "most often mistaken for"], rows)


def evaluate(net: Network, split: Split, classes: tuple = DIGITS) -> Evaluation:
    """Run ``net`` on every example of ``split`` and summarise how it did."""
    outputs = net.feedforward(split.x)
    pred = outputs.argmax(axis=1)
    conf = confusion_matrix(split.y, pred, len(classes))
    return Evaluation(accuracy(split.y, pred), per_class_accuracy(conf), conf, pred, outputs, len(split),
                      tuple(classes))
