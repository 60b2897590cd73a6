"""The cost landscape (explain/landscape.py) and the Hessian's curvature (explain/curvature.py).

Every number is checked against an independent evaluation: the perturbed network built by
hand and asked for ``net.cost``, finite differences of ``net.gradient``, and ``eigvalsh`` of a
dense Hessian. float64 wherever a value is compared.
"""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.errors import ConfigError, DigitnetError
from digitnet.explain.curvature import HessianOperator, curvature, hessian_vector_product
from digitnet.explain.landscape import (
    MAX_GRID,
    Direction,
    filter_normalized_direction,
    flatten,
    interpolate,
    landscape,
    smoothness,
    trajectory_directions,
    unflatten,
)
from digitnet.nn.network import Network

# (activation, output activation, cost): every pairing the config allows, one of each kind
KINDS = [
    ("sigmoid", "sigmoid", "quadratic"),
    ("relu", "softmax", "cross-entropy"),
    ("tanh", "identity", "quadratic"),
    ("sigmoid", "sigmoid", "cross-entropy"),
    ("tanh", "softmax", "quadratic"),
    ("relu", "tanh", "quadratic"),
]
CONV = dict(features=("conv:2:3", "pool:2"), dtype="float64")


def dense(sizes=(12, 6, 5, 4), kind=KINDS[0], seed=0, dtype="float64"):
    act, out, cost = kind
    return Network.create(sizes, seed=seed, activation=act, output_activation=out, cost=cost, dtype=dtype)


def data(n, n_in=12, k=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in)), rng.integers(0, k, n)


def by_hand(net, terms):
    """The network at W + sum c D, built without the module under test."""
    params = [{k: v + sum(c * d.params[l][k] for c, d in terms) for k, v in p.items()} for l, p in enumerate(net.params)]
    return Network(net.config, params)


# --- directions ---------------------------------------------------------------------------


def test_filter_normalized_rows_have_the_neurons_norms():
    net = dense()
    d = filter_normalized_direction(net, np.random.default_rng(3))
    for p, q in zip(net.params, d.params):
        np.testing.assert_allclose(np.linalg.norm(q["w"], axis=1), np.linalg.norm(p["w"], axis=1), rtol=1e-12)
        assert not q["b"].any()  # biases stay fixed by default
    joint = filter_normalized_direction(net, 3, biases="neuron")
    for p, q in zip(net.params, joint.params):
        np.testing.assert_allclose(
            np.hypot(np.linalg.norm(q["w"], axis=1), q["b"]), np.hypot(np.linalg.norm(p["w"], axis=1), p["b"]), rtol=1e-12
        )
    again = filter_normalized_direction(net, np.random.default_rng(3))
    assert np.array_equal(again.vector(), d.vector())  # same seed, same direction
    conv = Network.create((64, 5), seed=0, **CONV)
    filters = filter_normalized_direction(conv, 0).params[0]["w"]
    np.testing.assert_allclose(
        np.linalg.norm(filters.reshape(2, -1), axis=1), np.linalg.norm(conv.params[0]["w"].reshape(2, -1), axis=1), rtol=1e-12
    )


@pytest.mark.parametrize("mirror", [1.0, -1.0])  # the same path mirrored: the SVD's signs come out the other way
def test_trajectory_of_a_planar_path_is_recovered(mirror):
    net = dense()
    rng = np.random.default_rng(5)
    final = flatten(net.params)
    u, v = np.linalg.qr(rng.standard_normal((len(final), 2)))[0].T
    st = mirror * np.array([[-5.0, -1.0], [-3.0, 1.0], [-2.0, 0.5], [-1.0, -0.2], [0.0, 0.0]])
    snaps = [unflatten(final + s * u + t * v, net.params) for s, t in st]
    snaps[-1] = net  # a Network is accepted too
    tr = trajectory_directions(snaps)
    assert np.array_equal(tr.path[-1], [0.0, 0.0]) and not np.signbit(tr.path[-1]).any()  # no -0.0 in the JSON
    assert tr.path[0, 0] <= 0 and tr.path[0, 1] <= 0
    np.testing.assert_allclose(tr.explained.sum(), 1.0, rtol=1e-10)
    assert tr.explained[0] >= tr.explained[1] > 0
    d1, d2 = tr.d1.vector(), tr.d2.vector()
    np.testing.assert_allclose([d1 @ d1, d2 @ d2, d1 @ d2], [1, 1, 0], atol=1e-12)
    # the plane holds the whole path, so the projection keeps every distance
    np.testing.assert_allclose(np.linalg.norm(tr.path, axis=1), np.linalg.norm(st, axis=1), rtol=1e-10)


def test_trajectory_needs_three_snapshots_of_one_network():
    net = dense()
    with pytest.raises(ConfigError, match="at least 3 snapshots.*random directions"):
        trajectory_directions([net, net])
    with pytest.raises(ConfigError, match="Snapshot 0 does not have the shapes"):
        trajectory_directions([dense((12, 3, 4)), net, net])
    with pytest.raises(ConfigError, match="does not span two directions"):
        trajectory_directions([net, net, net])


# --- the slice ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS[:4])
def test_grid_equals_the_cost_of_the_perturbed_network(kind):
    net = dense(kind=kind)
    x, y = data(2500)  # more than one chunk of examples (1024)
    d1 = filter_normalized_direction(net, 1, biases="neuron")
    d2 = filter_normalized_direction(net, 2, biases="neuron")
    alphas, betas = np.linspace(-1, 1, 5), np.array([-0.5, 0.0, 0.25, 2.0])
    ls = landscape(net, x, y, d1, d2, alphas, betas)
    assert ls.cost.shape == ls.accuracy.shape == (4, 5)  # rows by beta
    for i, b in enumerate(betas):
        for j, a in enumerate(alphas):
            other = by_hand(net, [(a, d1), (b, d2)])
            np.testing.assert_allclose(ls.cost[i, j], other.cost(x, y), rtol=1e-12)
            assert ls.accuracy[i, j] == (other.predict(x) == y).mean()
    assert ls.center_cost == net.cost(x, y)
    np.testing.assert_allclose(ls.cost[1, 2], ls.center_cost, rtol=1e-13)  # alpha = beta = 0


@pytest.mark.parametrize("kind", KINDS[:2])  # a sigmoid first layer (factored, see below) and a relu one
@pytest.mark.parametrize("n", [300, 2500])  # one chunk of examples (the threads share the points), three chunks
def test_the_threads_share_the_work_without_changing_the_numbers(n, kind, monkeypatch):
    import digitnet.explain.landscape as lsm

    net = dense(kind=kind)
    x, y = data(n)
    d1, d2 = filter_normalized_direction(net, 1), filter_normalized_direction(net, 2)
    grid = np.linspace(-1.5, 1.5, 41)  # 1681 points: several groups per thread
    results = {}
    for threads in (1, 2, 3):
        monkeypatch.setattr(lsm, "THREADS", threads)
        results[threads] = landscape(net, x, y, d1, d2, grid, grid)
    for threads in (2, 3):
        np.testing.assert_allclose(results[threads].cost, results[1].cost, rtol=1e-13)
        np.testing.assert_array_equal(results[threads].accuracy, results[1].accuracy)
    for i, j in ((0, 0), (7, 33), (40, 40)):  # the first and last point, one in between
        other = by_hand(net, [(grid[j], d1), (grid[i], d2)])
        np.testing.assert_allclose(results[2].cost[i, j], other.cost(x, y), rtol=1e-12)
        assert results[2].accuracy[i, j] == (other.predict(x) == y).mean()


def test_a_sigmoid_first_layer_on_a_grid_is_a_product_of_exponentials(monkeypatch):
    import digitnet.explain.landscape as lsm

    net = dense(kind=KINDS[0])
    x, y = data(300)
    d1, d2 = filter_normalized_direction(net, 1), filter_normalized_direction(net, 2)
    made = []
    real = lsm._first_layer_factors
    monkeypatch.setattr(lsm, "_first_layer_factors", lambda *args: made.append(real(*args)) or made[-1])
    for grid, factored in ((np.linspace(-1, 1, 9), True), (np.linspace(-3000, 3000, 9), False)):
        made.clear()  # 81 points, 18 distinct coordinates: factored, unless an exponent may pass +-700
        ls = landscape(net, x, y, d1, d2, grid, grid)
        assert made and all((f is not None) == factored for f in made)
        for i, j in ((0, 0), (2, 7), (4, 4), (8, 3)):
            other = by_hand(net, [(grid[j], d1), (grid[i], d2)])
            np.testing.assert_allclose(ls.cost[i, j], other.cost(x, y), rtol=1e-12)
            if factored:  # far out the sigmoids saturate to exactly 0 or 1, and argmax ties go either way
                assert ls.accuracy[i, j] == (other.predict(x) == y).mean()
    made.clear()
    few = landscape(net, x, y, d1, d2, [-1, 0, 1], [0, 1])  # 6 points, 5 coordinates: exp at each point
    assert made == [] and few.cost[0, 1] == pytest.approx(net.cost(x, y), rel=1e-13)


def test_the_right_answers_are_counted_as_argmax_counts_them():
    from digitnet.explain.landscape import _right

    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, size=(5, 10, 400)).astype(np.float32)  # many ties: the first largest class counts
    y = rng.integers(0, 10, 400)
    np.testing.assert_array_equal(_right(a, y), (a.argmax(axis=1) == y).sum(axis=1))
    a[2, 4, 7] = np.nan  # argmax takes a NaN as the largest
    np.testing.assert_array_equal(_right(a, y), (a.argmax(axis=1) == y).sum(axis=1))


def test_a_big_grid_over_the_videos_network_in_float32(mnist):
    net = Network.create((784, 16, 16, 10), seed=0)
    x, y = mnist.train.x[:1000], mnist.train.y[:1000]
    d1, d2 = filter_normalized_direction(net, 1), filter_normalized_direction(net, 2)
    grid = np.linspace(-1, 1, 11)
    ls = landscape(net, x, y, d1, d2, grid, grid)
    ref = landscape(net.astype("float64"), x, y, d1, d2, grid, grid)
    np.testing.assert_allclose(ls.cost, ref.cost, rtol=1e-5)  # float32 rounding only
    assert (ls.accuracy != ref.accuracy).mean() < 0.05  # ties at the argmax may differ
    np.testing.assert_allclose(ls.cost[5, 5], net.cost(x, y), rtol=1e-5)
    i, j = 3, 8
    np.testing.assert_allclose(
        ref.cost[i, j], by_hand(net.astype("float64"), [(grid[j], d1), (grid[i], d2)]).cost(x, y), rtol=1e-12
    )


def test_landscape_bad_input():
    net = dense()
    x, y = data(10)
    d = filter_normalized_direction(net, 0)
    ok = np.linspace(-1, 1, 3)
    with pytest.raises(ConfigError, match="202 alphas is too many: at most 201"):
        landscape(net, x, y, d, d, np.linspace(-1, 1, MAX_GRID + 1), ok)
    with pytest.raises(ConfigError, match="betas must increase"):
        landscape(net, x, y, d, d, ok, ok[::-1])
    with pytest.raises(ConfigError, match="alphas must be finite"):
        landscape(net, x, y, d, d, [0, np.nan], ok)
    with pytest.raises(ConfigError, match="betas reach 1e\\+06"):
        landscape(net, x, y, d, d, ok, [0, 1e6])
    with pytest.raises(ConfigError, match="non-empty"):
        landscape(net, x, y, d, d, [], ok)
    with pytest.raises(ConfigError, match="labels must be whole numbers 0 to 3"):
        landscape(net, x, y + 4, d, d, ok, ok)
    with pytest.raises(ConfigError, match="second direction does not fit"):
        landscape(net, x, y, d, filter_normalized_direction(dense((12, 7, 5, 4)), 0), ok, ok)
    conv = Network.create((64, 5), seed=0, **CONV)
    dc = filter_normalized_direction(conv, 0)
    with pytest.raises(DigitnetError, match="^Landscape slices need a dense network; this one has conv, flatten, pool layers"):
        landscape(conv, *data(4, 64, 5), dc, dc, ok, ok)


# --- interpolation ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS[:2])
def test_interpolation_ends_at_the_two_networks(kind):
    a, b = dense(kind=kind, seed=0), dense(kind=kind, seed=1)
    x, y = data(300)
    line = interpolate(a, b, x, y, [-0.5, 0.0, 0.3, 1.0, 1.5])
    np.testing.assert_allclose(line.cost[[1, 3]], [a.cost(x, y), b.cost(x, y)], rtol=1e-12)
    mid = Network(a.config, [{k: 0.7 * p[k] + 0.3 * q[k] for k in p} for p, q in zip(a.params, b.params)])
    np.testing.assert_allclose(line.cost[2], mid.cost(x, y), rtol=1e-12)
    assert line.accuracy[3] == (b.predict(x) == y).mean()
    assert line.barrier >= 0


def test_interpolation_of_conv_nets_and_mismatched_networks():
    a, b = Network.create((64, 5), seed=0, **CONV), Network.create((64, 5), seed=1, **CONV)
    x, y = data(40, 64, 5)
    line = interpolate(a, b, x, y, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(line.cost[[0, 2]], [a.cost(x, y), b.cost(x, y)], rtol=1e-12)
    with pytest.raises(ConfigError, match="interpolation needs two networks of the same layers"):
        interpolate(dense(), dense((12, 7, 5, 4)), *data(5), [0, 1])


# --- sigmoids against steps ---------------------------------------------------------------


def test_the_step_network_is_flat_and_the_sigmoid_network_is_not():
    net = dense((12, 8, 6, 4))
    x, y = data(400)
    w = net.params[0]["w"][2, 5]
    sw = smoothness(net, x, y, 0, 2, 5, np.linspace(w - 3, w + 3, 61))
    assert sw.step_flat_fraction > 0.9
    assert sw.sigmoid_flat_fraction < 0.1
    assert len(np.unique(sw.step_cost)) > 1  # it does jump somewhere in between
    other = Network(net.config, [{k: v.copy() for k, v in p.items()} for p in net.params])
    other.params[0]["w"][2, 5] = sw.weight[40]
    np.testing.assert_allclose(sw.sigmoid_cost[40], other.cost(x, y), rtol=1e-12)
    step = sw.step_cost[40]  # the step network by hand
    a = x
    for p in other.params:
        a = (a @ p["w"].T + p["b"] >= 0).astype(float)
    np.testing.assert_allclose(step, 0.5 * ((a - np.eye(4)[y]) ** 2).sum() / len(y), rtol=1e-12)


def test_smoothness_bad_input():
    x, y = data(10)
    with pytest.raises(ConfigError, match="needs a network of sigmoid neurons; this one's hidden layers are relu"):
        smoothness(dense(kind=KINDS[1]), x, y, 0, 0, 0, [0, 1])
    with pytest.raises(ConfigError, match="Weight \\(6, 0\\) does not exist in layer 0, whose w is 6x12"):
        smoothness(dense(), x, y, 0, 6, 0, [0, 1])
    with pytest.raises(ConfigError, match="Layer 3 does not exist"):
        smoothness(dense(), x, y, 3, 0, 0, [0, 1])


# --- curvature ----------------------------------------------------------------------------


def gradient_at(net, vector, x, y):
    return Network(net.config, unflatten(vector, net.params)).gradient(x, y).vector()


@pytest.mark.parametrize("kind", KINDS)
def test_hessian_vector_products_match_finite_differences(kind):
    net = dense((12, 6, 5, 4), kind=kind)
    x, y = data(80)
    v = np.random.default_rng(2).standard_normal(net.n_params)
    hv = hessian_vector_product(net, x, y, v)
    w, h = flatten(net.params), 1e-5
    fd = (gradient_at(net, w + h * v, x, y) - gradient_at(net, w - h * v, x, y)) / (2 * h)
    assert np.linalg.norm(hv - fd) <= 1e-6 * np.linalg.norm(fd)


@pytest.mark.parametrize("kind", KINDS[:3])
def test_top_eigenvalues_match_a_dense_hessian(kind):
    net = dense((4, 3, 2), kind=kind, seed=3)
    x, y = data(30, 4, 2)
    w, h = flatten(net.params), 1e-5
    cols = [(gradient_at(net, w + h * e, x, y) - gradient_at(net, w - h * e, x, y)) / (2 * h) for e in np.eye(net.n_params)]
    H = np.array(cols)
    top = np.sort(np.linalg.eigvalsh((H + H.T) / 2))[::-1][:3]
    c = curvature(net, x, y, k=3, eta=3.0)
    np.testing.assert_allclose(c.eigenvalues, top, rtol=1e-6, atol=1e-9)
    op = HessianOperator(net, x, y)
    u = c.eigenvectors[0]
    np.testing.assert_allclose(op(u), c.eigenvalues[0] * u, atol=1e-8)  # an eigenvector indeed
    assert c.eta_limit == 2 / c.eigenvalues[0]
    assert c.stable == (3.0 < c.eta_limit)
    assert c.random_curvatures.shape == (10,)
    assert np.all(c.random_curvatures <= c.eigenvalues[0] + 1e-12)  # no direction is more curved than the top one


def test_curvature_bad_input():
    x, y = data(10)
    with pytest.raises(ConfigError, match="number of eigenvalues must be 1 to 50"):
        curvature(dense(), x, y, k=0)
    with pytest.raises(ConfigError, match="eta must be a positive number"):
        curvature(dense(), x, y, eta=-1)
    conv = Network.create((64, 5), seed=0, **CONV)
    with pytest.raises(ConfigError, match="^Hessian-vector products need a dense network"):
        curvature(conv, *data(4, 64, 5))
    with pytest.raises(ConfigError, match="needs a vector of 9 values"):
        HessianOperator(dense((2, 2, 1)), *data(3, 2, 1))(np.zeros(3))


def test_direction_repr_is_short():
    d = filter_normalized_direction(Network.create((784, 16, 16, 10), seed=0), 0)
    assert isinstance(d, Direction) and len(repr(d)) < 100
