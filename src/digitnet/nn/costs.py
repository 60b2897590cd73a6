"""Costs: how bad the network's output ``a`` is for the wanted labels, and its gradient.

``a`` is the output layer's activation, ``(n, k)``; ``y`` the integer labels, ``(n,)``.
The cost of a batch is the *average* over its examples, as in the video:

* quadratic:      C = 1/n sum_x 1/2 ||a(x) - y(x)||^2   (the 1/2 makes dC/da = a - y)
* cross-entropy:  C = -1/n sum_x sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]  (sigmoid outputs)
                  C = -1/n sum_x ln a_y(x)                                    (softmax outputs)

where y(x) is the one-hot vector of the label. ``fn`` returns the *sum* over the batch
(callers divide by n), ``grad_a`` returns dC_x/da per example. The network looks a cost up
by name in :data:`COSTS` and calls ``total(a, y, output)`` (the summed cost) and
``delta(z, a, y, output)`` (BP1, the output error), where ``output`` names the output
layer's activation. To add a cost, write a class with these four methods and add it to
:data:`COSTS`.
"""

from __future__ import annotations

import numpy as np

from digitnet.nn.activations import BACKWARD

# Logs are taken of a clipped to [EPS, 1 - EPS] so that a saturated output costs a large
# finite number instead of inf.
EPS = 1e-12


def one_hot(y: np.ndarray, k: int, dtype=np.float32) -> np.ndarray:
    """Labels (n,) -> one-hot rows (n, k)."""
    e = np.zeros((len(y), k), dtype=dtype)
    e[np.arange(len(y)), y] = 1
    return e


class QuadraticCost:
    name = "quadratic"

    @staticmethod
    def fn(a: np.ndarray, y: np.ndarray) -> float:
        """Sum over the batch of 1/2 ||a - y||^2."""
        r = a - one_hot(y, a.shape[1], a.dtype)
        return 0.5 * float(np.vdot(r, r))

    @staticmethod
    def grad_a(a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dC_x/da = a - y, (n, k)."""
        return a - one_hot(y, a.shape[1], a.dtype)

    @classmethod
    def total(cls, a: np.ndarray, y: np.ndarray, output: str) -> float:
        return cls.fn(a, y)

    @classmethod
    def delta(cls, z: np.ndarray, a: np.ndarray, y: np.ndarray, output: str) -> np.ndarray:
        """BP1: dC_x/da (.) sigma'(z^L), through the output activation's backward pass."""
        return BACKWARD[output](z, a, cls.grad_a(a, y))


class CrossEntropyCost:
    name = "cross-entropy"

    @staticmethod
    def fn(a: np.ndarray, y: np.ndarray, softmax: bool = False) -> float:
        n = len(y)
        if softmax:
            return float(-np.log(np.clip(a[np.arange(n), y], EPS, None)).sum())
        e = one_hot(y, a.shape[1], a.dtype)
        ac = np.clip(a, EPS, 1 - EPS)
        return float(-(e * np.log(ac) + (1 - e) * np.log1p(-ac)).sum())

    @staticmethod
    def grad_a(a: np.ndarray, y: np.ndarray, softmax: bool = False) -> np.ndarray:
        e = one_hot(y, a.shape[1], a.dtype)
        ac = np.clip(a, EPS, 1 - EPS)
        if softmax:
            return -e / ac
        return (ac - e) / (ac * (1 - ac))

    @classmethod
    def total(cls, a: np.ndarray, y: np.ndarray, output: str) -> float:
        return cls.fn(a, y, softmax=output == "softmax")

    @staticmethod
    def delta(z: np.ndarray, a: np.ndarray, y: np.ndarray, output: str) -> np.ndarray:
        """BP1. For sigmoid and softmax outputs (the only ones the config allows with this cost)
        sigma'(z) cancels: delta = a - y. This is both cheaper and exact where a saturates (no
        division by a (1 - a))."""
        return a - one_hot(y, a.shape[1], a.dtype)


COSTS = {"quadratic": QuadraticCost, "cross-entropy": CrossEntropyCost}
COST_NAMES = tuple(COSTS)
