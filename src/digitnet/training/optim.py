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


class SGD:
    """Plain gradient descent: w <- w - eta * dC/dw (the video's rule)."""

    name = "sgd"

    def __init__(self, params: Params, **_: float):
        pass

    def step(self, params: Params, grads: Params, eta: float) -> None:
        for p, g in zip(params, grads):
            for k, v in p.items():
                v -= np.asarray(eta, v.dtype) * g[k]

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

    def step(self, params: Params, grads: Params, eta: float) -> None:
        for p, g, vel in zip(params, grads, self.v):
            for k, w in p.items():
                v = vel[k]
                if self.nesterov:
                    v_old = v.copy()
                    v *= self.mu
                    v -= eta * g[k]
                    w += (1 + self.mu) * v - self.mu * v_old
                else:
                    v *= self.mu
                    v -= eta * g[k]
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

    def step(self, params: Params, grads: Params, eta: float) -> None:
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            for k, w in p.items():
                m[k] *= self.b1
                m[k] += (1 - self.b1) * g[k]
                v[k] *= self.b2
                v[k] += (1 - self.b2) * g[k] * g[k]
                m_hat = m[k] / c1
                v_hat = v[k] / c2
                w -= eta * m_hat / (np.sqrt(v_hat) + self.eps)

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
