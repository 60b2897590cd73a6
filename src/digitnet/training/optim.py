"""Optimisers: update rules only. Each takes parameters and gradients and steps downhill.

``params`` and ``grads`` are lists of dicts of arrays (one dict per layer, as in
:class:`digitnet.nn.network.Network`); updates are made in place. Names follow the papers:
``eta`` the learning rate, ``mu`` the momentum coefficient, ``b1``, ``b2``, ``m_hat``,
``v_hat`` as in Kingma & Ba (2015).
"""

from __future__ import annotations

import numpy as np

from digitnet.errors import ConfigError

Params = list[dict[str, np.ndarray]]


# The updates run a block of BLOCK values at a time: one block of the parameter, its gradient,
# the optimizer's state and the scratch arrays (3 to 6 arrays of 128 KB in float32) stays in the
# core's cache through all of the update's passes, where whole arrays (1.6 MB for the 784 x 512
# weights of --preset mlp) were streamed through memory once per pass. The operations are
# element-wise, so the numbers are the same, bit for bit. (2^15 measured fastest of 2^13..2^17.)
BLOCK = 1 << 15


def _blocks(*arrays: np.ndarray):
    """Flat views of the same BLOCK values of each of ``arrays`` (all of one shape), block
    after block; the whole arrays at once where one of them is not contiguous (no flat view)."""
    if not all(a.flags.c_contiguous for a in arrays):
        yield arrays
        return
    flat = [a.reshape(-1) for a in arrays]
    for lo in range(0, flat[0].size, BLOCK):
        yield [f[lo : lo + BLOCK] for f in flat]


class _Scratch:
    """``count`` scratch arrays for in-place updates, each as large as the largest block seen so
    far; :meth:`get` gives views of them in a block's shape and dtype (made once per shape)."""

    def __init__(self, count: int):
        self.count = count
        self.bufs: dict[np.dtype, list[np.ndarray]] = {}
        self.views: dict[tuple, list[np.ndarray]] = {}

    def get(self, w: np.ndarray) -> list[np.ndarray]:
        views = self.views.get((w.dtype, w.shape))
        if views is None:
            bufs = self.bufs.get(w.dtype)
            if bufs is None or bufs[0].size < w.size:
                bufs = self.bufs[w.dtype] = [np.empty(w.size, w.dtype) for _ in range(self.count)]
                self.views.clear()  # views of the smaller arrays
            views = self.views[(w.dtype, w.shape)] = [b[: w.size].reshape(w.shape) for b in bufs]
        return views


class SGD:
    """Plain gradient descent: w <- w - eta * dC/dw (the video's rule)."""

    name = "sgd"

    def __init__(self, params: Params, **_: float):
        self._scratch = _Scratch(1)

    def step(self, params: Params, grads: Params, eta: float) -> None:
        for p, g in zip(params, grads):
            for k in p:
                eta_ = p[k].dtype.type(eta)
                for w, gk in _blocks(p[k], g[k]):
                    (s,) = self._scratch.get(w)
                    np.multiply(gk, eta_, out=s)
                    w -= s  # in place: the same numbers as w - eta g, no temporary

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        pass


class Momentum:
    """Heavy-ball momentum: v <- mu v - eta g; w <- w + v. With ``nesterov=True`` the
    gradient is in effect taken at the look-ahead point (Sutskever et al. 2013 form):
    w <- w - mu v_old + (1 + mu) v."""

    name = "momentum"

    def __init__(self, params: Params, mu: float = 0.9, nesterov: bool = False, **_: float):
        self.mu = mu
        self.nesterov = nesterov
        self.v = [{k: np.zeros_like(a) for k, a in p.items()} for p in params]
        self._scratch = _Scratch(2)

    def step(self, params: Params, grads: Params, eta: float) -> None:
        # In place, a block at a time, through two scratch arrays: the same operations in the
        # same order (and so the same numbers, bit for bit) as the formulas in the docstring.
        for p, g, vel in zip(params, grads, self.v):
            for k in p:
                t = p[k].dtype.type
                mu, eta_, mu1 = t(self.mu), t(eta), t(1 + self.mu)
                for w, gk, v in _blocks(p[k], g[k], vel[k]):
                    s, u = self._scratch.get(w)
                    np.multiply(v, mu, out=u)  # mu v_old
                    np.multiply(gk, eta_, out=s)
                    np.subtract(u, s, out=v)  # v = mu v_old - eta g
                    if self.nesterov:
                        np.multiply(v, mu1, out=s)
                        s -= u
                        w += s  # w + ((1 + mu) v - mu v_old)
                    else:
                        w += v

    def state(self) -> dict[str, np.ndarray]:
        return {f"v.{l}.{k}": a for l, p in enumerate(self.v) for k, a in p.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for l, p in enumerate(self.v):
            for k in p:
                p[k][...] = state[f"v.{l}.{k}"]


class Adam:
    """Adam (Kingma & Ba 2015): m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    w <- w - eta m_hat / (sqrt(v_hat) + eps) with the bias-corrected m_hat, v_hat."""

    name = "adam"

    def __init__(self, params: Params, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, **_: float):
        self.b1, self.b2, self.eps = b1, b2, eps
        self.t = 0
        self.m = [{k: np.zeros_like(a) for k, a in p.items()} for p in params]
        self.v = [{k: np.zeros_like(a) for k, a in p.items()} for p in params]
        self._scratch = _Scratch(2)

    def step(self, params: Params, grads: Params, eta: float) -> None:
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        # In place, a block at a time, through two scratch arrays: the same operations in the
        # same order (and so the same numbers, bit for bit) as the formulas in the docstring.
        for p, g, m, v in zip(params, grads, self.m, self.v):
            for k in p:
                t = p[k].dtype.type
                b1, b2, eps, eta_ = t(self.b1), t(self.b2), t(self.eps), t(eta)
                one_b1, one_b2, c1_, c2_ = t(1 - self.b1), t(1 - self.b2), t(c1), t(c2)
                for w, gk, mk, vk in _blocks(p[k], g[k], m[k], v[k]):
                    s, u = self._scratch.get(w)
                    mk *= b1
                    np.multiply(gk, one_b1, out=s)
                    mk += s  # m = b1 m + (1 - b1) g
                    vk *= b2
                    np.multiply(gk, one_b2, out=s)
                    s *= gk
                    vk += s  # v = b2 v + (1 - b2) g g
                    np.divide(vk, c2_, out=u)  # v_hat
                    np.sqrt(u, out=u)
                    u += eps
                    np.divide(mk, c1_, out=s)  # m_hat
                    s *= eta_
                    s /= u
                    w -= s  # w - eta m_hat / (sqrt(v_hat) + eps)

    def state(self) -> dict[str, np.ndarray]:
        s = {f"m.{l}.{k}": a for l, p in enumerate(self.m) for k, a in p.items()}
        s.update({f"v.{l}.{k}": a for l, p in enumerate(self.v) for k, a in p.items()})
        s["t"] = np.array([self.t], dtype=np.int64)
        return s

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for name, store in (("m", self.m), ("v", self.v)):
            for l, p in enumerate(store):
                for k in p:
                    p[k][...] = state[f"{name}.{l}.{k}"]
        self.t = int(state["t"][0])


def make_optimizer(name: str, params: Params, momentum: float = 0.9, beta2: float = 0.999):
    """The optimiser called ``name`` (sgd, momentum, nesterov, adam) for ``params``."""
    if name == "sgd":
        return SGD(params)
    if name == "momentum":
        return Momentum(params, mu=momentum)
    if name == "nesterov":
        return Momentum(params, mu=momentum, nesterov=True)
    if name == "adam":
        return Adam(params, b1=momentum, b2=beta2)
    raise ConfigError(f"Unknown optimizer {name!r}; choose sgd, momentum, nesterov or adam.")
