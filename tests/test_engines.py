"""Every training engine of digitnet.training.engines.ENGINES against the definition of a step:
backpropagation, the L2 term added to dC/dw, then the optimizer's update.

One test, parametrized over the engine table: a new engine is checked by adding it to the
table. An engine that says it cannot train a case (``supports`` gives a reason) is skipped
for that case, and the reason must name the engine. Tolerances: in float64 the engines
differ only in the order of float operations, so they agree to 1e-10 after several steps;
in float32 to 1e-4 relative (float32 rounding, amplified a little by each step).
"""

import importlib.util

import numpy as np
import pytest

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Split
from digitnet.errors import ConfigError, DivergenceError
from digitnet.nn.network import Network, backprop
from digitnet.training import engines
from digitnet.training.optim import make_optimizer
from digitnet.training.train import Trainer

HIDDEN = ("sigmoid", "tanh", "relu")
OUTPUT = ("sigmoid", "softmax", "tanh", "relu", "identity")
DENSE = [
    dict(layers=(12, 9, 7, 5), activation=h, output_activation=o, cost=c)
    for h in HIDDEN
    for o in OUTPUT
    for c in ("quadratic", "cross-entropy")
    if c == "quadratic" or o in ("sigmoid", "softmax")
]
# Settings beyond the activations: weight decay, other optimizers, a conv net, dropout.
OTHER = [
    (dict(layers=(12, 9, 5)), dict(lmbda=0.5)),
    (dict(layers=(12, 9, 5)), dict(optimizer="nesterov", momentum=0.8)),
    (dict(layers=(12, 9, 5), activation="relu", output_activation="softmax", cost="cross-entropy"),
     dict(optimizer="adam", eta=0.01, lmbda=0.3)),
    (dict(layers=(16, 5), features=("conv:2:3", "pool:2"), activation="relu", output_activation="softmax",
          cost="cross-entropy"), dict(optimizer="momentum", eta=0.1)),
]
CASES = [(net, {}) for net in DENSE] + OTHER
IDS = ["-".join(f"{v}" for k, v in net.items() if k != "layers") + ("-" + "-".join(map(str, t.values())) if t else "")
       for net, t in CASES]


def _data(n_in, dtype, n=60, seed=7):
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in)).astype(dtype), rng.integers(0, 5, n)


def _by_definition(net, x, y, batches, cfg, eta, decay):
    """Each batch: backprop, dC/dw += decay w, the optimizer's step."""
    opt = make_optimizer(cfg.optimizer, net.params, cfg.momentum, cfg.beta2)
    costs = []
    for idx in batches:
        g = backprop(net, x[idx], y[idx])
        grads = g.layers
        for gr, p in zip(grads, net.params):
            if "w" in gr:
                gr["w"] = gr["w"] + np.asarray(decay, p["w"].dtype) * p["w"]
        opt.step(net.params, grads, eta)
        costs.append(g.cost)
    return costs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("net_kw,train_kw", CASES, ids=IDS)
@pytest.mark.parametrize("name", list(engines.ENGINES))
def test_engine_agrees_with_the_definition(name, net_kw, train_kw, dtype):
    cfg = TrainConfig(**{"eta": 0.5, "lmbda": 0.1, **train_kw})
    net = Network.create(NetworkConfig(**net_kw, dtype=dtype), seed=3)
    why = engines.ENGINES[name].supports(net, cfg)
    if why is not None:
        assert name in why  # the reason says which engine cannot, and why
        pytest.skip(why)
    x, y = _data(net_kw["layers"][0], dtype)
    ref = net.copy()
    opt = make_optimizer(cfg.optimizer, net.params, cfg.momentum, cfg.beta2)
    engine = engines.make(name, engines.Batches(net, x, y, cfg.replace(engine=name), opt))
    order = np.random.default_rng(11).permutation(len(x))
    decay = cfg.lmbda / len(x)
    steps = 6 if dtype == "float64" else 4
    engine.begin_epoch(0)
    # Batches of 10, then a last one of 7 (a partial batch uses its own buffers).
    got = list(engine.steps(order, 0, steps - 1, 10, cfg.eta, decay))
    got += list(engine.steps(order, 10 * (steps - 1), 1, 7, cfg.eta, decay))
    batches = [order[10 * s : 10 * s + 10] for s in range(steps - 1)] + [order[10 * (steps - 1) :][:7]]
    want = _by_definition(ref, x, y, batches, cfg, cfg.eta, decay)
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (1e-4, 1e-5)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    for p, q in zip(net.params, ref.params):
        for k in p:
            assert p[k].dtype == np.dtype(dtype)
            np.testing.assert_allclose(p[k], q[k], rtol=rtol, atol=atol)
    # The steps really moved the weights (so the comparison is not vacuous).
    start = Network.create(NetworkConfig(**net_kw, dtype=dtype), seed=3)
    assert not all(np.allclose(p["w"], q["w"]) for p, q in zip(net.params, start.params) if "w" in p)


def _split(n=83, seed=0):
    rng = np.random.default_rng(seed)
    return Split(rng.integers(0, 256, (n, 4, 4), dtype=np.uint8), rng.integers(0, 5, n).astype(np.int64))


def _train(engine, *, one_step_at_a_time=False, **config):
    net = Network.create((16, 8, 5), seed=2)
    trainer = Trainer(net, _split(), TrainConfig(**{"epochs": 2, "eta": 0.8, "lmbda": 0.1, "seed": 2, **config}),
                      engine=engine)
    while not trainer.done:
        if one_step_at_a_time:
            while trainer._order is None or trainer._batch < trainer.batches_per_epoch:
                trainer.step()
        trainer.run_epoch()
    return trainer, net


@pytest.mark.parametrize("name", list(engines.ENGINES))
def test_trainer_with_each_engine_is_bit_reproducible_step_by_step_or_by_epoch(name):
    """Trainer.step (the web page's way) and run_epoch (many batches per call) give the
    same bits, and so does a second run; the trainer's config records the engine."""
    if engines.ENGINES[name].supports(Network.create((16, 8, 5)), TrainConfig()) is not None:
        pytest.skip(f"{name} cannot run here")
    runs = [_train(name), _train(name), _train(name, one_step_at_a_time=True)]
    first = runs[0][1]
    assert runs[0][0].engine == runs[0][0].config.engine == name
    assert len(runs[0][0].history.batch_costs) == 2 * 9  # 83 images in batches of 10
    for trainer, net in runs[1:]:
        assert trainer.history.batch_costs == runs[0][0].history.batch_costs
        for p, q in zip(net.params, first.params):
            assert p["w"].tobytes() == q["w"].tobytes() and p["b"].tobytes() == q["b"].tobytes()


@pytest.mark.parametrize("name", list(engines.ENGINES))
def test_divergence_with_each_engine_restores_the_last_good_epoch(name):
    net = Network.create((16, 8, 5), seed=0, activation="relu", output_activation="identity")
    if engines.ENGINES[name].supports(net, TrainConfig()) is not None:
        pytest.skip(f"{name} cannot run here")
    trainer = Trainer(net, _split(), TrainConfig(epochs=3, batch_size=10, eta=1e8), engine=name)
    start = net.copy()
    with pytest.raises(DivergenceError, match=r"smaller learning rate \(eta\)") as err:
        trainer.run_epoch()
    assert err.value.setting == "eta"
    for p, q in zip(net.params, start.params):
        assert p["w"].tobytes() == q["w"].tobytes()


def test_auto_is_the_fastest_engine_that_supports_the_config(monkeypatch):
    monkeypatch.delenv(engines.ENGINE_ENV, raising=False)
    dense, conv = Network.create((16, 8, 5)), Network.create(NetworkConfig(layers=(16, 5), features=("conv:2:3",)))
    fastest = "numba" if importlib.util.find_spec("numba") else "numpy"
    assert engines.choose(dense, TrainConfig()) == fastest
    assert engines.choose(dense, TrainConfig(optimizer="adam")) == "reference"
    assert engines.choose(conv, TrainConfig()) == "reference"
    assert engines.choose(dense, TrainConfig(dropout=0.2)) == "reference"
    assert engines.choose(dense, TrainConfig(), "numpy") == "numpy"  # the argument, then the config
    assert engines.choose(dense, TrainConfig(engine="reference")) == "reference"
    monkeypatch.setenv(engines.ENGINE_ENV, "NumPy")  # $DIGITNET_ENGINE stands in for auto
    assert engines.choose(dense, TrainConfig()) == "numpy"
    assert engines.choose(dense, TrainConfig(engine="reference")) == "reference"


def test_a_named_engine_that_cannot_train_the_config_is_an_error(monkeypatch):
    monkeypatch.delenv(engines.ENGINE_ENV, raising=False)
    dense = Network.create((16, 8, 5))
    with pytest.raises(ConfigError, match="the numpy engine runs plain SGD on dense layers; these settings use "
                                          "the adam optimizer. Set engine to auto or reference") as err:
        engines.choose(dense, TrainConfig(optimizer="adam", engine="numpy"))
    assert err.value.setting == "engine"
    assert "--engine" in err.value.render(lambda s: "--" + s)
    monkeypatch.setenv(engines.ENGINE_ENV, "numpy")
    with pytest.raises(ConfigError, match=r"adam optimizer. Set \$DIGITNET_ENGINE to auto or reference"):
        engines.choose(dense, TrainConfig(optimizer="adam"))
    monkeypatch.setenv(engines.ENGINE_ENV, "cuda")
    with pytest.raises(ConfigError, match=r"\$DIGITNET_ENGINE is 'cuda'; choose one of auto, numba, numpy, reference"):
        engines.choose(dense, TrainConfig())
    monkeypatch.delenv(engines.ENGINE_ENV)
    from digitnet.nn import compiled

    monkeypatch.setattr(compiled, "missing", lambda: "numba is not installed (pip install 'digitnet[fast]')")
    assert engines.choose(dense, TrainConfig()) == "numpy"
    with pytest.raises(ConfigError, match=r"numba engine cannot run here: numba is not installed"):
        engines.choose(dense, TrainConfig(engine="numba"))


# --- the compiled engine's inputs: one copy, compressed, made a block at a time ----------
@pytest.mark.parametrize("numba", [True, False])
def test_sparse_rows_give_back_exactly_the_rows_compressed(numba, monkeypatch):
    from digitnet.nn import compiled
    from digitnet.nn.compiled import SparseRows

    if numba and compiled.missing() is not None:
        pytest.skip(compiled.missing())
    if not numba:  # the NumPy way back, where Numba cannot run
        monkeypatch.setattr(compiled, "_import_error", lambda: "numba is not installed")

    x = np.random.default_rng(3).random((1000, 37)).astype(np.float32)
    x[x < 0.8] = 0
    rows = SparseRows.of(x)
    assert rows.shape == (1000, 37) and rows.indices.dtype == np.uint16 and rows.values.nbytes < x.nbytes / 4
    assert rows.dense(0, 1000).tobytes() == x.tobytes()
    assert rows.dense(17, 530).tobytes() == x[17:530].tobytes()
    assert SparseRows.of(x, most=int(0.1 * x.size)) is None  # denser than allowed: no rows
    other = SparseRows.of(x[::-1].copy())  # one buffer reused for the rows of both
    buffer, held = None, None
    for rows_, a, b, want in [(rows, 0, 400, x[:400]), (other, 100, 350, x[::-1][100:350]), (rows, 900, 1000, x[900:]),
                              (other, 0, 400, x[::-1][:400])]:
        got = rows_.dense(a, b, buffer, held)
        assert got.tobytes() == want.tobytes()
        buffer, held = (got if got.base is None else got.base), (rows_, a, b)
    blocks = ((i, x[i : i + 300]) for i in range(0, 1000, 300))  # given a block at a time: the same arrays
    streamed = SparseRows.compress(blocks, 1000, 37, np.float32)
    for a, b in zip((rows.indptr, rows.indices, rows.values), (streamed.indptr, streamed.indices, streamed.values)):
        assert a.tobytes() == b.tobytes()
    if importlib.util.find_spec("numba"):  # the same arrays as the kernels' own compression
        from digitnet.nn._kernels import csr_rows

        for a, b in zip(csr_rows(x, np.zeros(0, np.uint16)), (rows.indptr, rows.indices, rows.values)):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("preprocess", ["deskew", "none"])
def test_the_compiled_engine_holds_one_copy_of_the_inputs_and_trains_the_same(preprocess):
    """MNIST as the numba engine trains it: only the compressed rows (no float copy of the
    whole training set, no deskewed copy remembered), and the same weights and history, bit
    for bit, as the engine given the dense inputs."""
    pytest.importorskip("numba")
    from digitnet.data import resample
    from digitnet.data.datasets import load_mnist
    from digitnet.nn.compiled import CompiledSGD, SparseRows
    from digitnet.nn.network import feedforward_batched, total_cost
    from digitnet.training.train import epoch_order

    mnist = load_mnist()
    train = Split(np.array(mnist.train.images[:2500]), mnist.train.labels[:2500])  # a split of its own
    test = Split(np.array(mnist.test.images[:1200]), mnist.test.labels[:1200])
    cfg = NetworkConfig(layers=(784, 16, 10), preprocess=preprocess)
    tc = TrainConfig(epochs=1, batch_size=10, eta=3.0, engine="numba")
    net = Network.create(cfg, seed=1)
    trainer = Trainer(net, train, tc, test=test)
    assert isinstance(trainer._x, SparseRows) and isinstance(trainer._test_x, SparseRows)
    assert "x" not in vars(train) and not any(seen is train.images for seen, _ in resample._DESKEW_CACHE)
    trainer.measure_initial()
    rec = trainer.run_epoch()

    ref = Network.create(cfg, seed=1)
    x, tx = ref.prepare_split(train), ref.prepare_split(test)
    assert trainer.x.tobytes() == x.tobytes()
    cost0 = total_cost(ref, feedforward_batched(ref, x), train.y) / len(train)
    CompiledSGD(ref, x, train.y).steps(epoch_order(tc.seed, 0, len(train)), 0, 250, 10, tc.eta)
    for p, q in zip(net.params, ref.params):
        assert p["w"].tobytes() == q["w"].tobytes() and p["b"].tobytes() == q["b"].tobytes()
    assert trainer.history.initial_cost == cost0
    assert rec.cost == total_cost(ref, feedforward_batched(ref, x), train.y) / len(train)
    assert rec.test_accuracy == float(np.mean(feedforward_batched(ref, tx).argmax(axis=1) == test.y))


def test_auto_says_once_why_the_compiled_engine_did_not_run(monkeypatch):
    from digitnet.nn import compiled

    monkeypatch.delenv(engines.ENGINE_ENV, raising=False)
    monkeypatch.setattr(compiled, "missing", lambda: "numba is not installed")
    x = np.random.default_rng(0).random((30, 12)).astype(np.float32)
    split = Split(x, np.arange(30) % 5)
    trainer = Trainer(Network.create((12, 9, 5)), split, TrainConfig(epochs=1))
    assert trainer.engine == "numpy"
    assert trainer.engine_note == ("The compiled engine cannot run here (numba is not installed), so the numpy "
                                   "engine trains; it is slower (`pip install numba`, where Numba has wheels, "
                                   "brings it back).")
    assert "\n" not in trainer.engine_note
    # Asked for by name, or a setting only the reference engine runs: nothing to say.
    assert Trainer(Network.create((12, 9, 5)), split, TrainConfig(epochs=1), engine="numpy").engine_note is None
    assert Trainer(Network.create((12, 9, 5)), split, TrainConfig(epochs=1, optimizer="adam")).engine_note is None
    monkeypatch.setattr(compiled, "missing", lambda: None)
    assert engines.fallback_note(Network.create((12, 9, 5)), TrainConfig(), "numpy") is None


def test_a_numba_that_fails_to_import_means_the_numpy_engine(tmp_path):
    """A broken Numba (here one that refuses this NumPy, as a real one does) is not a crash:
    missing() says why, so auto trains with the NumPy engine."""
    import subprocess
    import sys
    from pathlib import Path

    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise ImportError("Numba needs NumPy 2.5 or less; got NumPy 9.0.")\n')
    src = Path(engines.__file__).resolve().parents[2]
    code = ("from digitnet.nn import compiled; from digitnet.training import engines; "
            "from digitnet.nn.network import Network; from digitnet.config import TrainConfig; "
            "print(compiled.missing()); print(engines.choose(Network.create((12, 9, 5)), TrainConfig()))")
    env = {k: v for k, v in __import__("os").environ.items() if k != engines.ENGINE_ENV}
    env["PYTHONPATH"] = f"{tmp_path}{__import__('os').pathsep}{src}"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Numba fails to import (ImportError: Numba needs NumPy 2.5 or less; got NumPy 9.0.)",
                                     "numpy"]


_CACHE_PROBE = """
import numpy as np
from numba.core import caching

def read_only(self):  # what Numba meets where the package's __pycache__ is not writable
    raise PermissionError(13, "Read-only file system", self.get_cache_path())

caching.InTreeCacheLocator.ensure_cache_path = read_only
from digitnet.nn import _kernels
from digitnet.nn.compiled import CompiledSGD
from digitnet.nn.network import Network

x = (np.arange(40 * 12).reshape(40, 12) % 5 == 0).astype(np.float32)
CompiledSGD(Network.create((12, 9, 5)), x, np.arange(40) % 5).steps(np.arange(40), 0, 4, 10, 0.5)
stats = _kernels.sgd_batches.stats
print(len(stats.cache_hits), len(stats.cache_misses))
"""


def test_a_read_only_install_still_caches_the_compiled_code_for_the_user(tmp_path):
    """No first-run penalty on every run where the package's folder is read-only (installed
    by root, used by a user): the kernels are cached in the user's cache directory instead
    (NUMBA_CACHE_DIR unset), and the next process loads them from there."""
    pytest.importorskip("numba")
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(engines.__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(src),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

    def run() -> list[str]:
        r = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.split()

    # Compiled (a miss), or, where the package was installed with its kernels built in (CI runs
    # the tests against the installed package), loaded from those (a hit) ...
    assert run() in (["0", "1"], ["1", "0"])
    cached = [p.name for p in tmp_path.rglob("*.nbi")]
    assert any(name.startswith("_kernels.sgd_batches-") for name in cached), cached  # ... and cached for the user
    assert run() == ["1", "0"]  # the next run loads it
