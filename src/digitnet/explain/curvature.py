"""How curved the cost is: the Hessian's largest eigenvalues, from exact Hessian-vector products.

Gradient descent with step eta on a quadratic valley of curvature lambda (C = lambda/2 u^2
along a direction u) multiplies the distance to the bottom by (1 - eta lambda) each step: it
converges when eta < 2 / lambda and diverges beyond. The video's notes show this for
C = 3/2 x^2 + 1/2 y^2 ("x matters more"). For the network, the curvatures are the
eigenvalues of the Hessian H = d^2 C / dW^2 (13,002 x 13,002 for the video's network, never
formed): :func:`curvature` finds its largest ones by the Lanczos iteration, which only needs
products H v.

H v is computed exactly by Pearlmutter's R-operator (Pearlmutter 1994, "Fast exact
multiplication by the Hessian"): R{f} = d/dr f(W + r V) at r = 0, the derivative of every
quantity of backpropagation in the direction V = (V_w, V_b), pushed through the same passes.
With a batch as rows, layer l's input a_l (n, n_in), z_l = a_l W_l^T + b_l, a_{l+1} = f(z_l):

    forward   R{a_0} = 0
              R{z_l} = R{a_l} W_l^T + a_l V_w,l^T + V_b,l
              R{a_{l+1}} = f'(z_l) (.) R{z_l}                 (softmax: a (.) (R{z} - sum a (.) R{z}))
    output    delta_L = a - y (cross-entropy)                  => R{delta_L} = R{a_L}
              delta_L = f'(z) (.) (a - y) (quadratic)          => R{delta_L} = f''(z) (.) R{z} (.) (a - y) + f'(z) (.) R{a}
    backward  g_l = delta_{l+1} W_{l+1}                          (dC/da of layer l's output, BP2)
              R{g_l} = R{delta_{l+1}} W_{l+1} + delta_{l+1} V_w,l+1
              R{delta_l} = f''(z_l) (.) R{z_l} (.) g_l + f'(z_l) (.) R{g_l}
    H v       R{dC/dW_l} = (R{delta_l}^T a_l + delta_l^T R{a_l}) / n,  R{dC/db_l} = sum R{delta_l} / n

(the R-images of BP1-BP4). Vectors are flat, ordered like :meth:`Gradient.vector` (w0, b0,
w1, b1, ...). Everything is computed in float64; dense networks only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitnet.errors import ConfigError
from digitnet.explain.landscape import _labels, flatten, require_dense, unflatten
from digitnet.nn.activations import ACTIVATIONS
from digitnet.nn.network import Network, total_cost

MAX_K = 50  # eigenvalues asked for at most
CACHE_BYTES = 256 << 20  # keep the forward and backward passes between products up to this size


def _derivatives(name: str, z: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f'(z) and f''(z) of an element-wise activation, from its output a where cheaper."""
    if name == "sigmoid":
        d1 = a * (1 - a)
        return d1, d1 * (1 - 2 * a)
    if name == "tanh":
        d1 = 1 - a * a
        return d1, -2 * a * d1
    if name == "relu":
        return (z > 0).astype(z.dtype), np.zeros_like(z)  # f'' = 0 away from the kink
    if name == "identity":
        return np.ones_like(z), np.zeros_like(z)
    raise ConfigError(f"No second derivative for the activation {name!r}.")  # softmax is handled by the caller


class _Pass:
    """One chunk of examples: the forward and backward passes at W, which every H v reuses."""

    def __init__(self, net: Network, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y
        acts = net.activation_names
        self.a = [x]  # a[l]: layer l's input; a[-1] the output
        self.z, self.d1, self.d2 = [], [], []
        for p, act in zip(net.params, acts):
            z = self.a[-1] @ p["w"].T + p["b"]
            a = ACTIVATIONS[act](z)
            self.z.append(z)
            self.a.append(a)
            if act == "softmax":
                self.d1.append(None)
                self.d2.append(None)
            else:
                d1, d2 = _derivatives(act, z, a)
                self.d1.append(d1)
                self.d2.append(d2)
        out, L = self.a[-1], len(net.params) - 1
        e = np.zeros_like(out)
        e[np.arange(len(y)), y] = 1
        self.e = e
        self.g_out = out - e  # dC_x/da for the quadratic cost
        cfg = net.config
        if cfg.cost == "cross-entropy":
            delta = out - e  # BP1: sigma'(z) cancels (sigmoid and softmax outputs)
        elif acts[L] == "softmax":
            delta = out * (self.g_out - (self.g_out * out).sum(axis=1, keepdims=True))
        else:
            delta = self.d1[L] * self.g_out
        self.delta = [None] * (L + 1)
        self.g = [None] * (L + 1)  # g[l] = dC/d(a[l+1]) for hidden layers
        self.delta[L] = delta
        for l in range(L - 1, -1, -1):
            self.g[l] = self.delta[l + 1] @ net.params[l + 1]["w"]  # BP2
            self.delta[l] = self.d1[l] * self.g[l]

    def hv(self, net: Network, v: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """R{summed gradient} of this chunk in the direction ``v`` (params-shaped)."""
        params, acts, L = net.params, net.activation_names, len(net.params) - 1
        r_a = [None] * (L + 2)  # R{a[l]}; R{a_0} = 0
        r_z = [None] * (L + 1)
        for l in range(L + 1):
            rz = self.a[l] @ v[l]["w"].T + v[l]["b"]
            if r_a[l] is not None:
                rz += r_a[l] @ params[l]["w"].T
            r_z[l] = rz
            if acts[l] == "softmax":
                a = self.a[l + 1]
                r_a[l + 1] = a * (rz - (a * rz).sum(axis=1, keepdims=True))
            else:
                r_a[l + 1] = self.d1[l] * rz
        out, r_out = self.a[-1], r_a[-1]
        if net.config.cost == "cross-entropy":
            r_delta = r_out
        elif acts[L] == "softmax":
            g, r_g = self.g_out, r_out
            s = (g * out).sum(axis=1, keepdims=True)
            r_s = (r_g * out + g * r_out).sum(axis=1, keepdims=True)
            r_delta = r_out * (g - s) + out * (r_g - r_s)
        else:
            r_delta = self.d2[L] * r_z[L] * self.g_out + self.d1[L] * r_out
        hv: list[dict[str, np.ndarray]] = [{} for _ in params]
        for l in range(L, -1, -1):
            delta = self.delta[l]
            rw = r_delta.T @ self.a[l]
            if r_a[l] is not None:
                rw += delta.T @ r_a[l]
            hv[l] = {"w": rw, "b": r_delta.sum(axis=0)}
            if l > 0:
                r_g = r_delta @ params[l]["w"] + delta @ v[l]["w"]
                r_delta = self.d2[l - 1] * r_z[l - 1] * self.g[l - 1] + self.d1[l - 1] * r_g
        return hv


class HessianOperator:
    """v -> H v for the average cost of ``net`` over ``x``, ``y`` (pixels / 255, labels), in float64.

    The forward and backward passes at W are done once (in chunks) and kept while they fit in
    CACHE_BYTES; otherwise every product recomputes them chunk by chunk.
    """

    def __init__(self, net: Network, x, y, chunk: int = 5000):
        require_dense(net, "Hessian-vector products")
        self.net = net.astype(np.float64)
        xp = self.net.prepare_input(x)
        self.y = _labels(y, len(xp), self.net.sizes[-1])
        if len(self.y) == 0:
            raise ConfigError("The Hessian needs at least one example.")
        self.x, self.n, self.chunk = xp, len(xp), chunk
        self.size = self.net.n_params
        per_example = 8 * 6 * sum(self.net.sizes[1:])  # z, a, f', f'', delta, g of every layer
        self._passes = (
            [_Pass(self.net, xp[i : i + chunk], self.y[i : i + chunk]) for i in range(0, self.n, chunk)]
            if per_example * self.n <= CACHE_BYTES
            else None
        )
        self.products = 0  # how many H v were computed

    def _chunks(self):
        if self._passes is not None:
            yield from self._passes
        else:
            for i in range(0, self.n, self.chunk):
                yield _Pass(self.net, self.x[i : i + self.chunk], self.y[i : i + self.chunk])

    def __call__(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (self.size,):
            raise ConfigError(f"A Hessian-vector product needs a vector of {self.size} values; got shape {v.shape}.")
        vp = unflatten(v, self.net.params)
        total = np.zeros(self.size)
        for ch in self._chunks():
            total += flatten(ch.hv(self.net, vp))
        self.products += 1
        return total / self.n

    def cost(self) -> float:
        return sum(total_cost(self.net, ch.a[-1], ch.y) for ch in self._chunks()) / self.n


def hessian_vector_product(net: Network, x, y, v) -> np.ndarray:
    """H v, exactly (Pearlmutter's R-operator; see the module docstring), for the average cost
    over ``x``, ``y``; ``v`` flat (n_params,) or params-shaped. Returns a flat float64 vector."""
    op = HessianOperator(net, x, y)
    if not isinstance(v, np.ndarray):
        v = flatten([{k: np.asarray(a, np.float64) for k, a in p.items()} for p in v])
    return op(v)


def lanczos(op, size: int, k: int, rng: np.random.Generator, max_iter: int = 100, tol: float = 1e-6):
    """The k largest eigenvalues of the symmetric operator ``op`` (v -> H v) and their vectors.

    Lanczos with full reorthogonalisation: q_{j+1} beta_j = H q_j - alpha_j q_j - beta_{j-1} q_{j-1},
    orthogonalised again against every earlier q (twice, which keeps them orthogonal to
    rounding). The eigenvalues theta of the tridiagonal T = tridiag(beta, alpha, beta) approach
    H's extreme ones; the residual of a Ritz pair is ||H y - theta y|| = |beta_m s_{m,i}|. Stops
    when the k largest have residuals <= tol * max|theta|, or after ``max_iter`` products, or when
    the Krylov space is exhausted (then the values are exact). Returns (values, vectors, residuals),
    values descending, vectors (k, size) unit rows.
    """
    m_max = min(max_iter, size)
    Q = np.zeros((m_max + 1, size))
    alpha, beta = np.zeros(m_max), np.zeros(m_max)
    q = rng.standard_normal(size)
    Q[0] = q / np.linalg.norm(q)
    m = 0
    for j in range(m_max):
        w = op(Q[j])
        alpha[j] = Q[j] @ w
        for _ in range(2):  # full reorthogonalisation, twice
            w -= Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta[j] = np.linalg.norm(w)
        m = j + 1
        if j + 1 >= k:
            theta, s = np.linalg.eigh(np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1))
            top = np.argsort(theta)[::-1][:k]
            res = np.abs(beta[j] * s[-1, top])
            if (res <= tol * max(np.abs(theta).max(), 1e-300)).all():
                break
        if beta[j] <= 1e-12 * max(np.abs(alpha[: j + 1]).max(), 1e-300):
            break  # an invariant subspace: T's eigenvalues are exact eigenvalues of H
        Q[j + 1] = w / beta[j]
    T = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
    theta, s = np.linalg.eigh(T)
    top = np.argsort(theta)[::-1][: min(k, m)]
    return theta[top], s[:, top].T @ Q[:m], np.abs(beta[m - 1] * s[-1, top])


@dataclass(repr=False)
class Curvature:
    """The cost's largest curvatures and how they compare with the learning rate and with a
    typical direction.

    ``eigenvalues`` (k,): the Hessian's largest, descending; ``eigenvectors`` (k, n_params) the
    matching unit directions (flat, ordered like :meth:`Gradient.vector`); ``residuals`` (k,)
    ||H u - lambda u|| of each. ``random_curvatures`` (r,): v^T H v / v^T v for random Gaussian
    directions v (what a typical direction's curvature is). ``eta``: the learning rate to
    compare with (None if not given).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    random_curvatures: np.ndarray
    cost: float
    eta: float | None
    products: int  # Hessian-vector products computed
    n: int  # examples

    @property
    def eta_limit(self) -> float:
        """2 / lambda_max: gradient descent with a larger step diverges along the top direction
        (the distance to the valley's floor is multiplied by |1 - eta lambda| > 1 each step)."""
        top = float(self.eigenvalues[0])
        return 2.0 / top if top > 0 else float("inf")

    @property
    def stable(self) -> bool | None:
        """Whether ``eta`` < 2 / lambda_max (None without ``eta``)."""
        return None if self.eta is None else bool(self.eta < self.eta_limit)

    @property
    def unevenness(self) -> float:
        """lambda_max / median(random directions' curvature): how many times more the most
        curved direction matters than a typical one (the notes' "x matters more", 3 for
        3/2 x^2 + 1/2 y^2). NaN when the median is not positive."""
        med = float(np.median(self.random_curvatures))
        return float(self.eigenvalues[0]) / med if med > 0 else float("nan")

    def to_dict(self) -> dict:
        """The numbers as plain JSON values (not the eigenvectors; infinities and NaNs as null)."""
        def finite(v):
            return v if v is not None and np.isfinite(v) else None

        return {"n": self.n, "eigenvalues": self.eigenvalues.tolist(), "residuals": self.residuals.tolist(),
                "random_curvatures": self.random_curvatures.tolist(), "cost": self.cost, "eta": self.eta,
                "two_over_eta": 2 / self.eta if self.eta else None, "eta_limit": finite(self.eta_limit),
                "stable": self.stable, "unevenness": finite(self.unevenness), "products": self.products}

    def __repr__(self) -> str:
        return (
            f"Curvature(eigenvalues={np.round(self.eigenvalues, 6).tolist()}, eta_limit={self.eta_limit:.4g}, "
            f"eta={self.eta}, unevenness={self.unevenness:.4g}, {self.products} products over {self.n} examples)"
        )


def curvature(
    net: Network,
    x,
    y,
    k: int = 5,
    eta: float | None = None,
    rng: np.random.Generator | int = 0,
    n_random: int = 10,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> Curvature:
    """The ``k`` largest eigenvalues of the Hessian of the average cost over ``x``, ``y`` (Lanczos
    on exact H v, see :func:`lanczos`), the curvature of ``n_random`` random directions, and
    ``eta`` to set against 2 / lambda_max. Dense networks, every activation and cost; float64
    (the inputs are copied as float64, 6 KB per MNIST image, so a few thousand to 10,000
    examples is the useful range). Each product costs about two passes over the data; the
    video's network trained 2 epochs, over 10,000 images, k = 5: 39 products, 2.0 CPU s on this
    project's shared machine.
    """
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise ConfigError(f"The number of eigenvalues must be 1 to {MAX_K}; got {k}.")
    if eta is not None and not (np.isfinite(eta) and eta > 0):
        raise ConfigError(f"The learning rate eta must be a positive number; got {eta}.")
    if not 1 <= n_random <= 1000:
        raise ConfigError(f"The number of random directions must be 1 to 1000; got {n_random}.")
    op = HessianOperator(net, x, y)
    if k > op.size:
        raise ConfigError(f"The network has only {op.size} parameters; ask for at most that many eigenvalues.")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    values, vectors, residuals = lanczos(op, op.size, k, rng, max_iter, tol)
    random = np.empty(n_random)
    for i in range(n_random):
        v = rng.standard_normal(op.size)
        random[i] = v @ op(v) / (v @ v)
    return Curvature(values, vectors, residuals, random, op.cost(), eta, op.products, op.n)
