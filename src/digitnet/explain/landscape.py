"""The cost landscape of a network: the valley that gradient descent walks down.

The cost C(W) of the video's network lives in 13,002 dimensions. These functions look at it
through low-dimensional windows, as the research tools do (Li et al. 2018, "Visualizing the
Loss Landscape of Neural Nets"; Goodfellow et al. 2015, "Qualitatively characterizing neural
network optimization problems"):

* :func:`filter_normalized_direction`: a random direction D scaled neuron by neuron to the
  size of that neuron's weights, so that a step of 1 along it means the same for every neuron;
* :func:`trajectory_directions`: the two principal directions of the weights' path during
  training, and that path projected onto them;
* :func:`slice_directions`: either of those, chosen for a model (trajectory when it has
  snapshots, else random), with the path and the slice's natural extent;
* :func:`landscape`: the cost (and accuracy) on the plane W + alpha D1 + beta D2, and
  :func:`perturbed`: the network at one point of it;
* :func:`interpolate`: the cost along the straight line (1 - alpha) W_a + alpha W_b;
* :func:`smoothness`: the cost as one weight sweeps a range, for the sigmoid network and for
  the same network with steps (a = 1 if z >= 0 else 0) instead of sigmoids.

The Hessian's largest eigenvalues are in :mod:`digitnet.explain.curvature`.

Parameters, directions and snapshots are lists of dicts ``{"w", "b"}`` shaped like
``net.params`` (a dense layer's ``w`` is (n_out, n_in)); flattened, they are ordered
w0, b0, w1, b1, ... like :meth:`Gradient.vector`. Inputs ``x`` are pixels / 255, (n, n_in),
as for :meth:`Network.cost`. Everything returns numbers; nothing prints.

Speed (dense networks). Along a slice, the first layer's weighted inputs are linear in the
two coordinates:

    z^0(alpha, beta) = x (W^0 + alpha D1^0 + beta D2^0)^T + (b^0 + alpha d1^0 + beta d2^0)
                     = [x W^0T + b^0] + alpha [x D1^0T + d1^0] + beta [x D2^0T + d2^0]

so the three (n, 784) x (784, n_1) products are done once per chunk of examples, and each
grid point costs only the small layers after them. Grid points are evaluated in groups: the
group's first-layer z is one matrix product (G, 3) x (3, m n_1), and every later layer is one
batched product over the group, laid out neuron by neuron (G, n, m) so that biases,
activations, cost and argmax run along long rows. On a grid, a sigmoid first layer needs no
exp per point: e^-z = [e^-(Wx+b) e^-alpha(D1 x+d1)] e^-beta(D2 x+d2), two factors made once
per alpha and per beta (:func:`_first_layer_factors`). The chunks of examples are shared out
among :data:`THREADS` threads (2 on a 2-core machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from digitnet.errors import ConfigError
from digitnet.nn.activations import ACTIVATIONS
from digitnet.nn.costs import EPS
from digitnet.nn.network import Network, feedforward_batched, total_cost

MAX_GRID = 201  # points per axis of a slice: each point is a pass over the data
MAX_LINE = 1001  # points on an interpolation line or a weight sweep
MAX_COORD = 1e4  # largest |alpha|, |beta| (in units of the direction): beyond it the cost is saturated noise
MIN_SNAPSHOTS = 3  # two principal directions need three points

Params = list[dict[str, np.ndarray]]


# --- parameters as vectors --------------------------------------------------------------


def flatten(params: Params) -> np.ndarray:
    """All parameters in one flat vector, ordered w0, b0, w1, b1, ... (as :meth:`Gradient.vector`)."""
    return np.concatenate([p[k].ravel() for p in params for k in ("w", "b") if k in p])


def unflatten(vector: np.ndarray, like: Params) -> Params:
    """The inverse of :func:`flatten`: ``vector`` cut into arrays shaped like ``like``."""
    out: Params = []
    i = 0
    for p in like:
        d = {}
        for k in ("w", "b"):
            if k in p:
                d[k] = vector[i : i + p[k].size].reshape(p[k].shape).astype(p[k].dtype)
                i += p[k].size
        out.append(d)
    if i != len(vector):
        raise ConfigError(f"A vector of {len(vector)} values does not fit a network of {i} parameters.")
    return out


def _as_params(obj, net: Network, what: str) -> Params:
    """A direction or snapshot given as a Direction, a Network, a params list or a flat vector,
    as a params list in ``net``'s dtype, checked against ``net``'s shapes."""
    if isinstance(obj, Direction):
        obj = obj.params
    elif isinstance(obj, Network):
        obj = obj.params
    elif isinstance(obj, np.ndarray):
        if obj.ndim != 1:
            raise ConfigError(
                f"The {what} must be a flat vector or a list of layer parameters; got an array of shape {obj.shape}."
            )
        obj = unflatten(obj, net.params)
    dtype = net.params[0]["w"].dtype if net.params and "w" in net.params[0] else np.dtype(net.config.dtype)
    if len(obj) != len(net.params) or any(set(p) != set(q) for p, q in zip(obj, net.params)):
        raise ConfigError(f"The {what} does not have the network's layers ({net.config.describe()}).")
    out: Params = []
    for p, q in zip(obj, net.params):
        for k in p:
            if np.shape(p[k]) != q[k].shape:
                raise ConfigError(
                    f"The {what} does not fit the network ({net.config.describe()}): a parameter of shape "
                    f"{np.shape(p[k])} where the network has {q[k].shape}."
                )
        out.append({k: np.asarray(v, dtype=dtype) for k, v in p.items()})
    return out


def _combine(params: Params, terms: Sequence[tuple[float, Params]]) -> Params:
    """params + sum_i c_i D_i, layer by layer."""
    out = []
    for l, p in enumerate(params):
        d = {}
        for k, v in p.items():
            v = v.copy()
            for c, D in terms:
                v += v.dtype.type(c) * D[l][k]
            d[k] = v
        out.append(d)
    return out


def perturbed(net: Network, terms: Sequence[tuple[float, object]]) -> Network:
    """A copy of ``net`` with weights W + sum_i c_i D_i, for ``terms`` = [(c_i, D_i), ...]:
    the network at one point of a slice (what a click on the landscape shows)."""
    dirs = [(c, _as_params(D, net, "direction")) for c, D in terms]
    return Network(net.config, _combine(net.params, dirs), list(net.kinds))


# --- directions -------------------------------------------------------------------------


@dataclass(repr=False)
class Direction:
    """A direction in weight space, shaped like ``net.params``; ``kind`` says how it was made."""

    params: Params
    kind: str

    def vector(self) -> np.ndarray:
        return flatten(self.params)

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector()))

    def __repr__(self) -> str:
        n = sum(v.size for p in self.params for v in p.values())
        return f"Direction(kind={self.kind!r}, {n} values, norm={self.norm:.4g})"


def filter_normalized_direction(net: Network, rng: np.random.Generator | int, biases: str = "zero") -> Direction:
    """A random direction normalised neuron by neuron (Li et al. 2018's filter normalisation).

    Every component is drawn from N(0, 1); then, for each neuron j of each layer (row j of a
    dense ``w``, filter j of a conv ``w``), the row is rescaled to the norm of that neuron's
    own weights:

        D_j <- D_j / ||D_j|| * ||W_j||

    so that moving by alpha along D changes every neuron's weights by the same *fraction*
    alpha of their size (a network's cost does not change when a sigmoid-free layer is scaled,
    and neurons with large weights would otherwise hide the others).

    ``biases``: ``"zero"`` (default, as Li et al.'s code does for 1-D parameters) leaves the
    biases fixed; ``"neuron"`` treats each neuron's incoming weights and bias as one vector
    (w_j, b_j), normalised together to ||(W_j, b_j)||.
    """
    if biases not in ("zero", "neuron"):
        raise ConfigError(f"Unknown bias treatment {biases!r}; choose zero or neuron.")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    out: Params = []
    for p in net.params:
        if "w" not in p:
            out.append({})
            continue
        w, b = p["w"], p["b"]
        rows_w = w.reshape(len(w), -1).astype(np.float64)  # (neurons, fan-in)
        d = rng.standard_normal(rows_w.shape)
        if biases == "neuron":
            db = rng.standard_normal(len(w))
            target = np.sqrt((rows_w**2).sum(axis=1) + b.astype(np.float64) ** 2)
            size = np.sqrt((d**2).sum(axis=1) + db**2)
            scale = target / size
            out.append({"w": (d * scale[:, None]).reshape(w.shape).astype(w.dtype), "b": (db * scale).astype(b.dtype)})
        else:
            scale = np.linalg.norm(rows_w, axis=1) / np.linalg.norm(d, axis=1)
            out.append({"w": (d * scale[:, None]).reshape(w.shape).astype(w.dtype), "b": np.zeros_like(b)})
    return Direction(out, "random")


@dataclass(repr=False)
class Trajectory:
    """The two principal directions of a training trajectory and the path projected onto them.

    ``d1``, ``d2``: unit vectors (||D|| = 1, orthogonal), so the path's coordinates are distances
    in weight space. ``explained``: the share of the trajectory's variance each explains.
    ``path`` (n_snapshots, 2): [alpha, beta] of every snapshot, relative to the final weights
    (the last row is exactly [0, 0]).
    """

    d1: Direction
    d2: Direction
    explained: np.ndarray  # (2,)
    path: np.ndarray  # (n_snapshots, 2)

    def __repr__(self) -> str:
        return (
            f"Trajectory({len(self.path)} snapshots, explained={np.round(self.explained, 4).tolist()}, "
            f"start={np.round(self.path[0], 4).tolist()})"
        )


def trajectory_directions(snapshots: Sequence) -> Trajectory:
    """The two principal directions (PCA) of a list of parameter snapshots, initial first,
    final last (each a :class:`Network` or a params list), as in Li et al. 2018, section 7.

    With theta_i the snapshots flattened and theta_n the final one, the rows of

        M = [theta_0 - theta_n; ...; theta_n - theta_n]     (n_snapshots, n_params)

    are centred (their mean subtracted) and their singular value decomposition M_c = U S V^T
    gives the directions D1, D2 = the first two rows of V^T (unit length) and the explained
    variance ratios s_k^2 / sum_i s_i^2. Each snapshot's coordinates are its offset from the
    final weights projected onto them, alpha_i = (theta_i - theta_n) . D1 and beta_i likewise,
    so the final point is exactly [0, 0]. The signs are chosen so that the initial weights
    have alpha_0 <= 0 and beta_0 <= 0 (the path comes in from the lower left).
    """
    snaps = [s.params if isinstance(s, Network) else s for s in snapshots]
    if len(snaps) < MIN_SNAPSHOTS:
        raise ConfigError(
            f"Trajectory directions need at least {MIN_SNAPSHOTS} snapshots of the weights (the initial ones "
            f"and 2 epochs); got {len(snaps)}. Train for at least 2 epochs, or use random directions."
        )
    final = snaps[-1]
    vectors = []
    for i, s in enumerate(snaps):
        if len(s) != len(final) or any(
            set(p) != set(q) or any(np.shape(p[k]) != np.shape(q[k]) for k in p) for p, q in zip(s, final)
        ):
            raise ConfigError(
                f"Snapshot {i} does not have the shapes of the final weights; all snapshots must come from one network."
            )
        vectors.append(flatten(s).astype(np.float64))
    m = np.stack(vectors) - vectors[-1]  # (n_snapshots, n_params): offsets from the final weights
    centred = m - m.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((s**2).sum())
    if total == 0 or len(s) < 2 or s[1] == 0:
        raise ConfigError(
            "The training trajectory does not span two directions (the snapshots lie on one line or are equal); "
            "use random directions instead."
        )
    d = vt[:2]  # (2, n_params), unit rows
    path = m @ d.T  # (n_snapshots, 2)
    flip = np.where(path[0] > 0, -1.0, 1.0)  # initial weights at alpha, beta <= 0
    d = d * flip[:, None]
    path = path * flip
    path[-1] = 0.0  # the final offset is exactly the zero vector; clear -0.0
    explained = s[:2] ** 2 / total
    return Trajectory(
        Direction(unflatten(d[0], final), "trajectory"),
        Direction(unflatten(d[1], final), "trajectory"),
        explained,
        path,
    )


def ending_at(snapshots: Sequence, net: Network) -> list:
    """``snapshots`` (params lists or networks, initial first) ending at ``net``'s weights: ``net``'s
    params are appended when the last snapshot is not them (as after --keep-best, or mid-epoch)."""
    snaps = [s.params if isinstance(s, Network) else s for s in snapshots]
    last = snaps[-1] if snaps else None
    if last is None or len(last) != len(net.params) or any(
        set(p) != set(q) or any(not np.array_equal(p[k], q[k]) for k in q) for p, q in zip(last, net.params)
    ):
        snaps.append(net.params)
    return snaps


@dataclass(repr=False)
class SliceDirections:
    """The two directions of a slice and how they were chosen.

    ``kind``: ``"trajectory"`` or ``"random"``; ``path`` (n_snapshots, 2) and ``explained`` (2,)
    with trajectory directions, else None; ``extent`` (half-width along alpha, along beta): 1 for
    random directions, 1.25 times the path's reach for trajectory ones; ``note``: one sentence
    saying which directions these are and, when "auto" fell back to random ones, why.
    """

    d1: Direction
    d2: Direction
    kind: str
    path: np.ndarray | None
    explained: np.ndarray | None
    extent: tuple[float, float]
    note: str

    def __repr__(self) -> str:
        return f"SliceDirections(kind={self.kind!r}, extent={self.extent}, note={self.note!r})"


def slice_directions(net: Network, snapshots: Sequence = (), directions: str = "auto", seed: int = 0) -> SliceDirections:
    """The directions for a slice of ``net``: ``"trajectory"`` (the principal directions of
    ``snapshots``, the training path, which are made to end at ``net``'s weights), ``"random"``
    (two filter-normalised random directions from ``seed``), or ``"auto"`` (trajectory when the
    snapshots allow, else random, saying why). Same arguments, same directions: a page can ask
    for the slice and later for one point of it without keeping anything."""
    if directions not in ("auto", "trajectory", "random"):
        raise ConfigError(f"Unknown directions {directions!r}; choose auto, trajectory or random.")
    require_dense(net, "Landscape slices")
    why = None
    if directions != "random":
        snaps = list(snapshots)
        if not snaps:
            why = ("this model holds no snapshots of its training path (trained before they were kept, "
                   "too large to keep them, or not trained yet)")
            if directions == "trajectory":
                raise ConfigError(f"No trajectory directions: {why}. Use random directions, or train it for 2 or more epochs.")
        else:
            try:
                tr = trajectory_directions(ending_at(snaps, net))
            except ConfigError as e:
                if directions == "trajectory":
                    raise
                why = str(e).split(";")[0].rstrip(".")
                why = why[0].lower() + why[1:]
            else:
                reach = np.abs(tr.path).max(axis=0)
                reach = np.where(reach > 0, reach, reach.max())
                ra, rb = (float(v) for v in 1.25 * reach)
                return SliceDirections(
                    tr.d1, tr.d2, "trajectory", tr.path, tr.explained, (ra, rb),
                    f"The two principal directions of the training path ({len(tr.path)} snapshots); they "
                    f"explain {tr.explained[0]:.0%} and {tr.explained[1]:.0%} of its variance.",
                )
    rng = np.random.default_rng(seed)
    d1, d2 = filter_normalized_direction(net, rng), filter_normalized_direction(net, rng)
    note = f"Two random directions (seed {seed}), scaled neuron by neuron to the weights' size."
    if why:
        note += f" Not the training path's: {why}."
    return SliceDirections(d1, d2, "random", None, None, (1.0, 1.0), note)


# --- the slice ---------------------------------------------------------------------------


def check_coordinates(values, name: str, limit: int = MAX_GRID) -> np.ndarray:
    """``values`` as a float64 vector, checked: 1 to ``limit`` finite values, increasing, |v| <= MAX_COORD."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"The {name} must be numbers.") from None
    if v.ndim != 1 or len(v) == 0:
        raise ConfigError(f"The {name} must be a non-empty list of numbers; got shape {v.shape}.")
    if len(v) > limit:
        raise ConfigError(
            f"{len(v)} {name} is too many: at most {limit} (each one is a pass over the data). Use fewer steps."
        )
    if not np.isfinite(v).all():
        raise ConfigError(f"The {name} must be finite numbers.")
    if np.abs(v).max() > MAX_COORD:
        raise ConfigError(f"The {name} reach {np.abs(v).max():g}; keep them within +-{MAX_COORD:g}. Use a smaller range.")
    if len(v) > 1 and not (np.diff(v) > 0).all():
        raise ConfigError(f"The {name} must increase from first to last.")
    return v


def require_dense(net: Network, what: str) -> None:
    """Raise a clear error unless every layer of ``net`` is dense."""
    if any(k != "dense" for k in net.kinds):
        raise ConfigError(
            f"{what} need a dense network; this one has {', '.join(sorted(set(net.kinds) - {'dense'}))} layers "
            f"({net.config.describe()}). Use a network without --features (interpolate works for any network)."
        )


def _labels(y, n: int, k: int) -> np.ndarray:
    """Labels (n,) as int64, checked: one per example, each a class 0 to k - 1."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ConfigError(f"Expected {n} labels, one per example; got an array of shape {y.shape}.")
    if n and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k):
        raise ConfigError(f"The labels must be whole numbers 0 to {k - 1}, one of the network's {k} outputs.")
    return y.astype(np.int64, copy=False)


def _step(z: np.ndarray) -> np.ndarray:
    """The on/off neuron: 1 where z >= 0, else 0."""
    return (z >= 0).astype(z.dtype)


def _point_costs(cost: str, softmax: bool, a: np.ndarray, y: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The cost of every grid point, *summed* over examples: ``a`` (G, k, m) outputs (class by
    class), ``y`` (m,) labels, ``e`` (k, m) their one-hot columns -> (G,). The formulas of
    :mod:`digitnet.nn.costs`; ``a`` may be overwritten."""
    n_g = len(a)
    if cost == "quadratic":
        np.subtract(a, e, out=a)
        np.square(a, out=a)
        return 0.5 * a.reshape(n_g, -1).sum(axis=1, dtype=np.float64)
    if softmax:
        picked = a[:, y, np.arange(len(y))]  # (G, m): the probability of the right label
        return -np.log(np.clip(picked, EPS, None)).sum(axis=1, dtype=np.float64)
    ac = np.clip(a, EPS, 1 - EPS)  # logs of a clipped output, as CrossEntropyCost.fn
    return -(e * np.log(ac) + (1 - e) * np.log1p(-ac)).reshape(n_g, -1).sum(axis=1, dtype=np.float64)


def _right(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How many examples each grid point classifies right: ``a`` (G, k, m) outputs class by class,
    ``y`` (m,) labels -> (G,) counts of argmax == y. The argmax is a running maximum over the k
    rows (a strictly larger value moves it, so ties go to the first class, as np.argmax), which
    is several times faster than np.argmax along a short axis; a block with NaN outputs uses
    np.argmax itself (NaN counts as the largest there)."""
    best = a[:, 0].copy()  # (G, m)
    index = np.zeros(best.shape, dtype=np.int8 if len(a[0]) < 128 else np.int64)
    larger = np.empty(best.shape, dtype=bool)
    for j in range(1, a.shape[1]):
        np.greater(a[:, j], best, out=larger)
        np.copyto(index, j, where=larger)
        np.maximum(best, a[:, j], out=best)
    if np.isnan(best).any():
        index = a.argmax(axis=1)
    return np.count_nonzero(index == y, axis=1)


FACTOR_SHARE = 4  # factor the first layer when the distinct alphas and betas are at most 1/4 of the points
FACTOR_REACH = 700.0  # ... and every exponent stays within +-700 (e^709 is float64's largest)
FACTOR_BYTES = 64 << 20  # ... and the factors of a chunk of examples take at most 64 MiB (per thread)


def _first_layer_factors(s: np.ndarray, ua: np.ndarray, ub: np.ndarray):
    """The sigmoid first layer's e^-z on a grid, as products. With ``s`` = [-(W x + b); -(D1 x + d1);
    -(D2 x + d2)] (3, n_1 m), the negated weighted input at (alpha, beta) is u = s0 + alpha s1 +
    beta s2, so

        e^u = [e^s0 e^(alpha s1)] * e^(beta s2)

    and the two factors depend on alpha alone and on beta alone: (len(ua), n_1 m) and
    (len(ub), n_1 m) arrays, made in float64 with len(ua) + len(ub) passes of exp instead of
    one per grid point, and kept in the network's dtype when every exponent fits it (|u| < 87
    for float32). Each point then costs one multiplication per value: the same number as exp of
    the summed exponent, to rounding (a few units in the last place of the dtype). None when
    some exponent could pass +-FACTOR_REACH (float64 would overflow; the caller uses exp)."""
    reach = (np.abs(s[0]).max() + np.abs(ua).max() * np.abs(s[1]).max() + np.abs(ub).max() * np.abs(s[2]).max())
    if not reach <= FACTOR_REACH:
        return None
    s64 = s.astype(np.float64)
    p_a = np.exp(np.multiply.outer(ua.astype(np.float64), s64[1]))
    p_a *= np.exp(s64[0])
    p_b = np.exp(np.multiply.outer(ub.astype(np.float64), s64[2]))
    if reach <= np.log(np.finfo(s.dtype).max) - 1:  # every factor and product fits the dtype: multiply in it
        return p_a.astype(s.dtype), p_b.astype(s.dtype)
    return p_a, p_b


def _slice_sums(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    d1: Params,
    d2: Params,
    coords: np.ndarray,
    acts: list[Callable[[np.ndarray], np.ndarray]],
    examples: int,
    points: int,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed cost and number right at W + a D1 + b D2 for every row (a, b) of ``coords`` (N, 2).

    ``x`` is prepared (net.prepare_input), ``acts[l]`` is layer l's activation; where it is
    :func:`_sigmoid_of_negated`, the layer computes -z (negated weights and biases). Examples go
    in chunks of ``examples`` and points in groups of ``points`` (memory: points x examples x the
    widest layer). Every layer is laid out neuron by neuron, (G, n, m): a neuron's values for the
    chunk's examples lie side by side, so adding the biases, the activations, the cost and the
    argmax all run along long contiguous rows.

    ``threads`` > 1 shares the work out: whole chunks of examples to each thread (or, with fewer
    chunks than threads, slices of the grid points), each thread summing into arrays of its own,
    added up in thread order at the end; the assignment is fixed, so the sums do not depend on
    timing. NumPy releases the interpreter lock inside its loops and matrix products.
    """
    sign = [-1.0 if f is _sigmoid_of_negated else 1.0 for f in acts]
    params, dtype = net.params, x.dtype
    n_points = len(coords)
    cost, softmax = net.config.cost, net.config.output_activation == "softmax"
    coef = np.column_stack([np.ones(n_points), coords]).astype(dtype)  # (N, 3): [1, a, b]
    p0 = params[0]
    first_w = sign[0] * np.concatenate([p0["w"], d1[0]["w"], d2[0]["w"]])  # (3 n_1, n_in)
    first_b = sign[0] * np.concatenate([p0["b"], d1[0]["b"], d2[0]["b"]])  # (3 n_1,)
    n_1, k, last = len(p0["b"]), net.sizes[-1], len(params) - 1
    # each later layer's w and b as [W, D1, D2] stacks, times the sign: (3, n_out, n_in), (3, n_out)
    stacked = [(sign[l] * np.stack([params[l]["w"], d1[l]["w"], d2[l]["w"]]),
                sign[l] * np.stack([params[l]["b"], d1[l]["b"], d2[l]["b"]])) for l in range(len(params))]

    # On a grid of few distinct alphas and betas, a sigmoid first layer's e^-z is a product of
    # three exponentials (see _first_layer_factors): one multiplication per value instead of exp.
    ua, ia = np.unique(coef[:, 1], return_inverse=True)
    ub, ib = np.unique(coef[:, 2], return_inverse=True)
    factored = (acts[0] is _sigmoid_of_negated and FACTOR_SHARE * (len(ua) + len(ub)) <= n_points
                and (len(ua) + len(ub)) * n_1 * min(examples, len(x)) * 8 <= FACTOR_BYTES)
    # runs of consecutive points at one beta and consecutive alphas (a grid's rows): (first point,
    # length, first alpha's index, beta's index); each run is one broadcast multiplication
    runs = []
    if factored:
        new_run = np.ones(n_points, dtype=bool)
        new_run[1:] = (ib[1:] != ib[:-1]) | (ia[1:] != ia[:-1] + 1)
        new_run[::points] = True  # runs stay inside groups of points
        firsts = np.flatnonzero(new_run)
        lengths = np.diff(np.append(firsts, n_points))
        runs = [(int(f), int(n), int(ia[f]), int(ib[f])) for f, n in zip(firsts, lengths)]

    def block(xc, yc, g0, g1, sums, right):
        m = len(xc)
        e = np.zeros((k, m), dtype=dtype)
        e[yc, np.arange(m)] = 1
        s = first_w @ xc.T  # (3 n_1, m): W x, D1 x, D2 x, neuron by neuron
        s += first_b[:, None]
        s = s.reshape(3, n_1 * m)
        factors = _first_layer_factors(s, ua, ub) if factored else None
        at = next((r for r, (f, *_) in enumerate(runs) if f >= g0), len(runs))  # this block's first run
        for g in range(g0, g1, points):
            c = coef[g : min(g + points, g1)]  # (G, 3)
            n_g = len(c)
            if factors is not None:
                p_a, p_b = factors
                u = np.empty((n_g, n_1 * m), dtype=dtype)
                with np.errstate(over="ignore"):  # e^-z past float32's range is inf: sigma = 1 / inf = 0
                    while at < len(runs) and runs[at][0] < g + n_g:
                        f, n, j, i = runs[at]
                        np.multiply(p_a[j : j + n], p_b[i], out=u[f - g : f - g + n])
                        at += 1
                    u += 1
                np.reciprocal(u, out=u)
                a = u.reshape(n_g, n_1, m)
            else:
                z = c @ s  # z^0 = [W x + b] + a [D1 x + d1] + b [D2 x + d2] (times sign[0]), (G, n_1 m)
                a = acts[0](z.reshape(n_g * n_1, m)).reshape(n_g, n_1, m)
            for l in range(1, len(params)):
                sw, sb = stacked[l]
                w = np.tensordot(c, sw, axes=1)  # (G, n_out, n_in): each point's own w = W + a D1 + b D2
                z = np.matmul(w, a)  # (G, n_out, m)
                z += (c @ sb)[:, :, None]
                n_out = z.shape[1]
                if l == last and softmax:  # softmax couples a column's outputs: rows are examples there
                    a = np.ascontiguousarray(acts[l](z.transpose(0, 2, 1).reshape(n_g * m, n_out))
                                             .reshape(n_g, m, n_out).transpose(0, 2, 1))
                else:
                    a = acts[l](z.reshape(n_g * n_out, m)).reshape(n_g, n_out, m)
            right[g : g + n_g] += _right(a, yc)
            sums[g : g + n_g] += _point_costs(cost, softmax, a, yc, e)

    starts = list(range(0, len(x), examples))
    groups = -(-n_points // points)
    threads = max(1, min(threads, max(len(starts), groups)))
    if len(starts) >= threads:  # whole chunks of examples to each thread
        work = [[(start, 0, n_points) for start in starts[t::threads]] for t in range(threads)]
    else:  # fewer chunks than threads: the groups of grid points cut into contiguous runs per thread
        cuts = [min(n_points, points * (groups * t // threads)) for t in range(threads + 1)]
        work = [[(start, cuts[t], cuts[t + 1]) for start in starts] for t in range(threads)]

    def run(items):
        sums, right = np.zeros(n_points), np.zeros(n_points, dtype=np.int64)
        for start, g0, g1 in items:
            block(x[start : start + examples], y[start : start + examples], g0, g1, sums, right)
        return sums, right

    if threads == 1:
        return run(work[0])
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="digitnet-slice") as pool:
        parts = list(pool.map(run, work))
    return sum(p[0] for p in parts[1:]) + parts[0][0], sum(p[1] for p in parts[1:]) + parts[0][1]


def _sigmoid_of_negated(u: np.ndarray) -> np.ndarray:
    """sigma(z) = 1 / (1 + e^-z) from u = -z, in place: the slice negates the layer's weights and
    biases instead of z, which leaves three cheap passes (exp, + 1, 1 / .) where the tanh form
    takes four with a slower tanh. e^u overflows to inf for u > 88 (float32), and 1 / inf = 0 is
    the right limit, so the warning is silenced."""
    with np.errstate(over="ignore"):
        np.exp(u, out=u)
        u += 1
        np.reciprocal(u, out=u)
    return u


ROWS = 1 << 15  # rows (grid points x examples) per block: the layers' arrays stay in the cache


THREADS = min(2, os.cpu_count() or 1)  # threads a slice uses (the target machine has 2 cores)


def _evaluate(net, x, y, d1, d2, coords, acts=None, threads=None):
    """:func:`_slice_sums` with the default activations, block sizes and threads for ``net``."""
    acts = acts or [_sigmoid_of_negated if a == "sigmoid" else ACTIVATIONS[a] for a in net.activation_names]
    widest = max(net.sizes[1:])
    rows = max(1024, ROWS * 16 // widest)  # examples x points per block, for layers about 16 wide
    examples = min(len(x), 1024)
    return _slice_sums(net, x, y, d1, d2, coords, acts, examples, max(1, rows // examples),
                       THREADS if threads is None else threads)


@dataclass(repr=False)
class Landscape:
    """The cost on the plane W + alpha D1 + beta D2 of weight space.

    ``cost[i, j]`` (rows by beta) is the average cost at alpha = ``alphas[j]``,
    beta = ``betas[i]``; ``accuracy`` likewise, the fraction of the examples classified right.
    ``center_cost``, ``center_accuracy``: the network's own (alpha = beta = 0).
    """

    alphas: np.ndarray  # (n_alpha,)
    betas: np.ndarray  # (n_beta,)
    cost: np.ndarray  # (n_beta, n_alpha)
    accuracy: np.ndarray  # (n_beta, n_alpha)
    center_cost: float
    center_accuracy: float
    n: int  # examples evaluated

    @property
    def lowest(self) -> tuple[float, float, float]:
        """(alpha, beta, cost) of the grid's lowest point."""
        i, j = np.unravel_index(np.argmin(self.cost), self.cost.shape)
        return float(self.alphas[j]), float(self.betas[i]), float(self.cost[i, j])

    def to_dict(self) -> dict:
        """The numbers as plain JSON values (``cost`` and ``accuracy`` rows by beta)."""
        a, b, c = self.lowest
        return {"n": self.n, "alphas": self.alphas.tolist(), "betas": self.betas.tolist(), "cost": self.cost.tolist(),
                "accuracy": self.accuracy.tolist(), "center_cost": self.center_cost,
                "center_accuracy": self.center_accuracy, "lowest": {"alpha": a, "beta": b, "cost": c}}

    def __repr__(self) -> str:
        return (
            f"Landscape({len(self.betas)}x{len(self.alphas)} grid over {self.n} examples, "
            f"center_cost={self.center_cost:.6g}, cost {self.cost.min():.4g}..{self.cost.max():.4g})"
        )


def _center(net: Network, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    out = feedforward_batched(net, x)
    return total_cost(net, out, y) / len(y), float((out.argmax(axis=1) == y).mean())


def landscape(net: Network, x, y, d1, d2, alphas, betas) -> Landscape:
    """The average cost and the accuracy over ``x`` (n, n_in) pixels / 255, ``y`` (n,) at every
    point W + alpha D1 + beta D2 of a grid (Li et al. 2018's 2-D plot, centred on ``net``).

    ``d1``, ``d2``: :class:`Direction`, params lists or flat vectors. ``alphas``, ``betas``: 1 to
    201 increasing coordinates each. Works for any dense network (every activation and cost);
    computed in the network's dtype (``net.astype("float64")`` for checks). The first layer's
    big products are done once (see the module docstring); ``benchmarks/landscape.py``
    measures the gain over evaluating the grid point by point.
    """
    require_dense(net, "Landscape slices")
    alphas, betas = check_coordinates(alphas, "alphas"), check_coordinates(betas, "betas")
    xp = net.prepare_input(x)
    y = _labels(y, len(xp), net.sizes[-1])
    if len(y) == 0:
        raise ConfigError("The landscape needs at least one example.")
    p1, p2 = _as_params(d1, net, "first direction"), _as_params(d2, net, "second direction")
    aa, bb = np.meshgrid(alphas, betas)  # (n_beta, n_alpha): rows by beta
    coords = np.column_stack([aa.ravel(), bb.ravel()])
    sums, right = _evaluate(net, xp, y, p1, p2, coords)
    center_cost, center_accuracy = _center(net, xp, y)
    return Landscape(
        alphas,
        betas,
        (sums / len(y)).reshape(aa.shape),
        (right / len(y)).reshape(aa.shape),
        center_cost,
        center_accuracy,
        len(y),
    )


# --- the straight line between two networks -----------------------------------------------


@dataclass(repr=False)
class Interpolation:
    """The cost and accuracy at (1 - alpha) W_a + alpha W_b for each alpha (Goodfellow et al. 2015)."""

    alphas: np.ndarray  # (m,)
    cost: np.ndarray  # (m,)
    accuracy: np.ndarray  # (m,)

    @property
    def barrier(self) -> float:
        """How far the cost rises above the straight line between the endpoints' costs, at its
        worst: max over 0 <= alpha <= 1 of C(alpha) - [(1 - alpha) C(0) + alpha C(1)], with C(0),
        C(1) read at the alphas nearest 0 and 1 (0 when the path never rises above the chord)."""
        inside = (self.alphas >= 0) & (self.alphas <= 1)
        if not inside.any():
            return float("nan")
        c0 = self.cost[np.argmin(np.abs(self.alphas))]
        c1 = self.cost[np.argmin(np.abs(self.alphas - 1))]
        al = self.alphas[inside]
        return float(max(0.0, (self.cost[inside] - ((1 - al) * c0 + al * c1)).max()))

    def to_dict(self) -> dict:
        """The numbers as plain JSON values (``barrier`` null when 0..1 is not swept)."""
        barrier = self.barrier
        return {"alphas": self.alphas.tolist(), "cost": self.cost.tolist(), "accuracy": self.accuracy.tolist(),
                "barrier": barrier if np.isfinite(barrier) else None}

    def __repr__(self) -> str:
        return (
            f"Interpolation({len(self.alphas)} points, cost {self.cost.min():.4g}..{self.cost.max():.4g}, "
            f"barrier={self.barrier:.4g})"
        )


def _same_network(net_a: Network, net_b: Network) -> None:
    a, b = net_a.config.to_dict(), net_b.config.to_dict()
    a.pop("dtype", None)
    b.pop("dtype", None)
    if a != b:
        raise ConfigError(
            f"The two networks differ ({net_a.config.describe()}, {net_a.config.activation}/{net_a.config.cost} and "
            f"{net_b.config.describe()}, {net_b.config.activation}/{net_b.config.cost}); interpolation needs two "
            "networks of the same layers, activations, cost and input preprocessing."
        )


def interpolate(net_a: Network, net_b: Network, x, y, alphas) -> Interpolation:
    """The average cost and accuracy over ``x``, ``y`` along the straight line from ``net_a``
    (alpha = 0) to ``net_b`` (alpha = 1):

        W(alpha) = (1 - alpha) W_a + alpha W_b = W_a + alpha (W_b - W_a)

    (initial -> trained weights: is the way down one smooth valley? two trained networks: is
    there a barrier between their minima?). Up to 1001 increasing alphas, e.g. -0.5..1.5.
    Dense networks use the slice method of :func:`landscape` (one direction, W_b - W_a); other
    networks are evaluated point by point. Computed in ``net_a``'s dtype.
    """
    _same_network(net_a, net_b)
    alphas = check_coordinates(alphas, "alphas", MAX_LINE)
    xp = net_a.prepare_input(x)
    y = _labels(y, len(xp), net_a.sizes[-1])
    if len(y) == 0:
        raise ConfigError("Interpolation needs at least one example.")
    dtype = xp.dtype
    diff = [{k: v.astype(dtype) - net_a.params[l][k] for k, v in p.items()} for l, p in enumerate(net_b.params)]
    if all(k == "dense" for k in net_a.kinds):
        zero = [{k: np.zeros_like(v) for k, v in p.items()} for p in diff]
        coords = np.column_stack([alphas, np.zeros_like(alphas)])
        sums, right = _evaluate(net_a, xp, y, diff, zero, coords)
        return Interpolation(alphas, sums / len(y), right / len(y))
    cost, acc = np.empty(len(alphas)), np.empty(len(alphas))
    for i, al in enumerate(alphas):
        out = feedforward_batched(Network(net_a.config, _combine(net_a.params, [(al, diff)]), list(net_a.kinds)), xp)
        cost[i] = total_cost(net_a, out, y) / len(y)
        acc[i] = (out.argmax(axis=1) == y).mean()
    return Interpolation(alphas, cost, acc)


# --- sigmoids against steps ---------------------------------------------------------------

FLAT_H = 1e-3  # the central difference's half-step, as a fraction of the sweep's spacing
FLAT_RTOL = 1e-13  # |C(v + h) - C(v - h)| <= FLAT_RTOL |C(v)|: no change beyond float64 rounding


@dataclass(repr=False)
class Smoothness:
    """The cost as one weight ``w[layer][i, j]`` sweeps ``weight``, for the sigmoid network and
    for the same network with steps instead of sigmoids.

    ``*_slope`` is the central difference (C(v + h) - C(v - h)) / 2h at each swept value, with
    h = FLAT_H times the sweep's spacing; the sweep is *flat* at v where
    |C(v + h) - C(v - h)| <= FLAT_RTOL |C(v)| (all in float64: the cost did not change at all
    beyond rounding). ``*_flat_fraction`` is the fraction of swept values that are flat: the
    step network's cost is flat almost everywhere (no example's output changes) and jumps in
    between, so its gradient says nothing; the sigmoid network's is nowhere flat.
    """

    layer: int
    i: int
    j: int
    original: float  # the weight's trained value
    h: float
    weight: np.ndarray  # (m,) the values swept
    sigmoid_cost: np.ndarray  # (m,)
    step_cost: np.ndarray  # (m,)
    sigmoid_slope: np.ndarray  # (m,)
    step_slope: np.ndarray  # (m,)
    sigmoid_flat_fraction: float
    step_flat_fraction: float

    def to_dict(self) -> dict:
        """The numbers as plain JSON values."""
        return {"layer": self.layer, "i": self.i, "j": self.j, "original": self.original, "h": self.h,
                "weight": self.weight.tolist(), "sigmoid_cost": self.sigmoid_cost.tolist(),
                "step_cost": self.step_cost.tolist(), "sigmoid_flat_fraction": self.sigmoid_flat_fraction,
                "step_flat_fraction": self.step_flat_fraction}

    def __repr__(self) -> str:
        return (
            f"Smoothness(w[{self.layer}][{self.i}, {self.j}] over {len(self.weight)} values, "
            f"sigmoid_flat_fraction={self.sigmoid_flat_fraction:.3g}, step_flat_fraction={self.step_flat_fraction:.3g})"
        )


def steepest_weight(net: Network, x, y, layer: int) -> tuple[int, int]:
    """(i, j) of the weight of layer ``layer`` with the largest |dC/dw| over ``x``, ``y``: a good
    weight to sweep (the cost visibly depends on it)."""
    _check_layer(net, layer)
    g = net.gradient(x, y).layers[layer]["w"]
    i, j = np.unravel_index(np.argmax(np.abs(g)), g.shape)
    return int(i), int(j)


def _check_layer(net: Network, layer: int) -> None:
    n_layers = len(net.params)
    if not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers:
        raise ConfigError(
            f"Layer {layer} does not exist: the network has {n_layers} layers with weights, 0 to {n_layers - 1}."
        )


def smoothness(net: Network, x, y, layer: int, i: int, j: int, values) -> Smoothness:
    """Sweep the weight w[layer][i, j] (from neuron j of the layer below to neuron i of layer
    ``layer``) through ``values`` (increasing, up to 1001) and record the average cost of the
    network, and of the same network with every sigmoid replaced by the step
    a = 1 if z >= 0 else 0, together with each cost's central-difference slope (see
    :class:`Smoothness`). Sigmoid dense networks only; computed in float64. Each network is
    evaluated at 3 points per swept value (v - h, v, v + h), through the slice method.
    """
    require_dense(net, "Sigmoid-against-step sweeps")
    if net.config.activation != "sigmoid":
        raise ConfigError(
            f"The sigmoid-against-step sweep needs a network of sigmoid neurons; this one's hidden layers are "
            f"{net.config.activation}. Use a model trained with --activation sigmoid."
        )
    _check_layer(net, layer)
    shape = net.params[layer]["w"].shape
    if not (0 <= i < shape[0] and 0 <= j < shape[1]):
        raise ConfigError(
            f"Weight ({i}, {j}) does not exist in layer {layer}, whose w is {shape[0]}x{shape[1]} "
            f"(neuron i = 0..{shape[0] - 1}, input j = 0..{shape[1] - 1})."
        )
    values = check_coordinates(values, "swept weight values", MAX_LINE)
    net64 = net.astype(np.float64)
    xp = net64.prepare_input(x)
    y = _labels(y, len(xp), net64.sizes[-1])
    if len(y) == 0:
        raise ConfigError("The sweep needs at least one example.")
    original = float(net64.params[layer]["w"][i, j])
    spacing = float(np.diff(values).min()) if len(values) > 1 else max(1.0, abs(original))
    h = FLAT_H * spacing
    d1 = [{k: np.zeros_like(v) for k, v in p.items()} for p in net64.params]
    d1[layer]["w"][i, j] = 1.0  # the sweep is the slice along one weight's unit direction
    zero = [{k: np.zeros_like(v) for k, v in p.items()} for p in d1]
    offsets = values - original
    coords = np.column_stack([np.concatenate([offsets, offsets - h, offsets + h]), np.zeros(3 * len(values))])
    m = len(values)
    results = {}
    for name, acts in (
        ("sigmoid", [ACTIVATIONS[a] for a in net64.activation_names]),
        ("step", [_step if a == "sigmoid" else ACTIVATIONS[a] for a in net64.activation_names]),
    ):
        sums, _ = _evaluate(net64, xp, y, d1, zero, coords, acts)
        c = sums / len(y)
        mid, lo, hi = c[:m], c[m : 2 * m], c[2 * m :]
        flat = np.abs(hi - lo) <= FLAT_RTOL * np.abs(mid)
        results[name] = (mid, (hi - lo) / (2 * h), float(flat.mean()))
    return Smoothness(
        layer, i, j, original, h, values,
        results["sigmoid"][0], results["step"][0], results["sigmoid"][1], results["step"][1],
        results["sigmoid"][2], results["step"][2],
    )
