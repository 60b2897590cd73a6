"""Robustness curves: the transformations, the accuracy curves, the figure and the CLI."""

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from digitnet.cli import main
from digitnet.data.datasets import Split
from digitnet.errors import ConfigError
from digitnet.tasks.robustness import (
    TRANSFORMS,
    _warp,
    noise,
    robustness,
    robustness_figure,
    rotate,
    save_robustness_png,
    shift,
    thicken,
    transform,
)


def _com(img):
    r = np.arange(28)
    return np.array([img.sum(1) @ r, img.sum(0) @ r]) / img.sum()


@pytest.fixture
def digits(mnist):
    return mnist.test.x[:50].reshape(50, 28, 28)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_level_zero_changes_nothing(digits, name):
    out = TRANSFORMS[name].fn(digits, 0, np.random.default_rng(0))
    assert out.shape == digits.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, digits, atol=1e-5)


def test_warp_moves_by_whole_pixels_exactly(digits):
    n = len(digits)
    eye = np.broadcast_to(np.eye(2), (n, 2, 2))
    out = _warp(digits, eye, np.tile([2.0, -3.0], (n, 1)))  # 2 rows down, 3 columns left
    expected = np.zeros_like(digits)
    expected[:, 2:, :-3] = digits[:, :-2, 3:]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_warp_interpolates_half_a_pixel():
    img = np.zeros((1, 28, 28), np.float32)
    img[0, 10, 10] = 1.0
    out = _warp(img, np.eye(2)[None], np.array([[0.0, 0.5]]))
    np.testing.assert_allclose(out[0, 10, 10:12], [0.5, 0.5], atol=1e-6)
    assert out.sum() == pytest.approx(1.0)


def test_shift_moves_each_digit_by_the_distance(digits):
    out = shift(digits, 3.0, np.random.default_rng(1))
    moved = np.array([np.linalg.norm(_com(o) - _com(d)) for o, d in zip(out, digits)])
    # Ink pushed off the field moves the centre of mass a little less; most digits fit.
    assert np.median(moved) == pytest.approx(3.0, abs=0.1)
    directions = np.array([_com(o) - _com(d) for o, d in zip(out, digits)])
    assert directions[:, 0].std() > 1 and directions[:, 1].std() > 1  # each in its own direction


def test_rotate_90_is_rot90_one_way_or_the_other(digits):
    out = rotate(digits, 90, np.random.default_rng(2))
    ways = []
    for o, d in zip(out, digits):
        if np.allclose(o, np.rot90(d, 1), atol=1e-4):
            ways.append(1)
        elif np.allclose(o, np.rot90(d, -1), atol=1e-4):
            ways.append(-1)
        else:
            pytest.fail("a 90-degree turn about the centre must be np.rot90")
    assert 1 in ways and -1 in ways


def test_small_rotation_keeps_the_ink_and_its_centre(digits):
    out = rotate(digits, 15, np.random.default_rng(3))
    np.testing.assert_allclose(out.sum(axis=(1, 2)), digits.sum(axis=(1, 2)), rtol=0.03)
    assert max(np.linalg.norm(_com(o) - _com(d)) for o, d in zip(out, digits)) < 1.0


def test_thicken_and_thin_by_a_cross():
    img = np.zeros((1, 28, 28), np.float32)
    img[0, 5, 5] = 1.0
    fat = thicken(img, 1)
    assert fat.sum() == 5 and fat[0, 4, 5] == fat[0, 6, 5] == fat[0, 5, 4] == fat[0, 5, 6] == 1
    assert thicken(img, 2).sum() == 13  # a diamond of radius 2
    block = np.zeros((1, 28, 28), np.float32)
    block[0, 10:13, 10:13] = 0.8
    thin = thicken(block, -1)
    assert thin.sum() == pytest.approx(0.8) and thin[0, 11, 11] == pytest.approx(0.8)
    with pytest.raises(ConfigError, match="whole steps"):
        thicken(img, 0.5)


def test_noise_has_the_asked_spread_and_is_seeded():
    grey = np.full((20, 28, 28), 0.5, np.float32)
    out = noise(grey, 0.1, np.random.default_rng(4))
    assert (out - grey).std() == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(out, noise(grey, 0.1, np.random.default_rng(4)))
    assert not np.array_equal(out, noise(grey, 0.1, np.random.default_rng(5)))
    loud = noise(grey, 5.0, np.random.default_rng(4))
    assert loud.min() == 0 and loud.max() == 1


def test_transform_by_name_keeps_the_shape(digits):
    flat = digits.reshape(len(digits), 784)
    assert transform("noise", flat, 0.2, np.random.default_rng(0)).shape == flat.shape
    assert transform("shift", digits, 1, np.random.default_rng(0)).shape == digits.shape
    with pytest.raises(ConfigError, match="Unknown transformation 'blur'; choose from shift, rotate"):
        transform("blur", digits, 1, np.random.default_rng(0))


def test_transformations_are_vectorised(mnist):
    images = mnist.test.x[:2000].reshape(-1, 28, 28)
    for name in TRANSFORMS:
        start = time.perf_counter()
        TRANSFORMS[name].fn(images, TRANSFORMS[name].levels[-1], np.random.default_rng(0))
        # About 0.06 s for a warp on an idle machine; a loop over the images would take seconds.
        assert time.perf_counter() - start < 1.5, name


# --- the curves -------------------------------------------------------------------


@pytest.fixture(scope="module")
def net():
    """784-30-10 trained for one epoch on 10,000 MNIST images (about a second)."""
    from digitnet.config import TrainConfig
    from digitnet.data.datasets import load_mnist
    from digitnet.nn.network import Network
    from digitnet.training.train import train

    net = Network.create((784, 30, 10), seed=0)
    train(net, load_mnist().train.subset(10000), TrainConfig(epochs=1, record_batch_cost=False))
    return net


def test_curves_start_at_the_plain_accuracy_and_fall(net, mnist):
    r = robustness(net, mnist.test, seed=0, n=1000)
    assert r.n == 1000 and [c.transform for c in r.curves] == list(TRANSFORMS)
    plain = float((net.predict(mnist.test.x[:1000]) == mnist.test.y[:1000]).mean())
    assert r.accuracy == pytest.approx(plain) and plain > 0.85
    for c in r.curves:
        assert c.accuracy.shape == c.levels.shape and c.example.shape == (len(c.levels), 28, 28)
        assert c.accuracy[list(c.levels).index(0)] == pytest.approx(plain)
        assert c.accuracy[-1] < plain - 0.3, c.transform  # the strongest change costs a lot
    shift_curve = r.curves[0].accuracy
    assert (np.diff(shift_curve) <= 0.01).all()  # moving further never helps (much)
    np.testing.assert_allclose(r.curves[0].example[0], mnist.test.x[0].reshape(28, 28))
    assert len(r.rows()) == sum(len(c.levels) for c in r.curves)


def test_curves_are_seeded_and_independent_of_the_others(net, mnist):
    a = robustness(net, mnist.test, ["noise", "shift"], seed=3, n=300)
    b = robustness(net, mnist.test, ["shift"], seed=3, n=300)
    np.testing.assert_array_equal(a.curves[1].accuracy, b.curves[0].accuracy)
    c = robustness(net, mnist.test, ["shift"], seed=4, n=300)
    assert not np.array_equal(b.curves[0].example, c.curves[0].example)


def test_custom_levels_and_bad_arguments(net, mnist):
    r = robustness(net, mnist.test, ["rotate"], {"rotate": (0, 180)}, n=200)
    assert r.curves[0].levels.tolist() == [0, 180]
    with pytest.raises(ConfigError, match="Unknown transformation 'zoom'"):
        robustness(net, mnist.test, ["zoom"])
    with pytest.raises(ConfigError, match="at least one test image"):
        robustness(net, mnist.test, n=0)
    with pytest.raises(ConfigError, match="the split is empty"):
        robustness(net, Split(np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)))


def test_figure_and_png(net, mnist, tmp_path):
    r = robustness(net, mnist.test, ["shift", "thicken"], n=100)
    fig = robustness_figure(r, "my title")
    assert fig._suptitle.get_text() == "my title"
    curves = [ax for ax in fig.axes if ax.get_ylabel() == "accuracy (%)"]
    assert len(curves) == 2 and curves[0].get_xlabel() == "pixels moved"
    assert any(ax.get_ylabel() == "pixel value" for ax in fig.axes)  # colour bars
    p = save_robustness_png(r, tmp_path / "r.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [f.name for f in tmp_path.iterdir()] == ["r.png"]  # no temporary file left


def test_cli_evaluate_robustness(net, mnist, tmp_path, monkeypatch):
    from digitnet.io.model_io import save_model

    model = save_model(tmp_path / "m.safetensors", net)
    folder = tmp_path / "digits"
    for i in range(20):
        (folder / str(int(mnist.test.y[i]))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(mnist.test.images[i]).save(folder / str(int(mnist.test.y[i])) / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["evaluate", str(model), "--images", str(folder), "--robustness", "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
    assert set(obj["robustness"]) == set(TRANSFORMS)
    assert obj["robustness"]["shift"]["levels"][0] == 0 and obj["robustness"]["shift"]["unit"] == "pixels moved"
    assert obj["robustness_png"] == "m-robustness.png" and (tmp_path / "m-robustness.png").exists()
    png = tmp_path / "out" / "curves.png"
    png.parent.mkdir()
    human = CliRunner().invoke(main, ["evaluate", str(model), "--images", str(folder), "--robustness",
                                      "--robustness-png", str(png), "--seed", "1"])
    assert human.exit_code == 0, human.output
    assert "Robustness on 20 images (seed 1)" in human.output and f"Saved the curves to {png}" in human.output
    assert "rotate" in human.output and "(degrees turned)" in human.output and png.exists()
