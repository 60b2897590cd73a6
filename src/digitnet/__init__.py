"""digitnet: the neural network of 3Blue1Brown's "Gradient descent, how neural networks
learn", written from scratch in NumPy.

Every step of the video, by hand::

    import digitnet as dn

    mnist = dn.load_mnist()                          # 60,000 + 10,000 digits as arrays
    net = dn.Network.create((784, 16, 16, 10), seed=0)
    fw = net.forward(mnist.train.x[:10])             # every layer's z and a
    net.cost(mnist.train.x[:10], mnist.train.y[:10]) # the average quadratic cost
    g = net.gradient(mnist.train.x[:10], mnist.train.y[:10])  # backpropagation
    history = dn.train(net, mnist.train, dn.TrainConfig(epochs=1), test=mnist.test)
    dn.save_model("net.safetensors", net, history)

Plotting, the web app and the CLI are imported only when used, so ``import digitnet``
stays fast.
"""

from __future__ import annotations

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.data.datasets import Dataset, Split, load_dataset, load_mnist
from digitnet.errors import (
    ConfigError,
    DataError,
    DigitnetError,
    DivergenceError,
    ExpressionError,
    ImageError,
    ModelFileError,
)
from digitnet.evaluate import Evaluation, evaluate
from digitnet.images import prepare as prepare_image
from digitnet.metrics import accuracy, confusion_matrix
from digitnet.model_io import SavedModel, load_model, save_model
from digitnet.nn.network import Forward, Gradient, Network, backprop
from digitnet.optim import SGD, Adam, Momentum
from digitnet.train import EpochRecord, History, Trainer, train

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "ConfigError",
    "DataError",
    "Dataset",
    "DigitnetError",
    "DivergenceError",
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
    "NetworkConfig",
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
    "prepare_image",
    "save_model",
    "train",
]
