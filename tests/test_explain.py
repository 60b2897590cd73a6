"""Tests for digitnet.explain: gradients, weight images and the video's experiments."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Split, load_mnist
from digitnet.errors import ConfigError
from digitnet.explain import (
    activations,
    analyse_gradient,
    class_means,
    dataset_gradient,
    dream,
    example_gradient,
    gradient_images,
    initial_network,
    input_gradient,
    misclassified,
    noise_experiment,
    shuffle_labels,
    shuffled_labels_experiment,
    weight_images,
    weights_report,
)
from digitnet.io.model_io import SavedModel
from digitnet.nn.network import Gradient, Network
from digitnet.training.train import train


@pytest.fixture(scope="session")
def mnist():
    return load_mnist()


@pytest.fixture(scope="session")
def small(mnist):
    """A small training subset and test subset (the first images)."""
    return mnist.train.subset(500), mnist.test.subset(500)


@pytest.fixture(scope="session")
def trained(small):
    """A 784-16-10 sigmoid network trained for a moment (well above chance), and its initial copy."""
    tr, te = small
    net = Network.create((784, 16, 10), seed=1)
    initial = net.copy()
    train(net, tr, TrainConfig(epochs=5, batch_size=10, eta=3.0, seed=1), test=te)
    return net, initial


# --- input gradient ---------------------------------------------------------------------
@pytest.mark.parametrize("cost,out", [("quadratic", "sigmoid"), ("cross-entropy", "softmax")])
def test_input_gradient_matches_finite_differences(cost, out):
    rng = np.random.default_rng(0)
    net = Network.create(NetworkConfig(layers=(9, 5, 4, 3), cost=cost, output_activation=out, dtype="float64"), seed=2)
    x = rng.random((4, 9))
    y = np.array([0, 2, 1, 2])
    g = input_gradient(net, x, y)
    assert g.shape == (4, 9)
    eps = 1e-6
    for i in range(4):
        for k in range(9):
            xp, xm = x[i : i + 1].copy(), x[i : i + 1].copy()
            xp[0, k] += eps
            xm[0, k] -= eps
            # net.cost is the average over the batch: for one example it is that example's cost
            num = (net.cost(xp, y[i : i + 1]) - net.cost(xm, y[i : i + 1])) / (2 * eps)
            assert g[i, k] == pytest.approx(num, rel=1e-5, abs=1e-9)


def test_input_gradient_of_an_output_matches_finite_differences():
    rng = np.random.default_rng(1)
    net = Network.create(NetworkConfig(layers=(6, 4, 3), dtype="float64", output_activation="softmax",
                                       cost="cross-entropy"), seed=3)
    x = rng.random((2, 6))
    outputs = np.array([2, 0])
    g = input_gradient(net, x, output=outputs)
    eps = 1e-6
    for i, j in enumerate(outputs):
        for k in range(6):
            xp, xm = x[i].copy(), x[i].copy()
            xp[k] += eps
            xm[k] -= eps
            num = (net.feedforward(xp)[0, j] - net.feedforward(xm)[0, j]) / (2 * eps)
            assert g[i, k] == pytest.approx(num, rel=1e-5, abs=1e-10)


def test_input_gradient_is_delta1_times_w1():
    """For one layer, dC/dx = delta^1 w^1 with delta^1 = (a - y) sigma'(z) (quadratic cost)."""
    net = Network.create(NetworkConfig(layers=(5, 3), dtype="float64"), seed=4)
    x = np.random.default_rng(2).random((2, 5))
    y = np.array([1, 2])
    a = net.feedforward(x)
    delta = (a - np.eye(3)[y]) * a * (1 - a)
    np.testing.assert_allclose(input_gradient(net, x, y), delta @ net.weights[0], rtol=1e-12)


def test_input_gradient_needs_exactly_one_target():
    net = Network.create((4, 3), seed=0)
    x = np.zeros((1, 4), np.float32)
    with pytest.raises(ConfigError, match="either labels y .* or output=j"):
        input_gradient(net, x)
    with pytest.raises(ConfigError, match="either labels y .* or output=j"):
        input_gradient(net, x, np.array([0]), output=1)
    with pytest.raises(ConfigError, match=r"has 3 outputs \(0..2\); got output=3"):
        input_gradient(net, x, output=3)


# --- gradient with respect to the parameters ------------------------------------------
def test_gradient_images_equal_the_backpropagated_gradient_reshaped(trained, small):
    net, _ = trained
    tr, _ = small
    g = example_gradient(net, tr.x[3], tr.y[3])
    reference = net.gradient(tr.x[3:4], tr.y[3:4]).nabla_w[0]  # (16, 784), by backprop
    imgs = gradient_images(g)
    assert imgs.shape == (16, 28, 28)
    for j in range(16):
        np.testing.assert_array_equal(imgs[j], np.abs(reference[j].reshape(28, 28)))
    np.testing.assert_array_equal(gradient_images(g, absolute=False)[5], reference[5].reshape(28, 28))
    assert imgs.max() > 0  # a real gradient, not all zeros


def test_gradient_images_need_square_inputs():
    net = Network.create((10, 3), seed=0)
    g = net.gradient(np.zeros((1, 10), np.float32), np.array([0]))
    with pytest.raises(ConfigError, match="not a square image"):
        gradient_images(g)


def test_dataset_gradient_equals_the_full_batch_gradient(trained, small):
    net, _ = trained
    tr, _ = small
    whole = net.astype("float64").gradient(tr.x[:123], tr.y[:123])
    chunked = dataset_gradient(net.astype("float64"), tr.x[:123], tr.y[:123], chunk=50)
    for a, b in zip(whole.nabla_w + whole.nabla_b, chunked.nabla_w + chunked.nabla_b):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)
    assert chunked.cost == pytest.approx(whole.cost, rel=1e-12)
    with pytest.raises(ConfigError, match="no examples"):
        dataset_gradient(net, tr.x[:0], tr.y[:0])


def test_analyse_gradient_worked_by_hand():
    # ||g||^2 = 3^2 + 1^2 + 4^2 + 2^2 + 1^2 + 5^2 = 56 (layer 0: w 10, b 16; layer 1: w 5, b 25)
    g = Gradient([np.array([[3.0, 0.0], [0.0, -1.0]]), np.array([[2.0, -1.0]])],
                 [np.array([0.0, -4.0]), np.array([5.0])], cost=0.5)
    r = analyse_gradient(g, top_k=3)
    assert r.norm == pytest.approx(np.sqrt(56))
    assert [c.name() for c in r.top] == ["b2[0]", "b1[1]", "w1[0,0]"]
    assert [c.value for c in r.top] == [5.0, -4.0, 3.0]
    assert [c.share for c in r.top] == pytest.approx([25 / 56, 16 / 56, 9 / 56])
    assert r.top_share == pytest.approx(50 / 56)
    assert r.layers[0].weight_share == pytest.approx(10 / 56)
    assert r.layers[0].bias_share == pytest.approx(16 / 56)
    assert r.layers[1].share == pytest.approx(30 / 56)
    assert r.layers[0].mean_abs_w == pytest.approx(1.0)
    assert r.n_components == 9
    assert r.components_for(0.5) == 2  # 25 + 16 = 41 >= 28
    assert r.components_for(1.0) == 6  # the three zeros carry nothing
    d = r.to_dict()
    assert d["top"][0] == {"name": "b2[0]", "layer": 1, "param": "b", "index": [0], "value": 5.0,
                           "share": pytest.approx(25 / 56)}
    with pytest.raises(ConfigError, match="top_k must be >= 0"):
        analyse_gradient(g, top_k=-1)


def test_analyse_gradient_on_a_real_network(trained, small):
    net, _ = trained
    tr, _ = small
    r = analyse_gradient(dataset_gradient(net, tr.x, tr.y), top_k=10)
    assert sum(s.share for s in r.layers) == pytest.approx(1.0, abs=1e-9)
    assert r.shares_sorted.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.diff(r.shares_sorted) <= 0)
    for c in r.top:  # every top component points at the right entry
        arr = (r.gradient.nabla_w if c.param == "w" else r.gradient.nabla_b)[c.layer]
        assert float(arr[c.index]) == pytest.approx(c.value)
    assert abs(r.top[0].value) >= abs(r.top[-1].value)
    assert r.first_layer_images().shape == (16, 28, 28)


# --- weights ----------------------------------------------------------------------------
def test_weight_images_are_rows_of_w(trained):
    net, initial = trained
    imgs = weight_images(net)
    np.testing.assert_array_equal(imgs[7].ravel(), net.weights[0][7])
    r = weights_report(net, initial, "stored in the model file")
    np.testing.assert_allclose(r.moved, weight_images(net) - weight_images(initial))
    s = r.summary()
    assert s["n_neurons"] == 16 and s["image_shape"] == [28, 28]
    assert s["relative_move"] > 0
    assert len(s["neurons"]) == 16
    assert -1 <= s["mean_correlation_with_initial"] <= 1


def test_initial_weights_are_recreated_from_the_seed(trained):
    net, _ = trained
    saved = SavedModel(net, train_config=TrainConfig(seed=5))
    init, source = initial_network(saved)
    assert source == "recreated from seed 5"
    np.testing.assert_array_equal(init.weights[0], Network.create(net.config, seed=5).weights[0])
    assert initial_network(SavedModel(net)) == (None, "not stored and no training seed to recreate them")
    r = weights_report(net)
    assert r.initial is None and r.moved is None and "initial_mean_abs" not in r.summary()


def test_weight_images_refuse_a_first_layer_without_pixel_weights():
    net = Network.create(NetworkConfig(layers=(784, 10), features=("pool:2",)), seed=0)
    with pytest.raises(ConfigError, match="needs a dense first layer .* is 'pool'"):
        weight_images(net)


def test_convolution_filters_are_images_and_input_gradients_pass_through_them():
    net = Network.create(NetworkConfig(layers=(784, 10), features=("conv:3:5", "pool:2"), dtype="float64"), seed=0)
    imgs = weight_images(net)
    assert imgs.shape == (3, 5, 5)
    np.testing.assert_array_equal(imgs[2], net.params[0]["w"][2, 0])
    x = np.random.default_rng(0).random((1, 784))
    y = np.array([4])
    g = input_gradient(net, x, y)
    assert gradient_images(net.gradient(x, y)).shape == (3, 5, 5)
    for k in (0, 300, 410):  # spot-check the conv/pool backward pass against finite differences
        xp, xm = x.copy(), x.copy()
        xp[0, k] += 1e-6
        xm[0, k] -= 1e-6
        assert g[0, k] == pytest.approx((net.cost(xp, y) - net.cost(xm, y)) / 2e-6, rel=1e-4, abs=1e-9)


# --- experiments ------------------------------------------------------------------------
def test_noise_experiment_is_deterministic_and_consistent(trained, small):
    net, _ = trained
    _, te = small
    a = noise_experiment(net, te.x, te.y, n=200, seed=3)
    b = noise_experiment(net, te.x, te.y, n=200, seed=3)
    c = noise_experiment(net, te.x, te.y, n=200, seed=4)
    np.testing.assert_array_equal(a.noise, b.noise)
    np.testing.assert_array_equal(a.noise_outputs, b.noise_outputs)
    assert not np.array_equal(a.noise, c.noise)
    assert a.noise.shape == (200, 784) and 0 <= a.noise.min() and a.noise.max() <= 1
    s = a.summary()
    assert sum(s["noise_predicted_counts"]) == 200
    assert s["noise_mean_confidence"] == pytest.approx(float(a.noise_outputs.max(axis=1).mean()))
    assert s["real_accuracy"] == pytest.approx(float((net.predict(te.x) == te.y).mean()))
    with pytest.raises(ConfigError, match="noise images must be >= 1"):
        noise_experiment(net, te.x, te.y, n=0)


def test_dream_raises_each_digits_output(trained, small):
    net, _ = trained
    tr, _ = small
    r = dream(net, steps=60, seed=0, class_means=class_means(tr))
    assert r.images.shape == (10, 784)
    assert r.images.min() >= 0 and r.images.max() <= 1
    assert np.all(r.final_activation > r.start_activation)
    # the recorded climb starts at the start value and ends at the final value
    np.testing.assert_allclose(r.trace[0], r.start_activation, rtol=1e-5)
    np.testing.assert_allclose(r.trace[-1], r.final_activation, rtol=1e-5)
    s = r.summary()
    assert s["mean_final_activation"] > s["mean_start_activation"]
    assert len(s["digits"]) == 10 and all(-1 <= d["correlation_with_average_digit"] <= 1 for d in s["digits"])


def test_dream_is_deterministic_for_a_seed(trained):
    net, _ = trained
    a, b = dream(net, digits=[3, 8], steps=10, seed=7), dream(net, digits=[3, 8], steps=10, seed=7)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, dream(net, digits=[3, 8], steps=10, seed=8).images)


def test_dream_rejects_bad_arguments(trained):
    net, _ = trained
    with pytest.raises(ConfigError, match="between 0 and 9"):
        dream(net, digits=[10])
    with pytest.raises(ConfigError, match="step size must be > 0"):
        dream(net, step_size=0)
    with pytest.raises(ConfigError, match="steps must be a whole number"):
        dream(net, steps=-1)


def test_class_means_are_the_average_images():
    imgs = np.zeros((3, 2, 2), np.uint8)
    imgs[0, 0, 0] = 255
    imgs[2, 0, 0] = 51
    m = class_means(Split(imgs, np.array([1, 2, 1])), k=3)
    np.testing.assert_allclose(m[1], [0.6, 0, 0, 0], rtol=1e-6)  # (1.0 + 0.2) / 2
    np.testing.assert_allclose(m[2], 0)
    np.testing.assert_allclose(m[0], 0)


def test_shuffle_labels_is_a_permutation():
    y = np.arange(100) % 10
    s = shuffle_labels(y, seed=1)
    assert sorted(s.tolist()) == sorted(y.tolist())
    assert not np.array_equal(s, y)
    np.testing.assert_array_equal(s, shuffle_labels(y, seed=1))


def test_shuffled_label_test_accuracy_is_within_chance(mnist):
    """Over a few seeds: shuffled-label test accuracy stays near 10%, true labels go far above.

    With a few hundred images one labelling can happen to favour a class (the network then
    reads most of that class right by luck), so the bound for one run is loose and the
    average over seeds is tight.
    """
    test = mnist.test.subset(1000)
    cfg = TrainConfig(eta=3.0, batch_size=10)
    shuffled_acc, normal_acc, train_acc = [], [], []
    for seed in range(4):
        r = shuffled_labels_experiment(NetworkConfig(layers=(784, 16, 10)), cfg, mnist.train, test, n_train=300,
                                       epochs=12, seed=seed)
        s = r.summary()
        shuffled_acc.append(s["shuffled"]["final_test_accuracy"])
        normal_acc.append(s["normal"]["final_test_accuracy"])
        train_acc.append(s["shuffled"]["final_train_accuracy"])
        assert r.chance == 0.1 and r.n_train == 300 and r.n_test == 1000
        assert len(r.shuffled.epochs) == 12
    assert all(abs(a - 0.1) < 0.1 for a in shuffled_acc), shuffled_acc
    assert abs(np.mean(shuffled_acc) - 0.1) < 0.04, shuffled_acc
    assert min(normal_acc) > 0.6, normal_acc
    assert np.mean(train_acc) > 0.2, train_acc  # memorising has begun: above chance on its own labels


def test_shuffled_experiment_is_deterministic(mnist):
    test = mnist.test.subset(200)
    args = (NetworkConfig(layers=(784, 8, 10)), TrainConfig(), mnist.train, test)
    a = shuffled_labels_experiment(*args, n_train=100, epochs=2, seed=3)
    b = shuffled_labels_experiment(*args, n_train=100, epochs=2, seed=3)
    sa, sb = a.summary(), b.summary()
    for run in ("normal", "shuffled"):
        assert sa[run]["cost"] == sb[run]["cost"]
        assert sa[run]["test_accuracy"] == sb[run]["test_accuracy"]
    with pytest.raises(ConfigError, match="n_train must be between 1 and"):
        shuffled_labels_experiment(*args, n_train=0)


# --- activations and mistakes -----------------------------------------------------------
def test_activations_match_the_forward_pass(trained, small):
    net, _ = trained
    _, te = small
    a = activations(net, te.x[0])
    fw = net.forward(te.x[:1])
    assert [v.shape for v in a.layers] == [(16,), (10,)]
    np.testing.assert_array_equal(a.output, fw.output[0])
    assert a.prediction == int(fw.output[0].argmax())
    assert a.summary()["outputs"] == pytest.approx(fw.output[0].tolist())


def test_misclassified_sorted_by_confidence():
    outputs = np.array([[0.9, 0.1], [0.2, 0.7], [0.4, 0.6], [0.1, 0.95], [0.8, 0.3]])
    y = np.array([0, 0, 0, 1, 1])
    m = misclassified(outputs, y)
    assert m.index.tolist() == [4, 1, 2]
    assert m.predicted.tolist() == [0, 1, 1]
    assert m.confidence.tolist() == [0.8, 0.7, 0.6]
    assert m.to_list(1) == [{"index": 4, "true": 1, "predicted": 0, "confidence": 0.8}]
