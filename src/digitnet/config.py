"""Hyperparameters, in two frozen dataclasses validated on creation.

:class:`NetworkConfig` says what the network *is* (it is stored in every model file and
is enough to rebuild the network); :class:`TrainConfig` says how it is trained. CLI flags
map one-to-one onto their fields, and the names (``"sigmoid"``, ``"quadratic"``, ``"sgd"``)
are the same in the config, on the command line and in the model file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from digitnet.errors import ConfigError

ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "softmax", "identity")
COST_NAMES = ("quadratic", "cross-entropy")
INIT_NAMES = ("standard", "scaled", "xavier", "he")
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adam")
SCHEDULE_NAMES = ("constant", "step", "cosine", "linear")
DTYPE_NAMES = ("float32", "float64")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"The '{name}' parameter must be one of {', '.join(choices)}. Got {value!r} instead."
        )


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (
        value >= 0 if allow_zero else value > 0
    )
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"The '{name}' parameter must be {bound}. Got {value!r} instead.")


def parse_layers(text: str) -> tuple[int, ...]:
    """Parse ``"784,16,16,10"`` into ``(784, 16, 16, 10)`` with a clear error otherwise."""
    parts = [p.strip() for p in str(text).replace("-", ",").split(",") if p.strip()]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"Layers must be comma-separated whole numbers such as 784,16,16,10. Got {text!r}."
        ) from None
    return sizes


@dataclass(frozen=True)
class NetworkConfig:
    """What the network is: enough to rebuild it (stored inside every model file)."""

    layers: tuple[int, ...] = (784, 16, 16, 10)  # neurons per layer, input first, output last
    activation: str = "sigmoid"  # hidden layers' activation: sigmoid, tanh, relu
    output_activation: str = "sigmoid"  # last layer's activation: sigmoid, softmax, tanh, relu, identity
    cost: str = "quadratic"  # quadratic: C = 1/n sum_x 1/2 ||a - y||^2; cross-entropy
    init: str = "scaled"  # standard N(0,1); scaled N(0,1/n_in); xavier; he
    dtype: str = "float32"  # float32 (fast) or float64 (for gradient checks)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if len(layers) < 2:
            raise ConfigError(
                f"A network needs at least an input and an output layer, e.g. 784,16,16,10. Got {layers}."
            )
        for n in layers:
            if not isinstance(n, int) or isinstance(n, bool) or n < 1 or n > 100_000:
                raise ConfigError(
                    f"Every layer size must be a whole number from 1 to 100000. Got {n!r} in {layers}."
                )
        _check_choice("activation", self.activation, ("sigmoid", "tanh", "relu"))
        _check_choice("output_activation", self.output_activation, ACTIVATION_NAMES)
        _check_choice("cost", self.cost, COST_NAMES)
        _check_choice("init", self.init, INIT_NAMES)
        _check_choice("dtype", self.dtype, DTYPE_NAMES)
        if self.cost == "cross-entropy" and self.output_activation not in ("sigmoid", "softmax"):
            raise ConfigError(
                "The cross-entropy cost needs outputs between 0 and 1: use --output-activation "
                f"sigmoid or softmax (got {self.output_activation!r}), or --cost quadratic."
            )
        if self.output_activation == "softmax" and layers[-1] < 2:
            raise ConfigError("A softmax output layer needs at least 2 neurons.")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"Unknown network settings: {', '.join(sorted(unknown))}.")
        d = dict(d)
        if "layers" in d:
            d["layers"] = tuple(d["layers"])
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig:
    """How the network is trained. Defaults are the video's (and Nielsen's) settings."""

    epochs: int = 30  # passes over the training set
    batch_size: int = 10  # examples per mini-batch (one gradient step each)
    eta: float = 3.0  # learning rate: the size of each step downhill
    seed: int = 0  # seeds the initial weights, the shuffles and any other randomness
    schedule: str = "constant"  # learning-rate schedule: constant, step, cosine, linear
    eta_min: float = 0.0  # the learning rate the cosine/linear schedules end at
    step_every: int = 10  # step schedule: divide eta by step_factor every this many epochs
    step_factor: float = 2.0  # step schedule: the division factor
    warmup_epochs: int = 0  # epochs of linear warm-up from 0 to eta
    optimizer: str = "sgd"  # sgd, momentum, nesterov, adam
    momentum: float = 0.9  # momentum coefficient (momentum, nesterov); Adam's beta1
    beta2: float = 0.999  # Adam's beta2
    lmbda: float = 0.0  # L2 weight decay: adds lmbda/(2n) sum w^2 to the cost
    validation: bool = False  # hold out the last 10,000 training images for validation
    keep_best: bool = False  # keep the epoch with the best validation accuracy (needs validation)
    record_batch_cost: bool = True  # store each mini-batch's cost in the history

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "step_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"The '{name}' parameter must be a whole number >= 1. Got {v!r} instead.")
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ConfigError(f"The 'warmup_epochs' parameter must be >= 0. Got {self.warmup_epochs!r} instead.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"The 'seed' parameter must be a whole number >= 0. Got {self.seed!r} instead.")
        _check_positive("eta", self.eta)
        _check_positive("eta_min", self.eta_min, allow_zero=True)
        _check_positive("step_factor", self.step_factor)
        _check_positive("lmbda", self.lmbda, allow_zero=True)
        _check_choice("schedule", self.schedule, SCHEDULE_NAMES)
        _check_choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        for name in ("momentum", "beta2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ConfigError(f"The '{name}' parameter must be in [0, 1). Got {v!r} instead.")
        if self.keep_best and not self.validation:
            raise ConfigError("keep_best picks the epoch by validation accuracy: turn on validation too.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
