"""Property-based fuzzing of every reader of outside data this module covers: IDX files,
model files and images. Each reader gets thousands of mutated inputs (truncation,
flipped bytes, huge declared dimensions, wrong dtypes, NaN and inf values); the only
allowed outcomes are a correct result or digitnet's own clear error.

``DIGITNET_FUZZ_EXAMPLES`` sets the number of inputs per reader (default 3,000);
``fuzz/run.py`` runs the same properties much longer and reports the counts.
"""

from __future__ import annotations

import collections
import io
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digitnet.data.idx import encode_idx, gunzip, parse_idx
from digitnet.errors import DataError, ImageError, ModelFileError

N = int(os.environ.get("DIGITNET_FUZZ_EXAMPLES", "3000"))
FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck), database=None)
COUNTS: collections.Counter = collections.Counter()


def mutate(data: st.DataObject, valid: bytes) -> bytes:
    """A mutation of ``valid``: truncated, bytes flipped or overwritten, header fields set
    to extreme values, or junk appended."""
    b = bytearray(valid)
    kind = data.draw(st.sampled_from(["truncate", "flip", "overwrite", "header", "append", "none"]))
    if kind == "truncate":
        b = b[: data.draw(st.integers(0, len(b)))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "overwrite":
        i = data.draw(st.integers(0, len(b) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=16))
        b[i : i + len(chunk)] = chunk
    elif kind == "header":
        i = data.draw(st.integers(0, min(len(b), 24) - 1))
        value = data.draw(st.sampled_from([0, 1, 0xFF, 0x7FFFFFFF, 0xFFFFFFFF, 10**12 % 2**32]))
        b[i : i + 4] = struct.pack(">I", value)
    elif kind == "append":
        b += data.draw(st.binary(min_size=1, max_size=64))
    return bytes(b)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if COUNTS:
        print("\nfuzz inputs tried per reader: " + ", ".join(f"{k}={v}" for k, v in sorted(COUNTS.items())))


# --- IDX -----------------------------------------------------------------------------

_IDX_SAMPLES = [
    encode_idx(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)),
    encode_idx(np.arange(10, dtype=np.uint8)),
    encode_idx(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)),
]


@FUZZ
@given(st.data())
def test_idx_reader(data):
    COUNTS["idx"] += 1
    valid = data.draw(st.sampled_from(_IDX_SAMPLES))
    b = mutate(data, valid)
    try:
        a = parse_idx(b, "fuzz.idx")
    except DataError as e:
        assert "fuzz.idx" in str(e)
        return
    # Accepted: then it must be exactly what the bytes say, and re-encode to them.
    assert encode_idx(a) == b


@FUZZ
@given(st.binary(max_size=200))
def test_idx_reader_random_bytes(b):
    COUNTS["idx-random"] += 1
    try:
        a = parse_idx(b)
    except DataError:
        return
    assert encode_idx(a) == b


@settings(max_examples=max(N // 10, 50), deadline=None, database=None)
@given(st.data())
def test_gzip_reader(data):
    import gzip

    COUNTS["gzip"] += 1
    raw = data.draw(st.sampled_from(_IDX_SAMPLES))
    b = mutate(data, gzip.compress(raw, mtime=0))
    try:
        out = gunzip(b, "f.gz", limit=10_000)
    except DataError:
        return
    assert len(out) <= 10_000


# --- model files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    from digitnet.io.model_io import save_model
    from digitnet.nn.network import Network

    p = tmp_path_factory.mktemp("fz") / "m.safetensors"
    save_model(p, Network.create((784, 3, 2), seed=0))
    return p.read_bytes()


def test_model_reader(model_bytes, tmp_path):
    from digitnet.io.model_io import load_model

    path = tmp_path / "m.safetensors"
    path.write_bytes(model_bytes)
    good = load_model(path).net.params

    @FUZZ
    @given(st.data())
    def run(data):
        COUNTS["model"] += 1
        b = mutate(data, model_bytes)
        path.write_bytes(b)
        try:
            m = load_model(path)
        except ModelFileError:
            return
        # Accepted only if the weights are exactly the saved ones (the digest covers them).
        assert m.net.config.layers == (784, 3, 2)
        for pa, pb in zip(m.net.params, good):
            for k in pa:
                assert np.array_equal(pa[k], pb[k])

    run()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_FIELD_KEYS = {
    "network": ["layers", "activation", "output_activation", "cost", "init", "dtype", "features", "deskew", "evil"],
    "train": ["epochs", "batch_size", "eta", "seed", "schedule", "optimizer", "augment", "train_size", "evil"],
    "history": ["epochs", "initial_cost", "initial_test_accuracy", "best_epoch", "stopped_epoch", "evil"],
}
_RECORD_KEYS = ["epoch", "cost", "train_accuracy", "test_accuracy", "validation_accuracy", "seconds", "eta", "evil"]


@st.composite
def _metadata_value(draw, key):
    """A JSON text for metadata field ``key``: often of the right shape with odd values inside."""
    kind = draw(st.sampled_from(["any", "object", "records", "deep", "raw"]))
    if kind == "object" and key in _FIELD_KEYS:
        value = draw(st.dictionaries(st.sampled_from(_FIELD_KEYS[key]), _JSON, max_size=5))
    elif kind == "records":
        value = {"epochs": draw(st.lists(st.dictionaries(st.sampled_from(_RECORD_KEYS), _JSON, min_size=6),
                                         max_size=3))}
    elif kind == "deep":
        n = draw(st.sampled_from([7, 50, 1000, 100_000]))
        return "[" * n + "]" * n
    elif kind == "raw":
        return draw(st.text(max_size=20))
    else:
        value = draw(_JSON)
    import json

    return json.dumps(value)


def test_model_reader_structure_aware(model_bytes, tmp_path):
    """Crafted metadata with a valid digest (anyone can recompute it): the file loads and
    works, or gives the one clean "not a valid digitnet model" error."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import save

    from digitnet.io.model_io import _digest, load_model

    src = tmp_path / "src.safetensors"
    src.write_bytes(model_bytes)
    with safe_open(str(src), framework="numpy") as f:
        meta0 = dict(f.metadata())
        tensors0 = {k: f.get_tensor(k) for k in f.keys()}
    path = tmp_path / "m.safetensors"
    keys = ["network", "train", "history", "kinds", "classes", "input", "epoch", "dataset"]

    @settings(max_examples=max(50, N // 30), deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def run(data):
        COUNTS["model-structure"] += 1
        meta, tensors = dict(meta0), dict(tensors0)
        for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
            meta[key] = data.draw(_metadata_value(key))
        if data.draw(st.booleans()):
            shape = data.draw(st.sampled_from([(), (0,), (3,), (2, 2)]))
            tensors["history.batch_cost"] = np.ones(shape, dtype=data.draw(st.sampled_from([np.float32, np.int32])))
        meta["sha256"] = _digest(tensors)
        path.write_bytes(save(tensors, metadata=meta))
        try:
            m = load_model(path)
        except ModelFileError as e:
            assert "not a valid digitnet model" in str(e) or "network config" in str(e) or "altered" in str(e)
            return
        # what the readers do with a loaded model works
        m.net.feedforward(np.zeros((1, m.net.config.layers[0]), dtype=np.float32))
        json.dumps(m.history.to_dict() if m.history else None)
        if m.history:
            [(r.epoch, r.cost, r.test_accuracy) for r in m.history.epochs]
            list(map(float, m.history.batch_costs))
        m.train_config and m.train_config.to_dict()
        "".join(m.classes)
        int(m.epoch)

    run()


def test_model_with_nan_weights_is_loaded_but_reported_as_such(tmp_path):
    """NaN/inf weights are a valid file but an unusable model: loading says so."""
    from digitnet.io.model_io import load_model, save_model
    from digitnet.nn.network import Network

    net = Network.create((784, 3, 2), seed=0)
    net.params[0]["w"][0, 0] = np.nan
    save_model(tmp_path / "nan.safetensors", net)
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        load_model(tmp_path / "nan.safetensors")


# --- images --------------------------------------------------------------------------


def _png(arr, fmt="PNG"):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


_DIGIT = np.zeros((40, 30), np.uint8)
_DIGIT[5:35, 12:18] = 255
_IMAGE_SAMPLES = [_png(_DIGIT), _png(255 - _DIGIT), _png(_DIGIT, "JPEG"), _png(np.stack([_DIGIT] * 3, -1))]


@FUZZ
@given(st.data())
def test_image_reader(data):
    from digitnet.data.images import prepare

    COUNTS["image"] += 1
    b = mutate(data, data.draw(st.sampled_from(_IMAGE_SAMPLES)))
    try:
        x = prepare(b)
    except ImageError:
        return
    assert x.shape == (784,) and x.dtype == np.float32
    assert np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1


@settings(max_examples=max(N // 4, 50), deadline=None, database=None)
@given(st.lists(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1000, 1000)),
                         min_size=1, max_size=12), min_size=1, max_size=12))
def test_image_arrays_with_nan_inf_and_odd_values(rows):
    from digitnet.data.images import prepare

    COUNTS["image-array"] += 1
    width = min(len(r) for r in rows)
    arr = np.array([r[:width] for r in rows], dtype=np.float64)
    try:
        x = prepare(arr)
    except ImageError:
        return
    assert np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1


# --- formulas (the descent playground; the web page sends them too) -------------------

_FORMULAS = ["3/2x^2 + ½y", "x**4 - 3*x**2 + y**2", "sin(x)*cos(y) + exp(-x^2)", "max(abs(x), y) / (1 + y^2)",
             "log(1 + x^2) - sqrt(y^2 + 1)", "tanh(3x) + 2pi y"]
_FORMULA_ALPHABET = "xy0123456789.+-*/^()½ ,eπpisnctaqrlgmd_[]{}'\"=<>!@#$%&|;:~`\\"


@FUZZ
@given(st.data())
def test_formula_reader(data):
    import time

    from digitnet.errors import ExpressionError
    from digitnet.playground import parse

    COUNTS["formula"] += 1
    if data.draw(st.booleans()):
        text = mutate(data, data.draw(st.sampled_from(_FORMULAS)).encode()).decode("utf-8", "replace")
    else:
        text = data.draw(st.text(alphabet=_FORMULA_ALPHABET, max_size=60))
    t = time.perf_counter()
    try:
        e = parse(text)
    except ExpressionError as err:
        assert err.position is None or 0 <= err.position <= len(text)
        assert time.perf_counter() - t < 1.0
        return
    assert time.perf_counter() - t < 1.0
    points = np.array([[0.3, -0.7], [1.5, 2.0], [-2.0, 0.1]])[:, : e.dim]
    with np.errstate(all="ignore"):
        v, g = e.value_and_gradient(points)
        v2 = parse(str(e)).value(points)  # the echoed form means the same function
    assert v.shape == (3,) and g.shape == (3, e.dim)
    np.testing.assert_allclose(v, v2, rtol=1e-9, equal_nan=True)


# --- JSON bodies of the web API --------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=20,
)
_WEB_FIELDS = {
    "/api/predict": ["width", "height", "pixels", "test_index"],
    "/api/train/config": ["preset", "hidden", "activation", "output_activation", "cost", "init", "optimizer", "eta",
                          "lmbda", "momentum", "batch_size", "epochs", "seed", "train_size"],
    "/api/descent": ["formula", "start", "eta", "steps", "momentum", "view"],
    "/api/models/load": ["name"],
    "/api/drawings": ["label", "width", "height", "pixels"],
}


@pytest.fixture(scope="module")
def web_client(tmp_path_factory):
    import warnings

    from starlette.testclient import TestClient

    from digitnet.web import create_app

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    app = create_app(tmp_path_factory.mktemp("web"))
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=True) as c:
        yield c


def test_web_json_bodies(web_client):
    import json

    @FUZZ
    @given(st.data())
    def run(data):
        COUNTS["web-json"] += 1
        path = data.draw(st.sampled_from(sorted(_WEB_FIELDS)))
        fields = _WEB_FIELDS[path]
        obj = data.draw(st.dictionaries(st.sampled_from(fields + ["evil", "__proto__"]), _JSON_VALUES, max_size=5))
        if path == "/api/predict" and data.draw(st.booleans()):  # often a drawing of plausible shape
            side = data.draw(st.integers(1, 40))
            obj = {"width": side, "height": side,
                   "pixels": data.draw(st.lists(st.one_of(st.integers(-300, 300), st.floats()), min_size=side * side,
                                                max_size=side * side))}
        body = json.dumps(obj, allow_nan=True).encode()
        if data.draw(st.booleans()):
            body = mutate(data, body)
        r = web_client.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code < 500, (path, body[:200], r.text[:200])
        if r.status_code >= 400:
            assert r.json()["error"]  # a clear message, as JSON

    run()
