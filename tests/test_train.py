"""Training: determinism, divergence, interruption, resume, and a short end-to-end run."""

import numpy as np
import pytest

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Dataset, Split
from digitnet.errors import ConfigError, DivergenceError
from digitnet.io.model_io import load_model
from digitnet.nn.network import Network
from digitnet.tasks.run import checkpoint_path, run_training
from digitnet.training.train import Trainer, epoch_eta, epoch_order, train


@pytest.fixture(scope="module")
def small(mnist):
    """3,000 training and 1,000 test images: enough to learn, quick to train."""
    return Dataset("mnist", mnist.classes, mnist.train.subset(3000), mnist.test.subset(1000))


def test_end_to_end_accuracy(small):
    """The video's network on 3,000 images, 5 epochs: must clearly learn (>= 85% on 1,000 test images)."""
    net = Network.create((784, 16, 16, 10), seed=0)
    h = train(net, small.train, TrainConfig(epochs=5, seed=0), test=small.test)
    assert [e.epoch for e in h.epochs] == [1, 2, 3, 4, 5]
    assert h.epochs[-1].test_accuracy >= 0.85
    assert h.epochs[-1].cost < h.epochs[0].cost < h.initial_cost  # the cost goes down
    assert len(h.batch_costs) == 5 * 300


@pytest.mark.parametrize("engine", ["numba", "numpy", "reference"])
def test_how_an_epoch_is_split_into_calls_does_not_change_the_weights(small, engine):
    """run_epoch calls the engine a few times an epoch (1/100 of it first, then about 20 ms of
    work at a time), not once per 1/100: the weights are the same bits as one batch at a time,
    and the progress reports add up to the epoch."""
    if engine == "numba":
        pytest.importorskip("numba")
    cfg = TrainConfig(epochs=1, batch_size=10, seed=3)
    split = small.train.subset(2000)
    nets, calls, reports = [], [], []
    for way in ("epoch", "steps"):
        net = Network.create((784, 16, 16, 10), seed=1)
        trainer = Trainer(net, split, cfg, test=None, engine=engine)
        steps = trainer._start_engine().steps

        def counted(*a, steps=steps, **kw):
            calls.append(way)
            return steps(*a, **kw)

        trainer._engine.steps = counted
        if way == "epoch":
            trainer.run_epoch(reports.append)
        else:
            for _ in range(trainer.batches_per_epoch):
                trainer.step()
        nets.append(net)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(nets[0].weights, nets[1].weights))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(nets[0].biases, nets[1].biases))
    assert sum(reports) == 200 and len(reports) == calls.count("epoch")
    if engine == "numba":  # 200 batches of 10 take about 2 ms: 100 calls before, now 2 or so
        assert calls.count("epoch") <= 10


@pytest.mark.parametrize("engine", ["numba", "numpy", "reference"])
def test_measurements_keep_blas_on_one_thread_where_the_steps_do(small, monkeypatch, engine):
    """After a product on two BLAS threads, the second spins for a while, into the next
    epoch's steps (1.5-2x slower on 2 cores): the fused engines' per-epoch measurements run
    BLAS on one thread; the reference engine's, whose steps use BLAS's threads, are left alone."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if engine == "numba":
        pytest.importorskip("numba")
    import digitnet.training.train as train_module
    from digitnet.nn.fast import _blas_controllers

    def numpys_blas_threads():  # the BLAS that NumPy's products call (others may be loaded: SciPy's, PyTorch's)
        libs = [lib for lib in _blas_controllers() if "numpy" in lib.filepath] or _blas_controllers()
        return max(lib.get_num_threads() for lib in libs)

    seen = []
    real = train_module.feedforward_batched

    def watched(*a, **kw):
        seen.append(numpys_blas_threads())
        return real(*a, **kw)

    monkeypatch.setattr(train_module, "feedforward_batched", watched)
    monkeypatch.setattr(train_module, "_chunked_outputs", lambda net, rows, n: watched(net, rows(0, n)))
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        trainer = Trainer(Network.create((784, 16, 10), seed=0), small.train.subset(500), TrainConfig(epochs=1),
                          test=small.test.subset(100), engine=engine)
        trainer.run_epoch()
        after = numpys_blas_threads()
    assert seen and set(seen) == ({1} if engine != "reference" else {2}) and after == 2


@pytest.mark.parametrize("engine", ["numba", "reference"])
def test_a_step_past_the_epochs_last_batch_says_to_record_the_epoch(small, engine):
    """step() after the last batch took an empty batch (the reference engine divided by
    zero): it says what to do instead, and run_epoch() then records the epoch."""
    if engine == "numba":
        pytest.importorskip("numba")
    trainer = Trainer(Network.create((784, 10), seed=0), small.train.subset(30), TrainConfig(batch_size=10),
                      test=None, engine=engine)
    for _ in range(3):
        trainer.step()
    with pytest.raises(RuntimeError, match="call run_epoch"):
        trainer.step()
    assert trainer.run_epoch().epoch == 1 and np.isfinite(trainer.step())


@pytest.mark.parametrize("engine", ["numba", "numpy", "reference"])
def test_ctrl_c_mid_epoch_keeps_the_last_full_epochs_weights(small, engine):
    """A KeyboardInterrupt in epoch 2 leaves the weights of epoch 1 (train()'s promise, and
    what `digitnet train` saves and reports), and the epoch then runs again from its start
    to the weights of a run never interrupted; an epoch's seconds leave out progress()'s."""
    if engine == "numba":
        pytest.importorskip("numba")
    import time

    split, cfg = small.train.subset(600), TrainConfig(epochs=2, batch_size=10, seed=2)
    plain = Trainer(Network.create((784, 16, 10), seed=1), split, cfg, test=None, engine=engine)
    plain.run_epoch()
    after_one = [a.copy() for a in plain.net.weights]
    plain.run_epoch()

    net = Network.create((784, 16, 10), seed=1)
    trainer = Trainer(net, split, cfg, test=None, engine=engine)
    trainer.run_epoch(lambda k: time.sleep(0.05))
    assert trainer.history.epochs[0].seconds < 0.05 * 2  # at least two progress calls of 0.05 s each, left out

    def stop(k):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.run_epoch(stop)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(net.weights, after_one))
    trainer.run_epoch()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(net.weights, plain.net.weights))


def test_negative_labels_are_refused(small):
    """-1 as a label: the numba engine read it as no class, the others as the last class."""
    split = small.train.subset(50)
    bad = Split(split.images, np.where(np.arange(50) == 7, -1, split.y))
    with pytest.raises(ConfigError, match="class numbers 0, 1, 2"):
        Trainer(Network.create((784, 10), seed=0), bad, TrainConfig(), test=None)


def test_same_seed_bit_identical(small):
    nets = []
    for seed in (1, 1, 2):
        net = Network.create((784, 16, 10), seed=seed)
        train(net, small.train.subset(500), TrainConfig(epochs=2, seed=seed))
        nets.append(net)
    assert all(np.array_equal(a, b) for a, b in zip(nets[0].weights, nets[1].weights))
    assert not np.array_equal(nets[0].weights[0], nets[2].weights[0])


def test_epoch_order_is_a_seeded_permutation():
    a, b = epoch_order(0, 3, 100), epoch_order(0, 3, 100)
    assert np.array_equal(a, b) and sorted(a) == list(range(100))
    assert not np.array_equal(a, epoch_order(0, 4, 100))


def test_divergence_keeps_last_good_weights(small):
    net = Network.create((784, 16, 10), seed=0, output_activation="identity")
    trainer = Trainer(net, small.train.subset(500), TrainConfig(epochs=3, eta=1e6, batch_size=10))
    with pytest.raises(DivergenceError, match=r"diverged in epoch 1.*smaller learning rate \(eta\), e\.g\. 100000") as err:
        trainer.run_epoch()
    assert err.value.setting == "eta"
    fresh = Network.create((784, 16, 10), seed=0, output_activation="identity")
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, fresh.weights))


def test_run_training_divergence_saves_last_good(small, tmp_path):
    # A sensible first epoch, then blow up by making the second epoch's eta enormous.
    cfg = TrainConfig(epochs=3, eta=0.01, schedule="step", step_every=1, step_factor=1e-7, train_size=500)
    out = tmp_path / "m.safetensors"
    with pytest.raises(DivergenceError, match="Saved the last good model \\(epoch 1\\)"):
        run_training(NetworkConfig(layers=(784, 10), output_activation="identity"), cfg, out, small)
    assert load_model(out).history.epochs[-1].epoch == 1


def test_ctrl_c_saves_the_model_so_far(small, tmp_path):
    out = tmp_path / "m.safetensors"
    calls = []

    def progress(k):  # k batches more: stop in the second epoch (200 batches an epoch)
        calls.append(k)
        if sum(calls) > 200:
            raise KeyboardInterrupt

    result = run_training(NetworkConfig(layers=(784, 16, 10)), TrainConfig(epochs=3, train_size=2000), out, small,
                          progress=progress)
    assert result.interrupted and out.exists()
    assert load_model(out).net.config.layers == (784, 16, 10)


def test_ctrl_c_before_any_epoch_finished_writes_nothing(small, tmp_path):
    """The initial weights are not a model: nothing is written, and a file already at ``out``
    (replace=True) stays as it was."""
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"the user's earlier model")

    def progress(k):
        raise KeyboardInterrupt

    result = run_training(NetworkConfig(layers=(784, 16, 10)), TrainConfig(epochs=3, train_size=2000), out, small,
                          progress=progress, replace=True)
    assert result.interrupted and not result.saved and result.resume_from is None
    assert out.read_bytes() == b"the user's earlier model" and not result.checkpoint_path.exists()


def _ctrl_c() -> None:
    import signal

    signal.raise_signal(signal.SIGINT)  # as the terminal sends it


def test_ctrl_c_as_the_last_epoch_ends_keeps_the_finished_run(small, tmp_path, monkeypatch):
    """Ctrl-C after the last epoch, while the model was being saved, lost the model (only the
    checkpoint was left): the run is done, so the model is saved and the run ends as usual."""
    out = tmp_path / "m.safetensors"
    real = Trainer.finish

    def finish(self):
        _ctrl_c()
        return real(self)

    monkeypatch.setattr(Trainer, "finish", finish)
    result = run_training(NetworkConfig(layers=(784, 16, 10)), TrainConfig(epochs=1, train_size=600), out, small)
    assert not result.interrupted and len(load_model(out).history.epochs) == 1 and not checkpoint_path(out).exists()


def test_ctrl_c_while_the_last_epoch_is_reported_ends_the_run_as_usual(small, tmp_path):
    """It said "interrupted" and offered --resume for a run with no epochs left."""
    out = tmp_path / "m.safetensors"

    def on_epoch(rec):
        if rec.epoch == 2:
            raise KeyboardInterrupt

    result = run_training(NetworkConfig(layers=(784, 16, 10)), TrainConfig(epochs=2, train_size=600), out, small,
                          on_epoch=on_epoch)
    assert not result.interrupted and result.resume_from is None and not checkpoint_path(out).exists()
    assert len(load_model(out).history.epochs) == 2


def test_a_second_ctrl_c_while_saving_does_not_lose_the_model(small, tmp_path, monkeypatch):
    import digitnet.tasks.run as run_module

    out = tmp_path / "m.safetensors"
    calls = []

    def progress(k):  # Ctrl-C in the second epoch (60 batches an epoch)...
        calls.append(k)
        if sum(calls) > 60:
            raise KeyboardInterrupt

    real = run_module.save_model

    def save_model(path, *args, **kw):
        if not kw.get("checkpoint"):
            _ctrl_c()  # ...and again while the model is saved
        return real(path, *args, **kw)

    monkeypatch.setattr(run_module, "save_model", save_model)
    result = run_training(NetworkConfig(layers=(784, 16, 10)), TrainConfig(epochs=3, train_size=600), out, small,
                          progress=progress)
    assert result.interrupted and len(load_model(out).history.epochs) == 1 and result.resume_from == checkpoint_path(out)


def test_ctrl_c_while_the_engine_compiles_comes_after_it(small, monkeypatch):
    """A KeyboardInterrupt raised inside Numba's compiler was lost (with a traceback) or broke
    it (RuntimeError): the engine is made, then the Ctrl-C takes effect."""
    from digitnet.training import engines

    real, made = engines.make, []

    def make(name, batches):
        _ctrl_c()  # as if during the compiling
        made.append(real(name, batches))
        return made[-1]

    monkeypatch.setattr(engines, "make", make)
    trainer = Trainer(Network.create(NetworkConfig(layers=(784, 16, 10)), seed=0), small.train.subset(600),
                      TrainConfig(epochs=1))
    with pytest.raises(KeyboardInterrupt):
        trainer.start_engine()
    assert len(made) == 1  # made whole, and then interrupted
    assert trainer.start_engine() is False and trainer.run_epoch().epoch == 1 and len(made) == 1  # and it trains


def test_checkpoint_resume_is_bit_identical(small, tmp_path):
    cfg = TrainConfig(epochs=3, train_size=600, optimizer="momentum", eta=0.5)
    net_cfg = NetworkConfig(layers=(784, 12, 10))
    full = run_training(net_cfg, cfg, tmp_path / "full.safetensors", small)

    # Stop after the second epoch (as if killed), then resume from its checkpoint.
    class Stop(Exception):
        pass

    def on_epoch(rec):
        if rec.epoch == 2:
            raise Stop

    part = tmp_path / "part.safetensors"
    with pytest.raises(Stop):
        run_training(net_cfg, cfg, part, small, on_epoch=on_epoch)
    ckpt = checkpoint_path(part)
    assert ckpt.exists() and load_model(ckpt).epoch == 2
    resumed = run_training(net_cfg, cfg, part, small, resume=ckpt)
    assert [e.epoch for e in resumed.history.epochs] == [1, 2, 3]
    assert all(np.array_equal(a, b) for a, b in zip(full.net.weights, resumed.net.weights))
    assert not ckpt.exists()  # removed once the model is saved


def test_schedules():
    c = TrainConfig(epochs=10, eta=1.0, schedule="step", step_every=3, step_factor=2)
    assert [epoch_eta(c, e) for e in (0, 2, 3, 6, 9)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    c = TrainConfig(epochs=5, eta=1.0, schedule="linear")
    assert [epoch_eta(c, e) for e in range(5)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])  # no wasted last epoch
    c = TrainConfig(epochs=4, eta=2.0, schedule="cosine", eta_min=0.0)
    assert epoch_eta(c, 0) == 2.0 and epoch_eta(c, 2) == pytest.approx(1.0) and 0 < epoch_eta(c, 3) < 0.3
    c = TrainConfig(epochs=5, eta=3.0, warmup_epochs=2)
    assert [epoch_eta(c, e) for e in range(3)] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adam"])
def test_every_optimizer_goes_downhill(small, opt):
    eta = {"sgd": 1.0, "momentum": 0.3, "nesterov": 0.3, "adam": 0.003}[opt]
    net = Network.create((784, 16, 10), seed=0)
    before = net.cost(small.train.x[:500], small.train.y[:500])
    train(net, small.train.subset(500), TrainConfig(epochs=2, optimizer=opt, eta=eta, lmbda=0.1))
    assert net.cost(small.train.x[:500], small.train.y[:500]) < 0.8 * before


def test_keep_best_restores_best_validation_epoch(small):
    net = Network.create((784, 16, 10), seed=0)
    val = Split(small.test.images[:300], small.test.labels[:300])
    trainer = Trainer(net, small.train.subset(1000), TrainConfig(epochs=4, validation=True, keep_best=True), validation=val)
    while not trainer.done:
        trainer.run_epoch()
    accs = [e.validation_accuracy for e in trainer.history.epochs]
    trainer.finish()
    best = int(np.argmax(accs)) + 1
    assert trainer.history.best_epoch in (None, best)
    assert (net.predict(val.x) == val.y).mean() == pytest.approx(max(accs))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eta": -0.1}, "^eta must be > 0. Got -0.1 instead.$"),
        ({"eta": float("nan")}, "eta must be > 0"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
        ({"epochs": 2.5}, "epochs must be a whole number"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, momentum"),
        ({"momentum": 1.5}, r"momentum must be in \[0, 1\)"),
        ({"keep_best": True}, "keep_best picks the epoch by validation accuracy: turn on validation too"),
        ({"seed": -1}, "seed must be a whole number >= 0"),
    ],
)
def test_train_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as err:
        TrainConfig(**kwargs)
    assert err.value.setting == next(iter(kwargs))  # the setting at fault, by name


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layers": (784,)}, "at least an input and an output layer"),
        ({"layers": (784, 0, 10)}, "whole number from 1 to 100000"),
        ({"activation": "softmax"}, "activation must be one of sigmoid, tanh, relu"),
        ({"cost": "hinge"}, "cost must be one of quadratic, cross-entropy"),
    ],
)
def test_network_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        NetworkConfig(**kwargs)


def test_trainer_checks_data_against_network(small):
    with pytest.raises(ConfigError, match="first layer has 100 inputs but the images have 784 pixels"):
        Trainer(Network.create((100, 10)), small.train)
    with pytest.raises(ConfigError, match="output layer has only 5 neurons"):
        Trainer(Network.create((784, 5)), small.train)


def test_failed_checkpoint_write_keeps_the_last_good_one(small, tmp_path, monkeypatch):
    import os

    from digitnet.errors import ModelFileError

    out = tmp_path / "m.safetensors"
    ckpt = checkpoint_path(out)
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the second epoch's checkpoint: the disk fills up
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(ModelFileError, match="No space left on device"):
        run_training(NetworkConfig(layers=(784, 10)), TrainConfig(epochs=3, train_size=300), out, small)
    assert load_model(ckpt).epoch == 1  # the last good checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]  # no temporary files left


def test_interrupted_save_leaves_previous_model(tmp_path, monkeypatch):
    import os

    from digitnet.io.model_io import save_model

    out = tmp_path / "m.safetensors"
    save_model(out, Network.create((784, 10), seed=1))
    before = out.read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(out, Network.create((784, 10), seed=2))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_divergence_in_the_first_epoch_does_not_claim_kept_weights(mnist):
    from digitnet.config import NetworkConfig, TrainConfig
    from digitnet.errors import DivergenceError
    from digitnet.nn.network import Network
    from digitnet.training.train import train as train_net

    net = Network.create(NetworkConfig(layers=(784, 16, 10), activation="relu", output_activation="identity"), seed=0)
    with pytest.raises(DivergenceError) as e:
        train_net(net, mnist.train, TrainConfig(eta=1e6, epochs=1, train_size=500, schedule="constant"))
    assert "diverged in epoch 1" in str(e.value) and "last good epoch" not in str(e.value)
