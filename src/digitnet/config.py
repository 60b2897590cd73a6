"""Hyperparameters, in two frozen dataclasses validated on creation.

:class:`NetworkConfig` says what the network *is* (it is stored in every model file and
is enough to rebuild the network); :class:`TrainConfig` says how it is trained. Each field
is a *setting*, declared with :func:`setting` and its help text: ``digitnet train`` makes
one flag of every field (``batch_size`` -> ``--batch-size``), config files use the field
names as keys (:mod:`digitnet.training.settings`), and the values (``"sigmoid"``, ``"quadratic"``,
``"sgd"``) are the same in the config, on the command line and in the model file. Errors
name the setting (``err.setting``) and write it as ``{name}`` in their message template,
so each front end shows its own word for it (see :class:`digitnet.errors.DigitnetError`).
Both ``from_dict`` refuse unknown keys, naming the nearest valid one.
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
# The training engines (digitnet.training.engines.ENGINES holds them, fastest first) and "auto".
ENGINE_NAMES = ("auto", "numba", "numpy", "reference")


def setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None, metavar: str | None = None):
    """A config field with its help text (and, for names, its choices): the one description
    of a setting that ``digitnet train``'s flags, config files and ``--help`` are made from."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if metavar is not None:
        meta["metavar"] = metavar
    return dataclasses.field(default=default, metadata=meta)


def _unknown_keys(cls, d: dict[str, Any], what: str) -> None:
    """Refuse keys that are not fields of ``cls``, naming each and the nearest valid one."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ConfigError(f"Unknown {what} setting{'s' if len(unknown) > 1 else ''}: "
                          f"{'; '.join(unknown_key_hint(k, names) for k in unknown)}.", setting=tuple(unknown))


def unknown_key_hint(key: str, names) -> str:
    """``'etta'`` -> ``"'etta' (did you mean 'eta'?)"``: the nearest name by difflib."""
    import difflib

    near = difflib.get_close_matches(str(key), list(names), n=1, cutoff=0.6)
    return f"{key!r} (did you mean {near[0]!r}?)" if near else f"{key!r}"


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{{{name}}} must be one of {', '.join(choices)}. Got {value!r} instead.", setting=name
        )


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (
        value >= 0 if allow_zero else value > 0
    )
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{{{name}}} must be {bound}. Got {value!r} instead.", setting=name)


MAX_WHOLE = 2**63 - 1  # the largest whole number a setting may be (a model file stores 64-bit integers)


def _show(value: Any) -> str:
    """A value as the user wrote it (TOML, JSON), not as a Python repr of another type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (int, float, str)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return f"a {type(value).__name__} ({value})"


def _check_types(cfg) -> None:
    """Each setting has the type of its default, whatever wrote it (a flag, a config file, a
    dict, a model file): true/false is not a number, a whole number fits 64 bits, a list of
    sizes or names is a list. The finer checks (ranges, choices) follow in ``__post_init__``."""
    for f in dataclasses.fields(cfg):
        name, v, d = f.name, getattr(cfg, f.name), f.default
        if isinstance(d, bool):
            ok, want = isinstance(v, bool), "true or false"
        elif isinstance(d, (int, float)) or (d is None and f.type in ("int | None", "float | None")):
            ok = (v is None and d is None) or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                and not (isinstance(v, int) and abs(v) > MAX_WHOLE))
            want = "a whole number" if isinstance(d, int) or f.type == "int | None" else "a number"
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_WHOLE:
                want += f" of at most {MAX_WHOLE:,}"
        elif isinstance(d, str):
            ok, want = isinstance(v, str), "a name"
        elif isinstance(d, tuple):
            items = [v] if isinstance(v, str) else v
            kind = (int,) if name == "layers" else (str,)
            ok = isinstance(items, (list, tuple)) and all(isinstance(x, kind) and not isinstance(x, bool)
                                                          for x in items)
            want = {"layers": "a list, e.g. [784, 16, 16, 10]", "features": 'a list, e.g. ["conv:32:5", "pool:2"]'}.get(
                name, 'a list of names, e.g. ["shift"]')
        else:
            continue
        if not ok:
            raise ConfigError(f"{{{name}}} must be {want}. Got {_show(v)} instead.", setting=name)


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
        raise ConfigError(f"Cannot read the layer {spec!r} in {{features}}: write {LAYER_SPEC_HELP}.",
                          setting="features") from None
    if any(v < 1 or v > 100_000 for v in args):
        raise ConfigError(f"The numbers in the layer {spec!r} must be whole numbers from 1 to 100000.",
                          setting="features")
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
            f"Layers must be comma-separated whole numbers such as 784,16,16,10. Got {text!r}.", setting="layers"
        ) from None
    return sizes


@dataclass(frozen=True)
class NetworkConfig:
    """What the network is: enough to rebuild it (stored inside every model file)."""

    layers: tuple[int, ...] = setting(
        (784, 16, 16, 10), "Neurons per layer, input first, output last: e.g. 784,16,16,10 or 784,30,10.",
        metavar="SIZES")
    activation: str = setting("sigmoid", "Hidden layers' activation function.", choices=HIDDEN_ACTIVATION_NAMES)
    output_activation: str = setting("sigmoid", "Output layer's activation function.", choices=ACTIVATION_NAMES)
    cost: str = setting("quadratic", "Cost: quadratic = average of 1/2 sum of squared output errors (the video's); "
                        "or cross-entropy.", choices=COST_NAMES)
    init: str = setting("scaled", "Initial weights: standard N(0,1), scaled N(0,1/n_in), xavier, he.", choices=INIT_NAMES)
    dtype: str = setting("float32", "Floating-point precision of the math: float32 (fast) or float64 (for "
                         "gradient checks).", choices=DTYPE_NAMES)
    # A flatten is implied before the first dense layer. () = a plain dense network.
    features: tuple[str, ...] = setting(
        (), "Conv/pool layers before the dense ones, e.g. conv:32:5,pool:2,conv:32:5,pool:2: conv:C:K = C filters "
        "of KxK, pool:P = PxP max-pooling, flatten, dense:N (none: a dense network).", metavar="SPECS")
    # Applied to every input the network is given: training, test, predict and the web page
    # alike (see digitnet.data.images.deskew).
    preprocess: str = setting("none", "How pixels become inputs: none (pixel/255) or deskew (straighten each "
                              "digit's slant first).", choices=PREPROCESS_NAMES)

    def __post_init__(self) -> None:
        _check_types(self)
        layers = tuple(self.layers) if not isinstance(self.layers, str) else parse_layers(self.layers)
        object.__setattr__(self, "layers", layers)
        if len(layers) < 2:
            raise ConfigError(
                f"A network needs at least an input and an output layer, e.g. 784,16,16,10. Got {layers}.",
                setting="layers")
        for n in layers:
            if not isinstance(n, int) or isinstance(n, bool) or n < 1 or n > 100_000:
                raise ConfigError(
                    f"Every layer size must be a whole number from 1 to 100000. Got {n!r} in {layers}.",
                    setting="layers")
        _check_choice("activation", self.activation, HIDDEN_ACTIVATION_NAMES)
        _check_choice("output_activation", self.output_activation, ACTIVATION_NAMES)
        _check_choice("cost", self.cost, COST_NAMES)
        _check_choice("init", self.init, INIT_NAMES)
        _check_choice("dtype", self.dtype, DTYPE_NAMES)
        _check_choice("preprocess", self.preprocess, PREPROCESS_NAMES)
        if self.preprocess == "deskew" and round(layers[0] ** 0.5) ** 2 != layers[0]:
            raise ConfigError(f"Deskewing ({{preprocess}} deskew) needs square images as input, e.g. 784 = 28x28 "
                              f"values; got {layers[0]}.", setting=("preprocess", "layers"))
        if self.cost == "cross-entropy" and self.output_activation not in ("sigmoid", "softmax"):
            raise ConfigError(
                "The cross-entropy cost needs outputs between 0 and 1: set {output_activation} to "
                f"sigmoid or softmax (got {self.output_activation!r}), or {{cost}} to quadratic.",
                setting=("output_activation", "cost"))
        if self.output_activation == "softmax" and layers[-1] < 2:
            raise ConfigError("A softmax output layer needs at least 2 neurons (see {layers}).",
                              setting=("layers", "output_activation"))
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
                    f"{self.layers[0]} inputs. Drop the conv layers from {{features}} or change {{layers}}.",
                    setting=("features", "layers"))
            shape = (side, side, 1)
        specs = [parse_layer_spec(f) for f in self.features] + [("dense", (n,)) for n in self.layers[1:]]
        for kind, args in specs:
            if kind == "dense" and len(shape) == 3:
                out.append(("flatten", (), shape, (math.prod(shape),)))
                shape = out[-1][3]
            if kind in ("conv", "pool") and len(shape) == 1:
                raise ConfigError(
                    f"A {kind} layer needs a picture, but it comes after a flatten or dense layer. Put the "
                    f"conv and pool layers first ({{features}} {', '.join(self.features)}).", setting="features")
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
                    "use a smaller filter or pool size, or fewer conv/pool layers in {features}.", setting="features")
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
        """The config from a dict of its fields; an unknown key is refused, naming the nearest
        valid one. ``layers`` and ``features`` may be lists or text (``"784,16,16,10"``)."""
        _unknown_keys(cls, d, "network")
        d = dict(d)
        if "layers" in d:
            v = d["layers"]  # anything else is left for the checks to name
            d["layers"] = parse_layers(v) if isinstance(v, str) else tuple(v) if isinstance(v, (list, tuple)) else v
        if "features" in d:
            v = d["features"]
            d["features"] = parse_features(v) if isinstance(v, str) else tuple(v) if isinstance(v, (list, tuple)) else v
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig:
    """How the network is trained. Defaults are the video's (and Nielsen's) settings."""

    epochs: int = setting(30, "Passes over the training set (video: 30).")
    batch_size: int = setting(10, "Training examples per mini-batch, i.e. per gradient step (video: 10).")
    eta: float = setting(3.0, "Learning rate: how far each gradient step goes downhill (video: 3.0).")
    seed: int = setting(0, "Seeds the initial weights, the shuffles and any other randomness: same seed, "
                        "same numbers.")
    schedule: str = setting("constant", "Learning-rate schedule over the epochs.", choices=SCHEDULE_NAMES)
    eta_min: float = setting(0.0, "The learning rate the cosine and linear schedules end at.")
    step_every: int = setting(10, "Step schedule: divide the learning rate by step_factor every this many epochs.")
    step_factor: float = setting(2.0, "Step schedule: the division factor.")
    warmup_epochs: int = setting(0, "Epochs over which the learning rate first grows linearly up to eta.")
    optimizer: str = setting("sgd", "Update rule: plain SGD (the video's), momentum, Nesterov momentum or Adam.",
                             choices=OPTIMIZER_NAMES)
    momentum: float = setting(0.9, "Momentum coefficient (momentum, nesterov); Adam's beta1.")
    beta2: float = setting(0.999, "Adam's beta2: how slowly its average of squared gradients forgets.")
    lmbda: float = setting(0.0, "L2 regularisation strength (weight decay): adds lmbda/(2n) sum w^2 to the cost.")
    validation: bool = setting(False, "Hold out the last 10,000 training images to validate on.")
    keep_best: bool = setting(False, "Keep the weights of the epoch with the best validation accuracy "
                              "(needs validation).")
    record_batch_cost: bool = setting(True, "Store every mini-batch's cost in the model file's history.")
    train_size: int | None = setting(None, "Train on only the first N training images (quick experiments).")
    dropout: float = setting(0.0, "Drop each hidden neuron feeding a dense layer with this probability, in "
                             "training only, e.g. 0.2.")
    patience: int = setting(0, "Early stopping: stop after this many epochs without a better validation "
                            "accuracy (needs validation; 0: off).")
    augment: tuple[str, ...] = setting((), "Distort each training batch at random: any of shift,rotate,elastic "
                                       "(none: off).", metavar="KINDS")
    max_shift: float = setting(2.0, "Augmentation shift: up to this many pixels in x and in y.")
    max_rotation: float = setting(10.0, "Augmentation rotate: up to this many degrees either way.")
    elastic_alpha: float = setting(34.0, "Augmentation elastic: strength of the smoothed random displacement "
                                   "(Simard 2003).")
    elastic_sigma: float = setting(4.0, "Augmentation elastic: smoothness (Gaussian width in pixels) of the "
                                   "displacement.")
    teacher: str = setting("", "Knowledge distillation: a trained model file (e.g. of --preset mlp) whose softened "
                           "outputs the network learns from as well as the labels (empty: off).", metavar="MODEL")
    distill_temperature: float = setting(4.0, "Distillation: the temperature T that softens the teacher's and the "
                                         "network's outputs (higher: more of which wrong digits look alike).")
    distill_weight: float = setting(0.5, "Distillation: the weight of the teacher's soft targets in the cost, in "
                                    "[0, 1] (the labels get the rest).")
    train_metrics: str = setting(
        "full", "After each epoch, measure cost and accuracy on the whole training set (full, as in the video), "
        "or report the mean cost of the epoch's mini-batches (batches: no extra pass).", choices=("full", "batches"))
    # Not part of the math: which code takes the steps (digitnet.training.engines). "auto" is the
    # fastest engine that supports the other settings ($DIGITNET_ENGINE, if set, names one);
    # a Trainer stores the engine it resolved, so model files record the one that ran.
    engine: str = setting("auto", "What takes the gradient steps: auto (the fastest engine that supports these "
                          "settings; $DIGITNET_ENGINE names one), numba (compiled; where Numba is installed), "
                          "numpy, or reference (backprop + optimizer: runs everything).", choices=ENGINE_NAMES)

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("epochs", "batch_size", "step_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{{{name}}} must be a whole number >= 1. Got {v!r} instead.",
                                  setting=name)
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ConfigError(f"{{warmup_epochs}} must be >= 0. Got {self.warmup_epochs!r} instead.",
                              setting="warmup_epochs")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"{{seed}} must be a whole number >= 0. Got {self.seed!r} instead.",
                              setting="seed")
        _check_positive("eta", self.eta)
        _check_positive("eta_min", self.eta_min, allow_zero=True)
        _check_positive("step_factor", self.step_factor)
        _check_positive("lmbda", self.lmbda, allow_zero=True)
        _check_choice("schedule", self.schedule, SCHEDULE_NAMES)
        _check_choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        for name in ("momentum", "beta2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ConfigError(f"{{{name}}} must be in [0, 1). Got {v!r} instead.", setting=name)
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size < 1):
            raise ConfigError(f"{{train_size}} must be a whole number >= 1. Got {self.train_size!r} "
                              "instead.", setting="train_size")
        for name in ("validation", "keep_best", "record_batch_cost"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{{{name}}} must be true or false. Got {getattr(self, name)!r} instead.",
                                  setting=name)
        if self.keep_best and not self.validation:
            raise ConfigError("{keep_best} picks the epoch by validation accuracy: turn on {validation} too.",
                              setting=("keep_best", "validation"))
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"{{dropout}} must be in [0, 1). Got {self.dropout!r} instead.",
                              setting="dropout")
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 0:
            raise ConfigError(f"{{patience}} must be a whole number >= 0. Got {self.patience!r} "
                              "instead.", setting="patience")
        if self.patience and not self.validation:
            raise ConfigError("Early stopping ({patience}) watches the validation accuracy: turn on {validation} too.",
                              setting=("patience", "validation"))
        augment = (self.augment,) if isinstance(self.augment, str) else tuple(self.augment)
        augment = tuple(a.strip() for part in augment for a in part.split(",") if a.strip() and a.strip() != "none")
        object.__setattr__(self, "augment", augment)
        for a in augment:
            _check_choice("augment", a, AUGMENT_NAMES)
        for name in ("max_shift", "max_rotation", "elastic_alpha"):
            _check_positive(name, getattr(self, name), allow_zero=True)
        _check_positive("elastic_sigma", self.elastic_sigma)
        _check_positive("distill_temperature", self.distill_temperature)
        if not (isinstance(self.distill_weight, (int, float)) and 0 <= self.distill_weight <= 1):
            raise ConfigError(f"{{distill_weight}} must be in [0, 1]. Got {self.distill_weight!r} instead.",
                              setting="distill_weight")
        _check_choice("train_metrics", self.train_metrics, ("full", "batches"))
        _check_choice("engine", self.engine, ENGINE_NAMES)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """The config from a dict of its fields; an unknown key is refused, naming the nearest
        valid one. ``augment`` may be a list or text (``"shift,rotate"``)."""
        _unknown_keys(cls, d, "training")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
