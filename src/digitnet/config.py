"""Hyperparameters, in two frozen dataclasses validated on creation.

:class:`NetworkConfig` says what the network *is* (it is stored in every model file and
is enough to rebuild the network); :class:`TrainConfig` says how it is trained. CLI flags
map one-to-one onto their fields, and the names (``"sigmoid"``, ``"quadratic"``, ``"sgd"``)
are the same in the config, on the command line and in the model file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from digitnet.errors import ConfigError
from digitnet.nn.activations import ACTIVATION_NAMES, HIDDEN_ACTIVATION_NAMES  # noqa: F401 (the tables' names)
from digitnet.nn.costs import COST_NAMES
INIT_NAMES = ("standard", "scaled", "xavier", "he")
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adam")
SCHEDULE_NAMES = ("constant", "step", "cosine", "linear")
DTYPE_NAMES = ("float32", "float64")
PREPROCESS_NAMES = ("none", "deskew")
AUGMENT_NAMES = ("shift", "rotate", "elastic")


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


LAYER_SPEC_HELP = (
    "conv:CHANNELS:SIZE (e.g. conv:32:5, 32 filters of 5x5), pool:SIZE (e.g. pool:2, 2x2 max-pooling), "
    "flatten, or dense:NEURONS (e.g. dense:100)"
)


def parse_layer_spec(spec: str) -> tuple[str, tuple[int, ...]]:
    """``"conv:32:5"`` -> ``("conv", (32, 5))``; ``"pool:2"``, ``"flatten"``, ``"dense:100"`` likewise."""
    parts = [p.strip() for p in str(spec).strip().lower().split(":")]
    n_args = {"conv": 2, "pool": 1, "flatten": 0, "dense": 1}
    kind = parts[0]
    try:
        if kind not in n_args or len(parts) - 1 != n_args[kind]:
            raise ValueError
        args = tuple(int(p) for p in parts[1:])
    except ValueError:
        raise ConfigError(f"Cannot read the layer {spec!r}: write {LAYER_SPEC_HELP}.") from None
    if any(v < 1 or v > 100_000 for v in args):
        raise ConfigError(f"The numbers in the layer {spec!r} must be whole numbers from 1 to 100000.")
    return kind, args


def parse_features(text: str) -> tuple[str, ...]:
    """``"conv:32:5,pool:2"`` -> ``("conv:32:5", "pool:2")``; ``""`` or ``"none"`` -> ``()``."""
    specs = tuple(p.strip() for p in str(text).split(",") if p.strip())
    return () if specs in ((), ("none",)) else specs


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
    # Layers applied to the (square) input image before the dense layers of `layers`, e.g.
    # ("conv:32:5", "pool:2"): conv:C:K = C filters of KxK, pool:P = PxP max-pooling, flatten,
    # dense:N. A flatten is implied before the first dense layer. () = a plain dense network.
    features: tuple[str, ...] = ()
    # How pixels become inputs before the first layer: "none" (x = pixel / 255) or "deskew"
    # (each digit's slant straightened first; see digitnet.images.deskew). Applied to every
    # input the network is given: training, test, predict and the web page alike.
    preprocess: str = "none"

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
        _check_choice("activation", self.activation, HIDDEN_ACTIVATION_NAMES)
        _check_choice("output_activation", self.output_activation, ACTIVATION_NAMES)
        _check_choice("cost", self.cost, COST_NAMES)
        _check_choice("init", self.init, INIT_NAMES)
        _check_choice("dtype", self.dtype, DTYPE_NAMES)
        _check_choice("preprocess", self.preprocess, PREPROCESS_NAMES)
        if self.preprocess == "deskew" and round(layers[0] ** 0.5) ** 2 != layers[0]:
            raise ConfigError(f"Deskewing needs square images as input, e.g. 784 = 28x28 values; got {layers[0]}.")
        if self.cost == "cross-entropy" and self.output_activation not in ("sigmoid", "softmax"):
            raise ConfigError(
                "The cross-entropy cost needs outputs between 0 and 1: use --output-activation "
                f"sigmoid or softmax (got {self.output_activation!r}), or --cost quadratic."
            )
        if self.output_activation == "softmax" and layers[-1] < 2:
            raise ConfigError("A softmax output layer needs at least 2 neurons.")
        if isinstance(self.features, str):
            object.__setattr__(self, "features", parse_features(self.features))
        object.__setattr__(self, "features", tuple(str(f).strip().lower() for f in self.features))
        if self.features:
            self.plan()  # raises ConfigError if the layers do not fit together

    def plan(self) -> list[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """Every layer as ``(kind, args, in_shape, out_shape)``, input first.

        Shapes are ``(n_features,)`` for flat vectors and ``(h, w, channels)`` for feature
        maps (channels last). A dense network is all ``("dense", (n_out,), (n_in,), (n_out,))``.
        """
        shape: tuple[int, ...] = (self.layers[0],)
        out: list[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = []
        if self.features and parse_layer_spec(self.features[0])[0] in ("conv", "pool"):
            side = math.isqrt(self.layers[0])
            if side * side != self.layers[0]:
                raise ConfigError(
                    f"Conv and pool layers need square images (784 inputs = 28x28); the network has "
                    f"{self.layers[0]} inputs. Drop --features or change --layers."
                )
            shape = (side, side, 1)
        specs = [parse_layer_spec(f) for f in self.features] + [("dense", (n,)) for n in self.layers[1:]]
        for kind, args in specs:
            if kind == "dense" and len(shape) == 3:
                out.append(("flatten", (), shape, (math.prod(shape),)))
                shape = out[-1][3]
            if kind in ("conv", "pool") and len(shape) == 1:
                raise ConfigError(
                    f"A {kind} layer needs a picture, but it comes after a flatten or dense layer. Put the "
                    f"conv and pool layers first (features {', '.join(self.features)})."
                )
            if kind == "conv":
                new = (shape[0] - args[1] + 1, shape[1] - args[1] + 1, args[0])
            elif kind == "pool":
                new = (shape[0] // args[0], shape[1] // args[0], shape[2])
            elif kind == "flatten":
                new = (math.prod(shape),)
            else:
                new = (args[0],)
            if min(new) < 1:
                raise ConfigError(
                    f"The layer {kind}:{':'.join(map(str, args))} does not fit its {shape[0]}x{shape[1]} input: "
                    "use a smaller filter or pool size, or fewer conv/pool layers."
                )
            out.append((kind, args, shape, new))
            shape = new
        return out

    def describe(self) -> str:
        """``784-16-16-10``, or ``784-conv:32:5-pool:2-100-10`` with feature layers."""
        return "-".join([str(self.layers[0]), *self.features, *map(str, self.layers[1:])])

    def to_dict(self) -> dict[str, Any]:
        d = {**dataclasses.asdict(self), "layers": list(self.layers), "features": list(self.features)}
        if not self.features:
            del d["features"]  # dense networks' model files stay as they were
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"Unknown network settings: {', '.join(sorted(unknown))}.")
        d = dict(d)
        if "layers" in d:
            d["layers"] = tuple(d["layers"])
        if "features" in d:
            d["features"] = tuple(d["features"])
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
    train_size: int | None = None  # train on only the first N training images (quick experiments)
    dropout: float = 0.0  # probability of dropping each hidden neuron feeding a dense layer, in training only
    patience: int = 0  # early stopping: stop after this many epochs without a better validation accuracy (0: off)
    augment: tuple[str, ...] = ()  # random distortions of each training batch: shift, rotate, elastic
    max_shift: float = 2.0  # augment "shift": up to this many pixels in x and in y
    max_rotation: float = 10.0  # augment "rotate": up to this many degrees either way
    elastic_alpha: float = 34.0  # augment "elastic": strength of the smoothed random displacement (Simard 2003)
    elastic_sigma: float = 4.0  # augment "elastic": smoothness (Gaussian width in pixels) of the displacement
    # After each epoch: "full" measures cost and accuracy on the whole training set (as in the
    # video); "batches" reports the mean cost of the epoch's mini-batches, no extra pass (and
    # estimates the cost before training on the first 10,000 training examples).
    train_metrics: str = "full"

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
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size < 1):
            raise ConfigError(f"The 'train_size' parameter must be a whole number >= 1. Got {self.train_size!r} instead.")
        if self.keep_best and not self.validation:
            raise ConfigError("keep_best picks the epoch by validation accuracy: turn on validation too.")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"The 'dropout' parameter must be in [0, 1). Got {self.dropout!r} instead.")
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 0:
            raise ConfigError(f"The 'patience' parameter must be a whole number >= 0. Got {self.patience!r} instead.")
        if self.patience and not self.validation:
            raise ConfigError("Early stopping (patience) watches the validation accuracy: turn on validation too.")
        augment = (self.augment,) if isinstance(self.augment, str) else tuple(self.augment)
        augment = tuple(a.strip() for part in augment for a in part.split(",") if a.strip() and a.strip() != "none")
        object.__setattr__(self, "augment", augment)
        for a in augment:
            _check_choice("augment", a, AUGMENT_NAMES)
        for name in ("max_shift", "max_rotation", "elastic_alpha"):
            _check_positive(name, getattr(self, name), allow_zero=True)
        _check_positive("elastic_sigma", self.elastic_sigma)
        _check_choice("train_metrics", self.train_metrics, ("full", "batches"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
