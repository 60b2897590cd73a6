"""Knowledge distillation: learning from a bigger trained network's outputs (Hinton et al. 2015).

The teacher is a trained network with the same inputs and classes; the student (the network
being trained) learns from its softened outputs as well as from the labels. With temperature
T and weight w, the cost of one example with logits z (the student's output-layer weighted
inputs) and label y is::

    C = (1 - w) * CE(y, softmax(z)) + w * T^2 * KL(p || softmax(z / T)),   p = softmax(z_teacher / T)

and its gradient with respect to z (BP1) is::

    delta = (1 - w) * (softmax(z) - onehot(y)) + w * T * (softmax(z / T) - p)

(the T^2 keeps the soft part's gradient of the same size whatever T; Hinton et al.). A higher T
shows the student more of the teacher's "dark knowledge": which wrong digits look alike. The
student needs a softmax output with the cross-entropy cost. The teacher's outputs are computed
once, on the un-augmented training images (:func:`soft_targets`); with augmentation an image
is distorted but keeps its teacher's answer. Nothing here loads a model file: the caller (the
task layer, :mod:`digitnet.tasks.run`) loads the teacher and hands its network in.
"""

from __future__ import annotations

import numpy as np

from digitnet.config import TrainConfig
from digitnet.errors import ConfigError
from digitnet.nn.network import Gradient, Network, backward, forward

EPS = 1e-12


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def check_teacher(teacher: Network, student: Network) -> None:
    """Refuse a teacher whose inputs or classes differ from the student's, or a student the
    distillation cost does not fit (it needs a softmax output and the cross-entropy cost)."""
    s, t = student.config, teacher.config
    if s.output_activation != "softmax" or s.cost != "cross-entropy":
        raise ConfigError("Learning from a {teacher} needs a softmax output with the cross-entropy cost: set "
                          f"{{output_activation}} softmax and {{cost}} cross-entropy (got {s.output_activation} "
                          f"and {s.cost}).", setting=("teacher", "output_activation", "cost"))
    if t.layers[0] != s.layers[0]:
        raise ConfigError(f"The {{teacher}} takes {t.layers[0]} inputs per example but this network takes "
                          f"{s.layers[0]}: the teacher must have been trained on the same kind of images.",
                          setting="teacher")
    if t.layers[-1] != s.layers[-1]:
        raise ConfigError(f"The {{teacher}} has {t.layers[-1]} classes but this network has {s.layers[-1]}: "
                          "the teacher must have been trained on the same classes.", setting="teacher")


def teacher_logits(teacher: Network, split) -> np.ndarray:
    """The teacher's output-layer weighted inputs z (n, k) for a data set split, in float64.

    A softmax teacher's z are its logits; for a sigmoid output the logit of each activation.
    """
    from digitnet.nn.network import feedforward_chunk

    x = teacher.prepare_split(split)
    out = []
    chunk = feedforward_chunk(teacher)
    for i in range(0, len(x), chunk):
        fw = forward(teacher, x[i : i + chunk])
        out.append(np.asarray(fw.zs[-1], dtype=np.float64))
    return np.concatenate(out) if out else np.zeros((0, teacher.config.layers[-1]))


def soft_targets(teacher: Network, split, temperature: float) -> np.ndarray:
    """The teacher's probabilities at ``temperature``, p = softmax(z / T), (n, k) float64."""
    return _softmax(teacher_logits(teacher, split) / temperature)


def distill_backprop(net: Network, x: np.ndarray, y: np.ndarray, soft: np.ndarray, temperature: float,
                     weight: float, dropout: float = 0.0, rng: np.random.Generator | None = None) -> Gradient:
    """The gradient of the batch's average distillation cost (the module docstring's C).

    ``soft`` (n, k) are the teacher's probabilities at ``temperature`` for these examples.
    """
    fw = forward(net, x, dropout, rng)
    n, k = fw.zs[-1].shape
    z = fw.zs[-1].astype(np.float64)
    t = float(temperature)
    a = fw.activations[-1].astype(np.float64)
    hard = a.copy()
    hard[np.arange(n), y] -= 1.0
    q = _softmax(z / t)
    delta = (1 - weight) * hard + weight * t * (q - soft)
    grads, _ = backward(net, fw, delta.astype(x.dtype))
    inv_n = np.asarray(1.0 / n, dtype=x.dtype)
    for gr in grads:
        for v in gr.values():
            v *= inv_n
    ce = -np.log(np.clip(a[np.arange(n), y], EPS, None)).sum()
    kl = (soft * (np.log(np.clip(soft, EPS, None)) - np.log(np.clip(q, EPS, None)))).sum()
    cost = float(((1 - weight) * ce + weight * t * t * kl) / n)
    return Gradient([g["w"] for g in grads if "w" in g], [g["b"] for g in grads if "b" in g], cost, grads)


def prepare(net: Network, train, config: TrainConfig, teacher: Network | None) -> np.ndarray | None:
    """The soft targets a :class:`~digitnet.training.train.Trainer` hands its engine: None without
    a ``teacher`` setting; else the checked teacher's probabilities on the training images."""
    if not config.teacher:
        if teacher is not None:
            raise ConfigError("A teacher network was given but {teacher} is not set: name its model file there.",
                              setting="teacher")
        return None
    if teacher is None:
        raise ConfigError(f"{{teacher}} is {config.teacher!r}, but no teacher network was loaded: train through "
                          "`digitnet train` or digitnet.tasks.run, or pass teacher=load_model(path).net.",
                          setting="teacher")
    check_teacher(teacher, net)
    return soft_targets(teacher, train, config.distill_temperature)
