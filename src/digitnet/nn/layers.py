"""Layer kinds: the linear part of a layer (before its activation), looked up by name.

A network is a sequence of layers. Layer ``l`` maps the previous activation ``a`` to the
weighted input ``z = layer.forward(params, a)``; the network then applies the layer's
activation function. Backpropagation asks each layer for the gradient of the cost with
respect to its parameters (BP3, BP4) and for dC/da of its input, which the previous
layer's activation turns into that layer's delta (BP2).

Shape convention, used everywhere in digitnet: a batch is rows. For a dense layer with
``n_in`` inputs and ``n_out`` neurons:

* ``a`` (n, n_in), ``z`` and ``delta`` (n, n_out)
* ``w`` (n_out, n_in): ``w[j, k]`` is the weight from neuron k of the previous layer to
  neuron j of this one, as in the video, so row ``j`` is neuron j's incoming weights
  (for the first layer, a 28x28 image when reshaped)
* ``b`` (n_out,)
"""

from __future__ import annotations

import numpy as np

from digitnet.errors import ConfigError


class Dense:
    """A fully connected layer: z = a w^T + b."""

    kind = "dense"

    @staticmethod
    def init(rng: np.random.Generator, n_in: int, n_out: int, scheme: str, dtype) -> dict[str, np.ndarray]:
        """Initial parameters drawn from ``rng``.

        * standard: w, b ~ N(0, 1)  (Nielsen's network.py, the video's code)
        * scaled:   w ~ N(0, 1/n_in), b ~ N(0, 1)  (Nielsen's network2.py): keeps z of
          order 1 so sigmoid neurons do not start saturated
        * xavier:   w ~ U(-r, r), r = sqrt(6 / (n_in + n_out)), b = 0  (Glorot & Bengio 2010)
        * he:       w ~ N(0, 2/n_in), b = 0  (He et al. 2015, for ReLU)
        """
        if scheme == "standard":
            w = rng.standard_normal((n_out, n_in))
            b = rng.standard_normal(n_out)
        elif scheme == "scaled":
            w = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
            b = rng.standard_normal(n_out)
        elif scheme == "xavier":
            r = np.sqrt(6.0 / (n_in + n_out))
            w = rng.uniform(-r, r, (n_out, n_in))
            b = np.zeros(n_out)
        elif scheme == "he":
            w = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
            b = np.zeros(n_out)
        else:
            raise ConfigError(f"Unknown initialisation {scheme!r}; choose standard, scaled, xavier or he.")
        return {"w": w.astype(dtype), "b": b.astype(dtype)}

    @staticmethod
    def forward(p: dict[str, np.ndarray], a: np.ndarray) -> np.ndarray:
        """z = a w^T + b: (n, n_in) -> (n, n_out)."""
        z = a @ p["w"].T
        z += p["b"]
        return z

    @staticmethod
    def backward(p: dict[str, np.ndarray], a: np.ndarray, delta: np.ndarray, need_input_grad: bool = True):
        """Gradients of the *summed* cost from this layer's delta (n, n_out).

        Returns ``({"w": nabla_w, "b": nabla_b}, g)`` where
        nabla_b = sum_x delta (BP3), nabla_w = delta^T a (BP4), and g = delta w = dC/da
        of the layer's input (n, n_in), which BP2 multiplies by the previous activation's
        derivative.
        """
        grads = {"w": delta.T @ a, "b": delta.sum(axis=0)}
        g = delta @ p["w"] if need_input_grad else None
        return grads, g


LAYERS = {"dense": Dense}
