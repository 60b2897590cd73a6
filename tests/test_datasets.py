import gzip
import shutil
import time

import numpy as np
import pytest

from digitnet.data import datasets
from digitnet.data.datasets import MNIST_SHA256, load_idx_dataset, load_mnist
from digitnet.data.idx import write_idx
from digitnet.errors import DataError


def test_mnist_shapes_and_labels(mnist):
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.train.x.shape == (60000, 784) and mnist.train.x.dtype == np.float32
    assert 0.0 <= mnist.train.x.min() and mnist.train.x.max() == 1.0
    assert mnist.train.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the famous first ten
    assert mnist.test.y[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(mnist.test.y).tolist()[:3] == [980, 1135, 1032]


def test_validation_split_is_last_10000(mnist):
    tr, va = mnist.with_validation()
    assert len(tr) == 50000 and len(va) == 10000
    np.testing.assert_array_equal(va.images[0], mnist.train.images[50000])


def test_checksums_are_known():
    assert set(MNIST_SHA256) == set(datasets.FILES.values())


def test_load_is_fast():
    datasets._load_mnist_cached.cache_clear()
    t = time.perf_counter()
    load_mnist()
    # Generous bound for a shared CI machine; the benchmark measures the real figure.
    assert time.perf_counter() - t < 3.0


@pytest.fixture
def mnist_copy(tmp_path):
    src = datasets._shipped_dir()
    for stem in datasets.FILES.values():
        shutil.copy(src / f"{stem}.gz", tmp_path / f"{stem}.gz")
    return tmp_path


def test_data_dir_and_env_var(mnist_copy, monkeypatch):
    assert len(load_mnist(mnist_copy).test) == 10000
    monkeypatch.setenv("DIGITNET_DATA", str(mnist_copy / "nope"))
    with pytest.raises(DataError, match="does not exist"):
        load_mnist()


def test_uncompressed_files_accepted(mnist_copy):
    stem = datasets.FILES["test_labels"]
    raw = gzip.decompress((mnist_copy / f"{stem}.gz").read_bytes())
    (mnist_copy / f"{stem}.gz").unlink()
    (mnist_copy / stem).write_bytes(raw)
    assert len(load_mnist(mnist_copy).test) == 10000


def test_missing_file(mnist_copy):
    (mnist_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="Missing data file.*t10k-labels"):
        load_mnist(mnist_copy)


def test_checksum_mismatch(mnist_copy):
    stem = datasets.FILES["test_labels"]
    raw = bytearray(gzip.decompress((mnist_copy / f"{stem}.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed: still a valid IDX file
    (mnist_copy / f"{stem}.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="checksum mismatch.*copy it again"):
        load_mnist(mnist_copy)


def test_truncated_gz(mnist_copy):
    f = mnist_copy / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(DataError, match="t10k-images.*truncated"):
        load_mnist(mnist_copy)


def test_synthetic_dataset_without_checksums(tmp_path, rng):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 20, dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (5, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    ds = load_idx_dataset(tmp_path)
    assert len(ds.train) == 20 and ds.test.y.tolist() == [0, 1, 2, 3, 4]


def test_count_mismatch_and_bad_labels(tmp_path, rng):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 19, dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (5, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    with pytest.raises(DataError, match="20 images but 19 labels"):
        load_idx_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(20, 12, dtype=np.uint8))
    with pytest.raises(DataError, match="labels must be 0..9"):
        load_idx_dataset(tmp_path)


def _small_set(directory, n=20):
    rng = np.random.default_rng(0)
    for stem, a in (("train-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)),
                    ("train-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8)),
                    ("t10k-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)),
                    ("t10k-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))):
        write_idx(directory / f"{stem}.gz", a)


def test_a_gzip_bomb_in_the_data_dir_costs_no_more_than_its_header_says(tmp_path):
    import tracemalloc

    _small_set(tmp_path)
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:  # a header for 20 images, then 100 MB
        f.write(b"\x00\x00\x08\x03" + (20).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        for _ in range(100):
            f.write(bytes(1 << 20))
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(DataError, match="decompresses to more than the 15,696 bytes its header declares"):
        load_idx_dataset(tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 1024**2 and time.perf_counter() - t < 2


def test_a_huge_sparse_data_file_is_refused_before_it_is_read(tmp_path):
    _small_set(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with open(tmp_path / "train-images-idx3-ubyte", "wb") as f:  # 30 GB, sparse: costs no disk
        f.write(b"\x00\x00\x08\x03" + (20).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        f.truncate(30 * 1024**3)
    t = time.perf_counter()
    with pytest.raises(DataError, match="too long: the file is 32,212,254,720 bytes but its header declares 15,696"):
        load_idx_dataset(tmp_path)
    assert time.perf_counter() - t < 2
