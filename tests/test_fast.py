"""The fused training path (nn/fast.py): a step by hand, its buffers and parameters, BLAS threads.

Its agreement with the reference (backprop + optim.SGD), for every activation and cost in
float64 and float32, is checked with every other engine in tests/test_engines.py.
"""


import numpy as np
import pytest

from digitnet.config import TrainConfig
from digitnet.data.datasets import Split
from digitnet.errors import ConfigError, DivergenceError
from digitnet.io.model_io import load_model, save_model
from digitnet.nn.fast import FastSGD
from digitnet.nn.network import Network, backprop
from digitnet.training.optim import SGD
from digitnet.training.train import Trainer, train

HIDDEN = ("sigmoid", "tanh", "relu")
OUTPUT = ("sigmoid", "softmax", "tanh", "relu", "identity")
COMBOS = [
    (h, o, c)
    for h in HIDDEN
    for o in OUTPUT
    for c in ("quadratic", "cross-entropy")
    if c == "quadratic" or o in ("sigmoid", "softmax")
]
SIZES = (12, 9, 7, 5)


def _data(dtype, n=60, seed=7):
    rng = np.random.default_rng(seed)
    return rng.random((n, SIZES[0])).astype(dtype), rng.integers(0, SIZES[-1], n)


def _reference_step(net, x, y, idx, eta, decay=0.0):
    """One step the reference way, exactly as Trainer.step does it without the fast path."""
    g = backprop(net, x[idx], y[idx])
    grads = [{"w": gw, "b": gb} for gw, gb in zip(g.nabla_w, g.nabla_b)]
    if decay:
        for gr, p in zip(grads, net.params):
            gr["w"] = gr["w"] + np.asarray(decay, p["w"].dtype) * p["w"]
    SGD(net.params).step(net.params, grads, eta)
    return g.cost


def _run_both(hidden, output, cost, dtype, steps=6, eta=0.5, decay=0.0):
    x, y = _data(dtype)
    net = Network.create(SIZES, seed=3, activation=hidden, output_activation=output, cost=cost, dtype=dtype)
    ref = net.copy()
    path = FastSGD(net, x, y)
    order = np.random.default_rng(11).permutation(len(x))
    costs = []
    for s in range(steps):
        # Batches of 10, and a last one of 7 (a partial batch uses its own buffers).
        idx = order[10 * s : 10 * s + (10 if s < steps - 1 else 7)]
        costs.append((path.step(idx, eta, decay), _reference_step(ref, x, y, idx, eta, decay)))
    return net, ref, np.array(costs)


def test_one_step_by_hand():
    """A 2-1 sigmoid network, quadratic cost, one example: the update worked out on paper."""
    net = Network.create((2, 1), seed=0, dtype="float64")
    net.params[0]["w"][...] = [[0.5, -1.0]]
    net.params[0]["b"][...] = [0.25]
    x, y = np.array([[1.0, 2.0]]), np.array([0])
    path = FastSGD(net, x, y)
    cost = path.step(np.array([0]), eta=2.0)
    z = 0.5 * 1 - 1.0 * 2 + 0.25  # -1.25
    a = 1 / (1 + np.exp(-z))
    delta = (a - 1) * a * (1 - a)  # BP1 with the label 0 as the one-hot target [1]
    assert cost == pytest.approx(0.5 * (a - 1) ** 2, rel=1e-12)
    np.testing.assert_allclose(net.params[0]["w"], [[0.5 - 2 * delta * 1, -1.0 - 2 * delta * 2]], rtol=1e-12)
    np.testing.assert_allclose(net.params[0]["b"], [0.25 - 2 * delta], rtol=1e-12)


def _split(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return Split(rng.integers(0, 256, (n, 4, 4), dtype=np.uint8), rng.integers(0, 5, n).astype(np.int64))


def test_trainer_fast_and_reference_agree_on_deskewed_mnist_with_batch_metrics(mnist):
    """The video preset's input preparation (deskew) and the per-epoch cost taken from the
    mini-batches: the fast path sees Trainer.x, so both paths train on the same inputs."""
    from digitnet.config import NetworkConfig

    split = mnist.train.subset(400)
    results = []
    for engine in ("numpy", "reference"):
        net = Network.create(NetworkConfig(layers=(784, 16, 10), preprocess="deskew", dtype="float64"), seed=0)
        trainer = Trainer(net, split, TrainConfig(epochs=2, seed=0, schedule="linear", train_metrics="batches"),
                          engine=engine)
        while not trainer.done:
            trainer.run_epoch()
        results.append(([e.cost for e in trainer.history.epochs], net))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10)
    assert results[0][0][1] < results[0][0][0]  # it learned
    for p, q in zip(results[0][1].params, results[1][1].params):
        np.testing.assert_allclose(p["w"], q["w"], rtol=1e-9, atol=1e-12)


def test_replaced_parameters_are_noticed():
    """Trainer restores the last good epoch with ``net.params[:] = good.params``: the fast
    path must train those values, not its stale copy."""
    x, y = _data("float64")
    net = Network.create(SIZES, seed=1, dtype="float64")
    path = FastSGD(net, x, y)
    assert np.shares_memory(net.params[0]["w"], path.W[0])
    idx = np.arange(10)
    path.step(idx, 0.5)
    other = Network.create(SIZES, seed=9, dtype="float64")
    net.params[:] = other.copy().params
    path.step(idx, 0.5)
    _reference_step(other, x, y, idx, 0.5)
    for p, q in zip(net.params, other.params):
        np.testing.assert_allclose(p["w"], q["w"], rtol=1e-12)
    assert np.shares_memory(net.params[0]["w"], path.W[0])


def test_non_finite_cost_changes_nothing_and_trainer_raises():
    x, y = _data("float32")
    net = Network.create(SIZES, seed=1)
    path = FastSGD(net, x, y)
    net.params[1]["w"][0, 0] = np.nan
    before = [p["w"].copy() for p in net.params]
    with np.errstate(invalid="ignore"):
        assert np.isnan(path.step(np.arange(10), 1.0))
    for p, w in zip(net.params, before):
        np.testing.assert_array_equal(p["w"], w)
    net = Network.create((16, 8, 5), seed=0, output_activation="identity")
    trainer = Trainer(net, _split(), TrainConfig(eta=1e6), engine="numpy")
    with pytest.raises(DivergenceError, match="Training diverged in epoch 1"):
        trainer.run_epoch()
    assert trainer.engine == "numpy"
    fresh = Network.create((16, 8, 5), seed=0, output_activation="identity")
    for p, q in zip(net.params, fresh.params):  # the last good (here: initial) weights are back
        np.testing.assert_array_equal(p["w"], q["w"])


def test_model_trained_fast_saves_and_loads(tmp_path):
    net = Network.create((16, 8, 5), seed=0)
    h = train(net, _split(), TrainConfig(epochs=1, seed=0), engine="numpy")
    assert not net.params[0]["w"].flags.c_contiguous  # a view into [w | b]
    save_model(tmp_path / "m.safetensors", net, h)
    loaded = load_model(tmp_path / "m.safetensors").net
    for p, q in zip(net.params, loaded.params):
        np.testing.assert_array_equal(p["w"], q["w"])
        np.testing.assert_array_equal(p["b"], q["b"])


def test_rejects_non_dense_layers():
    net = Network.create((16, 8, 5), seed=0)
    net.kinds = ["dense", "conv"]
    with pytest.raises(ConfigError, match="dense layers only"):
        FastSGD(net, np.zeros((3, 16), np.float32), np.zeros(3, np.int64))


def test_blas_runs_on_one_thread_during_large_steps_only():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    path = FastSGD(Network.create((784, 64, 10), seed=0), x, np.zeros(64, np.int64))
    assert path._threads_for(2) is None  # 2 * 784 * 64 multiply-adds: BLAS stays on one thread anyway
    limit = path._threads_for(32)
    assert limit is not None and limit.n == 1
    before = [lib.get_num_threads() for lib in limit.libs]
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        with limit:
            assert all(lib.get_num_threads() == 1 for lib in limit.libs)
        assert all(lib.get_num_threads() == 2 for lib in limit.libs)
    assert [lib.get_num_threads() for lib in limit.libs] == before
    path.blas_threads = None
    assert path._threads_for(32) is None
    assert np.isfinite(path.step(np.arange(32), 0.1))


def test_nielsen_style_loop_takes_the_same_step(load_benchmark):
    """The benchmark's per-example loop computes the same update as digitnet (float64)."""
    nielsen = load_benchmark("nielsen_network")
    x, y = _data("float64", n=20)
    net = Network.create(SIZES, seed=5, dtype="float64")
    other = nielsen.Network(list(SIZES), [p["w"] for p in net.params], [p["b"] for p in net.params])
    eye = np.eye(SIZES[-1])
    training = [(xi.reshape(-1, 1), eye[j].reshape(-1, 1)) for xi, j in zip(x, y)]  # its data format
    path = FastSGD(net, x, y)
    path.step(np.arange(7), 3.0)
    other.update_mini_batch(training[:7], 3.0)
    for p, w, b in zip(net.params, other.weights, other.biases):
        np.testing.assert_allclose(p["w"], w, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(p["b"], b.ravel(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("config", ["video-b10", "wide-relu-b128"])
def test_pytorch_contestant_takes_the_same_step(config, load_benchmark):
    """The benchmark's PyTorch model, loss and optimiser make the same SGD step as
    digitnet from the same weights (float32, to float32 rounding)."""
    torch = pytest.importorskip("torch")
    speed = load_benchmark("speed")
    cfg = speed.CONFIGS[config]
    net = speed._initial(cfg, seed=3)
    model, loss_fn = speed._torch_model(cfg, seed=3), speed._torch_loss(cfg)
    rng = np.random.default_rng(0)
    x = rng.random((16, 784), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    cost = FastSGD(net, x, y).step(np.arange(16), cfg["eta"])
    opt = torch.optim.SGD(model.parameters(), lr=cfg["eta"])
    loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    opt.step()
    assert cost == pytest.approx(loss.item(), rel=1e-5)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for p, lin in zip(net.params, linears):
        np.testing.assert_allclose(p["w"], lin.weight.detach().numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(p["b"], lin.bias.detach().numpy(), rtol=1e-4, atol=1e-6)
