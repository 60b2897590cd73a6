"""Named starting points for training: a network config and a training config each.

``video`` is the network of the video: 784-16-16-10 sigmoid neurons, quadratic cost,
mini-batch SGD with batch size 10 and learning rate 3.0 for 30 epochs. Two changes that
leave the network itself alone take it from ~94.5% to ~96.4% (``benchmarks/accuracy.py
--ablation``): the learning rate falls linearly from 3.0 to 0 over the epochs, and each
digit's slant is straightened (deskewed) before it reaches the first layer.

``mlp`` and ``cnn`` are the video's "couple of tweaks" taken further (see
``benchmarks/tweaks.py`` for what each tweak buys): ReLU hidden layers with He
initialisation, a softmax output with the cross-entropy cost, momentum or Adam, a cosine
learning-rate schedule, dropout, and training images shifted and turned a little at random;
``cnn`` puts two convolution + max-pooling layers in front of the dense ones.

``video-best`` keeps the video's network (784-16-16-10, 13,002 weights and biases) and takes the
training choices that did best on the validation images (the last 10,000 training images held
out; never the test set) among those tried in ``benchmarks/video_best.toml``.
"""

from __future__ import annotations

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.errors import ConfigError

PRESETS: dict[str, tuple[str, NetworkConfig, TrainConfig]] = {
    "video": (
        "the video's network: 784-16-16-10 sigmoid, quadratic cost, SGD, batch 10, eta 3.0 falling linearly "
        "to 0, 30 epochs, digits deskewed (--schedule constant --preprocess none for the plain run)",
        NetworkConfig(preprocess="deskew"),
        TrainConfig(schedule="linear"),
    ),
    "mlp": (
        "the best plain multi-layer perceptron here: 784-512-512-10 ReLU, softmax + cross-entropy, He init, "
        "Nesterov momentum, cosine schedule, dropout 0.2, random 1.5-pixel shifts, 15 epochs (~99%)",
        NetworkConfig(layers=(784, 512, 512, 10), activation="relu", output_activation="softmax",
                      cost="cross-entropy", init="he"),
        TrainConfig(epochs=15, batch_size=128, eta=0.1, optimizer="nesterov", momentum=0.9, schedule="cosine",
                    dropout=0.2, augment=("shift",), max_shift=1.5, train_metrics="batches"),
    ),
    "cnn": (
        "a convolutional network: conv 32 5x5, pool 2, conv 32 5x5, pool 2, dense 128, softmax; Adam, "
        "cosine schedule, dropout 0.3, random shifts and turns, 10 epochs (~99.4%)",
        NetworkConfig(layers=(784, 128, 10), features=("conv:32:5", "pool:2", "conv:32:5", "pool:2"),
                      activation="relu", output_activation="softmax", cost="cross-entropy", init="he"),
        TrainConfig(epochs=10, batch_size=64, eta=0.001, optimizer="adam", schedule="cosine", dropout=0.3,
                    augment=("shift", "rotate"), max_shift=2.0, max_rotation=10.0, train_metrics="batches"),
    ),
    "video-best": (
        "the video's 784-16-16-10 network with the training choices that did best on the validation images "
        "(benchmarks/video_best.toml): ReLU, softmax + cross-entropy, He init, deskewed digits, SGD, batch 32, "
        "eta 0.2 falling linearly to 0, L2 weight decay 10, random 1-pixel shifts and 5-degree turns, 60 epochs "
        "(~97.8%, a few minutes: augmentation trains on the reference engine)",
        NetworkConfig(activation="relu", output_activation="softmax", cost="cross-entropy", init="he",
                      preprocess="deskew"),
        TrainConfig(epochs=60, batch_size=32, eta=0.2, schedule="linear", lmbda=10.0, augment=("shift", "rotate"),
                    max_shift=1.0, max_rotation=5.0, train_metrics="batches"),
    ),
}


# What `digitnet train` trains without --preset, and what digitnet.preset() gives.
DEFAULT_PRESET = "video"


def get_preset(name: str = DEFAULT_PRESET) -> tuple[NetworkConfig, TrainConfig]:
    """The (network, training) configs of preset ``name``: exactly what ``digitnet train
    --preset NAME`` trains (``video``, the default, is what plain ``digitnet train`` trains).

    ``NetworkConfig()`` and ``TrainConfig()`` are the *plain* run of the video (no deskewing,
    a constant learning rate); the ``video`` preset adds those two changes.
    """
    if name not in PRESETS:
        raise ConfigError(f"Unknown {{preset}} {name!r}; choose one of: {', '.join(PRESETS)}.", setting="preset")
    _, net, train = PRESETS[name]
    return net, train


preset = get_preset
