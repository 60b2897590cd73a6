"""benchmarks/speed.py's contestants for the presets train the same network with the same optimizer."""

import numpy as np
import pytest


@pytest.mark.parametrize("config", ["mlp", "cnn"])
def test_pytorch_contestant_of_a_preset_takes_digitnets_step(config, load_benchmark):
    """One step of --preset mlp's (Nesterov) and --preset cnn's (Adam) network in PyTorch, from
    digitnet's initial weights, dropout off, agrees with digitnet's reference path to float32
    rounding (Adam divides by each gradient's size, which shows the rounding of small ones)."""
    pytest.importorskip("torch")
    speed = load_benchmark("speed")
    rng = np.random.default_rng(0)
    x = rng.random((16, 784), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    assert speed.check_one_step(config, seed=3, x=x, y=y) < 2e-5


def test_preset_configs_are_the_presets_without_augmentation(load_benchmark):
    speed = load_benchmark("speed")
    from digitnet.training.presets import get_preset

    for name in ("mlp", "cnn"):
        net, train = get_preset(name)
        cfg = speed.CONFIGS[name]
        assert (cfg["layers"], cfg["features"], cfg["batch"], cfg["optimizer"], cfg["dropout"]) == (
            net.layers, net.features, train.batch_size, train.optimizer, train.dropout)
        assert speed._train_config(cfg, 1, 0).augment == ()
        assert speed._train_config(cfg, 1, 0, augment=True).augment == train.augment


@pytest.mark.parametrize("config, fast", [("video-b10", True), ("video-b10", False), ("mlp", False)])
def test_the_digitnet_contestant_trains_and_times_its_steps(config, fast, load_benchmark):
    """run_digitnet, as the benchmark's worker process calls it, on 300 images: it trains (the
    engine the Trainer makes at its first epoch is the one timed) and reports a time and an accuracy."""
    speed = load_benchmark("speed")
    seconds, acc = speed.run_digitnet(speed.CONFIGS[config], 1, 0, 300, fast=fast)
    assert seconds > 0 and speed.CPU_SECONDS > 0 and 0 <= acc <= 1


def test_every_contestant_offered_for_a_configuration_can_train_it(load_benchmark):
    """--quick runs every available contestant on every configuration: each one offered must be
    able to train it (digitnet-numpy was offered the conv net, which its engine refuses)."""
    speed = load_benchmark("speed")
    from digitnet.config import NetworkConfig
    from digitnet.nn.network import Network
    from digitnet.training import engines

    for config, cfg in speed.CONFIGS.items():
        for name in ("digitnet", "digitnet-numpy", "digitnet-reference"):
            if not speed.available(name, config):
                continue
            net = Network.create(NetworkConfig(layers=cfg["layers"], features=cfg.get("features", ())), seed=0)
            train = speed._train_config(cfg, 1, 0)
            engine = {"digitnet-numpy": "numpy", "digitnet-reference": "reference"}.get(name, "auto")
            assert engines.choose(net, train, engine) is not None, (name, config)
