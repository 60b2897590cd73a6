"""What the web app sends back: library results turned into JSON-ready dicts.

Arrays go out as base64 float32 (a ``Float32Array`` in the page) or as rounded lists;
nothing here speaks HTTP or reads a request (that is :mod:`digitnet.web.requests`).
"""

from __future__ import annotations

import base64
import math

import numpy as np



DESCENT_GRID = 96  # the contour map is computed on a 96x96 grid
SHOWN_FIRST_LAYER = 64  # first-layer neurons whose weight images are sent
MAX_EDGE_WEIGHTS = 65_536  # deeper layers with more weights than this are drawn without edges
PATH_POINTS = 2_000  # the descent path sent to the page is thinned to this many points


def b64_floats(a: np.ndarray) -> str:
    """An array as base64 of its little-endian float32 bytes (a Float32Array in the page)."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def b64_bytes(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def rounded(a: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(a).ravel()]


def landscape_point(result: dict, images: np.ndarray) -> dict:
    """A point of the landscape with its test digits' pictures (28x28 grey bytes, base64)."""
    return {**result, "predictions": [{**m, "pixels": b64_bytes(images[m["index"]])} for m in result["predictions"]]}


def prediction(net, acts: list[np.ndarray], x: np.ndarray, classes, test_index, true_label, version) -> dict:
    """Every layer's activations for one input, as the page draws them."""
    out = acts[-1]
    k = int(out.argmax())
    return {
        "digit": k,
        "label": classes[k] if k < len(classes) else str(k),
        "outputs": rounded(out),
        # the fully connected layers' activations: the columns of neurons on the page
        "activations": [rounded(a) for a in acts[len(acts) - len(net.config.layers) + 1:]],
        "input": rounded(x, 3),  # the prepared 28x28, as `digitnet predict` makes it
        "seen": rounded(acts[0], 3),  # what the first layer sees (deskewed if the network does that)
        "test_index": test_index,
        "true_label": true_label,
        "weights_version": version,
    }


def network_picture(net, version: int) -> dict:
    """The dense layers' weights and biases, as the page draws the network."""
    dense = [p for p, kind in zip(net.params, net.kinds) if kind == "dense"]
    weights, biases = [p["w"] for p in dense], [p["b"] for p in dense]
    w0 = weights[0]
    shown = min(len(w0), SHOWN_FIRST_LAYER)
    # Row j of the first layer's w is neuron j's weights on the pixels: a picture when
    # the pixels feed it directly (no convolutional features in between).
    square = int(math.isqrt(w0.shape[1])) if not net.config.features else 0
    return {
        "weights_version": version,
        "layers": list(net.config.layers),
        "activation": net.config.activation,
        "output_activation": net.config.output_activation,
        "first": {
            "neurons": int(len(w0)), "shown": shown,
            "side": square if square and square * square == w0.shape[1] else None,
            "weights": b64_floats(w0[:shown]), "biases": rounded(biases[0][:shown]),
        },
        "deeper": [
            {"shape": list(w.shape), "weights": b64_floats(w) if w.size <= MAX_EDGE_WEIGHTS else None,
             "biases": rounded(b)}
            for w, b in zip(weights[1:], biases[1:])
        ],
    }


def contour_grid(expr, view, n: int = DESCENT_GRID) -> np.ndarray:
    """C on an n x n grid over ``view`` = [xmin, xmax, ymin, ymax] (n points for one variable)."""
    xs = np.linspace(view[0], view[1], n)
    if expr.dim == 2:
        ys = np.linspace(view[2], view[3], n)
        return expr.value(np.stack(np.meshgrid(xs, ys), axis=-1))  # (n, n): row = y, column = x
    return expr.value(xs[:, None])  # (n,)


def descent(pg, expr, run, view) -> dict:
    """A playground run: its (thinned) path, why it stopped, and the map to draw it on."""
    path, values = run.path, run.values
    if len(path) > PATH_POINTS:  # thin a long path evenly, keeping the last point
        keep = np.unique(np.r_[np.linspace(0, len(path) - 1, PATH_POINTS).astype(int), len(path) - 1])
        path, values = path[keep], values[keep]
    finite = path[np.isfinite(path).all(axis=1)]
    if view is None:
        reach = max(2.0, 1.2 * float(np.abs(finite).max()) if len(finite) else 2.0)
        reach = min(reach, 1e6)
        view = [-reach, reach, -reach, reach]
    grid = contour_grid(expr, view)
    suggestion = None
    if run.stop_reason == "unbounded":
        fixed = pg.square_linear_terms(expr)
        suggestion = str(fixed) if fixed is not None else None
    return {
        "expression": str(expr),
        "variables": list(expr.variables),
        "path": path.tolist(),
        "path_values": values.tolist(),
        "steps": run.steps,
        "final": run.final.tolist(),
        "value": run.value,
        "stop_reason": run.stop_reason,
        "explanation": pg.explain_stop(run),
        "gradient": pg.describe_gradient(run.gradient_at_start, run.variables),
        "suggestion": suggestion,
        "view": view,
        "grid": {"n": DESCENT_GRID,
                 "values": [None if not math.isfinite(v) else round(float(v), 6) for v in grid.ravel()]},
    }


def descent_answer(formula: str, start, eta: float, steps: int, momentum: float, view) -> dict:
    """Run the playground for a checked request and shape the answer (runs in a worker process)."""
    import digitnet.playground as pg

    expr = pg.parse(formula)
    run = pg.descend(expr, start, eta=eta, steps=steps, momentum=momentum)
    return descent(pg, expr, run, view)
