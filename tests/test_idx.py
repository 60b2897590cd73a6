import gzip
import struct

import numpy as np
import pytest

from digitnet.data.idx import encode_idx, gunzip, parse_idx, write_idx
from digitnet.errors import DataError


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5), (2, 1, 2, 3)])
def test_round_trip(dtype, shape, rng):
    a = (rng.standard_normal(shape) * 50).astype(dtype)
    b = parse_idx(encode_idx(a))
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_header_layout_is_mnist_s():
    data = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">III", data[4:16]) == (2, 28, 28)
    assert len(data) == 16 + 2 * 784


def test_write_idx_gz(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "a.gz", a)
    np.testing.assert_array_equal(parse_idx(gunzip((tmp_path / "a.gz").read_bytes(), "a")), a)


def _valid():
    return encode_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x03" + _valid()[4:], "wrong magic"),
        (b"\x00\x00\x07\x03" + _valid()[4:], "wrong magic"),  # unknown type byte
        (b"\x00\x00\x08\x00", "wrong magic"),  # zero dimensions
        (b"\x00\x00\x08\x09" + b"\x00" * 40, "wrong magic"),  # too many dimensions
        (_valid()[:10], "header is cut short"),
        (_valid()[:-1], "truncated"),
        (_valid() + b"\x00", "unexpected bytes"),
        (b"\x00\x00\x08\x03" + struct.pack(">III", 1_000_000_000_000 % 2**32, 60000, 60000) + b"\x00" * 10, "more than digitnet accepts"),
    ],
)
def test_malformed(data, match):
    with pytest.raises(DataError, match=match):
        parse_idx(data, "x.idx")


def test_huge_declared_size_rejected_without_allocating():
    # 4 x 2^32-1 dims declare ~3e38 values; must be refused from the header alone.
    data = b"\x00\x00\x08\x04" + struct.pack(">IIII", *(2**32 - 1,) * 4)
    with pytest.raises(DataError, match="more than digitnet accepts"):
        parse_idx(data)


def test_error_names_the_file():
    with pytest.raises(DataError, match="my-file.idx"):
        parse_idx(b"garbage!", "my-file.idx")


def test_gunzip_errors():
    with pytest.raises(DataError, match="not a valid gzip"):
        gunzip(b"not gzip at all", "f.gz")
    with pytest.raises(DataError, match="truncated"):
        gunzip(gzip.compress(b"x" * 1000)[:-12], "f.gz")
    with pytest.raises(DataError, match="decompresses to more than"):
        gunzip(gzip.compress(b"\x00" * 10_000), "bomb.gz", limit=1000)


# --- files whose size does not match their header (issue 15) -------------------------------
def test_a_huge_sparse_file_is_refused_from_its_size_without_being_read(tmp_path, monkeypatch):
    from digitnet.data.idx import read_idx_bytes

    path = tmp_path / "train-images-idx3-ubyte"
    header = encode_idx(np.zeros((10, 28, 28), np.uint8))[:16]
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(30 * 1024**3)  # 30 GB, sparse: costs no disk
    reads = []
    real_open = open

    def spy_open(*args, **kwargs):
        f = real_open(*args, **kwargs)
        real_read = f.read
        f.read = lambda n=-1: reads.append(n) or real_read(n)  # noqa: E731
        return f

    monkeypatch.setattr("builtins.open", spy_open)
    with pytest.raises(DataError, match="too long: the file is 32,212,254,720 bytes but its header declares 7,856"):
        read_idx_bytes(path)
    assert reads and all(0 <= n <= 1 << 20 for n in reads)  # never the whole file


def test_a_gzip_bomb_stops_at_the_size_its_header_declares(tmp_path):
    import tracemalloc

    from digitnet.data.idx import read_idx_bytes

    header = encode_idx(np.zeros((10, 28, 28), np.uint8))[:16]  # declares 7,840 bytes of pixels
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        for _ in range(200):
            f.write(bytes(1 << 20))  # then 200 MB of zeros: a 200 KB file
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    with pytest.raises(DataError, match="decompresses to more than the 7,856 bytes its header declares"):
        read_idx_bytes(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 1024**2  # not 200 MB


def test_read_idx_bytes_round_trips_plain_and_gzip_files(tmp_path):
    from digitnet.data.idx import read_idx_bytes

    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, a)
        np.testing.assert_array_equal(parse_idx(read_idx_bytes(tmp_path / name)), a)
    (tmp_path / "short.idx").write_bytes(encode_idx(a)[:-1])
    with pytest.raises(DataError, match="truncated: the file is 39 bytes but its header declares 40"):
        read_idx_bytes(tmp_path / "short.idx")
    (tmp_path / "cut.idx.gz").write_bytes(gzip.compress(encode_idx(a))[:-12])
    with pytest.raises(DataError, match="truncated"):
        read_idx_bytes(tmp_path / "cut.idx.gz")
