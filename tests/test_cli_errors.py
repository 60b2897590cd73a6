"""Bad input on the command line: click's usage errors as one ``Error:`` line with exit
status 1, and ``predict`` reporting every file, good and bad (issue 16)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from digitnet.cli import main
from digitnet.data.datasets import load_mnist
from digitnet.io.model_io import save_model
from digitnet.nn.network import Network


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("errors") / "m.safetensors"
    save_model(path, Network.create((784, 8, 10), seed=0))
    return str(path)


@pytest.fixture(scope="module")
def seven(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "seven.png"
    Image.fromarray(255 - load_mnist().test.images[0]).resize((112, 112)).save(path)
    return str(path)


def _one_error_line(r, *words):
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    assert "Traceback" not in r.output and "Usage:" not in r.output
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--batch-size", "nan"], ["'--batch-size'", "'nan' is not a valid integer", "digitnet train --help"]),
        (["train", "--epoch", "3"], ["'--epoch'", "--epochs"]),
        (["evaluate"], ["Missing argument 'MODEL'", "digitnet evaluate --help"]),
        (["descend", "x", "--eta", "abc"], ["'--eta'", "'abc'"]),
        (["descend", "x", "--start", "1", "--starts", "3"], ["--start or --starts"]),
        (["show", "weights"], ["Missing argument 'MODEL'", "digitnet show weights --help"]),
        (["show", "noise", "m.safetensors", "--count", "0"], ["'--count'", "0"]),
        (["show", "nosuch"], ["No such command 'nosuch'", "digitnet show --help"]),
        (["nosuch"], ["No such command 'nosuch'", "digitnet --help"]),
        (["--bogus"], ["No such option '--bogus'"]),
        (["serve", "--port", "99999"], ["'--port'", "99999"]),
    ],
)
def test_usage_errors_are_one_line_with_exit_status_1(args, words):
    _one_error_line(CliRunner().invoke(main, args, prog_name="digitnet"), *words)


@pytest.mark.parametrize("args", [["--help"], ["show", "--help"], ["show", "weights", "--help"], ["predict", "-h"]])
def test_help_still_works(args):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "Usage:" in r.output


def test_predict_reports_every_file_and_fails_if_any_failed(model, seven, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    args = ["predict", model, seven, str(notes), str(tmp_path), str(tmp_path / "nosuch.png"), seven]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1
    out = r.stdout.splitlines()
    assert len(out) == 5
    assert out[0].startswith(f"{seven}: ") and "outputs" in out[0] and out[4] == out[0]
    assert out[1] == f"{notes}: error: is not an image digitnet can read (not a PNG or JPEG image)."  # named once
    assert out[2].startswith(f"{tmp_path}: error: ") and out[3].startswith(f"{tmp_path / 'nosuch.png'}: error: ")
    assert "BufferedReader" not in r.output
    assert r.stderr.strip() == "Error: 3 of 5 images could not be read (see above); the others were read."


def test_predict_json_has_an_error_field_and_exit_status_1(model, seven, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    r = CliRunner().invoke(main, ["predict", model, str(notes), seven, "--json"])
    assert r.exit_code == 1
    d = json.loads(r.stdout)
    assert d[0] == {"file": str(notes), "error": f"{notes} is not an image digitnet can read (not a PNG or JPEG image)."}
    assert d[1]["file"] == seven and "error" not in d[1] and len(d[1]["outputs"]) == 10


def test_predict_one_bad_file_is_one_line(model, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    _one_error_line(CliRunner().invoke(main, ["predict", model, str(notes)]), "notes.txt is not an image digitnet can read (not a PNG or JPEG image)")
    _one_error_line(CliRunner().invoke(main, ["predict", model, str(tmp_path)]), str(tmp_path))


def _huge_png(path, side):
    """A side x side palette PNG: one colour, so it compresses to a few hundred KB."""
    Image.new("P", (side, side), 0).save(path)
    return str(path)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")  # printed raw on a terminal
@pytest.mark.parametrize("side", [7000, 20000])
def test_predict_huge_png_is_one_clean_line(model, tmp_path, side):
    png = _huge_png(tmp_path / f"big{side}.png", side)
    r = CliRunner().invoke(main, ["predict", model, png])
    line = _one_error_line(r, f"big{side}.png")
    assert "DecompressionBomb" not in r.output and "80000000" not in line and "not a PNG" not in line
    assert "40,000,000" in line or "40000000" in line or "40 million" in line or "megapixel" in line


def test_a_fifo_is_refused_not_waited_on(model, tmp_path):
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    r = CliRunner().invoke(main, ["predict", model, str(fifo)])
    _one_error_line(r, "pipe.png is not a file (a folder, a FIFO or a device)")
    config = tmp_path / "pipe.toml"
    os.mkfifo(config)
    r = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(tmp_path / "m.safetensors")])
    _one_error_line(r, "pipe.toml is not a file (a folder, a FIFO or a device)")


def test_a_large_photo_is_read_scaled_down(tmp_path):
    # A 5000x4000 picture is read at most 2000 pixels across: the same digit, a fraction of the memory.
    from digitnet.data.images import MAX_SIDE, read_grey

    img = Image.new("L", (5000, 4000), 230)
    img.paste(20, (2300, 1200, 2700, 2800))  # a thick dark stroke: a "1"
    path = tmp_path / "big.jpg"
    img.save(path, quality=90)
    grey = read_grey(path)
    assert max(grey.shape) <= MAX_SIDE and grey.shape[1] > grey.shape[0]


def _with_meta(src, out, **changes):
    """A copy of a model file with metadata changed and the digest recomputed (anyone can)."""
    from safetensors import safe_open
    from safetensors.numpy import save

    from digitnet.io.model_io import _digest

    with safe_open(str(src), framework="numpy") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    meta.update(changes)
    meta["sha256"] = _digest(tensors)
    out.write_bytes(save(tensors, metadata=meta))
    return str(out)


ESCAPES = {  # what a crafted file's metadata could make a terminal do
    "classes": json.dumps(["\x1b[2J\x1b[H"] + [str(k) for k in range(1, 10)]),  # clear the screen
    "dataset": "\x1b]0;you have been pwned\x07",  # retitle the window
    "provenance": json.dumps({"digitnet": "1.0\x1b[8m", "python": "3.12", "numpy": "2", "numba": None}),
    "train": json.dumps({"optimizer": "sgd", "\x9b2J": 1}),  # a C1 CSI, in a key
    "network": json.dumps({"layers": [784, 8, 10], "activation": "sigmoid\u202e"}),  # a bidi override
}


@pytest.mark.parametrize("field", list(ESCAPES))
@pytest.mark.parametrize("command", ["evaluate", "predict", "show", "config"])
def test_escape_codes_in_a_model_file_never_reach_the_terminal(model, seven, tmp_path, field, command):
    bad = _with_meta(model, tmp_path / "esc.safetensors", **{field: ESCAPES[field]})
    args = {"evaluate": ["evaluate", bad], "predict": ["predict", bad, seven],
            "show": ["show", "weights", bad, "--out", str(tmp_path / "w.png")], "config": ["config", bad]}[command]
    r = CliRunner().invoke(main, args)
    assert "\x1b" not in r.output and "\x07" not in r.output and "\x9b" not in r.output and "\u202e" not in r.output
    _one_error_line(r, "esc.safetensors", "control character", f"'{field}'")


def test_a_well_formed_file_with_unusual_names_still_loads(model, tmp_path):
    ok = _with_meta(model, tmp_path / "ok.safetensors", classes=json.dumps(["zéro", "一", "2 ✓"] + list("3456789")))
    r = CliRunner().invoke(main, ["evaluate", ok])
    assert r.exit_code == 0, r.output
    from digitnet.io.model_io import load_model

    assert load_model(ok).classes[:3] == ("zéro", "一", "2 ✓")
