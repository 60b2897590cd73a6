"""The video-best preset (the video's 784-16-16-10 network, the best training choices found by
validation accuracy) and its sweep spec, benchmarks/video_best.toml."""

import itertools
from pathlib import Path

from digitnet.nn.network import Network
from digitnet.training.presets import PRESETS, get_preset
from digitnet.training.settings import settings_from_dict
from digitnet.training.train import Trainer

SPEC = Path(__file__).resolve().parents[1] / "benchmarks" / "video_best.toml"


def test_video_best_keeps_the_videos_network():
    net_cfg, train_cfg = get_preset("video-best")
    assert net_cfg.layers == (784, 16, 16, 10) and not net_cfg.features
    assert Network.create(net_cfg).n_params == 13_002 == Network.create(get_preset("video")[0]).n_params
    assert "validation" in PRESETS["video-best"][0]  # says how it was chosen
    assert not train_cfg.validation  # the preset trains on all 60,000 images


def test_video_best_trains(mnist):
    net_cfg, train_cfg = get_preset("video-best")
    cfg = train_cfg.replace(epochs=3)
    net = Network.create(net_cfg, seed=0)
    small = mnist.train.subset(2000)
    trainer = Trainer(net, small, cfg, test=mnist.test.subset(1000))
    for _ in range(3):
        rec = trainer.run_epoch()
    assert rec.test_accuracy > 0.75  # 2,000 images, 3 epochs: it learns (chance is 10%)
    assert net.n_params == 13_002


def _spec():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(SPEC.read_text())


def test_the_sweep_spec_is_valid_settings_in_every_combination():
    spec = _spec()
    assert set(spec) == {"base", "grid", "seeds"} and spec["seeds"] == [0, 1, 2]
    grid = spec["grid"]
    assert grid and all(isinstance(v, list) and v for v in grid.values())
    combos = list(itertools.product(*grid.values()))
    assert len(combos) >= 2
    for combo in combos:
        for seed in spec["seeds"]:
            net, train = settings_from_dict({**spec["base"], **dict(zip(grid, combo)), "seed": seed})
            assert net.layers == (784, 16, 16, 10) and train.validation  # chosen by validation accuracy
            assert Network.create(net).n_params == 13_002


def test_the_preset_is_one_of_the_specs_candidates():
    spec = _spec()
    net_p, train_p = get_preset("video-best")
    found = []
    for combo in itertools.product(*spec["grid"].values()):
        net, train = settings_from_dict({**spec["base"], **dict(zip(spec["grid"], combo))})
        if not train.augment:  # the distortions' sizes do nothing without augmentation
            train = train.replace(max_shift=train_p.max_shift, max_rotation=train_p.max_rotation)
        found.append(net == net_p and train.replace(validation=False) == train_p)
    assert any(found)


def test_the_preset_is_the_sweeps_winner_by_validation_accuracy():
    """benchmarks/results/video_best_sweep.md is the summary that `digitnet sweep
    benchmarks/video_best.toml` wrote; the preset must be its row with the best median
    validation accuracy (never chosen by the test column)."""
    table = (SPEC.parent / "results" / "video_best_sweep.md").read_text().splitlines()
    head = [c.strip() for c in table[2].strip("|").split("|")]
    val = head.index("validation accuracy (median)")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[4:] if line.startswith("|")]
    best = max(rows, key=lambda r: float(r[val].rstrip("%")))
    chosen = dict(item.split("=") for item in best[0].split(", "))
    spec = _spec()
    settings = {**spec["base"], **{k: ([v for v in chosen[k].split(",") if v] if k == "augment" else float(chosen[k]))
                                   for k in chosen}}
    net, train = settings_from_dict(settings)
    net_p, train_p = get_preset("video-best")
    assert net == net_p and train.replace(validation=False) == train_p
