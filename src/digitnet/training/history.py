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

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(no epochs)"
        last = self.epochs[-1]
        acc = f", train {last.train_accuracy:.1%}" + ("" if last.test_accuracy is None else f", test {last.test_accuracy:.1%}")
        val = "" if last.validation_accuracy is None else f", validation {last.validation_accuracy:.1%}"
        kept = "" if self.best_epoch is None else f"; kept epoch {self.best_epoch}"
        stop = "" if self.stopped_epoch is None else f"; stopped early after epoch {self.stopped_epoch}"
        return (f"History({len(self.epochs)} epoch{'s' if len(self.epochs) != 1 else ''}: final cost {last.cost:.4g}"
                f"{acc}{val}{kept}{stop})")

    def _repr_html_(self) -> str:
        from digitnet._display import html_table, html_with_picture, num, pct

        rows = [(e.epoch, num(e.cost), pct(e.train_accuracy), pct(e.test_accuracy), pct(e.validation_accuracy),
                 num(e.eta), f"{e.seconds:.2f}") for e in self.epochs]
        if len(rows) > 20:  # the first 10 and the last 10 epochs
            rows = rows[:10] + [("...",) * 7] + rows[-10:]
        start = [] if self.initial_cost is None else [("start", num(self.initial_cost), "-",
                                                         pct(self.initial_test_accuracy), "-", "-", "-")]
        note = "; ".join(x for x in (
            f"{len(self.batch_costs):,} mini-batch costs recorded" if self.batch_costs else "",
            f"kept the weights of epoch {self.best_epoch}" if self.best_epoch is not None else "",
            f"stopped early after epoch {self.stopped_epoch}" if self.stopped_epoch is not None else "") if x)
        table = html_table(f"Training history: {len(self.epochs)} epochs", ["epoch", "cost", "train", "test",
                           "validation", "eta", "seconds"], start + rows, note)
        return html_with_picture(table, self._repr_png_())

    def _repr_png_(self) -> bytes | None:
        """The cost and accuracy curves (:func:`digitnet.plots.training_figure`)."""
        if not self.epochs:
            return None
        from digitnet.plots import training_figure  # a notebook display hook: the one lazy upward import

        return training_figure(self)._repr_png_()

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
