"""digitnet.files: atomic writes that never replace special files and clean up after a killed
writer, and the one rule that names model and checkpoint files."""

import os
import subprocess
import sys

import pytest

from digitnet.errors import FileWriteError, ModelFileError
from digitnet.files import (
    atomic_write_bytes,
    checkpoint_path,
    model_path,
    model_stem,
    stale_temporaries,
    write_figure,
)


def _dead_pid() -> int:
    """The id of a process that has ended (and was waited for)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_atomic_write_replaces_a_regular_file(tmp_path):
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"old")
    assert atomic_write_bytes(target, b"new") == target
    assert target.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_not_replaced(tmp_path):
    # issue 15, item 8: --out at a FIFO replaced it with a regular file.
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(FileWriteError, match="pipe.safetensors.*special file"):
        atomic_write_bytes(fifo, b"data")
    assert fifo.is_fifo()
    assert os.listdir(tmp_path) == ["pipe.safetensors"]  # no temporary file left behind


def test_a_link_to_a_device_is_not_replaced(tmp_path):
    # What root's --out /dev/null does, without needing root: the link stays a link to the device.
    link = tmp_path / "null.safetensors"
    link.symlink_to(os.devnull)
    with pytest.raises(FileWriteError, match="special file"):
        atomic_write_bytes(link, b"data")
    assert link.is_symlink() and os.readlink(link) == os.devnull


def test_a_folder_is_not_replaced(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(ModelFileError, match="out.png: it is a folder"):
        atomic_write_bytes(tmp_path / "out.png", b"data")
    assert (tmp_path / "out.png").is_dir()


def test_a_killed_writers_temporary_file_is_cleaned_up_by_the_next_write(tmp_path):
    # issue 15, item 10: a SIGKILL during a checkpoint write left a .tmp file for ever.
    target = tmp_path / "net.ckpt.safetensors"
    dead = tmp_path / f".net.ckpt.safetensors.{_dead_pid()}.k1ll3d_x.tmp"
    live = tmp_path / f".net.ckpt.safetensors.{os.getpid()}.wr1t1ng_.tmp"  # another thread's write in progress
    other = tmp_path / f".other.safetensors.{_dead_pid()}.abcdefgh.tmp"  # another target's: not ours to judge
    for p in (dead, live, other):
        p.write_bytes(b"half a file")
    assert stale_temporaries(target) == [dead]
    atomic_write_bytes(target, b"checkpoint")
    assert not dead.exists()
    assert live.exists() and other.exists()
    assert target.read_bytes() == b"checkpoint"


def test_temporary_files_are_named_after_their_target_and_process(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_bytes(tmp_path / "a.png", b"png")
    assert seen and seen[0].startswith(f".a.png.{os.getpid()}.") and seen[0].endswith(".tmp")


def test_missing_directory_is_one_clear_error(tmp_path):
    with pytest.raises(FileWriteError, match="does not exist. Create it first"):
        atomic_write_bytes(tmp_path / "nope" / "m.safetensors", b"x")


def test_write_figure_writes_a_png(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1])
    out = write_figure(fig, tmp_path / "f.png", dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "name, stem, model, ckpt",
    [
        ("net", "net", "net.safetensors", "net.ckpt.safetensors"),
        ("net.safetensors", "net", "net.safetensors", "net.ckpt.safetensors"),
        ("out/net.safetensors", "out/net", "out/net.safetensors", "out/net.ckpt.safetensors"),
        ("net.ckpt.safetensors", "net", "net.safetensors", "net.ckpt.ckpt.safetensors"),
        ("h.safetensors.safetensors", "h.safetensors", "h.safetensors.safetensors", "h.safetensors.ckpt.safetensors"),
    ],
)
def test_one_naming_rule(name, stem, model, ckpt):
    assert model_stem(name) == stem
    assert str(model_path(name)) == model
    # The checkpoint of a model *file*: never the same file as the model.
    assert str(checkpoint_path(name)) == ckpt != name


def test_checkpoint_path_is_the_one_run_uses():
    from digitnet.tasks import run

    assert run.checkpoint_path is checkpoint_path


@pytest.mark.parametrize("bad", ["a\n", "net\n", "h.safetensors.safetensors", "x.ckpt", ""])
def test_web_model_names_refused(bad):
    # issue 15, item 10: "a\n" passed the check ($ matches before a final newline) and made
    # "a\n.safetensors"; "h.safetensors.safetensors" was reported as one name and saved as another.
    from digitnet.web.lab import check_model_name

    with pytest.raises(ModelFileError):
        check_model_name(bad)


@pytest.mark.parametrize("name, stem", [("a", "a"), ("a.safetensors", "a"), ("a.ckpt.safetensors", "a"), ("v1.2", "v1.2")])
def test_web_model_names_accepted(name, stem):
    from digitnet.web.lab import check_model_name

    assert check_model_name(name) == stem


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_training_refuses_a_fifo_as_out_before_it_starts(tmp_path):
    from digitnet.tasks.run import check_writable

    fifo = tmp_path / "m.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(FileWriteError, match="special file"):
        check_writable(fifo)


# --- Ctrl-C -------------------------------------------------------------------------------------
def _ctrl_c() -> None:
    import signal

    signal.raise_signal(signal.SIGINT)  # as the terminal sends it: handled between bytecodes


def test_ctrl_c_inside_uninterrupted_takes_effect_when_the_block_ends():
    import signal

    from digitnet.files import uninterrupted

    done = []
    with pytest.raises(KeyboardInterrupt):
        with uninterrupted():
            _ctrl_c()
            done.append("the rest of the block")
    assert done == ["the rest of the block"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with uninterrupted(deliver=False):
        _ctrl_c()
    with pytest.raises(KeyboardInterrupt):  # without the block, at once
        _ctrl_c()


def test_uninterrupted_changes_nothing_outside_the_main_thread():
    import threading

    from digitnet.files import uninterrupted

    errors = []

    def work():
        try:
            with uninterrupted():  # signal.signal() would raise ValueError here
                pass
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == []


def test_ctrl_c_during_a_write_comes_after_it(tmp_path, monkeypatch):
    """A Ctrl-C in the middle of writing a file (a checkpoint, the model) stopped the write:
    the file was not written (and a second Ctrl-C could leave the temporary file)."""
    target = tmp_path / "m.safetensors"
    real = os.fsync

    def fsync(fd):
        _ctrl_c()
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"all of it")
    assert target.read_bytes() == b"all of it" and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_a_held_ctrl_c_is_said_at_once_and_an_outer_block_holds_it_for_the_inner():
    """The CLI holds Ctrl-C around the engine's start to say so on the screen at once; the
    library's own block inside must leave it to the outer one."""
    from digitnet.files import uninterrupted

    said = []
    with pytest.raises(KeyboardInterrupt):
        with uninterrupted(on_hold=lambda: said.append("stopping once it is ready")):
            with uninterrupted(deliver=False):
                _ctrl_c()
                _ctrl_c()
            assert said == ["stopping once it is ready"]  # at the first Ctrl-C, once
