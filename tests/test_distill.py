"""Knowledge distillation (digitnet.training.distill): the gradient against finite differences,
the engines that can run it, and teachers that do not fit refused with one clear message."""

import numpy as np
import pytest

from digitnet.config import TrainConfig
from digitnet.data.datasets import Split
from digitnet.errors import ConfigError, ModelFileError
from digitnet.nn.network import Network, feedforward
from digitnet.training import engines
from digitnet.training.distill import _softmax, distill_backprop, soft_targets
from digitnet.training.train import Trainer


def distill_cost(net, x, y, soft, t, w):
    """The distillation cost of the batch, straight from its definition (average over examples)."""
    z = net.forward(x).zs[-1]
    p_hard = _softmax(z)
    q = _softmax(z / t)
    ce = -np.log(p_hard[np.arange(len(y)), y]).mean()
    kl = (soft * (np.log(soft) - np.log(q))).sum(axis=1).mean()
    return (1 - w) * ce + w * t * t * kl


@pytest.mark.parametrize("t, w", [(1.0, 0.5), (4.0, 0.7), (2.5, 1.0), (3.0, 0.0)])
def test_distillation_gradient_matches_finite_differences(t, w):
    rng = np.random.default_rng(5)
    net = Network.create((6, 5, 4, 3), seed=2, activation="tanh", output_activation="softmax",
                         cost="cross-entropy", dtype="float64")
    x = rng.uniform(-1, 1, (7, 6))
    y = rng.integers(0, 3, 7)
    soft = _softmax(rng.normal(0, 2, (7, 3)))
    g = distill_backprop(net, x, y, soft, t, w)
    eps = 1e-6
    for l, p in enumerate(net.params):
        for k, v in p.items():
            num = np.zeros_like(v)
            for i in np.ndindex(v.shape):
                old = v[i]
                v[i] = old + eps
                plus = distill_cost(net, x, y, soft, t, w)
                v[i] = old - eps
                minus = distill_cost(net, x, y, soft, t, w)
                v[i] = old
                num[i] = (plus - minus) / (2 * eps)
            got = g.layers[l][k]
            assert np.linalg.norm(got - num) / max(np.linalg.norm(got) + np.linalg.norm(num), 1e-12) < 1e-6, (l, k)
    assert g.cost == pytest.approx(distill_cost(net, x, y, soft, t, w), rel=1e-10)


def test_weight_zero_is_the_plain_cross_entropy_gradient():
    from digitnet.nn.network import backprop

    rng = np.random.default_rng(1)
    net = Network.create((6, 5, 3), seed=0, activation="relu", output_activation="softmax", cost="cross-entropy",
                         dtype="float64")
    x, y = rng.uniform(0, 1, (9, 6)), rng.integers(0, 3, 9)
    g = distill_backprop(net, x, y, _softmax(rng.normal(size=(9, 3))), 4.0, 0.0)
    ref = backprop(net, x, y)
    for a, b in zip(g.nabla_w + g.nabla_b, ref.nabla_w + ref.nabla_b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def _split(n=40, n_in=16, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return Split(rng.integers(0, 256, (n, n_in), dtype=np.uint8), rng.integers(0, k, n))


def _student(layers=(16, 8, 4)):
    return Network.create(layers, seed=0, activation="relu", output_activation="softmax", cost="cross-entropy")


def test_soft_targets_are_the_teachers_softened_probabilities():
    teacher = _student((16, 12, 4))
    split = _split()
    p = soft_targets(teacher, split, 3.0)
    z = teacher.forward(split.x).zs[-1].astype(np.float64)
    np.testing.assert_allclose(p, _softmax(z / 3.0), rtol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # at T = 1 the teacher's own outputs
    np.testing.assert_allclose(soft_targets(teacher, split, 1.0), feedforward(teacher, split.x), rtol=1e-5)


def test_only_the_reference_engine_runs_distillation_and_the_others_say_why():
    net, cfg = _student(), TrainConfig(teacher="t.safetensors")
    for name, spec in engines.ENGINES.items():
        why = spec.supports(net, cfg)
        if name == "reference":
            assert why is None
        else:
            assert why is not None and ("teacher" in why or "cannot run here" in why), (name, why)
    assert engines.choose(net, cfg) == "reference"
    with pytest.raises(ConfigError, match="numpy engine cannot train this.*teacher"):
        engines.choose(net, cfg, "numpy")


def test_trainer_learns_from_a_teacher_and_is_reproducible():
    split = _split(60)
    teacher = _student((16, 12, 4))
    cfg = TrainConfig(teacher="teacher.safetensors", epochs=2, batch_size=10, eta=0.1, distill_temperature=3.0,
                      distill_weight=0.8, train_metrics="batches")
    runs = []
    for _ in range(2):
        tr = Trainer(_student(), split, cfg, teacher=teacher)
        assert tr.engine == "reference"
        for _ in range(2):
            tr.run_epoch()
        runs.append(np.concatenate([v.ravel() for p in tr.net.params for v in p.values()]))
    np.testing.assert_array_equal(runs[0], runs[1])
    plain = Trainer(_student(), split, cfg.replace(teacher=""), engine="reference")
    for _ in range(2):
        plain.run_epoch()
    assert not np.array_equal(runs[0], np.concatenate([v.ravel() for p in plain.net.params for v in p.values()]))


@pytest.mark.parametrize("teacher_layers, student, match", [
    ((25, 12, 4), dict(), "teacher.*takes 25 inputs per example but this network takes 16"),
    ((16, 12, 5), dict(), "teacher.*has 5 classes but this network has 4"),
    ((16, 12, 4), dict(output_activation="sigmoid"), "needs a softmax output with the cross-entropy cost"),
])
def test_a_teacher_that_does_not_fit_is_refused(teacher_layers, student, match):
    teacher = _student(teacher_layers)
    net = Network.create((16, 8, 4), seed=0, activation="relu", **{"output_activation": "softmax",
                                                                    "cost": "cross-entropy", **student})
    with pytest.raises(ConfigError, match=match) as e:
        Trainer(net, _split(), TrainConfig(teacher="t.safetensors"), teacher=teacher)
    assert e.value.setting == "teacher"


def test_the_teacher_setting_without_a_network_and_a_network_without_the_setting_are_refused():
    with pytest.raises(ConfigError, match="no teacher network was loaded"):
        Trainer(_student(), _split(), TrainConfig(teacher="t.safetensors"))
    with pytest.raises(ConfigError, match="teacher is not set"):
        Trainer(_student(), _split(), TrainConfig(), teacher=_student())


@pytest.mark.parametrize("kw, match", [(dict(distill_weight=1.5), "distill_weight must be in"),
                                       (dict(distill_temperature=0.0), "distill_temperature must be > 0")])
def test_bad_distillation_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kw)


def test_run_training_loads_the_teacher_and_refuses_a_missing_one(tmp_path):
    from digitnet.config import NetworkConfig
    from digitnet.data.datasets import Dataset
    from digitnet.io.model_io import save_model
    from digitnet.tasks.run import run_training

    data = Dataset("toy", tuple("0123"), _split(60), _split(20, seed=1))
    net_cfg = NetworkConfig(layers=(16, 8, 4), activation="relu", output_activation="softmax", cost="cross-entropy")
    with pytest.raises(ModelFileError, match="No teacher model at .*nothere") as e:
        run_training(net_cfg, TrainConfig(teacher=str(tmp_path / "nothere.safetensors"), epochs=1),
                     tmp_path / "s.safetensors", data)
    assert e.value.setting == "teacher"
    teacher = _student((16, 12, 4))
    save_model(tmp_path / "t.safetensors", teacher, None, TrainConfig(), teacher.copy(), "toy", tuple("0123"))
    res = run_training(net_cfg, TrainConfig(teacher=str(tmp_path / "t.safetensors"), epochs=1, batch_size=10,
                                            eta=0.1), tmp_path / "s.safetensors", data)
    assert res.net.n_params == Network.create(net_cfg).n_params
