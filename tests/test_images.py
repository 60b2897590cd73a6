"""Preprocessing pictures of digits like MNIST."""

import io

import numpy as np
import pytest
from PIL import Image

from digitnet.data.images import centre_of_mass, prepare
from digitnet.errors import ImageError


def _png(arr, mode="L"):
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8), mode if arr.ndim == 2 else None).save(buf, format="PNG")
    return buf.getvalue()


def _stroke_image(h=300, w=200, top=30, left=20, thick=12, dark_on_light=True):
    """A '1'-like vertical bar and a base, drawn off-centre on a large canvas."""
    img = np.zeros((h, w), np.float32)
    img[top : top + 150, left + 40 : left + 40 + thick] = 255
    img[top + 140 : top + 150, left + 10 : left + 90] = 255
    return 255 - img if dark_on_light else img


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_off_centre_digit_comes_out_centred(dark_on_light):
    x = prepare(_png(_stroke_image(dark_on_light=dark_on_light))).reshape(28, 28)
    assert x.dtype == np.float32 and x.max() == pytest.approx(1.0, abs=0.02) and x.min() >= 0
    rows, cols = np.nonzero(x > 0.1)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21  # fits the 20x20 box
    r, c = centre_of_mass(x)
    assert abs(r - 14) <= 0.5 and abs(c - 14) <= 0.5  # centred by mass, like MNIST
    assert x[0].max() == 0 and x[:, 0].max() == 0  # black border


def test_same_result_for_scale_polarity_and_colour():
    small = _stroke_image(150, 100, 15, 10, 6, True)
    big = np.kron(small, np.ones((4, 4)))
    a = prepare(_png(small))
    b = prepare(_png(255 - big))  # light on dark, four times larger
    rgb = np.stack([small] * 3, axis=-1)
    c = prepare(_png(rgb))
    assert np.abs(a - b).max() < 0.3 and np.abs(a - c).max() < 1e-6


def test_transparent_png_is_ink_on_white():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[20:80, 45:55] = [0, 0, 0, 255]  # opaque black stroke on a transparent background
    x = prepare(_png(rgba)).reshape(28, 28)
    assert x.max() > 0.9 and x[0].max() == 0


def test_mnist_digit_survives_preprocessing(mnist):
    img = mnist.test.images[0].astype(np.float32)
    x = prepare(img).reshape(28, 28)
    # MNIST digits are already prepared: doing it again changes them only slightly.
    assert np.abs(x - img / 255).mean() < 0.03


def test_blank_image():
    with pytest.raises(ImageError, match="blank"):
        prepare(_png(np.full((50, 50), 255)))


def test_not_an_image(tmp_path):
    p = tmp_path / "x.png"
    p.write_text("hello")
    with pytest.raises(ImageError, match="x.png is not an image digitnet can read"):
        prepare(p)
    with pytest.raises(ImageError, match="Cannot open"):
        prepare(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="NaN"):
        prepare(np.full((5, 5), np.nan))


def test_deskew_straightens_a_slanted_stroke():
    from digitnet.data.images import deskew

    img = np.zeros((28, 28), np.float32)
    for r in range(4, 24):  # a stroke leaning right by 0.5 px per row
        img[r, int(round(8 + 0.5 * (r - 4))) : int(round(8 + 0.5 * (r - 4))) + 3] = 1
    out = deskew(img[None])[0]
    cols = [(out[r] * np.arange(28)).sum() / out[r].sum() for r in range(5, 23)]
    before = [(img[r] * np.arange(28)).sum() / img[r].sum() for r in range(5, 23)]
    assert np.ptp(before) > 8 and np.ptp(cols) < 1.5  # the slant is gone
    assert centre_of_mass(out) == pytest.approx(centre_of_mass(img), abs=0.3)
    assert deskew(np.zeros((2, 28, 28)))[0].sum() == 0  # blank images pass through


def test_deskew_in_chunks_equals_at_once(mnist):
    from digitnet.data import resample as images

    a = images.deskew(mnist.test.images[:100])
    old = images.DESKEW_CHUNK
    try:
        images.DESKEW_CHUNK = 7
        b = images.deskew(mnist.test.images[:100])
    finally:
        images.DESKEW_CHUNK = old
    np.testing.assert_array_equal(a, b)


def test_network_applies_its_preprocessing(mnist):
    from digitnet.data.images import deskew_inputs
    from digitnet.nn.network import Network, feedforward

    net = Network.create((784, 16, 10), seed=0, preprocess="deskew")
    x = mnist.test.x[:50]
    np.testing.assert_array_equal(net.feedforward(x), feedforward(net, deskew_inputs(x)))
    plain = Network(net.config.__class__(layers=(784, 16, 10)), net.params)
    assert not np.array_equal(plain.feedforward(x), net.feedforward(x))


def test_deskew_images_matches_deskew_inputs(mnist):
    from digitnet.data import resample as images

    imgs = mnist.test.images[:5000]
    a = images.deskew_images(imgs)
    b = images.deskew_inputs(imgs.reshape(5000, 784).astype(np.float32) / np.float32(255))
    assert a.shape == (5000, 784) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)  # float32 rounding of the moments differs slightly
    assert images.deskew_images(imgs) is a  # a data set is deskewed once per process
