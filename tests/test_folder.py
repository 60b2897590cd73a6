"""A folder of labelled images as a data set, and saving drawn digits into one."""

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from digitnet.cli import main
from digitnet.data.datasets import Dataset, Split
from digitnet.data.folder import (
    add_to_training,
    list_labelled_images,
    load_folder,
    read_image_folder,
    save_labelled_image,
    worst_mistakes,
)
from digitnet.data.images import prepare
from digitnet.errors import DataError, ImageError


def _save(path, mnist_image, how="L"):
    """Write an MNIST digit as a picture a person might have: bigger, dark on light, in colour..."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(255 - mnist_image).resize((84, 84))
    if how == "RGB":
        im = im.convert("RGB")
    elif how == "RGBA":  # dark ink on transparent paper
        a = np.zeros((84, 84, 4), np.uint8)
        a[..., 3] = 255 - np.asarray(im)
        im = Image.fromarray(a, mode="RGBA")
    im.save(path)


@pytest.fixture
def folder(tmp_path, mnist):
    """DIR/<label>/*.png from the first 30 MNIST test digits, in assorted sizes and modes."""
    d = tmp_path / "digits"
    for i in range(30):
        label = int(mnist.test.y[i])
        suffix = ".jpg" if i % 7 == 3 else ".png"
        how = ["L", "RGB", "RGBA"][i % 3] if suffix == ".png" else "RGB"
        _save(d / str(label) / f"img{i:02d}{suffix}", mnist.test.images[i], how)
    return d


def test_reads_labels_from_folder_names(folder, mnist):
    f = read_image_folder(folder)
    assert len(f) == 30 and f.split.images.shape == (30, 28, 28) and f.split.images.dtype == np.uint8
    assert f.split.x.shape == (30, 784)
    # Sorted by label then name; each label is its folder's name.
    assert [p.parent.name for p in f.paths] == [str(y) for y in f.split.y]
    assert list(f.split.y) == sorted(f.split.y)
    assert sorted(f.split.y.tolist()) == sorted(mnist.test.y[:30].tolist())
    assert f.counts().sum() == 30 and f.counts()[int(mnist.test.y[0])] >= 1


def test_images_are_prepared_like_mnist(folder):
    f = read_image_folder(folder)
    for i in (0, 7, 29):
        np.testing.assert_allclose(f.split.x[i], prepare(f.paths[i]), atol=0.5 / 255 + 1e-6)
        # Prepared like MNIST: bright ink on black, centred by mass.
        img = f.split.x[i].reshape(28, 28)
        assert img[0].max() == 0 and img.max() > 0.9
        r = np.arange(28)
        assert abs(img.sum(1) @ r / img.sum() - 13.5) < 1 and abs(img.sum(0) @ r / img.sum() - 13.5) < 1


def test_load_folder_is_the_split(folder):
    s = load_folder(folder)
    assert isinstance(s, Split) and len(s) == 30


def test_hidden_entries_are_ignored(folder):
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "3" / ".img.png.abc.tmp").write_bytes(b"half a picture")
    (folder / ".cache").mkdir()
    assert len(list_labelled_images(folder)) == 30


def test_errors_name_the_problem(tmp_path, mnist):
    with pytest.raises(DataError, match="does not exist.*DIR|does not exist.*/0/"):
        load_folder(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_folder(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="No images in .*empty"):
        load_folder(empty)
    (empty / "4").mkdir()
    with pytest.raises(DataError, match="No images in"):
        load_folder(empty)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / "readme.txt").write_text("hi"), r"readme.txt is a file where only label folders 0..9 belong"),
        (lambda d: (d / "10").mkdir(), r"10 is a folder where only label folders 0..9 belong"),
        (lambda d: (d / "seven").mkdir(), r"seven is a folder where only label folders"),
        (lambda d: (d / "5").write_bytes(b"x"), r"5 is a file; it must be a folder of images labelled 5"),
        (lambda d: (d / "1" / "more").mkdir(parents=True), r"more is a folder inside label folder"),
        (lambda d: (d / "1" / "notes.txt").write_text("x"), r"notes.txt is not an image file"),
    ],
)
def test_wrong_layout(folder, make, message):
    for f in (folder / "5").iterdir():  # make room for a file named 5
        f.unlink()
    (folder / "5").rmdir()
    make(folder)
    with pytest.raises(DataError, match=message):
        load_folder(folder)


def test_unreadable_or_blank_image_names_the_file(tmp_path):
    d = tmp_path / "d"
    (d / "2").mkdir(parents=True)
    (d / "2" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageError, match=r"broken.png is not an image digitnet can read"):
        load_folder(d)
    (d / "2" / "broken.png").unlink()
    Image.new("L", (40, 40), 255).save(d / "2" / "blank.png")
    with pytest.raises(ImageError, match=r"blank.png: The image is blank"):
        load_folder(d)


# --- save_labelled_image ----------------------------------------------------------


def test_save_array_then_read_back(tmp_path, mnist):
    d = tmp_path / "mine"
    p = save_labelled_image(d, 7, mnist.test.images[0])  # uint8, white on black, like a prepared drawing
    assert p.parent == d / "7" and p.suffix == ".png" and p.exists()
    with Image.open(p) as im:
        assert im.mode == "L" and im.size == (28, 28)
        np.testing.assert_array_equal(np.asarray(im), mnist.test.images[0])
    q = save_labelled_image(d, "7", mnist.test.x[0])  # floats 0..1, 784 long; label as a digit string
    assert q != p and q.parent == d / "7"
    s = load_folder(d)
    assert s.y.tolist() == [7, 7]
    assert sorted(x.name for x in (d / "7").iterdir()) == sorted([p.name, q.name])  # no temporary files left


def test_save_image_bytes(tmp_path, mnist):
    buf = io.BytesIO()
    a = np.zeros((120, 90, 4), np.uint8)  # a transparent canvas with dark ink, as a browser sends it
    a[..., 3] = np.asarray(Image.fromarray(mnist.test.images[1]).resize((90, 120)))
    Image.fromarray(a, mode="RGBA").save(buf, format="PNG")
    p = save_labelled_image(tmp_path, 2, buf.getvalue())
    with Image.open(p) as im:
        assert im.mode == "L" and im.size == (90, 120)
    np.testing.assert_allclose(load_folder(tmp_path).x[0], prepare(buf.getvalue()), atol=0.5 / 255 + 1e-6)


def test_file_names_are_made_here(tmp_path, mnist):
    names = {save_labelled_image(tmp_path, 0, mnist.test.images[3]).name for _ in range(5)}
    assert len(names) == 5
    for n in names:
        assert n.endswith(".png") and "/" not in n and not n.startswith(".")


@pytest.mark.parametrize("label", [10, -1, "x", "../3", True, 3.0, None, "12"])
def test_save_rejects_bad_labels(tmp_path, mnist, label):
    with pytest.raises(DataError, match="The label must be a whole number 0..9"):
        save_labelled_image(tmp_path / "d", label, mnist.test.images[0])
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "image, error, message",
    [
        (np.zeros((28, 28), np.uint8), ImageError, "The image is blank"),
        (np.ones((27, 28), np.uint8), ImageError, r"Expected a 28x28 picture.*\(27, 28\)"),
        (np.full((28, 28), 2.0), ImageError, "must hold values 0..1"),
        (np.full((28, 28), np.nan), ImageError, "must hold values 0..1"),
        (np.full((28, 28), 300), ImageError, "grey levels 0..255"),
        (b"GIF89a but not really", ImageError, "is not an image digitnet can read"),
        ("picture.png", ImageError, "Expected a 28x28 array or the bytes of an image file; got str"),
    ],
)
def test_save_rejects_bad_images_and_writes_nothing(tmp_path, image, error, message):
    with pytest.raises(error, match=message):
        save_labelled_image(tmp_path / "d", 1, image)
    assert not (tmp_path / "d").exists()


def test_save_into_a_file_fails(tmp_path, mnist):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="it is a file, not a folder"):
        save_labelled_image(tmp_path / "f", 1, mnist.test.images[0])


# --- helpers for training and reports ------------------------------------------------


def test_add_to_training_puts_extra_images_first(mnist):
    small = Dataset("mnist", mnist.classes, mnist.train.subset(12000), mnist.test)
    extra = Split(np.full((3, 28, 28), 9, np.uint8), np.array([1, 2, 3]))
    d = add_to_training(small, extra)
    assert len(d.train) == 12003 and d.test is small.test and d.name == "mnist"
    assert d.train.y[:3].tolist() == [1, 2, 3] and (d.train.images[:3] == 9).all()
    # The held-out validation images are the same ones as without the extra images.
    np.testing.assert_array_equal(d.with_validation()[1].images, small.with_validation()[1].images)
    with pytest.raises(DataError, match="label 12 but mnist has only 10 classes"):
        add_to_training(small, Split(extra.images, np.array([1, 2, 12])))


def test_worst_mistakes_by_margin():
    outputs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.45, 0.44], [0.0, 0.1, 0.9], [0.6, 0.3, 0.1]])
    labels = np.array([0, 0, 2, 2, 1])  # wrong: 1 (margin 0.5), 2 (0.01), 4 (0.3)
    assert worst_mistakes(outputs, labels).tolist() == [1, 4, 2]
    assert worst_mistakes(outputs, labels, k=1).tolist() == [1]
    assert worst_mistakes(outputs, np.array([0, 1, 1, 2, 0])).tolist() == []


# --- the command line ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """784-30-10 trained for one epoch on 10,000 MNIST images (about a second)."""
    from digitnet.config import TrainConfig
    from digitnet.data.datasets import load_mnist
    from digitnet.io.model_io import save_model
    from digitnet.nn.network import Network
    from digitnet.training.train import train

    net = Network.create((784, 30, 10), seed=0)
    history = train(net, load_mnist().train.subset(10000), TrainConfig(epochs=1, record_batch_cost=False))
    return save_model(tmp_path_factory.mktemp("m") / "m.safetensors", net, history)


def test_cli_evaluate_images(small_model, folder):
    r = CliRunner().invoke(main, ["evaluate", str(small_model), "--images", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
    assert obj["n"] == 30 and obj["images"] == str(folder) and obj["dataset"] is None
    assert obj["accuracy"] >= 0.7  # MNIST's own digits, redrawn as files a person might have
    assert np.array(obj["confusion"]).sum() == 30
    wrong = 30 - round(30 * obj["accuracy"])
    assert len(obj["worst_mistakes"]) == min(wrong, 10)
    for m in obj["worst_mistakes"]:
        assert m["true"] != m["predicted"] and m["output_predicted"] >= m["output_true"]
        assert m["file"].startswith(str(folder / m["true"]))
    human = CliRunner().invoke(main, ["evaluate", str(small_model), "--images", str(folder)]).output
    assert f"Accuracy on your images in {folder}:" in human and "Confusion matrix" in human
    assert ("Worst mistakes" in human) == (wrong > 0)


def test_cli_evaluate_images_errors(small_model, tmp_path):
    r = CliRunner().invoke(main, ["evaluate", str(small_model), "--images", str(tmp_path)])
    assert r.exit_code == 1 and r.output.startswith("Error: No images in") and "Traceback" not in r.output


def test_cli_train_with_extra_images(folder, tmp_path):
    out = tmp_path / "x.safetensors"
    r = CliRunner().invoke(main, ["train", "--layers", "784,10", "--epochs", "1", "--train-size", "500",
                                  "--extra-images", str(folder), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"Added 30 of your images from {folder} to the 60,000 training images." in r.output
    assert out.exists()
    bad = CliRunner().invoke(main, ["train", "--epochs", "1", "--extra-images", str(tmp_path / "none")])
    assert bad.exit_code == 1 and "Image folder" in bad.output and "does not exist" in bad.output
