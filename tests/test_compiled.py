"""The compiled engine's kernels (nn/compiled.py, Numba): the sparse first layer against the
reference (backprop + optim.SGD), on inputs of which 60% are 0, and the kernels' own rules.

The engine as a whole (dense first layer, through the engine interface) is checked with
every other engine in tests/test_engines.py.

Tolerances: in float64 the paths differ only in the order of float operations, so they
agree to 1e-10 after six steps; in float32 costs to 1e-4 relative and weights to 2e-4.
"""

import numpy as np
import pytest

pytest.importorskip("numba")

from digitnet.errors import ConfigError  # noqa: E402
from digitnet.nn.compiled import CompiledSGD  # noqa: E402
from digitnet.nn.network import Network  # noqa: E402
from test_fast import COMBOS, SIZES, _data, _reference_step  # noqa: E402  (the same cases as the numpy engine's)


def _sparse_data(dtype):
    x, y = _data(dtype)
    x[np.random.default_rng(5).random(x.shape) < 0.6] = 0
    return x, y


def _run_both(hidden, output, cost, dtype, sparse, eta=0.5, decay=0.0, sizes=SIZES):
    """Five batches of 10 in one compiled call, then a partial batch of 7, against the reference."""
    x, y = _sparse_data(dtype)
    net = Network.create(sizes, seed=3, activation=hidden, output_activation=output, cost=cost, dtype=dtype)
    ref = net.copy()
    path = CompiledSGD(net, x, y, sparse=sparse)
    assert path.sparse == sparse
    order = np.random.default_rng(11).permutation(len(x))
    got = list(path.steps(order, 0, 5, 10, eta, decay)) + [path.step(order[50:57], eta, decay)]
    want = [_reference_step(ref, x, y, order[10 * s : 10 * s + 10], eta, decay) for s in range(5)]
    want.append(_reference_step(ref, x, y, order[50:57], eta, decay))
    return net, ref, np.array(got), np.array(want)


@pytest.mark.parametrize("sparse", [True], ids=["sparse"])  # dense: tests/test_engines.py
@pytest.mark.parametrize("hidden,output,cost", COMBOS)
def test_agrees_with_reference_float64(hidden, output, cost, sparse):
    net, ref, got, want = _run_both(hidden, output, cost, "float64", sparse)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for p, q in zip(net.params, ref.params):
        np.testing.assert_allclose(p["w"], q["w"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(p["b"], q["b"], rtol=1e-10, atol=1e-12)
    start = Network.create(SIZES, seed=3, dtype="float64")
    assert not np.allclose(net.params[0]["w"], start.params[0]["w"])  # the steps moved the weights


@pytest.mark.parametrize("sparse", [True], ids=["sparse"])  # dense: tests/test_engines.py
@pytest.mark.parametrize("hidden,output,cost", COMBOS)
def test_agrees_with_reference_float32(hidden, output, cost, sparse):
    net, ref, got, want = _run_both(hidden, output, cost, "float32", sparse)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for p, q in zip(net.params, ref.params):
        assert p["w"].dtype == np.float32
        # Six float32 steps: relu + tanh output, the most sensitive pair, moves by up to 8e-5.
        np.testing.assert_allclose(p["w"], q["w"], rtol=1e-3, atol=2e-4)
        np.testing.assert_allclose(p["b"], q["b"], rtol=1e-3, atol=2e-4)


@pytest.mark.parametrize("sparse", [True], ids=["sparse"])  # dense: tests/test_engines.py
def test_weight_decay_agrees_with_reference(sparse):
    net, ref, got, want = _run_both("sigmoid", "sigmoid", "quadratic", "float64", sparse, decay=0.05)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    for p, q in zip(net.params, ref.params):
        np.testing.assert_allclose(p["w"], q["w"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(p["b"], q["b"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", [1, 8, 16, 17, 40])
def test_sparse_first_layer_of_any_width(hidden, dtype, sparse):
    """Widths below, at and past one vector (16 float32s, 8 float64s): the padding of w^T."""
    net, ref, got, want = _run_both("sigmoid", "sigmoid", "quadratic", dtype, sparse, decay=0.01, sizes=(12, hidden, 5))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(got, want, **tol)
    for p, q in zip(net.params, ref.params):
        np.testing.assert_allclose(p["w"], q["w"], **tol)
        np.testing.assert_allclose(p["b"], q["b"], **tol)


def test_csr_rows():
    from digitnet.nn._kernels import csr_rows

    x = np.array([[0.0, 1.5, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, -1.0]], np.float32)
    indptr, indices, values = csr_rows(x, np.zeros(0, np.uint16))
    assert indptr.tolist() == [0, 2, 2, 4] and indices.dtype == np.uint16 and values.dtype == np.float32
    assert indices.tolist() == [1, 3, 0, 3] and values.tolist() == [1.5, 2.0, 3.0, -1.0]


def test_sparse_is_chosen_by_density(mnist):
    split = mnist.train.subset(200)
    net = Network.create((784, 16, 10))
    assert CompiledSGD(net, split.x, split.y).sparse  # 19% of MNIST's pixels are not 0
    x, y = _data("float32")
    assert not CompiledSGD(Network.create(SIZES), x, y).sparse  # none of these is 0
    assert CompiledSGD(Network.create(SIZES), x, y, sparse=True).sparse


def test_sparse_and_dense_agree_on_mnist(mnist):
    """The video's network, 50 batches of 100 real digits: the two first layers."""
    split = mnist.train.subset(5000)
    order = np.random.default_rng(4).permutation(5000)
    nets, costs = [], []
    for sparse in (True, False):
        net = Network.create((784, 16, 16, 10), seed=0, dtype="float64")
        costs.append(CompiledSGD(net, split.x, split.y, sparse=sparse).steps(order, 0, 50, 100, 3.0))
        nets.append(net)
    np.testing.assert_allclose(costs[0], costs[1], rtol=1e-10)
    for p, q in zip(*(n.params for n in nets)):
        np.testing.assert_allclose(p["w"], q["w"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_one_step_by_hand(sparse):
    """A 2-1 sigmoid network, quadratic cost, one example: the update worked out on paper."""
    net = Network.create((2, 1), seed=0, dtype="float64")
    net.params[0]["w"][...] = [[0.5, -1.0]]
    net.params[0]["b"][...] = [0.25]
    x, y = np.array([[1.0, 2.0]]), np.array([0])
    cost = CompiledSGD(net, x, y, sparse=sparse).step(np.array([0]), eta=2.0)
    a = 1 / (1 + np.exp(-(0.5 - 2.0 + 0.25)))
    delta = (a - 1) * a * (1 - a)
    assert cost == pytest.approx(0.5 * (a - 1) ** 2, rel=1e-12)
    np.testing.assert_allclose(net.params[0]["w"], [[0.5 - 2 * delta, -1.0 - 4 * delta]], rtol=1e-12)
    np.testing.assert_allclose(net.params[0]["b"], [0.25 - 2 * delta], rtol=1e-12)


def test_uint8_pixels_give_the_same_inputs_bit_for_bit(mnist):
    split = mnist.train.subset(300)
    order = np.random.default_rng(1).permutation(300)
    nets = []
    for pixels in (None, split.images):
        net = Network.create((784, 16, 10), seed=2)
        path = CompiledSGD(net, split.x, split.y, pixels, sparse=False)
        assert len(path.pixels) == (0 if pixels is None else 300)  # the pixels are read
        path.steps(order, 0, 30, 10, 3.0)
        nets.append(net)
    for p, q in zip(*(n.params for n in nets)):
        assert p["w"].tobytes() == q["w"].tobytes() and p["b"].tobytes() == q["b"].tobytes()
    with pytest.raises(ConfigError, match="uint8"):
        CompiledSGD(Network.create((784, 16, 10)), split.x, split.y, split.images.astype(np.int16))


def test_a_non_finite_cost_stops_before_its_step():
    x, y = _data("float32")
    net = Network.create(SIZES, seed=0, activation="relu", output_activation="identity")
    path = CompiledSGD(net, x, y)
    order = np.arange(60)
    costs = path.steps(order, 0, 6, 10, 1e6)  # float32 overflows after a step or two
    assert len(costs) < 6 and not np.isfinite(costs[-1]) and np.isfinite(costs[:-1]).all()
    before = net.copy()
    path.steps(order, 0, 1, 10, 1e6)  # the same non-finite batch again: nothing changes
    for p, q in zip(net.params, before.params):
        assert p["w"].tobytes() == q["w"].tobytes()


def test_bad_batches_are_refused():
    x, y = _data("float64")
    path = CompiledSGD(Network.create(SIZES, dtype="float64"), x, y)
    with pytest.raises(ConfigError, match="do not fit"):
        path.steps(np.arange(60), 50, 2, 10, 0.1)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_replaced_parameters_are_trained(sparse):
    """Trainer restores the last good epoch with ``net.params[:] = good.params``; the sparse
    first layer keeps w^T only while a call runs, so it too must train the new values."""
    x, y = _sparse_data("float64")
    net = Network.create(SIZES, seed=1, dtype="float64")
    path = CompiledSGD(net, x, y, sparse=sparse)
    idx = np.arange(10)
    path.step(idx, 0.5)
    other = Network.create(SIZES, seed=9, dtype="float64")
    net.params[:] = other.copy().params
    path.step(idx, 0.5)
    _reference_step(other, x, y, idx, 0.5)
    for p, q in zip(net.params, other.params):
        np.testing.assert_allclose(p["w"], q["w"], rtol=1e-12)




def test_runs_without_scipy(tmp_path):
    """The kernels multiply in their own loops: no BLAS, so no SciPy (Numba's np.dot needed it)."""
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    code = (
        "import sys; sys.modules['scipy'] = None\n"  # any import of scipy now fails
        "import numpy as np\n"
        "from digitnet.nn.compiled import CompiledSGD, missing\n"
        "from digitnet.nn.network import Network\n"
        "assert missing() is None\n"
        "x = np.random.default_rng(0).random((40, 12)).astype(np.float32)\n"
        "for sparse in (False, True):\n"
        "    costs = CompiledSGD(Network.create((12, 9, 5)), x, np.arange(40) % 5, sparse=sparse).steps(np.arange(40), 0, 4, 10, 0.5)\n"
        "    assert np.isfinite(costs).all() and len(costs) == 4\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "PYTHONPATH": str(src)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_wide_networks_go_to_the_numpy_engine():
    from digitnet.config import TrainConfig
    from digitnet.training import engines

    wide, video = Network.create((784, 512, 512, 10)), Network.create((784, 16, 16, 10))
    assert engines.fastest(video, TrainConfig()) == "numba"
    assert engines.fastest(wide, TrainConfig()) == "numpy"
    with pytest.raises(ConfigError, match=r"numba engine is for narrow networks: layer 2 has 512 x 512 weights"):
        engines.choose(wide, TrainConfig(engine="numba"))



def test_exp_of_the_sigmoid_is_within_2_ulp():
    """The kernels' float32 exp (a polynomial, vectorised) against exp in float64, over all of
    float32's exp range; past it 0 and inf as np.exp; NaN stays NaN."""
    from digitnet.nn._kernels import exp_f32

    x = np.linspace(-103.9, 88.72, 16 * 100_000, dtype=np.float32)
    x = np.concatenate([x, np.float32([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.73, -105.0, 1e-8, -1e-8, 0.5, 1, -1, 20, -20, 87, -87])])
    got = np.empty_like(x)
    exp_f32(x, got)
    want = np.exp(x.astype(np.float64))
    normal = (want > np.finfo(np.float32).tiny) & (want < np.finfo(np.float32).max)
    ulp = np.spacing(want[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[normal] - want[normal]) / ulp) <= 2.0
    tiny = want <= np.finfo(np.float32).tiny  # subnormal results: within a subnormal's spacing
    assert np.max(np.abs(got[tiny] - want[tiny])) <= 2 * 2.0**-149
    assert np.isnan(got[-16]) and got[-15] == np.inf and got[-14] == 0 and got[-13] == got[-12] == 1
    assert got[-11] == np.inf and got[-10] == 0


def test_pixel_inputs_are_kept_as_codes_bit_for_bit(mnist):
    """Inputs that are pixels / 255 are compressed to uint8 codes: dense again they are the same
    bits, and training on them gives the same weights, bit for bit, as on the float values."""
    from digitnet.nn.compiled import SparseRows

    split = mnist.train.subset(500)
    rows = SparseRows.of(split.x)
    assert rows.table is not None and rows.values.dtype == np.uint8 and rows.dtype == np.float32
    assert rows.dense(0, 500).tobytes() == split.x.tobytes()
    assert rows._dense_numpy(3, 200).tobytes() == split.x[3:200].tobytes()
    floats = SparseRows(rows.indptr, rows.indices, rows.table[rows.values], 784)  # the numbers themselves
    order = np.random.default_rng(2).permutation(500)
    nets = []
    for x in (rows, floats):
        net = Network.create((784, 16, 16, 10), seed=4)
        CompiledSGD(net, x, split.y).steps(order, 0, 50, 10, 3.0)
        nets.append(net)
    for p, q in zip(*(n.params for n in nets)):
        assert p["w"].tobytes() == q["w"].tobytes() and p["b"].tobytes() == q["b"].tobytes()


def test_codes_with_two_byte_columns_are_packed_records(mnist):
    """Pixel codes with uint16 columns are kept as 3-byte records (column, code): the same
    columns and codes as compressing them apart, a quarter of a float32 array's bytes, and
    dense again (also into a reused buffer) the same bits."""
    from digitnet.nn._kernels import csr_rows
    from digitnet.nn.compiled import SparseRows

    x = mnist.train.subset(300).x
    rows = SparseRows.of(x)
    indptr, indices, values = csr_rows(x, np.zeros(0, np.uint16))
    n = len(values)
    assert rows.records is not None and rows.records.dtype == np.uint8 and len(rows.records) == 3 * n + 1
    assert np.array_equal(rows.indptr, indptr) and np.array_equal(rows.indices, indices)
    assert np.array_equal(rows.table[rows.values], values) and rows.nbytes == indptr.nbytes + 3 * n + 1
    assert rows.kernel_arrays()[1] is rows.records
    buffer = np.zeros((100, 784), np.float32)
    first = rows.dense(0, 100, buffer)
    assert first.tobytes() == x[:100].tobytes()
    again = rows.dense(150, 250, buffer, held=(rows, 0, 100))  # the buffer's old rows cleared, new ones written
    assert np.shares_memory(again, buffer) and again.tobytes() == x[150:250].tobytes()
    assert SparseRows.of(np.zeros((3, 784), np.float32)).dense(0, 3).tobytes() == bytes(3 * 784 * 4)


def test_the_kernels_refuse_compressed_rows_that_are_not_contiguous(mnist):
    """The kernels index the compressed rows as contiguous arrays, unchecked: a strided view
    (e.g. the columns of packed records) must be refused when the types are checked, not read wrongly."""
    from numba.core.errors import TypingError

    rows = CompiledSGD(Network.create((784, 16, 10), seed=0), mnist.train.subset(50).x, mnist.train.y[:50]).rows
    path = CompiledSGD(Network.create((784, 16, 10), seed=0), rows, mnist.train.y[:50])
    strided = (rows.indptr, rows.indices, rows.table[rows.values])  # indices: a view with a stride of 3 bytes
    assert not rows.indices.flags.c_contiguous
    path.csr = strided
    with pytest.raises(TypingError):
        path.steps(np.arange(50), 0, 2, 10, 3.0)


def test_misused_compressed_rows_and_batches_are_refused(mnist):
    """The kernels index unchecked: what would make them read or write outside an array is
    refused first (an attacker's list: an order naming examples that are not there hung or
    crashed; labels out of range trained silently; columns past n_in were written outside
    the dense rows; dense(-1, 2) gave garbage; uint8 columns were read as packed records)."""
    from digitnet.nn.compiled import SparseRows

    split = mnist.train.subset(20)
    net = Network.create((784, 16, 10), seed=0)
    path = CompiledSGD(net, split.x, split.y)
    for order in (np.arange(20) + 1, np.arange(20) - 1000, np.arange(20) + 1000):
        with pytest.raises(ConfigError, match="names examples"):
            path.steps(order, 0, 2, 10, 3.0)
    for labels in (np.where(np.arange(20) == 3, 10, split.y), np.where(np.arange(20) == 3, -1, split.y)):
        with pytest.raises(ConfigError, match="class numbers"):
            CompiledSGD(net, split.x, labels)
    rows = SparseRows.of(split.x)
    with pytest.raises(ValueError, match="start at 0"):
        rows.dense(-1, 2)
    with pytest.raises(ValueError, match="outside the 784 columns"):
        SparseRows(rows.indptr, np.asarray(rows.indices) + 700, rows.values, 784, rows.table)
    with pytest.raises(ValueError, match="bytes of records"):
        SparseRows.packed(rows.indptr, rows.records[:-1], 784, rows.table)
    x = (np.random.default_rng(0).integers(0, 4, (30, 200)) / np.float32(255)).astype(np.float32)
    small = SparseRows.of(x)
    narrow = SparseRows(small.indptr, np.asarray(small.indices).astype(np.uint8), small.values, 200, small.table)
    nets = []
    for inputs in (small, narrow):  # uint8 columns (n_in <= 256) are columns, not records
        nets.append(Network.create((200, 8, 10), seed=1))
        CompiledSGD(nets[-1], inputs, np.arange(30) % 10).steps(np.arange(30), 0, 3, 10, 3.0)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(nets[0].weights, nets[1].weights))


def test_other_inputs_keep_their_numbers():
    """A value that is not k / 255 (here in the second block) turns the codes back into numbers."""
    from digitnet.nn.compiled import SparseRows

    x = (np.random.default_rng(0).integers(0, 3, (30, 12)) / np.float32(255)).astype(np.float32)
    assert SparseRows.of(x).table is not None
    x64 = x.astype(np.float64)  # float32's k / 255 widened: still codes, of a float64 table
    assert SparseRows.of(x64).table.dtype == np.float64 and SparseRows.of(x64).dense(0, 30).tobytes() == x64.tobytes()
    x[20, 5] = 0.3
    SparseRows.BLOCK, block = 8, SparseRows.BLOCK
    try:
        rows = SparseRows.of(x)
    finally:
        SparseRows.BLOCK = block
    assert rows.table is None and rows.values.dtype == np.float32
    assert rows.dense(0, 30).tobytes() == x.tobytes()


def test_numba_switched_off_or_kernels_that_fail_to_load_mean_the_numpy_engine(monkeypatch):
    """NUMBA_DISABLE_JIT=1 turns the kernels into Python that cannot run (their intrinsics
    are compiled-only), and a kernels module that fails to load (e.g. Numba refusing to set
    up its cache) would fail in the middle of `digitnet train`: missing() says why, so auto
    picks the NumPy engine and `--engine numba` is a one-line error."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    code = ("from digitnet.nn import compiled; from digitnet.training import engines; "
            "from digitnet.nn.network import Network; from digitnet.config import TrainConfig; "
            "print(compiled.missing()); print(engines.choose(Network.create((12, 9, 5)), TrainConfig()))")
    env = {k: v for k, v in os.environ.items() if k != "DIGITNET_ENGINE"}
    env.update(PYTHONPATH=str(src), NUMBA_DISABLE_JIT="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["NUMBA_DISABLE_JIT is set", "numpy"]

    import digitnet.nn
    from digitnet.nn import compiled

    monkeypatch.setitem(sys.modules, "digitnet.nn._kernels", None)  # its import now fails
    monkeypatch.delattr(digitnet.nn, "_kernels", raising=False)
    compiled._import_error.cache_clear()
    try:
        assert compiled.missing().startswith("its kernels fail to load (ModuleNotFoundError")
    finally:
        monkeypatch.undo()
        compiled._import_error.cache_clear()
