"""Named starting points for training: a network config and a training config each.

``video`` is the network of the video: 784-16-16-10 sigmoid neurons, quadratic cost,
mini-batch SGD with batch size 10 and learning rate 3.0 for 30 epochs.
"""

from __future__ import annotations

from digitnet.config import NetworkConfig, TrainConfig
from digitnet.errors import ConfigError

PRESETS: dict[str, tuple[str, NetworkConfig, TrainConfig]] = {
    "video": (
        "the video's network: 784-16-16-10 sigmoid, quadratic cost, SGD, batch 10, eta 3.0, 30 epochs",
        NetworkConfig(),
        TrainConfig(),
    ),
}


def get_preset(name: str) -> tuple[NetworkConfig, TrainConfig]:
    """The (network, training) configs of preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    _, net, train = PRESETS[name]
    return net, train
