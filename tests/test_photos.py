"""Reading photographed digits: the ink finder (digitnet.data.ink), the not-one-digit cases,
transparent PNGs, and a small trained network reading photo-like digits."""

import io

import numpy as np
import pytest
from PIL import Image

from digitnet.data import ink
from digitnet.data import photolike
from digitnet.data.images import examine, prepare
from digitnet.errors import ImageError


def _png(arr):
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("condition", photolike.CONDITIONS)
def test_each_photo_condition_gives_the_clean_input(mnist, condition):
    # Four MNIST test digits photographed under the condition: the prepared input is
    # close to the digit's own (correlation > 0.8) for at least three of them.
    good = []
    for i in range(4):
        rng = np.random.default_rng([7, i])
        picture = photolike.photo(photolike.mnist_ink(mnist.test.images[i], 200), condition, rng)
        clean = prepare(mnist.test.images[i].astype(np.float32))
        good.append(_corr(prepare(picture), clean) > 0.8)
    assert sum(good) >= 3, good


def _paper_with(marks, size=(400, 500), noise=6.0, seed=0):
    """Grey paper with noise and dark rectangles ``(top, left, height, width)``."""
    rng = np.random.default_rng(seed)
    img = np.full(size, 200.0) + rng.normal(0, noise, size)
    for t, l, h, w in marks:
        img[max(t, 0) : max(t + h, 0), max(l, 0) : max(l + w, 0)] = 40  # cut off at the edges
    return np.clip(img, 0, 255)


def _seven(top, left, s=1.0):
    """A crude 7: a bar and a slanted stroke, as rectangles."""
    s5 = int(round(5 * s))
    marks = [(top, left, int(14 * s), int(90 * s))]
    for k in range(0, int(150 * s), s5):
        marks.append((top + k, left + int(80 * s) - int(k * 0.4), s5, int(16 * s)))
    return marks


def test_one_digit_has_no_problem():
    found = examine(_png(_paper_with(_seven(120, 200))))
    assert found.problem is None
    prepare(_png(_paper_with(_seven(120, 200))), strict=True)  # no error


def test_paper_with_only_noise_is_blank():
    with pytest.raises(ImageError, match="blank"):
        prepare(_png(_paper_with([], noise=8.0)))


def test_several_marks_are_not_one_digit():
    picture = _png(_paper_with(_seven(120, 40) + _seven(120, 330)))
    assert "separate marks" in examine(picture).problem
    with pytest.raises(ImageError, match=r"^The image does not look like one digit: it has 2 separate marks of similar "
                                         r"size; crop it to the one digit you want read\.$"):
        prepare(picture, strict=True)
    assert prepare(picture).shape == (784,)  # not strict: prepared anyway
    # A speck of dust next to the digit is not a second mark.
    assert examine(_png(_paper_with(_seven(120, 200) + [(60, 60, 4, 4)]))).problem is None


def test_ink_touching_the_border_is_said(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(_png(_paper_with(_seven(-40, 200))))  # the 7's bar is cut off at the top
    assert "touches the edge" in examine(path).problem
    with pytest.raises(ImageError, match=r"cut.png does not look like one digit: the digit touches the edge"):
        prepare(path, strict=True)


def test_the_tables_edge_and_ruled_lines_are_not_the_digit():
    img = _paper_with(_seven(120, 200))
    img[:, 460:] = 70  # the table beyond the paper's right edge
    for r in range(20, 400, 30):
        img[r : r + 2, :460] = 150  # ruled lines across the paper
    found = examine(_png(img))
    clean = examine(_png(_paper_with(_seven(120, 200))))
    assert found.problem is None and _corr(found.x, clean.x) > 0.9


def _rgba_digit(rgb):
    rgba = np.zeros((120, 100, 4), np.uint8)
    rgba[20:100, 45:57, :3] = rgb  # a stroke of a "1"
    rgba[20:100, 45:57, 3] = 255
    rgba[20:30, 30:57, :3] = rgb
    rgba[20:30, 30:57, 3] = 255
    return rgba


@pytest.mark.parametrize("rgb", [(255, 255, 255), (0, 0, 0), (30, 30, 160)])
def test_transparent_png_digit_is_read_whatever_its_colour(rgb):
    # A white digit on a transparent background used to be "The image is blank".
    x = prepare(_png(_rgba_digit(rgb))).reshape(28, 28)
    ref = prepare(_png(255 - _rgba_digit((255, 255, 255))[..., 3])).reshape(28, 28)
    assert x.max() > 0.9 and x[0].max() == 0
    assert _corr(x, ref) > 0.95


def test_label_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = rng.integers(1, 40, 2)
        mask = rng.random((h, w)) < rng.uniform(0.05, 0.7)
        labels, n = ink.label(mask)
        theirs, m = ndimage.label(mask, structure=np.ones((3, 3)))
        assert n == m and (labels[~mask] == 0).all()
        assert len(set(zip(labels[mask].tolist(), theirs[mask].tolist()))) == n  # the same pieces


def test_max_and_min_filters_match_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    for _ in range(50):
        h, w = rng.integers(1, 50, 2)
        size = int(rng.integers(1, 14)) | 1
        a = rng.random((h, w)).astype(np.float32)
        np.testing.assert_array_equal(ink._filter(a, size, "max"), ndimage.maximum_filter(a, size, mode="nearest"))
        np.testing.assert_array_equal(ink._filter(a, size, "min"), ndimage.minimum_filter(a, size, mode="nearest"))


def test_a_small_network_reads_photographed_digits(mnist):
    # A network that reads MNIST's own digits reads the same digits photographed (uneven
    # light, noise, lined and squared paper, a table, a shadow) about as well.
    from digitnet import Network, TrainConfig, train

    net = Network.create((784, 16, 10), seed=0)
    train(net, mnist.train.subset(5000), TrainConfig(epochs=1, record_batch_cost=False))
    rng = np.random.default_rng(3)
    conditions = ["uneven light", "sensor noise", "lined paper", "squared paper", "table", "shadow"]
    index = np.arange(20, 32)
    pictures = [photolike.photo(photolike.mnist_ink(mnist.test.images[i], 200), conditions[i % 6], rng)
                for i in index]
    y = mnist.test.y[index]
    clean = int((net.feedforward(mnist.test.x[index]).argmax(axis=1) == y).sum())
    photos = int((net.feedforward(np.stack([prepare(p) for p in pictures])).argmax(axis=1) == y).sum())
    assert clean >= 9 and photos >= clean - 1, (clean, photos)


def _on_paper(digit, paper=240.0, ink_level=40.0, size=300, noise=4.0, seed=0):
    """An MNIST digit (28x28, white on black) as ink on paper, 200 pixels tall, with noise."""
    rng = np.random.default_rng(seed)
    cover = photolike.mnist_ink(digit, 200)
    img = np.full((size, size), paper)
    img[50:250, 50:250] = paper * (1 - cover) + ink_level * cover
    return img + rng.normal(0, noise, img.shape)


@pytest.mark.parametrize("i", range(4))
def test_chalk_on_a_blackboard(mnist, i):
    # Light ink on dark paper, in a photo-sized picture with noise: the ink is the light
    # strokes (the polarity check does not take the gaps between them for ink).
    clean = prepare(mnist.test.images[i].astype(np.float32))
    board = _on_paper(mnist.test.images[i], paper=50.0, ink_level=220.0)
    assert _corr(prepare(_png(np.clip(board, 0, 255))), clean) > 0.8


def test_predict_reports_a_picture_that_is_not_one_digit(tmp_path):
    # `digitnet predict` prepares strictly: two digits in one photo are reported, not guessed at.
    from click.testing import CliRunner

    from digitnet.cli import main
    from digitnet.io.model_io import save_model
    from digitnet.nn.network import Network

    model = tmp_path / "m.safetensors"
    save_model(model, Network.create((784, 8, 10), seed=0))
    two = tmp_path / "two.png"
    two.write_bytes(_png(_paper_with(_seven(120, 40) + _seven(120, 330))))
    one = tmp_path / "one.png"
    one.write_bytes(_png(_paper_with(_seven(120, 200))))
    r = CliRunner().invoke(main, ["predict", str(model), str(two)])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "two.png does not look like one digit: it has 2 separate marks" in r.output
    r = CliRunner().invoke(main, ["predict", str(model), str(one), str(two)])
    assert r.exit_code == 1
    assert r.output.splitlines()[0].startswith(f"{one}: ") and "error" not in r.output.splitlines()[0]


def test_predict_names_each_file_once_and_a_blank_one_too(tmp_path):
    from click.testing import CliRunner

    from digitnet.cli import main
    from digitnet.io.model_io import save_model
    from digitnet.nn.network import Network

    model = tmp_path / "m.safetensors"
    save_model(model, Network.create((784, 8, 10), seed=0))
    blank = tmp_path / "blank.png"
    blank.write_bytes(_png(np.full((80, 80), 200)))
    two = tmp_path / "two.png"
    two.write_bytes(_png(_paper_with(_seven(120, 40) + _seven(120, 330))))
    r = CliRunner().invoke(main, ["predict", str(model), str(blank)])
    assert r.exit_code == 1 and r.output.startswith(f"Error: {blank}: The image is blank"), r.output
    r = CliRunner().invoke(main, ["predict", str(model), str(two), str(blank)])
    lines = r.output.splitlines()
    assert lines[0] == f"{two}: error: does not look like one digit: it has 2 separate marks of similar size; " \
                       "crop it to the one digit you want read.", lines
    assert lines[1].startswith(f"{blank}: error: The image is blank"), lines
