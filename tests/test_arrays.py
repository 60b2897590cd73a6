"""Your own arrays (digitnet.data.arrays): training, saving, predicting, bad input, --data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.arrays import ArrayInput, from_arrays, read_data_file
from digitnet.errors import DataError
from digitnet.io.model_io import load_model
from digitnet.nn.network import Network
from digitnet.tasks.run import run_training
from digitnet.training.train import train


def blobs(n=240, seed=0):
    """Three well-separated blobs with features of very different scales and string labels."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [1, 1], [0, 1]], float)
    k = rng.integers(0, 3, n)
    X = (centres[k] + 0.1 * rng.standard_normal((n, 2))) * [1000.0, 0.001] + [50_000.0, -7.0]
    return X, np.array(["cat", "dog", "bird"])[k]


def test_from_arrays_standardises_and_maps_labels():
    X, y = blobs()
    data = from_arrays(X, y, test_size=0.25)
    assert data.classes == ("bird", "cat", "dog")  # sorted unique labels
    assert len(data.train) == 180 and len(data.test) == 60
    assert np.allclose(data.train.x.mean(axis=0), 0, atol=1e-9) and np.allclose(data.train.x.std(axis=0), 1)
    assert data.train.x.shape == (180, 2)  # floats are not divided by 255
    assert set(np.unique(data.train.y)) == {0, 1, 2}


def test_save_load_predict_round_trip_with_string_labels(tmp_path):
    X, y = blobs()
    data = from_arrays(X, y)
    out = tmp_path / "mine.safetensors"
    net_cfg = NetworkConfig((2, 8, 3))
    result = run_training(net_cfg, TrainConfig(epochs=20, eta=3.0), out, data)
    assert result.history.epochs[-1].test_accuracy > 0.95
    saved = load_model(out)
    assert saved.input is not None and saved.input.labels == ("bird", "cat", "dog")
    assert np.array_equal(saved.input.mean, data.input.mean) and np.array_equal(saved.input.scale, data.input.scale)
    pred = saved.input.predict(saved.net, X)
    assert pred.dtype.kind == "U" and (pred == y).mean() > 0.95
    # The transform is applied at predict: raw rows, not standardised ones, give these answers.
    assert np.array_equal(pred, data.input.decode(saved.net.predict(data.input.transform(X))))
    assert (data.input.decode(saved.net.predict(X)) == y).mean() < 0.9  # without it: wrong


def test_int_labels_round_trip_as_ints(tmp_path):
    X, y = blobs()
    labels = np.array([10, 20, 30])[np.searchsorted(["bird", "cat", "dog"], y)]
    out = tmp_path / "ints.safetensors"
    run_training(NetworkConfig((2, 8, 3)), TrainConfig(epochs=5), out, from_arrays(X, labels))
    saved = load_model(out)
    assert saved.input.labels == (10, 20, 30)
    assert saved.input.predict(saved.net, X[:5]).dtype.kind == "i"


def test_mnist_model_files_have_no_array_input(tmp_path, mnist):
    out = tmp_path / "m.safetensors"
    run_training(NetworkConfig((784, 10)), TrainConfig(epochs=1, train_size=100), out, mnist)
    assert load_model(out).input is None
    np.savez(tmp_path / "d.npz", X=np.ones((2, 784)), y=[0, 1])
    r = CliRunner().invoke(main, ["evaluate", str(out), "--data", str(tmp_path / "d.npz")])
    assert r.exit_code == 1 and "was trained on images, not on your own arrays" in r.output, r.output


@pytest.mark.parametrize("engine", ["numba", "numpy", "reference"])
def test_each_engine_agrees_with_the_reference(engine):
    pytest.importorskip("numba") if engine == "numba" else None
    X, y = blobs(100)
    data = from_arrays(X, y, test_size=0)
    results = {}
    for name in ("reference", engine):
        net = Network.create(NetworkConfig((2, 5, 3)), seed=0)
        train(net, data.train, TrainConfig(epochs=3, batch_size=10, eta=1.0), engine=name)
        results[name] = net
    for p, q in zip(results["reference"].params, results[engine].params):
        for k in p:
            np.testing.assert_allclose(p[k], q[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("X, y, words", [
    (np.array([[1.0, np.nan], [2.0, 3.0]]), ["a", "b"], ["NaN", "row 0, column 1"]),
    (np.array([[1.0, np.inf], [2.0, 3.0]]), ["a", "b"], ["infinite"]),
    (np.arange(4.0), ["a", "b", "a", "b"], ["2-D", "reshape"]),
    (np.ones((2, 2, 2)), ["a", "b"], ["2-D", "(2, 2, 2)"]),
    (np.ones((3, 2)), ["a", "a", "a"], ["only one class", "at least two"]),
    (np.ones((3, 2)), ["a", "b"], ["3 examples", "2 labels"]),
    (np.array([["x", "y"], ["z", "w"]]), ["a", "b"], ["not numbers"]),
    (np.ones((2, 2)), ["a", 1], ["mix kinds"]),
])
def test_bad_arrays_one_line(X, y, words):
    with pytest.raises(DataError) as e:
        from_arrays(X, y, test_size=0)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_unknown_labels_and_wrong_width_at_predict_are_one_line():
    X, y = blobs(60)
    inp = ArrayInput.fit(X, y)
    with pytest.raises(DataError, match=r"'fish' \(row 1\), which is not one of the model's classes") as e:
        inp.encode(["cat", "fish"])
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="3 features per example but the model was trained on 2"):
        inp.transform(np.ones((4, 3)))


def test_read_data_file_npz_and_csv(tmp_path):
    X, y = blobs(20)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    X2, y2, test = read_data_file(tmp_path / "d.npz")
    assert np.array_equal(X2, X) and np.array_equal(y2, y) and test is None
    (tmp_path / "d.csv").write_text("f1,f2,label\n1.5,2,7\n3,4,8\n")
    X3, y3, _ = read_data_file(tmp_path / "d.csv")
    assert X3.tolist() == [[1.5, 2.0], [3.0, 4.0]] and y3.tolist() == [7, 8]
    (tmp_path / "nohead.csv").write_text("1.5,2,yes\n3,4,no\n")
    assert read_data_file(tmp_path / "nohead.csv")[1].tolist() == ["yes", "no"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    for name, words in (("bad.npz", "not a readable .npz"), ("missing.csv", "No data file"), ("d.txt", "unknown")):
        (tmp_path / "d.txt").write_text("1")
        with pytest.raises(DataError, match=words):
            read_data_file(tmp_path / name)
    np.savez(tmp_path / "noy.npz", X=X)
    with pytest.raises(DataError, match="no array named y"):
        read_data_file(tmp_path / "noy.npz")


def _csv(path, X, y):
    path.write_text("a,b,label\n" + "".join(f"{r[0]},{r[1]},{lab}\n" for r, lab in zip(X, y)))


@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_cli_train_data(tmp_path, kind):
    X, y = blobs()
    f = tmp_path / f"d.{kind}"
    np.savez(f, X=X, y=y) if kind == "npz" else _csv(f, X, y)
    out = tmp_path / "m.safetensors"
    r = CliRunner().invoke(main, ["train", "--data", str(f), "--layers", "8", "--epochs", "10", "--out", str(out),
                                  "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert report["network"]["layers"] == [2, 8, 3] and report["network"]["preprocess"] == "none"
    assert report["test_accuracy"] > 0.9
    saved = load_model(out)
    assert (saved.input.predict(saved.net, X) == y).mean() > 0.9


def test_cli_train_data_default_hidden_and_errors(tmp_path):
    X, y = blobs(50)
    f = tmp_path / "d.npz"
    np.savez(f, X=X, y=y)
    r = CliRunner().invoke(main, ["train", "--data", str(f), "--epochs", "1", "--out", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 0, r.output
    assert "Training 2-16-16-3" in r.output and "test examples" in r.output
    np.savez(f, X=np.where(X > 0, np.nan, X), y=y)
    for args, words in ((["--data", str(f)], "NaN"), (["--data", str(tmp_path / "no.npz")], "No data file"),
                        (["--data", str(f), "--dataset", "mnist"], "leave out --dataset"),
                        (["--data", str(f), "--preprocess", "deskew"], "--preprocess works on 28x28 images")):
        r = CliRunner().invoke(main, ["train", *args, "--out", str(tmp_path / "x.safetensors")])
        assert r.exit_code == 1 and r.output.startswith("Error: ") and words in r.output, r.output
        assert r.output.count("\n") == 1, r.output


def test_text_labels_accept_numbers_written_the_same_way():
    inp = ArrayInput.fit(np.arange(8.0).reshape(4, 2), np.array(["0", "1", "0", "1"]))
    assert inp.encode([1, 0, "1"]).tolist() == [1, 0, 1]


def test_cli_evaluate_data(tmp_path):
    X, y = blobs()
    f, model = tmp_path / "d.npz", tmp_path / "m.safetensors"
    np.savez(f, X=X, y=y, X_test=X[:30], y_test=y[:30])
    r = CliRunner().invoke(main, ["train", "--data", str(f), "--layers", "8", "--epochs", "10", "--out", str(model)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["evaluate", str(model), "--data", str(f), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["n"] == 30 and report["classes"] == ["bird", "cat", "dog"] and report["accuracy"] > 0.9
    r = CliRunner().invoke(main, ["evaluate", str(model), "--data", str(f)])
    assert r.exit_code == 0 and f"Accuracy on {f}:" in r.output and "of 30 examples right" in r.output
    other = tmp_path / "other.npz"
    np.savez(other, X=X[:5], y=np.array(["cat", "fish", "dog", "cat", "cat"]))
    for args, words in ((["--data", str(other)], "'fish' (row 1)"), ([], "give the file to test it on with --data"),
                        (["--data", str(f), "--robustness"], "leave out --robustness")):
        r = CliRunner().invoke(main, ["evaluate", str(model), *args])
        assert r.exit_code == 1 and r.output.startswith("Error: ") and words in r.output, r.output
        assert r.output.count("\n") == 1, r.output


def test_no_test_split_means_no_test_accuracy(tmp_path):
    X, y = blobs(60)
    data = from_arrays(X, y, test_size=0)
    assert len(data.test) == 0 and data.test.x.shape == (0, 2)
    h = train(Network.create(NetworkConfig((2, 4, 3))), data.train, TrainConfig(epochs=2), test=data.test)
    assert h.epochs[-1].test_accuracy is None  # not a misleading 0%
    result = run_training(NetworkConfig((2, 4, 3)), TrainConfig(epochs=1), tmp_path / "m.safetensors", data)
    assert result.history.epochs[-1].test_accuracy is None


def test_altered_input_tensors_are_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    from digitnet.errors import ModelFileError
    from digitnet.io.model_io import _digest

    X, y = blobs(60)
    out = tmp_path / "m.safetensors"
    run_training(NetworkConfig((2, 4, 3)), TrainConfig(epochs=1), out, from_arrays(X, y))
    meta = load_model(out).metadata
    tensors = load_file(out)
    tensors["input.scale"] = -tensors["input.scale"]
    save_file(tensors, tmp_path / "bad.safetensors", metadata={**meta, "sha256": _digest(tensors)})
    with pytest.raises(ModelFileError, match="input.scale must be positive") as e:
        load_model(tmp_path / "bad.safetensors")
    assert "\n" not in str(e.value)


def test_show_on_a_model_of_your_own_arrays_says_why_it_cannot(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(int))
    out = tmp_path / "d.safetensors"
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "d.npz"), "--epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["show", "interpolate", str(out)])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "trained on your own arrays" in r.output


# --- a new user's findings: wording, label types, CSV dialects, hints ------------------------


def _int_csv(path, X, y, delimiter=",", decimal="."):
    rows = "".join(delimiter.join([f"{v:.6f}".replace(".", decimal) for v in r] + [str(lab)]) + "\n"
                   for r, lab in zip(X, y))
    path.write_text(delimiter.join(["width", "height", "kind"]) + "\n" + rows)


def _int_blobs(n=240):
    X, y = blobs(n)
    return X, np.array([10, 20, 30])[np.searchsorted(["bird", "cat", "dog"], y)]


def test_cli_evaluate_words_fit_arrays_and_labels_keep_their_type(tmp_path):
    """evaluate --data counts examples (not images), labels both axes of the confusion matrix with
    the class names, and gives the labels back as they were written (10, not '10')."""
    X, y = _int_blobs()
    f, model = tmp_path / "d.csv", tmp_path / "m.safetensors"
    _int_csv(f, X, y)
    r = CliRunner().invoke(main, ["train", "--data", str(f), "--layers", "8", "--epochs", "10", "--out", str(model)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["evaluate", str(model), "--data", str(f)])
    assert r.exit_code == 0, r.output
    assert "images" not in r.output, r.output
    per_class = r.output[r.output.index("Accuracy per class"):]
    assert per_class.splitlines()[1].split() == ["class", "accuracy", "examples"]
    matrix = r.output[r.output.index("Confusion matrix"):].splitlines()
    assert matrix[1].split() == ["true\\pred", "10", "20", "30"]  # columns: the class names
    assert [row.split()[0] for row in matrix[3:6]] == ["10", "20", "30"]  # rows: the class names, nothing else
    report = json.loads(CliRunner().invoke(main, ["evaluate", str(model), "--data", str(f), "--json"]).output)
    assert report["data"] == str(f) and report["dataset"] is None and report["images"] is None
    assert report["classes"] == [10, 20, 30] and set(report["per_class"]) == {"10", "20", "30"}


def test_confusion_table_names_both_axes():
    from digitnet.cli.evaluate import confusion_table

    c = np.array([[5, 1], [0, 7]])
    lines = confusion_table(("setosa", "versicolor"), c).splitlines()
    assert lines[0].split() == ["true\\pred", "setosa", "versicolor"]
    assert lines[2].split() == ["setosa", "5", "1"]
    # Names too long for a 100-character line are cut, still telling the classes apart...
    names = tuple(f"{w}-{'x' * 30}" for w in ("alpha", "beta", "gamma", "delta"))
    lines = confusion_table(names, np.eye(4, dtype=int)).splitlines()
    assert [h[:5] for h in lines[0].split()[1:]] == ["alpha", "beta-", "gamma", "delta"]
    assert max(map(len, lines)) <= 100
    # ... or, where cutting cannot tell them apart, numbered with the number and name on each row.
    names = tuple(f"{'x' * 40}{i}" for i in range(4))
    lines = confusion_table(names, np.eye(4, dtype=int)).splitlines()
    assert lines[0].split() == ["true\\pred", "0", "1", "2", "3"] and lines[2].split()[:2] == ["0", names[0]]


def test_evaluation_and_predict_give_int_labels_back_as_ints(tmp_path):
    from digitnet.data.arrays import read_data_file
    from digitnet.tasks.evaluate import evaluate

    X, y = _int_blobs(90)
    _int_csv(tmp_path / "d.csv", X, y)
    X2, y2, _ = read_data_file(tmp_path / "d.csv")
    assert y2.dtype.kind == "i"
    out = tmp_path / "m.safetensors"
    run_training(NetworkConfig((2, 8, 3)), TrainConfig(epochs=3), out, from_arrays(X2, y2))
    saved = load_model(out)
    assert saved.input.predict(saved.net, X2[:3]).dtype.kind == "i"
    ev = evaluate(saved.net, saved.input.split(X2, y2), saved.input.labels)
    assert ev.classes == (10, 20, 30) and all(type(c) is int for c in ev.classes)


def test_csv_float_labels_stay_numbers(tmp_path):
    (tmp_path / "f.csv").write_text("a,label\n1,0.0\n2,1.0\n3,0.5\n")
    y = read_data_file(tmp_path / "f.csv")[1]
    assert y.dtype.kind == "f" and y.tolist() == [0.0, 1.0, 0.5]


@pytest.mark.parametrize("delimiter, decimal", [(";", ","), (";", "."), ("\t", "."), ("\t", ",")])
def test_csv_delimiter_is_sniffed(tmp_path, delimiter, decimal):
    """European Excel writes ';'-separated CSV with decimal commas: read as the ','-separated one."""
    X, y = _int_blobs(20)
    _int_csv(tmp_path / "plain.csv", X, y)
    _int_csv(tmp_path / "euro.csv", X, y, delimiter, decimal)
    X1, y1, _ = read_data_file(tmp_path / "plain.csv")
    X2, y2, _ = read_data_file(tmp_path / "euro.csv")
    assert X2.shape == (20, 2) and np.array_equal(X1, X2) and y2.tolist() == y1.tolist()


def test_csv_headerless_semicolons_with_decimal_commas(tmp_path):
    (tmp_path / "e.csv").write_text("0,5;1,25;a\n2,0;3;b\n")
    X, y, _ = read_data_file(tmp_path / "e.csv")
    assert X.tolist() == [[0.5, 1.25], [2.0, 3.0]] and y.tolist() == ["a", "b"]


@pytest.mark.parametrize("text, words", [
    ("width,height,kind\n1,2,a\n3,4,b\n5,x7,a\n", "line 4, column 2 ('height'): 'x7' is not a number"),
    ("1,2,a\n3,4,b\n\n5,x7,a\n", "line 4, column 2: 'x7' is not a number"),  # blank lines still counted
    ("w;h;kind\n1;2;a\n3;oops;b\n", "line 3, column 2 ('h'): 'oops' is not a number"),
    ("1,oops,a\n3,4,b\n", "line 1, column 2: 'oops' is not a number"),  # a data line with a typo is no header
    ("w,h,kind\n1,2,a\n3,4\n", "line 3: 2 columns, but the first data line has 3"),
])
def test_csv_errors_name_the_line_and_column(tmp_path, text, words):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DataError) as e:
        read_data_file(tmp_path / "d.csv")
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("layers, words", [
    ("abc", "--layers gives the hidden layers' sizes only"), ("0", "got '0'"), ("16,-3", "got '16,-3'"),
    ("2,16,3", "--layers 2,16,3 looks like the whole network; with --data it gives the hidden layers only (the 2 "
               "inputs and 3 outputs come from the data): write --layers 16."),
])
def test_cli_train_data_layers_error_shows_hidden_sizes(tmp_path, layers, words):
    X, y = blobs(60)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "d.npz"), "--layers", layers, "--epochs", "1",
                                  "--out", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and words in r.output, r.output
    assert "784" not in r.output  # an MNIST example would mislead
    assert not (tmp_path / "m.safetensors").exists()


def test_cli_predict_hints_at_evaluate_and_python_for_tables(tmp_path):
    X, y = blobs(60)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    (tmp_path / "d.csv").write_text("1,2,a\n")
    arrays = tmp_path / "arrays.safetensors"
    run_training(NetworkConfig((2, 4, 3)), TrainConfig(epochs=1), arrays, from_arrays(X, y))
    images = tmp_path / "images.safetensors"
    from digitnet.io.model_io import save_model

    save_model(images, Network.create(NetworkConfig((784, 10))))
    for model, files, words in (
            (arrays, ["d.npz"], f"digitnet evaluate {arrays} --data {tmp_path / 'd.npz'}"),
            (arrays, ["a.png"], "m.input.predict(m.net, X)"),
            (images, ["d.csv"], f"is a table of numbers, not an image; digitnet predict reads pictures of digits. "
                                f"For a model of your own data (digitnet train --data) use digitnet evaluate MODEL "
                                f"--data {tmp_path / 'd.csv'}")):
        r = CliRunner().invoke(main, ["predict", str(model), *[str(tmp_path / f) for f in files]])
        assert r.exit_code == 1 and r.output.count("\n") == 1 and words in r.output, r.output
        assert "digitnet.load_model(" in r.output
