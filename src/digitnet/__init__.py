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

Plotting, the web app and the CLI are imported only when used, so ``import digitnet``
stays fast.
"""

from __future__ import annotations

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Dataset, Split, load_dataset, load_mnist
from digitnet.training.engines import ENGINES
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
from digitnet.data.images import prepare as prepare_image
from digitnet.io.model_io import SavedModel, load_model, save_model
from digitnet.nn.metrics import accuracy, confusion_matrix
from digitnet.nn.network import Forward, Gradient, Network, backprop
from digitnet.tasks.evaluate import Evaluation, evaluate
from digitnet.training.history import EpochRecord, History
from digitnet.training.optim import SGD, Adam, Momentum
from digitnet.training.presets import PRESETS, preset
from digitnet.training.settings import load_settings, settings_from_dict, settings_to_toml
from digitnet.training.train import Trainer, not_learning, train

from digitnet._version import __version__  # noqa: F401 (digitnet.__version__)

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
