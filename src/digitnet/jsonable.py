"""Numbers as JSON: the one conversion the CLI's ``--json`` and the web API share."""

from __future__ import annotations

import math

import numpy as np


def jsonable(value):
    """``value`` with NumPy arrays and scalars as plain lists and numbers, and NaN or
    infinity (which JSON cannot hold) as ``None``; dicts, lists and tuples are converted
    element by element."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
