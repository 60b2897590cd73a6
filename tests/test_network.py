"""The math: forward pass shapes, backprop against finite differences, a step by hand."""

import itertools

import numpy as np
import pytest

from digitnet.config import NetworkConfig
from digitnet.errors import ConfigError
from digitnet.nn.activations import ACTIVATIONS, BACKWARD, sigmoid
from digitnet.nn.network import Network, backprop


def numerical_gradient(net, x, y, eps=1e-6):
    """Central finite differences of the average cost for every parameter (float64)."""
    grads = []
    for p in net.params:
        g = {}
        for k, v in p.items():
            gv = np.zeros_like(v)
            for i in np.ndindex(v.shape):
                old = v[i]
                v[i] = old + eps
                plus = net.cost(x, y)
                v[i] = old - eps
                minus = net.cost(x, y)
                v[i] = old
                gv[i] = (plus - minus) / (2 * eps)
            g[k] = gv
        grads.append(g)
    return grads


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


PAIRS = [
    (hidden, out, cost)
    for hidden, out, cost in itertools.product(
        ["sigmoid", "tanh", "relu"], ["sigmoid", "softmax", "tanh", "relu", "identity"], ["quadratic", "cross-entropy"]
    )
    if not (cost == "cross-entropy" and out not in ("sigmoid", "softmax"))
]


@pytest.mark.parametrize("hidden, out, cost", PAIRS)
@pytest.mark.parametrize("init", ["standard", "xavier"])
def test_backprop_matches_finite_differences(hidden, out, cost, init):
    rng = np.random.default_rng(7)
    net = Network.create((6, 5, 4, 3), seed=3, activation=hidden, output_activation=out, cost=cost, init=init, dtype="float64")
    x = rng.uniform(-1, 1, (8, 6))
    y = rng.integers(0, 3, 8)
    if hidden == "relu" or out == "relu":
        # Keep ReLU inputs away from the kink at 0, where the derivative jumps.
        for l in range(2):
            z = net.forward(x).zs[l]
            net.params[l]["b"] += np.where(np.abs(z).min(axis=0) < 1e-3, 0.01, 0)
    g = backprop(net, x, y)
    num = numerical_gradient(net, x, y)
    for l in range(len(net.params)):
        assert rel_error(g.nabla_w[l], num[l]["w"]) < 1e-6, (l, "w")
        assert rel_error(g.nabla_b[l], num[l]["b"]) < 1e-6, (l, "b")
    assert g.cost == pytest.approx(net.cost(x, y), rel=1e-12)


def test_cross_entropy_needs_probabilities():
    with pytest.raises(ConfigError, match="cross-entropy cost needs outputs between 0 and 1"):
        NetworkConfig(output_activation="tanh", cost="cross-entropy")


def test_one_sgd_step_by_hand():
    """A 2-1 sigmoid network, quadratic cost, one example: the step worked out on paper.

    w = [0.5, -0.5], b = 0, x = [1, 1], target y = 1 (one output neuron, label 0 -> one-hot [1]).
    z = 0, a = sigma(0) = 0.5; C = 1/2 (0.5 - 1)^2 = 0.125.
    delta = (a - y) sigma'(z) = -0.5 * 0.25 = -0.125 (BP1)
    dC/db = -0.125 (BP3); dC/dw = delta * x = [-0.125, -0.125] (BP4)
    With eta = 2: w -> [0.75, -0.25], b -> 0.25.
    """
    net = Network(NetworkConfig(layers=(2, 1), dtype="float64"),
                  [{"w": np.array([[0.5, -0.5]]), "b": np.array([0.0])}])
    x, y = np.array([[1.0, 1.0]]), np.array([0])
    g = net.gradient(x, y)
    assert g.cost == pytest.approx(0.125)
    np.testing.assert_allclose(g.nabla_b[0], [-0.125])
    np.testing.assert_allclose(g.nabla_w[0], [[-0.125, -0.125]])
    from digitnet.training.optim import SGD

    SGD(net.params).step(net.params, [{"w": g.nabla_w[0], "b": g.nabla_b[0]}], eta=2.0)
    np.testing.assert_allclose(net.params[0]["w"], [[0.75, -0.25]])
    np.testing.assert_allclose(net.params[0]["b"], [0.25])
    assert net.cost(x, y) < 0.125  # the step went downhill


def test_gradient_is_batch_average():
    net = Network.create((4, 3, 2), seed=1, dtype="float64")
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(6, 4)), rng.integers(0, 2, 6)
    whole = net.gradient(x, y)
    parts = [net.gradient(x[i : i + 1], y[i : i + 1]) for i in range(6)]
    for l in range(2):
        np.testing.assert_allclose(whole.nabla_w[l], np.mean([p.nabla_w[l] for p in parts], axis=0), rtol=1e-12)


def test_forward_shapes_and_dtype():
    net = Network.create((784, 16, 16, 10), seed=0)
    assert [w.shape for w in net.weights] == [(16, 784), (16, 16), (10, 16)]
    assert [b.shape for b in net.biases] == [(16,), (16,), (10,)]
    assert net.n_params == 13002  # the video's count
    x = np.random.default_rng(0).uniform(size=(5, 784)).astype(np.float32)
    fw = net.forward(x)
    assert [z.shape for z in fw.zs] == [(5, 16), (5, 16), (5, 10)]
    assert fw.activations[0] is not None and fw.output.dtype == np.float32
    assert net.gradient(x, np.arange(5)).nabla_w[0].dtype == np.float32
    assert net.predict(x).shape == (5,)


def test_same_seed_same_weights():
    a, b, c = (Network.create((784, 16, 16, 10), seed=s) for s in (5, 5, 6))
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_bad_input_shape():
    net = Network.create((784, 16, 10))
    with pytest.raises(ConfigError, match=r"784 values per example.*shape \(3, 100\)"):
        net.feedforward(np.zeros((3, 100)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_never_overflows(dtype):
    z = np.array([-1e30, -1000, -50, 0, 50, 1000, 1e30], dtype=dtype)
    with np.errstate(all="raise"):
        a = sigmoid(z)
    assert a.dtype == dtype
    np.testing.assert_allclose(a, [0, 0, 1.9287e-22, 0.5, 1, 1, 1], atol=1e-7)


def test_softmax_is_stable():
    z = np.array([[1000.0, 1000.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        a = ACTIVATIONS["softmax"](z)
    np.testing.assert_allclose(a, [[0.5, 0.5, 0.0]])


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "identity", "softmax"])
def test_activation_backward_matches_finite_differences(name):
    rng = np.random.default_rng(2)
    z = rng.uniform(-2, 2, (3, 4))
    z[np.abs(z) < 0.05] = 0.3
    g = rng.standard_normal((3, 4))
    f = ACTIVATIONS[name]
    eps = 1e-6
    num = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += eps
        zm[i] -= eps
        num[i] = ((f(zp) - f(zm)) * g).sum() / (2 * eps)
    np.testing.assert_allclose(BACKWARD[name](z, f(z), g), num, rtol=1e-6, atol=1e-9)
