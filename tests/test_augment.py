"""Data augmentation: the geometry of shifts and turns, elastic distortion, seeding, batches."""

import numpy as np
import pytest

from digitnet.config import TrainConfig
from digitnet.errors import ConfigError
from digitnet.training.augment import _gaussian_matrix, augment, distort


class FixedDraws:
    """Stands in for a Generator: ``uniform`` returns the given values (shifts, then angles)."""

    def __init__(self, *values):
        self.values = list(values)

    def uniform(self, low, high, size):
        v = np.asarray(self.values.pop(0), dtype=float)
        return np.broadcast_to(v, size).copy()


def square(side=9):
    img = np.zeros((side, side), np.float32)
    img[2:5, 3:7] = 1.0  # an off-centre bar, so turns and shifts are visible
    return img


def test_no_distortion_gives_the_images_back():
    x = np.random.default_rng(0).random((5, 49), dtype=np.float32)
    out = augment(x, np.random.default_rng(1), shift=0, rotation=0)
    np.testing.assert_array_equal(out, x)
    assert out is not x and out.dtype == np.float32


def test_shift_moves_the_picture_down_and_right_by_whole_pixels():
    img = square()
    out = augment(img.reshape(1, -1), FixedDraws([[1.0, 2.0]], [0.0]), shift=2, rotation=1).reshape(9, 9)
    want = np.zeros_like(img)
    want[3:6, 5:9] = 1.0
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_shift_out_of_the_picture_fills_with_black():
    out = augment(np.ones((1, 16), np.float32), FixedDraws([[0.0, -1.0]], [0.0]), shift=1, rotation=1).reshape(4, 4)
    assert out[:, :3].min() == pytest.approx(1.0) and out[:, 3].max() == pytest.approx(0.0)


def test_rotation_by_90_degrees_turns_the_picture_clockwise():
    img = square()
    out = augment(img.reshape(1, -1), FixedDraws([[0.0, 0.0]], [90.0]), shift=1, rotation=90).reshape(9, 9)
    np.testing.assert_allclose(out, np.rot90(img, k=-1), atol=1e-5)


def test_half_pixel_shift_interpolates():
    img = np.zeros((1, 5, 5), np.float32)
    img[0, 2, 2] = 1.0
    out = augment(img.reshape(1, -1), FixedDraws([[0.0, 0.5]], [0.0]), shift=1, rotation=1).reshape(5, 5)
    assert out[2, 2] == pytest.approx(0.5) and out[2, 3] == pytest.approx(0.5) and out.sum() == pytest.approx(1.0)


def test_batch_is_distorted_per_example_as_one_by_one():
    rng = np.random.default_rng(0)
    x = rng.random((3, 64), dtype=np.float32)
    shifts = [[0.3, -1.2], [1.5, 0.0], [-0.7, 0.9]]
    angles = [5.0, -12.0, 0.0]
    batch = augment(x, FixedDraws(shifts, angles), shift=2, rotation=15)
    for i in range(3):
        one = augment(x[i : i + 1], FixedDraws([shifts[i]], [angles[i]]), shift=2, rotation=15)
        np.testing.assert_allclose(batch[i : i + 1], one, atol=1e-6)


def test_same_seed_same_distortions_and_input_untouched():
    x = np.random.default_rng(0).random((4, 784), dtype=np.float32)
    before = x.copy()
    a = augment(x, np.random.default_rng(7), elastic_alpha=34)
    b = augment(x, np.random.default_rng(7), elastic_alpha=34)
    c = augment(x, np.random.default_rng(8), elastic_alpha=34)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(x, before)
    assert a.min() >= 0 and a.max() <= 1


def test_elastic_distortion_moves_ink_but_keeps_most_of_it(mnist):
    x = mnist.train.x[:20]
    out = augment(x, np.random.default_rng(0), shift=0, rotation=0, elastic_alpha=34, elastic_sigma=4)
    moved = np.abs(out - x).sum(axis=1) / x.sum(axis=1)
    assert (moved > 0.05).all()  # every image changed
    assert out.sum() == pytest.approx(x.sum(), rel=0.15)  # strokes bend and stretch, but ink is not lost


def test_gaussian_smoothing_matrix_keeps_constants():
    g = _gaussian_matrix(28, 4.0, "float64")
    np.testing.assert_allclose(g @ np.ones(28), np.ones(28))
    assert g[14, 14] > g[14, 18] > g[14, 22] > 0


def test_distort_uses_only_the_configured_kinds():
    x = np.random.default_rng(0).random((2, 100), dtype=np.float32)
    off = TrainConfig(augment=("elastic",), elastic_alpha=0.0)
    np.testing.assert_array_equal(distort(x, np.random.default_rng(0), off), x)
    on = TrainConfig(augment="shift,rotate")
    assert on.augment == ("shift", "rotate")
    assert not np.allclose(distort(x, np.random.default_rng(0), on), x)


def test_augment_needs_square_images():
    with pytest.raises(ConfigError, match="square images"):
        augment(np.zeros((2, 10), np.float32), np.random.default_rng(0))


def test_unknown_augmentation_is_refused():
    with pytest.raises(ConfigError, match="^augment must be one of shift, rotate, elastic"):
        TrainConfig(augment=("flip",))
