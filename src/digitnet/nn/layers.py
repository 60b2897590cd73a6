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

For pictures there are also :class:`Conv2D`, :class:`MaxPool` and :class:`Flatten`, which
work on channels-last feature maps (n, h, w, c); a network's ``NetworkConfig.features``
says which of them come before its dense layers, and ``LAYERS`` maps each kind's name to
its class.
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


# --- layers for pictures ------------------------------------------------------------
# Feature maps are channels-last, (n, h, w, c), so that an image batch (n, 784) is already
# a (n, 28, 28, 1) map after a free reshape, and each layer's output needs no transpose.
# These layers are objects (their shapes and sizes are fixed when the network is built);
# params and gradients stay plain dicts of arrays, as for dense layers.


class Conv2D:
    """A convolutional layer: ``c_out`` filters of k x k over all input channels, stride 1,
    no padding, so (n, h, w, c_in) -> (n, h - k + 1, w - k + 1, c_out).

    z[x, i, j, o] = sum_{u, v, c} a[x, i + u, j + v, c] w[o, c, u, v] + b[o]

    * ``w`` (c_out, c_in, k, k): ``w[o]`` is filter o (for the first layer, a k x k picture)
    * ``b`` (c_out,)

    Computed by im2col: every k x k patch of every example in the batch becomes one column
    of ``cols`` (k k c_in + 1, n h_out w_out), under which a row of ones stands for the
    input that the bias multiplies, and the layer is one matrix product: a dense layer
    applied at every position with shared weights. Backprop needs the same patches again
    for BP3 and BP4, so :func:`digitnet.nn.network.forward` keeps them and hands them back.
    """

    kind = "conv"

    def __init__(self, in_shape: tuple[int, int, int], channels: int, k: int):
        h, w, c = in_shape
        self.in_shape, self.channels, self.k = (h, w, c), channels, k
        self.out_shape = (h - k + 1, w - k + 1, channels)

    def init(self, rng: np.random.Generator, scheme: str, dtype) -> dict[str, np.ndarray]:
        """As :meth:`Dense.init` with fan-in k*k*c_in (the inputs one output neuron sees)."""
        c_in, k = self.in_shape[2], self.k
        fan_in, fan_out = c_in * k * k, self.channels * k * k
        if scheme == "xavier":
            r = np.sqrt(6.0 / (fan_in + fan_out))
            p = {"w": rng.uniform(-r, r, (self.channels, fan_in)).astype(dtype), "b": np.zeros(self.channels, dtype)}
        else:
            p = Dense.init(rng, fan_in, self.channels, scheme, dtype)
        p["w"] = p["w"].reshape(self.channels, c_in, k, k)
        return p

    def im2col(self, a: np.ndarray) -> np.ndarray:
        """The patches of ``a`` as columns, then a row of ones: (k k c_in + 1, n h_out w_out).

        Rows are ordered (u, v, c); row (u, v, c) is channel c of the input shifted by (u, v).
        The array's memory is laid out one of two ways, whichever copies in longer runs; the
        matrix products that use it give the same numbers either way (BLAS packs both into
        the same blocks):

        * few channels (k c_in < w_out, e.g. the first layer's one): the input is first
          turned channels-first (one small copy), and each filter position (u, v) is one
          slice copy in runs of w_out consecutive values on both sides (copying from the
          channels-last maps directly, one value every c_in, was 1.7x slower with 32
          channels; a window view copied patch by patch, 4x slower);
        * many channels (the second conv layer's 32): the array is the transpose of a
          C-ordered (n h_out w_out, k k c_in + 1) one, whose row for output position
          (x, i, j) is its patch: for each u, the k c_in values a[x, i + u, j : j + k, :],
          consecutive in the channels-last input too. One copy from a strided view of the
          input fills all patches in runs of k c_in (160) values: 2.8x faster than the
          channels-first copy (5.0 -> 1.8 ms for a batch of 64 12x12x32 maps, k = 5). Each
          row is padded to a whole number of 64-byte cache lines (801 -> 816 float32 values),
          which made the product for BP4, ``cols @ delta``, 1.0 ms faster (5.4 -> 4.4 ms) and
          the forward one 0.2 ms. That product is still ~1 ms slower than from the
          channels-first layout (measured in a training step: the layer's backward pass 14.0
          -> 15.1 ms), but the copy saves 2 ms and the forward product 0.7 ms.
        """
        (h, w, c), k = self.in_shape, self.k
        h_out, w_out, _ = self.out_shape
        n = len(a)
        if k * c >= w_out:
            a = np.ascontiguousarray(a.reshape(n, h, w, c))
            s = a.strides
            windows = np.lib.stride_tricks.as_strided(
                a, (n, h_out, w_out, k, k * c), (s[0], s[1], s[2], s[1], s[3]), writeable=False
            )  # windows[x, i, j, u] = a[x, i + u, j : j + k, :], flat
            size = k * k * c + 1
            line = max(1, 64 // a.itemsize)
            rows = np.empty((n, h_out, w_out, -(-size // line) * line), dtype=a.dtype)[..., :size]
            rows[..., :-1].reshape(n, h_out, w_out, k, k * c)[...] = windows
            rows[..., -1] = 1
            return rows.reshape(-1, size).T
        a_cf = np.ascontiguousarray(a.reshape(n, h, w, c).transpose(3, 0, 1, 2))  # (c, n, h, w)
        cols = np.empty((k * k * c + 1, n, h_out, w_out), dtype=a.dtype)
        patches = cols[:-1].reshape(k, k, c, n, h_out, w_out)  # a view
        for u in range(k):
            for v in range(k):
                patches[u, v] = a_cf[:, :, u : u + h_out, v : v + w_out]
        cols[-1] = 1
        return cols.reshape(k * k * c + 1, -1)

    def _wmat(self, p: dict[str, np.ndarray]) -> np.ndarray:
        """The filters as rows in the patch order (u, v, c): (c_out, k k c_in)."""
        return p["w"].transpose(0, 2, 3, 1).reshape(self.channels, -1)

    def forward(self, p: dict[str, np.ndarray], a: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """(n, h, w, c_in) (or its flat (n, h w c_in)) -> z (n, h_out, w_out, c_out).

        ``cols`` is ``self.im2col(a)`` where the caller has it already.
        """
        if cols is None:
            cols = self.im2col(a)
        wb = np.concatenate([self._wmat(p), p["b"][:, None]], axis=1)  # (c_out, k k c_in + 1)
        z = cols.T @ wb.T  # (n h_out w_out, c_out): channels last, no transpose needed
        return z.reshape(len(a), *self.out_shape)

    def backward(
        self,
        p: dict[str, np.ndarray],
        a: np.ndarray,
        delta: np.ndarray,
        need_input_grad: bool = True,
        cols: np.ndarray | None = None,
    ):
        """Gradients of the summed cost from delta (n, h_out, w_out, c_out).

        As for a dense layer on the patches: nabla_w = cols delta (BP4), and nabla_b = sum
        delta (BP3) comes from the same product, in the row of the ones; dC/dcols = delta w,
        and each patch's gradient is added back onto the pixels it was cut from (col2im: k*k
        strided additions over the whole batch).
        ``cols`` is ``self.im2col(a)``, as kept by the forward pass; without it they are cut again.
        """
        n, (h, w, c), k = len(a), self.in_shape, self.k
        h_out, w_out, c_out = self.out_shape
        if cols is None:
            cols = self.im2col(a)
        d = delta.reshape(-1, c_out)  # (n h_out w_out, c_out)
        nabla_wb = cols @ d  # (k k c_in + 1, c_out)
        nabla_w = nabla_wb[:-1].reshape(k, k, c, c_out).transpose(3, 2, 0, 1)
        grads = {"w": np.ascontiguousarray(nabla_w), "b": nabla_wb[-1]}
        if not need_input_grad:
            return grads, None
        dcols = (d @ self._wmat(p)).reshape(n, h_out, w_out, k, k * c)  # patch rows of k c_in values
        g = np.zeros((n, h, w, c), dtype=dcols.dtype)
        g_rows = g.reshape(n, h, w * c)
        # Every input pixel gets its patches' gradients added in the order (u, v). Patch row u
        # of position j covers k c_in consecutive values of g, so for each u the positions j
        # are added last to first (v ascending for every pixel): runs of k c_in values, not c_in.
        for u in range(k):
            for j in range(w_out - 1, -1, -1):
                g_rows[:, u : u + h_out, j * c : (j + k) * c] += dcols[:, :, j, u, :]
        return grads, g.reshape(a.shape)


class MaxPool:
    """Max-pooling over non-overlapping size x size blocks: (n, h, w, c) -> (n, h // size, w // size, c).

    Rows and columns that do not fill a whole block are dropped. No parameters.

    Both passes use element-wise ufuncs on slices of the blocks (one element of every block
    each): NumPy's max or sum over both block axes of the 6-d view at once was 5x slower.
    """

    kind = "pool"

    def __init__(self, in_shape: tuple[int, int, int], size: int):
        h, w, c = in_shape
        self.in_shape, self.size = (h, w, c), size
        self.out_shape = (h // size, w // size, c)

    def init(self, rng: np.random.Generator, scheme: str, dtype) -> dict[str, np.ndarray]:
        return {}

    def _blocks(self, a: np.ndarray) -> np.ndarray:
        """(n, h_out, size, w_out, size, c): a view when the blocks tile the map exactly."""
        h, w, c = self.in_shape
        h_out, w_out, _ = self.out_shape
        s = self.size
        return a.reshape(len(a), h, w, c)[:, : h_out * s, : w_out * s].reshape(len(a), h_out, s, w_out, s, c)

    def forward(self, p: dict[str, np.ndarray], a: np.ndarray) -> np.ndarray:
        """z[x, i, j, c] = max_{u, v} a[x, s i + u, s j + v, c]: (n, h, w, c) -> (n, h_out, w_out, c)."""
        rows = self._blocks(a).max(axis=2)  # (n, h_out, w_out, size, c): the max over u first
        z = rows[:, :, :, 0].copy()
        for v in range(1, self.size):
            np.maximum(z, rows[:, :, :, v], out=z)
        return z

    def backward(
        self,
        p: dict[str, np.ndarray],
        a: np.ndarray,
        delta: np.ndarray,
        need_input_grad: bool = True,
        z: np.ndarray | None = None,
    ):
        """The gradient flows only to each block's maximum (split evenly between exact ties).

        ``z`` is ``self.forward(p, a)`` where the caller has it already.
        """
        if not need_input_grad:
            return {}, None
        if z is None:
            z = self.forward(p, a)
        blocks, s = self._blocks(a), self.size
        h_out, w_out, c = self.out_shape
        is_max = blocks == z[:, :, None, :, None, :]  # (n, h_out, s, w_out, s, c)
        ties = np.zeros(delta.shape, dtype=np.uint8)  # (n, h_out, w_out, c): maxima per block, >= 1
        for u in range(s):
            for v in range(s):
                ties += is_max[:, :, u, :, v]
        # each maximum's share, copied over its block (0 elsewhere), in one pass
        g = np.multiply(is_max, (delta / ties)[:, :, None, :, None, :], dtype=delta.dtype)
        if (h_out * s, w_out * s) == self.in_shape[:2]:  # the blocks tile the map: no ragged edge
            return {}, g.reshape(a.shape)
        g_full = np.zeros((len(a), *self.in_shape), dtype=delta.dtype)
        g_full[:, : h_out * s, : w_out * s] = g.reshape(len(a), h_out * s, w_out * s, c)
        return {}, g_full.reshape(a.shape)


class Flatten:
    """(n, h, w, c) -> (n, h w c), so that dense layers can follow conv and pool layers."""

    kind = "flatten"

    def __init__(self, in_shape: tuple[int, ...]):
        self.in_shape = tuple(in_shape)
        self.out_shape = (int(np.prod(in_shape)),)

    def init(self, rng: np.random.Generator, scheme: str, dtype) -> dict[str, np.ndarray]:
        return {}

    def forward(self, p: dict[str, np.ndarray], a: np.ndarray) -> np.ndarray:
        return a.reshape(len(a), -1)

    def backward(self, p: dict[str, np.ndarray], a: np.ndarray, delta: np.ndarray, need_input_grad: bool = True):
        return {}, (delta.reshape(a.shape) if need_input_grad else None)


LAYERS = {"dense": Dense, "conv": Conv2D, "pool": MaxPool, "flatten": Flatten}
