"""Convolution, max-pooling and flatten layers: the math against finite differences and a
direct definition, networks that mix them with dense layers, and model files that hold them."""

import json

import numpy as np
import pytest

from digitnet.config import NetworkConfig, parse_features, parse_layer_spec
from digitnet.errors import ConfigError, ModelFileError
from digitnet.io.model_io import load_model, save_model
from digitnet.nn.layers import LAYERS, Conv2D, Flatten, MaxPool
from digitnet.nn.network import Network, backprop, feedforward_chunk, param_shapes


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


def numerical(f, v, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of v (changed in place)."""
    g = np.zeros_like(v)
    for i in np.ndindex(v.shape):
        old = v[i]
        v[i] = old + eps
        plus = f()
        v[i] = old - eps
        minus = f()
        v[i] = old
        g[i] = (plus - minus) / (2 * eps)
    return g


def check_layer(layer, p, a, rng):
    """Backward of ``layer`` against finite differences of L = sum(r * forward(a)), float64."""
    r = rng.standard_normal(layer.forward(p, a).shape)

    def loss():
        return float((r * layer.forward(p, a)).sum())

    grads, g = layer.backward(p, a, r, need_input_grad=True)
    assert g.shape == a.shape
    assert rel_error(g, numerical(loss, a)) < 1e-6
    for k, v in p.items():
        assert grads[k].shape == v.shape
        assert rel_error(grads[k], numerical(loss, v)) < 1e-6, k
    assert set(grads) == set(p)


@pytest.mark.parametrize("in_shape, channels, k", [((6, 6, 1), 3, 3), ((5, 4, 2), 2, 2), ((4, 4, 3), 2, 4)])
def test_conv_layer_gradients_match_finite_differences(in_shape, channels, k):
    rng = np.random.default_rng(0)
    layer = Conv2D(in_shape, channels, k)
    p = layer.init(rng, "standard", np.float64)
    check_layer(layer, p, rng.standard_normal((3, *in_shape)), rng)


def test_conv_layer_accepts_flat_images_and_returns_flat_gradient():
    rng = np.random.default_rng(1)
    layer = Conv2D((5, 5, 1), 2, 3)
    p = layer.init(rng, "he", np.float64)
    check_layer(layer, p, rng.standard_normal((2, 25)), rng)


@pytest.mark.parametrize("in_shape, size", [((4, 4, 2), 2), ((5, 7, 1), 2), ((6, 6, 3), 3)])
def test_max_pool_gradients_match_finite_differences(in_shape, size):
    rng = np.random.default_rng(2)
    layer = MaxPool(in_shape, size)
    check_layer(layer, {}, rng.standard_normal((3, *in_shape)), rng)


def test_max_pool_splits_the_gradient_between_tied_maxima():
    layer = MaxPool((2, 2, 1), 2)
    a = np.array([[[[1.0], [3.0]], [[3.0], [0.0]]]])  # two maxima of 3
    _, g = layer.backward({}, a, np.array([[[[4.0]]]]))
    assert g.ravel().tolist() == [0.0, 2.0, 2.0, 0.0]


def test_flatten_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    check_layer(Flatten((3, 2, 2)), {}, rng.standard_normal((2, 3, 2, 2)), rng)


def test_conv_forward_matches_the_definition():
    """z[x, i, j, o] = sum_{u, v, c} a[x, i + u, j + v, c] w[o, c, u, v] + b[o], summed by loops."""
    rng = np.random.default_rng(4)
    layer = Conv2D((6, 5, 2), 3, 3)
    p = layer.init(rng, "standard", np.float64)
    a = rng.standard_normal((2, 6, 5, 2))
    z = layer.forward(p, a)
    assert z.shape == (2, 4, 3, 3)
    want = np.zeros_like(z)
    for x in range(2):
        for i in range(4):
            for j in range(3):
                for o in range(3):
                    want[x, i, j, o] = (a[x, i : i + 3, j : j + 3, :] * p["w"][o].transpose(1, 2, 0)).sum() + p["b"][o]
    np.testing.assert_allclose(z, want, rtol=1e-12, atol=1e-12)


def test_max_pool_forward_by_hand_drops_ragged_edge():
    a = np.arange(25.0).reshape(1, 5, 5, 1)
    z = MaxPool((5, 5, 1), 2).forward({}, a)
    assert z[0, :, :, 0].tolist() == [[6.0, 8.0], [16.0, 18.0]]


CONV_NET = dict(layers=(36, 5, 3), features=("conv:3:3", "pool:2", "conv:2:2", "flatten", "dense:4"))


@pytest.mark.parametrize("act, out, cost", [
    ("tanh", "softmax", "cross-entropy"),
    ("sigmoid", "sigmoid", "quadratic"),
    ("relu", "softmax", "cross-entropy"),
])
def test_network_with_conv_layers_backprop_matches_finite_differences(act, out, cost):
    rng = np.random.default_rng(5)
    net = Network.create(seed=1, activation=act, output_activation=out, cost=cost, init="xavier", dtype="float64",
                         **CONV_NET)
    assert net.kinds == ["conv", "pool", "conv", "flatten", "dense", "dense", "dense"]
    x = rng.uniform(0, 1, (4, 36))
    y = rng.integers(0, 3, 4)
    g = backprop(net, x, y)
    assert len(g.nabla_w) == len(net.weights) == 5
    for p, gl in zip(net.params, g.layers):
        for k, v in p.items():
            assert rel_error(gl[k], numerical(lambda: net.cost(x, y), v)) < 1e-6, k
    assert g.cost == pytest.approx(net.cost(x, y), rel=1e-12)


def test_dropout_gradient_is_that_of_the_thinned_network():
    """With the same rng, forward draws the same mask: finite differences of that network's cost."""
    rng = np.random.default_rng(6)
    net = Network.create((36, 6, 5, 3), seed=2, activation="tanh", output_activation="softmax",
                         cost="cross-entropy", dtype="float64", features=("conv:2:3",))
    x, y = rng.uniform(0, 1, (5, 36)), rng.integers(0, 3, 5)

    def cost():
        from digitnet.nn.network import forward, total_cost

        return total_cost(net, forward(net, x, 0.5, np.random.default_rng(9)).output, y) / len(y)

    g = backprop(net, x, y, 0.5, np.random.default_rng(9))
    assert g.cost == pytest.approx(cost(), rel=1e-12)
    assert g.cost != pytest.approx(net.cost(x, y), rel=1e-6)  # something was dropped
    for p, gl in zip(net.params, g.layers):
        for k, v in p.items():
            assert rel_error(gl[k], numerical(cost, v)) < 1e-6, k


def test_dropout_drops_about_p_and_keeps_the_expected_input():
    from digitnet.nn.network import forward

    net = Network.create((20, 400, 3), seed=0, activation="relu")
    fw = forward(net, np.ones((50, 20), np.float32), 0.25, np.random.default_rng(0))
    mask = fw.masks[1]
    assert fw.masks[0] is None  # the input pixels are never dropped
    assert (mask == 0).mean() == pytest.approx(0.25, abs=0.01)
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.75)}
    assert fw.inputs[1].mean() == pytest.approx(fw.activations[1].mean(), rel=0.02)


def test_plain_dense_networks_are_unchanged():
    """Same weights for a seed as before feature layers existed, and no new key in the config."""
    net = Network.create((784, 16, 16, 10), seed=0)
    rng = np.random.default_rng(0)
    assert np.array_equal(net.params[0]["w"], (rng.standard_normal((16, 784)) / np.sqrt(784)).astype(np.float32))
    assert net.kinds == ["dense"] * 3
    assert "features" not in net.config.to_dict()
    assert param_shapes(net.config) == [{"w": (16, 784), "b": (16,)}, {"w": (16, 16), "b": (16,)}, {"w": (10, 16), "b": (10,)}]


def test_conv_network_shapes_and_feedforward_in_chunks():
    cfg = NetworkConfig(layers=(784, 20, 10), features=("conv:4:5", "pool:2", "conv:6:3", "pool:2"), activation="relu")
    assert [p[:1] + p[2:] for p in cfg.plan()][:4] == [
        ("conv", (28, 28, 1), (24, 24, 4)), ("pool", (24, 24, 4), (12, 12, 4)),
        ("conv", (12, 12, 4), (10, 10, 6)), ("pool", (10, 10, 6), (5, 5, 6)),
    ]
    assert cfg.describe() == "784-conv:4:5-pool:2-conv:6:3-pool:2-20-10"
    net = Network.create(cfg, seed=0)
    assert [p["w"].shape for p in net.params if p] == [(4, 1, 5, 5), (6, 4, 3, 3), (20, 150), (10, 20)]
    x = np.random.default_rng(0).random((7, 784), dtype=np.float32)
    out = net.feedforward(x)
    assert out.shape == (7, 10) and out.dtype == np.float32
    from digitnet.nn import network

    np.testing.assert_allclose(np.concatenate([network.feedforward(net, x[i : i + 2]) for i in range(0, 7, 2)]), out,
                               rtol=1e-5)
    assert feedforward_chunk(net) < 10_000  # conv patches bound the chunk size


def test_layers_registry_names_every_kind():
    assert set(LAYERS) == {"dense", "conv", "pool", "flatten"}
    assert all(LAYERS[k].kind == k for k in LAYERS)


@pytest.mark.parametrize("features, message", [
    (("conv:32",), "Cannot read the layer 'conv:32'"),
    (("maxpool:2",), "Cannot read the layer 'maxpool:2'"),
    (("conv:0:5",), "must be whole numbers from 1"),
    (("dense:10", "conv:4:3"), "A conv layer needs a picture"),
    (("conv:4:29",), "does not fit its 28x28 input"),
    (("pool:2", "pool:2", "pool:2", "pool:2", "pool:2"), "does not fit"),
])
def test_bad_feature_layers_are_refused(features, message):
    with pytest.raises(ConfigError, match=message):
        NetworkConfig(layers=(784, 10), features=features)


def test_conv_needs_square_images():
    with pytest.raises(ConfigError, match="need square images"):
        NetworkConfig(layers=(785, 10), features=("conv:2:3",))


def test_parse_specs():
    assert parse_layer_spec("Conv:32:5") == ("conv", (32, 5))
    assert parse_features("conv:8:5, pool:2") == ("conv:8:5", "pool:2")
    assert parse_features("none") == ()
    assert NetworkConfig(layers=(784, 10), features="conv:2:3,pool:2").features == ("conv:2:3", "pool:2")


def test_model_file_round_trip_of_a_conv_network(tmp_path):
    cfg = NetworkConfig(layers=(36, 5, 3), features=("conv:3:3", "pool:2"), activation="relu",
                        output_activation="softmax", cost="cross-entropy", init="he")
    net = Network.create(cfg, seed=3)
    path = save_model(tmp_path / "c.safetensors", net, initial=Network.create(cfg, seed=4))
    saved = load_model(path)
    assert saved.net.config == cfg and saved.net.kinds == ["conv", "pool", "flatten", "dense", "dense"]
    assert all(np.array_equal(v, saved.net.params[l][k]) for l, p in enumerate(net.params) for k, v in p.items())
    assert saved.initial is not None and not np.array_equal(saved.initial.params[0]["w"], net.params[0]["w"])
    x = np.random.default_rng(0).random((4, 36), dtype=np.float32)
    np.testing.assert_array_equal(saved.net.feedforward(x), net.feedforward(x))


def test_model_file_with_kinds_that_contradict_the_config_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save

    net = Network.create(NetworkConfig(layers=(16, 3), features=("conv:2:3",)), seed=0)
    path = save_model(tmp_path / "c.safetensors", net)
    with safe_open(str(path), framework="numpy") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta["kinds"] = json.dumps(["conv", "dense", "dense"])
    (tmp_path / "bad.safetensors").write_bytes(save(tensors, metadata=meta))
    with pytest.raises(ModelFileError, match="do not match the network config"):
        load_model(tmp_path / "bad.safetensors")


def test_old_dense_model_files_still_load(tmp_path):
    """A file written before feature layers existed: no 'features' in its network JSON."""
    net = Network.create((12, 5, 3), seed=0)
    path = save_model(tmp_path / "old.safetensors", net)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        assert "features" not in json.loads(f.metadata()["network"])
    saved = load_model(path)
    assert saved.net.kinds == ["dense", "dense"] and saved.net.config.features == ()


def test_im2col_columns_are_the_patches_then_a_one():
    rng = np.random.default_rng(7)
    layer = Conv2D((5, 4, 2), 3, 3)
    a = rng.standard_normal((2, 5, 4, 2))
    cols = layer.im2col(a)
    assert cols.shape == (3 * 3 * 2 + 1, 2 * 3 * 2)
    for col, (x, i, j) in zip(cols.T, np.ndindex(2, 3, 2)):
        np.testing.assert_array_equal(col[:-1], a[x, i : i + 3, j : j + 3, :].ravel())  # ordered (u, v, c)
        assert col[-1] == 1


def test_conv_and_pool_backward_with_kept_forward_results_match_recomputing():
    rng = np.random.default_rng(8)
    conv, pool = Conv2D((6, 6, 2), 3, 3), MaxPool((4, 4, 3), 2)
    p = conv.init(rng, "he", np.float32)
    a = rng.standard_normal((3, 6, 6, 2)).astype(np.float32)
    delta = rng.standard_normal((3, 4, 4, 3)).astype(np.float32)
    kept, g_kept = conv.backward(p, a, delta, cols=conv.im2col(a))
    again, g_again = conv.backward(p, a, delta)
    np.testing.assert_array_equal(g_kept, g_again)
    for k in p:
        np.testing.assert_array_equal(kept[k], again[k])
    z = conv.forward(p, a)
    d_pool = rng.standard_normal((3, 2, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(pool.backward({}, z, d_pool, z=pool.forward({}, z))[1], pool.backward({}, z, d_pool)[1])


def test_backprop_reuses_the_forward_pass_without_changing_the_gradient(monkeypatch):
    from digitnet.nn import network

    net = Network.create(seed=1, activation="relu", output_activation="softmax", cost="cross-entropy", init="he",
                         **CONV_NET)
    rng = np.random.default_rng(9)
    x, y = rng.uniform(0, 1, (4, 36)).astype(np.float32), rng.integers(0, 3, 4)
    g = backprop(net, x, y)
    monkeypatch.setattr(network, "_kept", lambda fw, kind, l: {})  # every layer recomputes what it needs
    again = backprop(net, x, y)
    for gl, al in zip(g.layers, again.layers):
        for k in gl:
            assert gl[k].dtype == np.float32  # nothing upcast on the way
            np.testing.assert_array_equal(gl[k], al[k])


def test_max_pool_splits_the_gradient_between_tied_maxima_in_each_block_and_channel():
    layer = MaxPool((3, 3, 2), 3)
    a = np.zeros((1, 3, 3, 2))
    a[0, [0, 1, 2], [2, 0, 1], 0] = 5.0  # three maxima of 5 in channel 0
    a[0, 1, 1, 1] = 7.0  # one maximum in channel 1
    _, g = layer.backward({}, a, np.array([[[[6.0, 2.0]]]]))
    want = np.zeros_like(a)
    want[0, [0, 1, 2], [2, 0, 1], 0] = 2.0
    want[0, 1, 1, 1] = 2.0
    np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("in_shape, channels, k", [((9, 7, 3), 4, 3), ((12, 12, 32), 32, 5), ((8, 8, 1), 2, 5)])
def test_conv_input_gradient_is_col2im_in_filter_order_bit_for_bit(in_shape, channels, k):
    """dC/da adds each patch's gradient back in the order (u, v) of the filter positions, one
    position at a time over the whole map: the order that fixes its float32 rounding."""
    rng = np.random.default_rng(9)
    conv = Conv2D(in_shape, channels, k)
    p = conv.init(rng, "he", np.float32)
    a = rng.standard_normal((3, *in_shape)).astype(np.float32)
    (h, w, c), (h_out, w_out, _) = in_shape, conv.out_shape
    delta = rng.standard_normal((3, *conv.out_shape)).astype(np.float32)
    dcols = (delta.reshape(-1, channels) @ conv._wmat(p)).reshape(3, h_out, w_out, k, k, c)
    want = np.zeros((3, h, w, c), np.float32)
    for u in range(k):
        for v in range(k):
            want[:, u : u + h_out, v : v + w_out, :] += dcols[:, :, :, u, v, :]
    _, g = conv.backward(p, a, delta)
    assert g.tobytes() == want.tobytes()


def test_im2col_of_many_channels_is_the_patches_then_a_one():
    rng = np.random.default_rng(10)
    layer = Conv2D((7, 6, 16), 3, 3)
    a = rng.standard_normal((2, 7, 6, 16)).astype(np.float32)
    cols = layer.im2col(a.reshape(2, -1))
    assert cols.shape == (3 * 3 * 16 + 1, 2 * 5 * 4)
    for col, (x, i, j) in zip(cols.T, np.ndindex(2, 5, 4)):
        np.testing.assert_array_equal(col[:-1], a[x, i : i + 3, j : j + 3, :].ravel())
        assert col[-1] == 1


@pytest.mark.parametrize("in_shape", [(9, 12, 1), (6, 6, 2)])  # the channels-first layout (k c_in < w_out), the other
def test_im2col_columns_are_the_patches_in_either_layout(in_shape):
    rng = np.random.default_rng(11)
    layer = Conv2D(in_shape, 2, 3)
    a = rng.standard_normal((2, *in_shape)).astype(np.float32)
    cols = layer.im2col(a)
    h_out, w_out, _ = layer.out_shape
    assert cols.shape == (3 * 3 * in_shape[2] + 1, 2 * h_out * w_out)
    for col, (x, i, j) in zip(cols.T, np.ndindex(2, h_out, w_out)):
        np.testing.assert_array_equal(col[:-1], a[x, i : i + 3, j : j + 3, :].ravel())
        assert col[-1] == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_after_max_pool_gives_the_same_bits_with_ties_and_zeros(dtype):
    """backprop applies a ReLU that comes before a max-pool after it instead: the output and
    every gradient (and dC/dx) must be the unfused order's bit for bit (zeros' signs too),
    also where several positive values tie for a block's maximum and where a block is all <= 0."""
    from digitnet.nn.network import backward, feedforward, forward, output_delta

    net = Network.create(seed=2, layers=(100, 5, 3), features=("conv:3:3", "pool:2", "conv:4:2", "pool:2"),
                         activation="relu", output_activation="softmax", cost="cross-entropy", init="he", dtype=dtype)
    for p in net.params:  # small integers, so that many z tie exactly or are exactly 0
        for k in p:
            p[k][...] = np.random.default_rng(len(p[k].ravel())).integers(-2, 3, p[k].shape)
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 3, (40, 100)).astype(dtype), rng.integers(0, 3, 40)
    plain, fused = forward(net, x), forward(net, x, pool_first=True)
    assert [l for l, f in enumerate(fused.pooled_first) if f] == [1, 3] and net.kinds[1] == net.kinds[3] == "pool"
    # the case this is about: blocks with tied positive maxima, and blocks with no positive value
    z = plain.zs[0].reshape(40, 4, 2, 4, 2, 3)
    m = z.max(axis=(2, 4), keepdims=True)
    assert ((z == m).sum(axis=(2, 4)) > 1)[m[:, :, 0, :, 0] > 0].any() and (m <= 0).any()
    assert fused.output.tobytes() == plain.output.tobytes() == feedforward(net, x).tobytes()
    want, want_dx = backward(net, plain, output_delta(net, plain.zs[-1], plain.output, y), to_input=True)
    got, got_dx = backward(net, fused, output_delta(net, fused.zs[-1], fused.output, y), to_input=True)
    assert got_dx.tobytes() == want_dx.tobytes()
    assert [{k: v.tobytes() for k, v in g.items()} for g in got] == [{k: v.tobytes() for k, v in g.items()} for g in want]
    assert backprop(net, x, y).vector().tobytes() == np.concatenate(
        [v.ravel() * np.asarray(1 / 40, dtype) for g in want for v in g.values()]).tobytes()
