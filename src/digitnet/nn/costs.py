"""Costs: how bad the network's output ``a`` is for the wanted labels, and its gradient.

``a`` is the output layer's activation, ``(n, k)``; ``y`` the integer labels, ``(n,)``.
The cost of a batch is the *average* over its examples, as in the video:

* quadratic:      C = 1/n sum_x 1/2 ||a(x) - y(x)||^2   (the 1/2 makes dC/da = a - y)
* cross-entropy:  C = -1/n sum_x sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]  (sigmoid outputs)
                  C = -1/n sum_x ln a_y(x)                                    (softmax outputs)

where y(x) is the one-hot vector of the label. ``fn`` returns the *sum* over the batch
(callers divide by n), ``grad_a`` returns dC_x/da per example.
"""

from __future__ import annotations

import numpy as np

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


COSTS = {"quadratic": QuadraticCost, "cross-entropy": CrossEntropyCost}
