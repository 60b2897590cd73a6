"""Activation functions and how gradients flow back through them, looked up by name.

Every function takes the weighted input ``z`` of a layer, shape ``(n, m)`` (one row per
example), and returns the activation ``a`` of the same shape and dtype. ``backward(z, a, g)``
returns ``dC/dz`` given ``g = dC/da``: for element-wise activations that is ``g * f'(z)``,
with ``f'`` computed from the output ``a`` where that is cheaper (as scikit-learn does);
softmax couples its outputs, so its backward pass is the Jacobian-vector product.

:data:`ACTIVATIONS` (forward) and :data:`BACKWARD` are the tables every other module looks
names up in; :data:`ACTIVATION_NAMES` and :data:`HIDDEN_ACTIVATION_NAMES` are derived from
them. To add an activation, write ``f`` and ``f_backward`` here and add one line to each
table (and a case to ``tests/test_network.py``'s gradient checks).
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z), written as (1 + tanh(z/2)) / 2: the same number, but it never overflows."""
    a = np.multiply(z, 0.5, dtype=z.dtype)
    np.tanh(a, out=a)
    a += 1
    a *= 0.5
    return a


def sigmoid_backward(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """g * sigma'(z), with sigma'(z) = a (1 - a)."""
    return g * a * (1 - a)


def tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def tanh_backward(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """g * (1 - a^2)."""
    return g * (1 - a * a)


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def relu_backward(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """g where z > 0, else 0 (the subgradient 0 is used at z = 0)."""
    return g * (z > 0)


def identity(z: np.ndarray) -> np.ndarray:
    return z.copy()


def identity_backward(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return g


def softmax(z: np.ndarray) -> np.ndarray:
    """e^z_j / sum_k e^z_k over each row; the row maximum is subtracted first so exp never overflows."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def softmax_backward(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """J^T g with J_jk = a_j (delta_jk - a_k): a * (g - sum_k g_k a_k)."""
    return a * (g - (g * a).sum(axis=1, keepdims=True))


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "softmax": softmax,
    "identity": identity,
}
BACKWARD = {
    "sigmoid": sigmoid_backward,
    "tanh": tanh_backward,
    "relu": relu_backward,
    "softmax": softmax_backward,
    "identity": identity_backward,
}
# Any activation can be the output layer's. Hidden layers take the element-wise nonlinear
# ones: softmax couples a layer's neurons into a probability distribution (an output-layer
# idea), and identity would make consecutive layers collapse into one linear map.
NOT_HIDDEN = ("softmax", "identity")
ACTIVATION_NAMES = tuple(ACTIVATIONS)
HIDDEN_ACTIVATION_NAMES = tuple(name for name in ACTIVATIONS if name not in NOT_HIDDEN)
