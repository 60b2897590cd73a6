import json

import numpy as np

from digitnet.jsonable import jsonable


def test_numpy_and_non_finite_values_become_json():
    obj = {"a": np.arange(3, dtype=np.int64), "b": np.float32(0.5), "c": [float("nan"), np.inf, (1, 2)],
           "d": np.array([[np.nan, 1.0]])}
    out = jsonable(obj)
    assert out == {"a": [0, 1, 2], "b": 0.5, "c": [None, None, [1, 2]], "d": [[None, 1.0]]}
    json.dumps(out, allow_nan=False)  # strict JSON
