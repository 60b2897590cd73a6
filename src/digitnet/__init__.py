"""digitnet: the neural network of 3Blue1Brown's "Gradient descent, how neural networks
learn", written from scratch in NumPy.

Every step of the video, by hand::

    import digitnet as dn

    mnist = dn.load_mnist()                          # 60,000 + 10,000 digits as arrays
    net = dn.Network.create((784, 16, 16, 10), seed=0)   # the plain network of the video
    fw = net.forward(mnist.train.x[:10])             # every layer's z and a
    net.cost(mnist.train.x[:10], mnist.train.y[:10]) # the average quadratic cost
    g = net.gradient(mnist.train.x[:10], mnist.train.y[:10])  # backpropagation
    history = dn.train(net, mnist.train, dn.TrainConfig(epochs=1), test=mnist.test)
    dn.save_model("net.safetensors", net, history)

``NetworkConfig()`` and ``TrainConfig()`` are the video's *plain* run (94.5%).
``digitnet train`` trains the ``video`` preset (deskewed digits, a falling learning rate:
96.2%); ``dn.preset("video")`` gives exactly its configs, and ``dn.settings_from_dict``
reads settings the way the command line and config files do::

    net_cfg, train_cfg = dn.preset("video")          # = what `digitnet train` trains
    net = dn.Network.create(net_cfg, seed=train_cfg.seed)
    history = dn.train(net, mnist.train, train_cfg, test=mnist.test)

Plotting, the web app and the CLI are imported only when used, and the names below only
when first looked up, so ``import digitnet`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from digitnet.errors import (
    ConfigError,
    DataError,
    DigitnetError,
    DivergenceError,
    ExpressionError,
    ImageError,
    ModelFileError,
    NotLearning,
)

from digitnet._version import __version__  # noqa: F401 (digitnet.__version__)

# The other public names, imported from their module the first time they are used
# (``dn.train``, ``from digitnet import Network``), so that ``digitnet predict``, which
# imports a few submodules, does not import the training loop, the data sets and the
# engines with the package (about 100 ms): name -> (module, its name there).
_LAZY = {
    "NetworkConfig": ("digitnet.config", "NetworkConfig"),
    "TrainConfig": ("digitnet.config", "TrainConfig"),
    "Dataset": ("digitnet.data.datasets", "Dataset"),
    "Split": ("digitnet.data.datasets", "Split"),
    "load_dataset": ("digitnet.data.datasets", "load_dataset"),
    "load_mnist": ("digitnet.data.datasets", "load_mnist"),
    "ENGINES": ("digitnet.training.engines", "ENGINES"),
    "prepare_image": ("digitnet.data.images", "prepare"),
    "SavedModel": ("digitnet.io.model_io", "SavedModel"),
    "load_model": ("digitnet.io.model_io", "load_model"),
    "save_model": ("digitnet.io.model_io", "save_model"),
    "accuracy": ("digitnet.nn.metrics", "accuracy"),
    "confusion_matrix": ("digitnet.nn.metrics", "confusion_matrix"),
    "Forward": ("digitnet.nn.network", "Forward"),
    "Gradient": ("digitnet.nn.network", "Gradient"),
    "Network": ("digitnet.nn.network", "Network"),
    "backprop": ("digitnet.nn.network", "backprop"),
    "Evaluation": ("digitnet.tasks.evaluate", "Evaluation"),
    "evaluate": ("digitnet.tasks.evaluate", "evaluate"),
    "EpochRecord": ("digitnet.training.history", "EpochRecord"),
    "History": ("digitnet.training.history", "History"),
    "SGD": ("digitnet.training.optim", "SGD"),
    "Adam": ("digitnet.training.optim", "Adam"),
    "Momentum": ("digitnet.training.optim", "Momentum"),
    "PRESETS": ("digitnet.training.presets", "PRESETS"),
    "preset": ("digitnet.training.presets", "preset"),
    "load_settings": ("digitnet.training.settings", "load_settings"),
    "settings_from_dict": ("digitnet.training.settings", "settings_from_dict"),
    "settings_to_toml": ("digitnet.training.settings", "settings_to_toml"),
    "Trainer": ("digitnet.training.train", "Trainer"),
    "not_learning": ("digitnet.training.train", "not_learning"),
    "train": ("digitnet.training.train", "train"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'digitnet' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if TYPE_CHECKING:  # for type checkers and editors: the names above, as if imported here
    from digitnet.config import NetworkConfig, TrainConfig  # noqa: F401
    from digitnet.data.datasets import Dataset, Split, load_dataset, load_mnist  # noqa: F401
    from digitnet.data.images import prepare as prepare_image  # noqa: F401
    from digitnet.io.model_io import SavedModel, load_model, save_model  # noqa: F401
    from digitnet.nn.metrics import accuracy, confusion_matrix  # noqa: F401
    from digitnet.nn.network import Forward, Gradient, Network, backprop  # noqa: F401
    from digitnet.tasks.evaluate import Evaluation, evaluate  # noqa: F401
    from digitnet.training.engines import ENGINES  # noqa: F401
    from digitnet.training.history import EpochRecord, History  # noqa: F401
    from digitnet.training.optim import SGD, Adam, Momentum  # noqa: F401
    from digitnet.training.presets import PRESETS, preset  # noqa: F401
    from digitnet.training.settings import load_settings, settings_from_dict, settings_to_toml  # noqa: F401
    from digitnet.training.train import Trainer, not_learning, train  # noqa: F401

__all__ = [
    "Adam",
    "ConfigError",
    "DataError",
    "Dataset",
    "DigitnetError",
    "DivergenceError",
    "ENGINES",
    "EpochRecord",
    "Evaluation",
    "ExpressionError",
    "Forward",
    "Gradient",
    "History",
    "ImageError",
    "ModelFileError",
    "Momentum",
    "Network",
    "NotLearning",
    "NetworkConfig",
    "PRESETS",
    "SGD",
    "SavedModel",
    "Split",
    "TrainConfig",
    "Trainer",
    "accuracy",
    "backprop",
    "confusion_matrix",
    "evaluate",
    "load_dataset",
    "load_mnist",
    "load_model",
    "load_settings",
    "not_learning",
    "prepare_image",
    "preset",
    "save_model",
    "settings_from_dict",
    "settings_to_toml",
    "train",
]
