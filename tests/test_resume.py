"""Resume (issue 15 item 6), no silent overwrite and log-friendly progress (issue 16).

A checkpoint carries everything needed to continue bit for bit; settings that contradict
it are refused, naming each; --epochs may extend the run; Ctrl-C says how to resume.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.folder import save_labelled_image
from digitnet.io.model_io import load_model
from digitnet.tasks.run import checkpoint_path, run_training
from digitnet.training.train import Trainer

BASE = ["--layers", "784,12,10", "--train-size", "400", "--schedule", "constant", "--preprocess", "none"]


class Stop(Exception):
    pass


def _stop_after(epoch):
    def on_epoch(rec):
        if rec.epoch == epoch:
            raise Stop

    return on_epoch


def _killed_run(tmp_path, mnist, epochs=3, stop=1, extra=(), name="part"):
    """A run of ``epochs`` that stopped (as if killed) after epoch ``stop``: its checkpoint."""
    out = tmp_path / f"{name}.safetensors"
    cfg = TrainConfig(epochs=epochs, train_size=400, seed=1)
    with pytest.raises(Stop):
        run_training(NetworkConfig(layers=(784, 12, 10)), cfg, out, mnist, extra_images=extra,
                     on_epoch=_stop_after(stop))
    return out, checkpoint_path(out)


def _same_weights(a, b):
    return all(p[k].tobytes() == q[k].tobytes() for p, q in zip(a.net.params, b.net.params) for k in p)


def test_flags_that_contradict_the_checkpoint_are_refused_naming_each(tmp_path, mnist):
    out, ckpt = _killed_run(tmp_path, mnist)
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt), "--eta", "0.5", "--batch-size", "20", "--seed", "3",
                                  "--layers", "784,30,10", "--optimizer", "adam"])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    for said in ("it has --eta 3.0", "it has --batch-size 10", "it has --seed 1", "it has --layers 784,12,10",
                 "it has --optimizer sgd", "Leave out --eta, --batch-size, --seed, --layers, --optimizer"):
        assert said in r.output
    assert load_model(ckpt).epoch == 1  # nothing was trained
    # The checkpoint's own values are no contradiction.
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt), "--eta", "3", "--seed", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert [e["epoch"] for e in json.loads(r.output)["epochs"]] == [1, 2, 3]


def test_epochs_extend_a_resumed_run(tmp_path, mnist):
    """With a constant schedule, 3 epochs stopped after 1 and resumed with --epochs 4 are
    bit for bit a 4-epoch run; fewer epochs than already trained is refused."""
    full = run_training(NetworkConfig(layers=(784, 12, 10)), TrainConfig(epochs=4, train_size=400, seed=1),
                        tmp_path / "full.safetensors", mnist)
    out, ckpt = _killed_run(tmp_path, mnist, stop=2)
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt), "--epochs", "2"])
    assert r.exit_code == 1 and "already trained 2 epochs" in r.output and "set --epochs to more than 2" in r.output
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt), "--epochs", "4"])
    assert r.exit_code == 0, r.output
    assert "from epoch 2, the run changed from 3 to 4 epochs" in r.output
    assert "After epoch 2: cost " in r.output and "Before training" not in r.output  # where it resumes from
    assert "Epoch  4/4" in r.output and "Epoch 4/3" not in r.output
    resumed = load_model(out)
    assert [e.epoch for e in resumed.history.epochs] == [1, 2, 3, 4]
    assert all(np.array_equal(a, b) for a, b in zip(full.net.weights, resumed.net.weights))


def test_extra_images_and_engine_are_stored_and_resumed(tmp_path, mnist):
    folder = tmp_path / "mine"
    for i in range(12):
        save_labelled_image(folder, int(mnist.test.labels[i]), mnist.test.images[i])
    full = run_training(NetworkConfig(layers=(784, 12, 10)), TrainConfig(epochs=3, train_size=400, seed=1),
                        tmp_path / "full.safetensors", mnist, extra_images=[str(folder)])
    out, ckpt = _killed_run(tmp_path, mnist, extra=[str(folder)])
    saved = load_model(ckpt)
    stored = json.loads(saved.metadata["run"])["extra_images"]
    assert [(e["folder"], e["count"]) for e in stored] == [(str(folder), 12)]
    assert saved.train_config.engine in ("numba", "numpy")  # the engine that ran, resolved
    # Resuming without --extra-images (or the engine) takes them from the checkpoint: bit-identical.
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt)], env={"DIGITNET_ENGINE": "reference"})
    assert r.exit_code == 0, r.output
    assert f"{saved.train_config.engine} engine" in r.output
    assert _same_weights(full, load_model(out))
    # A folder that changed since the checkpoint is refused.
    out, ckpt = _killed_run(tmp_path, mnist, extra=[str(folder)], name="again")
    save_labelled_image(folder, 1, mnist.test.images[20])
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt)])
    assert r.exit_code == 1 and f"The images in {folder} changed since the checkpoint was written" in r.output
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt), "--extra-images", str(tmp_path)])
    assert r.exit_code == 1 and "leave out --extra-images or give the same folders" in r.output


def test_ctrl_c_says_how_to_resume_and_that_command_works(tmp_path, monkeypatch):
    out = tmp_path / "m.safetensors"
    real = Trainer.run_epoch
    calls = []

    def interrupted_second_epoch(self, progress=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, progress)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted_second_epoch)
    r = CliRunner().invoke(main, ["train", *BASE, "--epochs", "3", "--out", str(out)])
    assert r.exit_code == 130, r.output
    ckpt = checkpoint_path(out)
    assert f"To continue where it stopped: digitnet train --resume {ckpt}\n" in r.output
    assert "Epoch 2/3: 0/40 batches in 0.0 s, interrupted\n" in r.output  # the log does not read as if it ended
    monkeypatch.setattr(Trainer, "run_epoch", real)
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt)])  # exactly the command it printed
    assert r.exit_code == 0, r.output
    assert [e.epoch for e in load_model(out).history.epochs] == [1, 2, 3] and not ckpt.exists()


def test_ctrl_c_in_the_first_epoch_saves_nothing_and_the_same_command_runs_again(tmp_path, monkeypatch):
    """No epoch finished: the initial weights were saved as a model (11% accurate, with an
    "Evaluate it with" line) and blocked the same command until --force."""
    out = tmp_path / "m.safetensors"
    real = Trainer.run_epoch

    def interrupted(self, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run_epoch", interrupted)
    args = ["train", *BASE, "--epochs", "2", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 130, r.output
    assert r.output.splitlines()[-1] == ("Interrupted before the first epoch finished: nothing was saved. To start "
                                         "again, run the same command.")
    assert not out.exists() and not checkpoint_path(out).exists() and "Evaluate it" not in r.output
    r = CliRunner().invoke(main, [*args, "--json"])
    assert r.exit_code == 130 and json.loads(r.output)["model"] is None
    monkeypatch.setattr(Trainer, "run_epoch", real)
    assert CliRunner().invoke(main, args).exit_code == 0 and out.exists()  # the same command, no --force


def test_train_never_replaces_a_model_without_force(tmp_path):
    out = tmp_path / "m.safetensors"
    args = ["train", *BASE, "--epochs", "1", "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = out.read_bytes()
    r = CliRunner().invoke(main, [*args, "--seed", "5"])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert (f"Error: {out} already exists, and training would replace it. Choose another --out, or allow replacing "
            "it (--force).") in r.output
    assert out.read_bytes() == before
    r = CliRunner().invoke(main, [*args, "--seed", "5", "--force"])
    assert r.exit_code == 0 and out.read_bytes() != before


def test_a_new_run_does_not_replace_the_checkpoint_of_an_unfinished_one(tmp_path, mnist):
    out, ckpt = _killed_run(tmp_path, mnist)
    out.unlink(missing_ok=True)
    r = CliRunner().invoke(main, ["train", *BASE, "--epochs", "1", "--out", str(out)])
    assert r.exit_code == 1 and f"{ckpt} is the checkpoint of an unfinished run" in r.output
    assert f"Continue it (--resume {ckpt})" in r.output and load_model(ckpt).epoch == 1


def test_progress_is_one_plain_line_per_epoch_when_stderr_is_not_a_terminal(tmp_path):
    r = CliRunner().invoke(main, ["train", *BASE, "--epochs", "2", "--out", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 0, r.output
    assert "Epoch 1/2: 40/40 batches in " in r.output and "Epoch 2/2: 40/40 batches in " in r.output
    assert "\r" not in r.output and "batch/s" not in r.output


def test_after_ctrl_c_training_again_points_to_resume_not_force(tmp_path, monkeypatch):
    # Ctrl-C leaves both the model and its checkpoint; running the same command again must
    # name the unfinished run and --resume, not only --force (which would discard it).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.safetensors").write_bytes(b"saved at Ctrl-C")
    (tmp_path / "m.ckpt.safetensors").write_bytes(b"the unfinished run")
    r = CliRunner().invoke(main, ["train", "--epochs", "1", "--train-size", "100", "--out", "m.safetensors"])
    assert r.exit_code == 1
    assert "m.ckpt.safetensors is the checkpoint of an unfinished run. Continue it (--resume m.ckpt.safetensors)" \
        in r.output, r.output


def test_a_checkpoint_whose_optimizer_state_does_not_fit_is_one_clean_error(tmp_path, mnist):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from digitnet.io.model_io import _digest

    out = tmp_path / "mom.safetensors"
    with pytest.raises(Stop):
        run_training(NetworkConfig(layers=(784, 12, 10)), TrainConfig(epochs=3, train_size=400, seed=1,
                                                                      optimizer="momentum"),
                     out, mnist, on_epoch=_stop_after(1))
    ckpt = checkpoint_path(out)
    tensors = load_file(str(ckpt))
    with safe_open(str(ckpt), "np") as f:
        meta = dict(f.metadata())
    tensors = {k: (v[:3] if k.startswith("optimizer.") else v) for k, v in tensors.items()}  # wrong shapes
    meta["sha256"] = _digest(tensors)  # anyone can recompute the digest
    save_file(tensors, str(ckpt), metadata=meta)
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt)])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "the checkpoint's optimizer state does not fit its network" in r.output


def test_another_engine_may_continue_a_run(tmp_path, mnist):
    # e.g. a checkpoint made with numba, continued on a machine without it
    out, ckpt = _killed_run(tmp_path, mnist, name="eng")
    r = CliRunner().invoke(main, ["train", "--resume", str(ckpt), "--engine", "reference"])
    assert r.exit_code == 0, r.output
    assert "reference engine" in r.output.splitlines()[0]
    assert load_model(out).train_config.engine == "reference"


def test_a_preset_in_the_config_file_is_not_silently_ignored_on_resume(tmp_path, mnist):
    # It was: `--config f.toml --resume CKPT` with preset = "cnn" in the file trained on as if it said nothing.
    out, ckpt = _killed_run(tmp_path, mnist)
    (tmp_path / "p.toml").write_text('preset = "cnn"\n')
    for args, source in ((["--config", str(tmp_path / "p.toml")], "preset in"), (["--preset", "cnn"], "--preset")):
        r = CliRunner().invoke(main, ["train", *args, "--resume", str(ckpt)])
        assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
        for said in ("Error: ", "preset cnn", source, "layers", "features", "Leave the preset out when resuming"):
            assert said in r.output, r.output
    assert load_model(ckpt).epoch == 1  # nothing was trained


def test_a_preset_the_checkpoint_agrees_with_is_accepted_on_resume(tmp_path, mnist):
    from digitnet.training.presets import get_preset

    net_cfg, train_cfg = get_preset("video")
    out = tmp_path / "v.safetensors"
    with pytest.raises(Stop):
        run_training(net_cfg, train_cfg.replace(epochs=2, train_size=300), out, mnist, on_epoch=_stop_after(1))
    (tmp_path / "v.toml").write_text('preset = "video"\nepochs = 2\ntrain_size = 300\n')
    r = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "v.toml"), "--resume", str(checkpoint_path(out)),
                                  "--json"])
    assert r.exit_code == 0, r.output
    assert [e["epoch"] for e in json.loads(r.output)["epochs"]] == [1, 2]


def test_resuming_a_run_of_your_own_arrays_needs_the_same_arrays(tmp_path, mnist):
    from digitnet.data.arrays import from_arrays

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] > 0).astype(int)
    np.savez(tmp_path / "own.npz", X=X, y=y)
    np.savez(tmp_path / "other.npz", X=X * 2 + 1, y=y)
    np.savez(tmp_path / "wide.npz", X=rng.normal(size=(120, 784)), y=rng.integers(0, 10, 120))
    out = tmp_path / "own.safetensors"
    with pytest.raises(Stop):
        run_training(NetworkConfig(layers=(5, 6, 2), preprocess="none"), TrainConfig(epochs=2, seed=1), out,
                     from_arrays(X, y, name=str(tmp_path / "own.npz")), on_epoch=_stop_after(1))
    ckpt = str(checkpoint_path(out))
    for args, said in ((["--resume", ckpt], "give the same file again (--data "),
                       (["--data", str(tmp_path / "other.npz"), "--resume", ckpt], "its columns or labels differ")):
        r = CliRunner().invoke(main, ["train", *args])
        assert r.exit_code == 1 and r.output.count("\n") == 1 and said in r.output, r.output
    # A run on MNIST never continues on arrays (it did, silently, when they had 784 columns).
    _, mnist_ckpt = _killed_run(tmp_path, mnist)
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "wide.npz"), "--resume", str(mnist_ckpt)])
    assert r.exit_code == 1 and "not on your own arrays: leave out --data" in r.output, r.output
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "own.npz"), "--resume", ckpt, "--json"])
    assert r.exit_code == 0, r.output
    assert [e["epoch"] for e in json.loads(r.output)["epochs"]] == [1, 2]


def test_ctrl_c_before_training_starts_is_an_interruption_not_an_error(tmp_path, monkeypatch):
    """Ctrl-C while the data loads: click said "Aborted!" with exit status 1, an error's."""
    import digitnet.tasks.run as run_module

    def loading(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "load_dataset", loading)
    r = CliRunner().invoke(main, ["train", *BASE, "--out", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 130 and r.output == "Interrupted.\n", r.output
