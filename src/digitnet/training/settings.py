"""The one config language: a flat dict of settings becomes a validated network and training config.

A *setting* is a field of :class:`~digitnet.config.NetworkConfig` or
:class:`~digitnet.config.TrainConfig` (``layers``, ``eta``, ``schedule``, ...), named the same
everywhere: here, in a config file, in the model file, and (as ``--eta``, ``--batch-size``) on
the command line. Settings start from a preset (``preset``: ``video`` unless the dict or the
caller names another, exactly as ``digitnet train`` does), and every key given overrides it::

    net_cfg, train_cfg = settings_from_dict({"preset": "video", "epochs": 5, "layers": "784,30,10"})

The command line, config files (``digitnet train --config FILE.toml``) and sweeps all go
through :func:`settings_from_dict`; a saved model's settings are written back as a config
file by :func:`settings_to_toml`. Unknown keys are refused, naming the nearest valid one.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Mapping

from digitnet.config import NetworkConfig, TrainConfig, unknown_key_hint
from digitnet.errors import ConfigError
from digitnet.training.presets import DEFAULT_PRESET, PRESETS, get_preset

NETWORK_SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(NetworkConfig))
TRAIN_SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
SETTINGS: tuple[str, ...] = NETWORK_SETTINGS + TRAIN_SETTINGS


def setting_fields() -> list[tuple[str, dataclasses.Field]]:
    """Every setting as ``(config name, field)``: ``("network", layers)``, ..., ``("train", eta)``, ...

    The fields carry their help text (``field.metadata["help"]``) and, for names, their
    choices; ``digitnet train`` makes one flag of each.
    """
    return [("network", f) for f in dataclasses.fields(NetworkConfig)] + [
        ("train", f) for f in dataclasses.fields(TrainConfig)
    ]


def settings_from_dict(settings: Mapping[str, Any], *, preset: str | None = None) -> tuple[NetworkConfig, TrainConfig]:
    """Validated ``(NetworkConfig, TrainConfig)`` from flat ``settings``.

    The starting point is ``settings["preset"]``, else ``preset``, else :data:`DEFAULT_PRESET`
    (``"video"``, what ``digitnet train`` trains); every other key is a setting that replaces the
    preset's value. Raises :class:`ConfigError` naming an unknown key and the nearest valid one,
    or the setting whose value is wrong (``err.setting``).
    """
    d = dict(settings)
    name = d.pop("preset", None) or preset or DEFAULT_PRESET
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"Unknown {{preset}} {name!r}; choose one of: {', '.join(PRESETS)}.", setting="preset")
    unknown = [k for k in d if k not in SETTINGS]
    if unknown:
        raise ConfigError(
            f"Unknown setting{'s' if len(unknown) > 1 else ''}: "
            f"{'; '.join(unknown_key_hint(k, SETTINGS + ('preset',)) for k in unknown)}.",
            setting=tuple(map(str, unknown)),
        )
    net, train = get_preset(name)
    net = NetworkConfig.from_dict({**net.to_dict(), **{k: v for k, v in d.items() if k in NETWORK_SETTINGS}})
    train = TrainConfig.from_dict({**train.to_dict(), **{k: v for k, v in d.items() if k in TRAIN_SETTINGS}})
    return net, train


def settings_to_dict(net: NetworkConfig, train: TrainConfig) -> dict[str, Any]:
    """Every setting of both configs, flat: the inverse of :func:`settings_from_dict`."""
    return {**dataclasses.asdict(net), **dataclasses.asdict(train)}


MAX_CONFIG_BYTES = 1_000_000


def read_settings_file(path: str | os.PathLike) -> dict[str, Any]:
    """The flat settings of a TOML config file (not yet validated: see :func:`load_settings`)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path} is not a file (a folder, a FIFO or a device); give a TOML config file.")
    if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is {path.stat().st_size:,} bytes; a config file is a few lines "
                          f"(at most {MAX_CONFIG_BYTES:,} bytes).")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"No config file at {path}. Check the name, or write one: "
                          "`digitnet config MODEL --out FILE.toml` writes a model's settings.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Cannot read the config file {path}: {getattr(e, 'strerror', None) or e}.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not a valid TOML config file ({e}). Write one setting a line, "
                          "e.g. eta = 0.5") from None
    for key, value in data.items():
        if isinstance(value, dict):
            raise ConfigError(f"{path}: [{key}] is a table, but a config file has flat keys only "
                              "(e.g. eta = 0.5, layers = [784, 30, 10]); remove the [section] line.")
    return data


def load_settings(path: str | os.PathLike, *, preset: str | None = None) -> tuple[NetworkConfig, TrainConfig]:
    """The validated configs of a TOML config file; an error names the file and the key."""
    data = read_settings_file(path)
    try:
        return settings_from_dict(data, preset=preset)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def settings_to_toml(net: NetworkConfig, train: TrainConfig, *, header: str = "") -> str:
    """A config file with every setting of ``net`` and ``train``, each with its help as a comment.

    Reading it back (:func:`load_settings`) gives the same configs. A setting without a value
    (``train_size`` None) is written as a comment.
    """
    header = "".join(c if c.isprintable() or c == "\n" else "?" for c in header)  # TOML comments allow no control codes
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    values = settings_to_dict(net, train)
    for group, f in setting_fields():
        if len(lines) and group == "train" and f.name == TRAIN_SETTINGS[0]:
            lines.append("")
        v = values[f.name]
        lines.append(f"# {f.metadata.get('help', '')}")
        lines.append(f"# {f.name} =" if v is None else f"{f.name} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"
