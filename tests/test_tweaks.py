"""The tweaks beyond the video, in training: dropout, augmentation, early stopping, conv
networks through the Trainer, train_metrics, the mlp and cnn presets and their CLI flags."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from digitnet.cli import main
from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Dataset
from digitnet.errors import ConfigError
from digitnet.io.model_io import load_model
from digitnet.nn.network import Network
from digitnet.tasks.run import checkpoint_path, run_training
from digitnet.training.presets import PRESETS, get_preset
from digitnet.training.train import History, Trainer, train

TINY_CNN = NetworkConfig(layers=(784, 10), features=("conv:4:5", "pool:4"), activation="relu",
                         output_activation="softmax", cost="cross-entropy", init="he")


@pytest.fixture(scope="module")
def small(mnist):
    return Dataset("mnist", mnist.classes, mnist.train.subset(1000), mnist.test.subset(500))


def weights_after(small, net_cfg, cfg):
    net = Network.create(net_cfg, seed=cfg.seed)
    train(net, small.train, cfg)
    return net


@pytest.mark.parametrize("optimizer, eta", [("momentum", 0.05), ("adam", 0.003)])
def test_conv_network_learns_through_the_trainer(small, optimizer, eta):
    net = Network.create(TINY_CNN, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=20, eta=eta, optimizer=optimizer, lmbda=0.1)
    history = train(net, small.train, cfg, test=small.test)
    assert history.epochs[-1].test_accuracy > 0.7
    assert history.epochs[-1].cost < history.initial_cost


def test_dropout_and_augmentation_are_seeded_and_change_training(small):
    base = TrainConfig(epochs=1, batch_size=50, eta=0.5, train_metrics="batches")
    net_cfg = NetworkConfig(layers=(784, 20, 10))
    plain = weights_after(small, net_cfg, base)
    for tweak in (dict(dropout=0.3), dict(augment=("shift", "rotate", "elastic"))):
        a = weights_after(small, net_cfg, base.replace(**tweak))
        b = weights_after(small, net_cfg, base.replace(**tweak))
        c = weights_after(small, net_cfg, base.replace(seed=1, **tweak))
        assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights)), tweak
        assert not np.allclose(a.weights[0], plain.weights[0]), tweak
        assert not np.allclose(a.weights[0], c.weights[0]), tweak


def test_dropout_is_not_used_when_predicting(small):
    net = Network.create((784, 20, 10), seed=0)
    train(net, small.train, TrainConfig(epochs=1, batch_size=50, eta=0.5, dropout=0.5))
    x = small.test.x[:50]
    np.testing.assert_array_equal(net.feedforward(x), net.feedforward(x))


def test_early_stopping_stops_when_validation_accuracy_stalls(mnist):
    data = Dataset("mnist", mnist.classes, mnist.train.subset(300), mnist.test.subset(100))
    cfg = TrainConfig(epochs=10, batch_size=50, eta=1e-9, patience=2, validation=True)  # eta ~ 0: nothing improves
    trainer = Trainer(Network.create((784, 10), seed=0), data.train, cfg, validation=mnist.test.subset(200))
    while not trainer.done:
        trainer.run_epoch()
    assert len(trainer.history.epochs) == 3 and trainer.history.stopped_epoch == 3
    assert History.from_dict(json.loads(json.dumps(trainer.history.to_dict()))).stopped_epoch == 3


def test_early_stopping_waits_while_validation_accuracy_improves(mnist):
    data = Dataset("mnist", mnist.classes, mnist.train.subset(1000), mnist.test.subset(100))
    cfg = TrainConfig(epochs=3, batch_size=10, eta=3.0, patience=1, validation=True)
    trainer = Trainer(Network.create((784, 16, 10), seed=0), data.train, cfg, validation=mnist.test.subset(300))
    while not trainer.done:
        trainer.run_epoch()
    accs = [e.validation_accuracy for e in trainer.history.epochs]
    if trainer.history.stopped_epoch is None:
        assert len(accs) == 3 and accs[1] > accs[0]
    else:
        assert accs[-1] <= max(accs[:-1])


@pytest.mark.parametrize("kw, message", [
    (dict(patience=3), "Early stopping .* turn on validation"),
    (dict(dropout=1.0), "^dropout must be in \\[0, 1\\)"),
    (dict(patience=-1, validation=True), "^patience must be a whole number >= 0"),
    (dict(max_shift=-1.0), "^max_shift must be >= 0"),
    (dict(elastic_sigma=0.0), "^elastic_sigma must be > 0"),
    (dict(train_metrics="some"), "^train_metrics must be one of full, batches"),
])
def test_bad_tweak_settings_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kw)


def test_augmentation_needs_square_inputs(small):
    from digitnet.data.datasets import Split

    split = Split(np.zeros((10, 5, 6), np.uint8), np.zeros(10, np.int64))
    with pytest.raises(ConfigError, match="Augmentation moves pixels of square images"):
        Trainer(Network.create((30, 10)), split, TrainConfig(augment=("shift",)))


def test_batch_train_metrics_report_the_mean_batch_cost(small):
    cfg = TrainConfig(epochs=2, batch_size=100, eta=1.0, train_metrics="batches")
    history = train(Network.create((784, 10), seed=0), small.train, cfg)
    assert history.epochs[1].cost == pytest.approx(np.mean(history.batch_costs[10:20]))
    assert math.isnan(history.epochs[1].train_accuracy)


def test_conv_network_checkpoint_resume_is_bit_identical(small, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=50, eta=0.003, optimizer="adam", train_size=300, dropout=0.2,
                      augment=("shift",))
    full = run_training(TINY_CNN, cfg, tmp_path / "full.safetensors", small)

    class Stop(Exception):
        pass

    def on_epoch(rec):
        raise Stop

    part = tmp_path / "part.safetensors"
    with pytest.raises(Stop):
        run_training(TINY_CNN, cfg, part, small, on_epoch=on_epoch)
    resumed = run_training(TINY_CNN, cfg, part, small, resume=checkpoint_path(part))
    assert all(np.array_equal(a, b) for a, b in zip(full.net.weights, resumed.net.weights))
    assert load_model(tmp_path / "full.safetensors").net.kinds == ["conv", "pool", "flatten", "dense"]


def test_presets_mlp_and_cnn():
    assert list(PRESETS)[:3] == ["video", "mlp", "cnn"]
    mlp_net, mlp_train = get_preset("mlp")
    cnn_net, cnn_train = get_preset("cnn")
    assert not mlp_net.features and mlp_net.activation == "relu" and mlp_net.cost == "cross-entropy"
    assert [k for k, *_ in cnn_net.plan()][:4] == ["conv", "pool", "conv", "pool"]
    assert mlp_train.dropout > 0 and cnn_train.augment
    assert get_preset("video")[0].features == () and get_preset("video")[1].dropout == 0
    with pytest.raises(ConfigError, match="Unknown preset 'big'; choose one of: video, mlp, cnn, video-best"):
        get_preset("big")


def test_train_help_describes_the_presets_and_new_flags():
    out = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    for words in ("mlp: the best plain", "cnn: a convolutional network", "--features",
                  "--dropout", "--patience", "--augment", "--max-shift", "--elastic-alpha", "--keep-best"):
        assert words in out, words


def test_cli_trains_a_small_conv_network(tmp_path):
    out = tmp_path / "c.safetensors"
    r = CliRunner().invoke(main, [
        "train", "--preset", "cnn", "--features", "conv:2:5,pool:4", "--layers", "784,10", "--epochs", "1",
        "--train-size", "200", "--augment", "shift,elastic", "--dropout", "0.1", "--out", str(out), "--json",
    ])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert result["network"]["features"] == ["conv:2:5", "pool:4"]
    assert result["train"]["augment"] == ["shift", "elastic"] and result["train"]["dropout"] == 0.1
    assert load_model(out).net.kinds == ["conv", "pool", "flatten", "dense"]


@pytest.mark.parametrize("args, message", [
    (["--features", "conv:2"], "Error: Cannot read the layer 'conv:2'"),
    (["--patience", "2"], "Error: Early stopping (--patience) watches the validation accuracy: turn on --validation too."),
    (["--augment", "flip"], "Error: --augment must be one of shift, rotate, elastic"),
])
def test_cli_refuses_bad_tweaks(args, message, tmp_path):
    r = CliRunner().invoke(main, ["train", "--epochs", "1", "--out", str(tmp_path / "m.safetensors"), *args])
    assert r.exit_code == 1 and message in r.output, r.output


@pytest.mark.parametrize("name, want", [
    # w = 1, constant gradient g = 0.5, eta = 0.1, mu = 0.9; worked by hand:
    ("momentum", [0.95, 0.855]),  # v = -0.05, then v = 0.9 (-0.05) - 0.05 = -0.095
    ("nesterov", [0.905, 0.7695]),  # w += (1 + mu) v - mu v_old: -0.095, then -0.1805 + 0.045
    ("adam", [0.9, 0.8]),  # with a constant gradient m_hat / sqrt(v_hat) = 1: steps of eta
])
def test_optimizer_steps_by_hand(name, want):
    from digitnet.training.optim import make_optimizer

    params = [{"w": np.array([1.0]), "b": np.array([0.0])}, {}]
    opt = make_optimizer(name, params, momentum=0.9)
    got = []
    for _ in range(2):
        opt.step(params, [{"w": np.array([0.5]), "b": np.array([0.0])}, {}], 0.1)
        got.append(float(params[0]["w"][0]))
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("init, std", [("he", np.sqrt(2 / 75)), ("scaled", np.sqrt(1 / 75))])
def test_conv_initialisation_uses_the_filter_fan_in(init, std):
    from digitnet.nn.layers import Conv2D

    w = Conv2D((12, 12, 3), 400, 5).init(np.random.default_rng(0), init, np.float64)["w"]
    assert w.shape == (400, 3, 5, 5) and w.std() == pytest.approx(std, rel=0.02)
    x = Conv2D((12, 12, 3), 400, 5).init(np.random.default_rng(0), "xavier", np.float64)["w"]
    assert np.abs(x).max() <= np.sqrt(6 / (75 + 400 * 25))


def test_the_tweaks_sweep_spec_adds_one_tweak_a_step(load_benchmark):
    """benchmarks/tweaks.toml: each step keeps the earlier steps' settings and changes only its own;
    the last two are the mlp and cnn presets."""
    from digitnet.training.settings import settings_to_dict

    tweaks = load_benchmark("tweaks")
    runs = [r for r in tweaks.tweaks_spec(seeds=[0]).expand()]
    assert [r.label for r in runs] == ["video", "cost", "activation", "init", "optimizer", "width", "regularise",
                                       "augment", "convolution"]
    changed = {
        "cost": {"output_activation", "cost", "eta"}, "activation": {"activation", "eta"}, "init": {"init"},
        "optimizer": {"optimizer", "eta"},  # momentum 0.9 is the default already
        "width": {"layers", "preprocess", "batch_size", "eta", "schedule", "epochs", "train_metrics"},
        "regularise": {"dropout"},
    }
    for before, step in zip(runs, runs[1:7]):
        assert {k for k in step.config if step.config[k] != before.config[k]} == changed[step.label], step.label
    for run, preset in ((runs[7], "mlp"), (runs[8], "cnn")):
        want = settings_to_dict(*get_preset(preset))
        assert all(run.config[k] == (list(v) if isinstance(v, tuple) else v) for k, v in want.items()
                   if k != "record_batch_cost"), preset
    quick = tweaks.tweaks_spec(seeds=[1], steps=["video", "convolution"], epochs=2, train_size=100).expand()
    assert [(r.label, r.seed, r.config["epochs"], r.config["train_size"]) for r in quick] == [
        ("video", 1, 2, 100), ("convolution", 1, 2, 100)]


def test_the_tweaks_table_reports_the_highest_load_seen_during_the_sweep(load_benchmark):
    """The table's machine line says how busy the machine was while measuring: the highest load
    average read during the sweep, not only the ones at its start and end."""
    import threading

    tweaks = load_benchmark("tweaks")
    readings = iter([1.0, 12.0, 3.0] + [1.4] * 1000)
    seen_three = threading.Event()
    count = [0]

    def read():
        count[0] += 1
        if count[0] >= 3:
            seen_three.set()
        return next(readings)

    watch = tweaks.LoadWatch(every=0.001, read=read).start()
    assert seen_three.wait(5)
    assert watch.stop() == 12.0
