"""Memory of a training run: the inputs held once, in the form the engine reads. With the
compiled engine that is the compressed rows, so neither the Trainer nor `digitnet train`
(run_training) keeps the uint8 images once the rows are made: 47 MB of MNIST's 60,000."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data import datasets
from digitnet.data.datasets import Split, load_dataset, load_mnist
from digitnet.nn.network import Network
from digitnet.training.train import Trainer


def test_a_data_set_loaded_without_the_cache_is_a_copy_the_cache_does_not_keep():
    cached = load_dataset("mnist")
    own = load_dataset("mnist", cache=False)
    assert own is not cached and own.train.images is not cached.train.images
    assert np.array_equal(own.train.images, cached.train.images) and np.array_equal(own.test.labels, cached.test.labels)
    assert not own.train.images.flags.writeable  # read-only, as the cached arrays
    assert load_dataset("mnist") is cached and load_mnist() is cached
    gone = weakref.ref(own.train.images.base if own.train.images.base is not None else own.train.images)
    del own
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("preprocess", ["deskew", "none"])
def test_the_compiled_engine_does_not_keep_the_images_beside_its_compressed_rows(preprocess):
    pytest.importorskip("numba")
    mnist = load_mnist()
    images = np.array(mnist.train.images[:1500])
    gone = weakref.ref(images)
    train = Split(images, mnist.train.labels[:1500])
    trainer = Trainer(Network.create(NetworkConfig(layers=(784, 16, 10), preprocess=preprocess), seed=1), train,
                      TrainConfig(epochs=1, engine="numba"))
    x = trainer.x
    del train, images
    gc.collect()
    assert gone() is None
    assert trainer.x.tobytes() == x.tobytes()  # the inputs, from the rows alone
    trainer.run_epoch()


def test_the_numpy_engine_and_raw_pixels_still_train_from_what_they_hold():
    """The engines that read the images (the compiled one on raw pixels, dense first layer)
    or a dense float array keep what they read."""
    pytest.importorskip("numba")
    x = np.zeros((300, 30, 30), np.uint8)
    x[:, 3:25, 2:20] = 200  # 44% of the pixels not 0: a dense first layer
    train = Split(x, np.arange(300) % 10)
    trainer = Trainer(Network.create((900, 8, 10), seed=0), train, TrainConfig(epochs=1, engine="numba"))
    assert trainer._x is None and trainer._images is not None  # raw pixels: the images are the inputs
    assert trainer.inputs(0, 5).tobytes() == train.x[:5].tobytes()
    trainer.run_epoch()
    numpy = Trainer(Network.create((900, 8, 10), seed=0), train, TrainConfig(epochs=1, engine="numpy"))
    assert numpy._images is None and isinstance(numpy._x, np.ndarray)


def test_digitnet_train_lets_the_images_go_once_the_trainer_holds_the_inputs(tmp_path, monkeypatch):
    """run_training loads MNIST as a copy of its own (not the cache's) and keeps only the
    name, classes and input description of it once the Trainer is made: the images are freed
    before the first epoch."""
    pytest.importorskip("numba")
    from digitnet.tasks import run

    loaded = []

    def load(name, data_dir=None, *, cache=True):
        data = datasets.load_dataset(name, data_dir, cache=cache)
        loaded.append((cache, weakref.ref(data.train.images.base if data.train.images.base is not None
                                          else data.train.images)))
        return data

    monkeypatch.setattr(run, "load_dataset", load)
    seen = []

    def on_start(start):
        gc.collect()
        seen.append(loaded[0][1]() is None)

    result = run.run_training(NetworkConfig(), TrainConfig(epochs=1, train_size=2000, engine="numba"),
                              tmp_path / "m.safetensors", on_start=on_start)
    assert [cache for cache, _ in loaded] == [False] and seen == [True]
    assert result.model_path.is_file() and result.history.epochs[0].test_accuracy > 0.2  # learning (chance: 0.1)
