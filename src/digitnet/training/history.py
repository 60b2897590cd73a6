"""What training leaves behind: one record per epoch, the mini-batch costs, and what they say.

Kept apart from the training loop so that model files (:mod:`digitnet.io.model_io`) and the
front ends can read a history without importing :mod:`digitnet.training.train`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class EpochRecord:
    """What one epoch of training gave. Accuracies are 0..1 (None where not measured)."""

    epoch: int  # 1-based
    cost: float  # average cost over all training examples after the epoch
    train_accuracy: float
    test_accuracy: float | None
    validation_accuracy: float | None
    seconds: float  # wall time of the epoch's gradient steps
    eta: float  # learning rate used in the epoch


@dataclass
class History:
    """Per-epoch records and, optionally, the cost of every mini-batch (before its step)."""

    epochs: list[EpochRecord] = field(default_factory=list)
    batch_costs: list[float] = field(default_factory=list)
    initial_cost: float | None = None  # average training cost before any step
    initial_test_accuracy: float | None = None
    best_epoch: int | None = None  # set when the weights kept are not the last epoch's
    stopped_epoch: int | None = None  # early stopping ended training after this epoch

    def to_dict(self) -> dict:
        return {
            "epochs": [asdict(e) for e in self.epochs],
            "initial_cost": self.initial_cost,
            "initial_test_accuracy": self.initial_test_accuracy,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
        }

    @classmethod
    def from_dict(cls, d: dict, batch_costs=()) -> "History":
        return cls(
            [EpochRecord(**e) for e in d.get("epochs", [])],
            list(map(float, batch_costs)),
            d.get("initial_cost"),
            d.get("initial_test_accuracy"),
            d.get("best_epoch"),
            d.get("stopped_epoch"),
        )
