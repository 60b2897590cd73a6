"""Settings: one per config field, one flag per setting, one config language (issue 14).

``test_every_setting_is_a_flag`` fails when a field is added to NetworkConfig or
TrainConfig without help text, without a working ``digitnet train`` flag, or without a
sample value here (add one, and the flag is checked with it).
"""

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

import digitnet as dn
from digitnet.cli import main
from digitnet.cli.train import train as train_command
from digitnet.config import NetworkConfig, TrainConfig
from digitnet.errors import ConfigError
from digitnet.training.settings import SETTINGS, load_settings, setting_fields, settings_from_dict, settings_to_toml

# A value other than the video preset's for every setting: (command-line words, value in the config).
SAMPLES = {
    "layers": (["--layers", "784,30,10"], (784, 30, 10)),
    "activation": (["--activation", "relu"], "relu"),
    "output_activation": (["--output-activation", "softmax"], "softmax"),
    "cost": (["--cost", "cross-entropy"], "cross-entropy"),
    "init": (["--init", "he"], "he"),
    "dtype": (["--dtype", "float64"], "float64"),
    "features": (["--features", "conv:4:5,pool:2"], ("conv:4:5", "pool:2")),
    "preprocess": (["--preprocess", "none"], "none"),
    "epochs": (["--epochs", "7"], 7),
    "batch_size": (["--batch-size", "32"], 32),
    "eta": (["--eta", "0.5"], 0.5),
    "seed": (["--seed", "5"], 5),
    "schedule": (["--schedule", "cosine"], "cosine"),
    "eta_min": (["--eta-min", "0.01"], 0.01),
    "step_every": (["--step-every", "3"], 3),
    "step_factor": (["--step-factor", "4"], 4.0),
    "warmup_epochs": (["--warmup-epochs", "2"], 2),
    "optimizer": (["--optimizer", "adam"], "adam"),
    "momentum": (["--momentum", "0.5"], 0.5),
    "beta2": (["--beta2", "0.99"], 0.99),
    "lmbda": (["--lmbda", "5"], 5.0),
    "validation": (["--validation"], True),
    "keep_best": (["--keep-best", "--validation"], True),
    "record_batch_cost": (["--no-record-batch-cost"], False),
    "train_size": (["--train-size", "100"], 100),
    "dropout": (["--dropout", "0.25"], 0.25),
    "patience": (["--patience", "3", "--validation"], 3),
    "augment": (["--augment", "shift,rotate"], ("shift", "rotate")),
    "max_shift": (["--max-shift", "1"], 1.0),
    "max_rotation": (["--max-rotation", "5"], 5.0),
    "elastic_alpha": (["--elastic-alpha", "20"], 20.0),
    "elastic_sigma": (["--elastic-sigma", "3"], 3.0),
    "teacher": (["--teacher", "mlp.safetensors"], "mlp.safetensors"),
    "distill_temperature": (["--distill-temperature", "2"], 2.0),
    "distill_weight": (["--distill-weight", "0.9"], 0.9),
    "train_metrics": (["--train-metrics", "batches"], "batches"),
    "engine": (["--engine", "reference"], "reference"),
}


def _settings_of(args):
    """What `digitnet train ARGS` would train, without training: its flags through the one
    config language."""
    ctx = train_command.make_context("train", list(args))
    flags = {k: v for k, v in ctx.params.items() if k in SETTINGS and v is not None}
    return settings_from_dict(flags)


@pytest.mark.parametrize("group,field", setting_fields(), ids=[f.name for _, f in setting_fields()])
def test_every_setting_is_a_flag(group, field):
    assert field.metadata.get("help", "").strip(), f"the setting {field.name} has no help text"
    assert field.name in SAMPLES, f"the setting {field.name} has no sample in SAMPLES: add one (its flag is checked)"
    args, value = SAMPLES[field.name]
    flag = "--" + field.name.replace("_", "-")
    assert field.name.replace("_", "-") in args[0]  # the sample uses the setting's own flag
    net, train = _settings_of(args)
    assert getattr(net if group == "network" else train, field.name) == value
    help_text = CliRunner().invoke(main, ["train", "--help"], terminal_width=400).output
    assert flag in help_text and field.metadata["help"].split(":")[0] in help_text


def test_the_samples_are_all_settings():
    assert set(SAMPLES) == set(SETTINGS)  # a sample for a setting that no longer exists


@pytest.mark.parametrize("cls,key,near", [(NetworkConfig, "activaton", "activation"), (TrainConfig, "etta", "eta"),
                                         (TrainConfig, "batchsize", "batch_size")])
def test_from_dict_refuses_unknown_keys_naming_the_nearest(cls, key, near):
    with pytest.raises(ConfigError, match=f"Unknown .* setting: '{key}' \\(did you mean '{near}'\\?\\)") as err:
        cls.from_dict({**cls().to_dict(), key: 1})
    assert err.value.setting == key
    with pytest.raises(ConfigError, match=f"'{key}' \\(did you mean '{near}'\\?\\)"):
        settings_from_dict({key: 1})


def test_settings_from_dict_starts_from_the_preset_of_the_cli():
    assert settings_from_dict({}) == dn.preset("video") == dn.preset()
    net, train = settings_from_dict({"preset": "mlp", "epochs": 2, "layers": [784, 64, 10]})
    assert net.layers == (784, 64, 10) and net.activation == "relu" and train.epochs == 2
    assert train.optimizer == "nesterov"
    with pytest.raises(ConfigError, match="Unknown preset 'vdeo'"):
        settings_from_dict({"preset": "vdeo"})


def test_config_file_round_trip_and_flags_override(tmp_path):
    net, train = settings_from_dict({"preset": "mlp", "epochs": 2, "seed": 9, "augment": "shift,rotate"})
    f = tmp_path / "course.toml"
    f.write_text(settings_to_toml(net, train, header="A course's settings"))
    assert load_settings(f) == (net, train)
    assert f.read_text().startswith("# A course's settings\n")
    ctx = train_command.make_context("train", ["--config", str(f), "--eta", "0.05"])
    assert ctx.params["config_file"] == str(f) and ctx.params["eta"] == 0.05


def test_config_file_trains_with_flags_overriding(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('preset = "video"\nlayers = [784, 10]\nepochs = 3\ntrain_size = 300\neta = 0.5\n')
    r = CliRunner().invoke(main, ["train", "--config", str(f), "--epochs", "1", "--out", str(tmp_path / "m.safetensors"),
                                  "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
    assert obj["network"]["layers"] == [784, 10] and obj["train"]["eta"] == 0.5  # from the file
    assert obj["train"]["epochs"] == 1 and len(obj["epochs"]) == 1  # the flag wins
    assert obj["network"]["preprocess"] == "deskew"  # the preset's


@pytest.mark.parametrize("text,message", [
    ("etta = 0.5\n", "Error: {f}: Unknown setting: 'etta' (did you mean 'eta'?)."),
    ("eta = -1\n", "Error: {f}: eta must be > 0. Got -1 instead."),
    ("eta = 0.5\neta = 1\n", "Error: {f} is not a valid TOML config file"),
    ("[train]\neta = 0.5\n", "Error: {f}: [train] is a table, but a config file has flat keys only"),
    ('preset = "vid"\n', "Error: {f}: Unknown preset 'vid'; choose one of: video, mlp, cnn, video-best."),
    # values of the wrong type: one line each, never a traceback, never a model that cannot be loaded
    ("layers = 5\n", "Error: {f}: layers must be a list, e.g. [784, 16, 16, 10]. Got 5 instead."),
    ("layers = 1979-05-27\n", "Error: {f}: layers must be a list, e.g. [784, 16, 16, 10]. Got a date (1979-05-27)"),
    ("features = 5\n", "Error: {f}: features must be a list, e.g. "),
    ("preset = [1]\n", "Error: {f}: Unknown preset [1]; choose one of: video, mlp, cnn, video-best."),
    ("augment = [1]\n", "Error: {f}: augment must be a list of names"),
    ("augment = 5\n", "Error: {f}: augment must be a list of names"),
    ("momentum = false\n", "Error: {f}: momentum must be a number. Got false instead."),
    ("eta = 1979-05-27\n", "Error: {f}: eta must be a number. Got a date (1979-05-27) instead."),
    ("train_size = true\n", "Error: {f}: train_size must be a whole number. Got true instead."),
    ("seed = 99999999999999999999\n", "Error: {f}: seed must be a whole number of at most 9,223,372,036,854,775,807."),
    ("batch_size = 100000000000000000000\n", "Error: {f}: batch_size must be a whole number of at most"),
])
def test_a_bad_config_file_is_one_line_naming_file_and_key(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    r = CliRunner().invoke(main, ["train", "--config", str(f), "--out", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert message.format(f=f) in r.output
    assert "--eta" not in r.output  # a file's keys are not flags


def test_digitnet_config_writes_a_models_settings_back(tmp_path):
    out = tmp_path / "m.safetensors"
    r = CliRunner().invoke(main, ["train", "--layers", "784,12,10", "--epochs", "1", "--train-size", "200", "--seed", "4",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    toml = tmp_path / "m.toml"
    r = CliRunner().invoke(main, ["config", str(out), "--out", str(toml)])
    assert r.exit_code == 0, r.output
    saved = dn.load_model(out)
    assert load_settings(toml) == (saved.net.config, saved.train_config)
    assert saved.train_config.engine in ("numba", "numpy")  # the engine that ran, not "auto"
    r = CliRunner().invoke(main, ["config", str(out), "--out", str(toml)])
    assert r.exit_code == 1 and "already exists" in r.output and "--force" in r.output
    # Training again from the file gives the same weights.
    again = tmp_path / "again.safetensors"
    r = CliRunner().invoke(main, ["train", "--config", str(toml), "--out", str(again)])
    assert r.exit_code == 0, r.output
    for p, q in zip(saved.net.params, dn.load_model(again).net.params):
        assert all(p[k].tobytes() == q[k].tobytes() for k in p)


def test_the_api_preset_trains_exactly_what_the_cli_trains(tmp_path, mnist):
    out = tmp_path / "cli.safetensors"
    r = CliRunner().invoke(main, ["train", "--epochs", "1", "--train-size", "500", "--out", str(out)])
    assert r.exit_code == 0, r.output
    net_cfg, train_cfg = dn.preset("video")
    train_cfg = train_cfg.replace(epochs=1)
    net = dn.Network.create(net_cfg, seed=train_cfg.seed)
    dn.train(net, mnist.train.subset(500), train_cfg, test=mnist.test)
    for p, q in zip(net.params, dn.load_model(out).net.params):
        for k in p:
            assert np.array_equal(p[k], q[k]) and p[k].tobytes() == q[k].tobytes()


def test_errors_carry_the_setting_and_each_front_end_names_it():
    with pytest.raises(ConfigError) as err:
        settings_from_dict({"batch_size": 0})
    e = err.value
    assert e.setting == "batch_size" and str(e) == "batch_size must be a whole number >= 1. Got 0 instead."
    assert e.render(lambda s: f"--{s.replace('_', '-')}") == "--batch-size must be a whole number >= 1. Got 0 instead."
    assert e.render(lambda s: "Batch size") == "Batch size must be a whole number >= 1. Got 0 instead."


def test_field_help_is_what_the_dataclass_says():
    for _, f in setting_fields():
        assert dataclasses.is_dataclass(NetworkConfig) and isinstance(f.metadata["help"], str)
