"""What a web request may say: reading, parsing and validating request bodies.

Every request is checked here, before any route calls the library: bodies are capped
(:data:`MAX_BODY` bytes) and must arrive within :data:`BODY_SECONDS`, must be JSON objects
with known fields (or a PNG for ``/api/predict``), numbers must lie in the ranges of
:data:`LIMITS`, formulas go through the playground's safe parser and a work budget
(:data:`DESCENT_BUDGET`), and configs are built by the library's own config classes. A bad
request raises :class:`ApiError` (an HTTP status and one line for the person); nothing
here touches the network being trained.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass

import numpy as np

from digitnet.config import (
    ACTIVATION_NAMES,
    COST_NAMES,
    HIDDEN_ACTIVATION_NAMES,
    INIT_NAMES,
    OPTIMIZER_NAMES,
    NetworkConfig,
    TrainConfig,
)
from digitnet.errors import ConfigError
from digitnet.training.settings import settings_from_dict

MAX_BODY = 2 * 1024 * 1024  # bytes: a 1024x1024 drawing as JSON does not fit, a 512x512 one does
BODY_SECONDS = 5.0  # a request body must arrive within this time (a slow client is cut off)
HIDDEN_ACTIVATIONS = HIDDEN_ACTIVATION_NAMES  # the activations the library allows between layers
LIMITS = {
    "image_side": (28, 1024),  # width and height of a drawing, pixels
    "hidden_layers": (0, 4),  # number of hidden layers
    "hidden_size": (1, 512),  # neurons per hidden layer
    "eta": (1e-6, 100.0),
    "batch_size": (1, 1000),
    "epochs": (1, 200),
    "seed": (0, 2**32 - 1),
    "lmbda": (0.0, 1000.0),
    "momentum": (0.0, 0.999),
    "descent_steps": (1, 10_000),
    "descent_eta": (1e-9, 100.0),
    "descent_coord": (-1e6, 1e6),
    "events_seconds": (0.05, 3600.0),
    "landscape_grid": (5, 61),  # points per axis of the page's landscape (each one a pass over the images)
    "landscape_range": (1e-3, 1e3),  # half-width of the slice, in units of the directions
    "landscape_coord": (-1e4, 1e4),  # a clicked point's alpha and beta (the library's MAX_COORD)
}
LANDSCAPE_DIRECTIONS = ("auto", "trajectory", "random")
# A descent request costs about (formula size) x (steps): a 1000-character formula for
# 10,000 steps took 19 s of CPU. The budget keeps one request well under a second.
DESCENT_BUDGET = 500_000  # formula characters x steps
TRAIN_FIELDS = {"preset", "hidden", "activation", "output_activation", "cost", "init", "optimizer", "eta",
                "batch_size", "epochs", "seed", "train_size", "lmbda", "momentum"}


class ApiError(Exception):
    """A request the app refuses: an HTTP status and a message for the person."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.headers, self.extra = status, message, headers or {}, extra


def show(value, limit: int = 60) -> str:
    """``value`` as a person wrote it in JSON (true, null, 'text'), cut to ``limit`` characters:
    error messages never echo a whole body."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "a number too large" if not math.isnan(value) else "NaN, which is not a number"
    if isinstance(value, int) and abs(value) >= 10**limit:  # too long to print in full
        return "a number too large"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a structure too deep
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- bodies ------------------------------------------------------------------------------
async def read_body(request, limit: int = MAX_BODY, seconds: float | None = None, what: str | None = None) -> bytes:
    """The whole request body, or 413 past ``limit`` bytes, or 408 after ``seconds`` (default
    :data:`BODY_SECONDS`). ``what`` names a request that is a small JSON object (its 413 says
    so); without it the 413 asks for a smaller image."""
    seconds = BODY_SECONDS if seconds is None else seconds
    hint = ("Send a smaller image (28x28 to 512x512 pixels is plenty)." if what is None
            else f"{what[0].upper()}{what[1:]} is a small JSON object of a few fields.")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "The Content-Length header is not a number.")
        if int(length) > limit:
            raise ApiError(413, f"The request body is {int(length):,} bytes; the limit is {limit:,}. {hint}")
    chunks, total = [], 0

    async def receive():
        nonlocal total
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ApiError(413, f"The request body is over the limit of {limit:,} bytes. {hint}")
            chunks.append(chunk)

    from starlette.requests import ClientDisconnect

    try:
        await asyncio.wait_for(receive(), seconds)
    except ClientDisconnect:  # nobody is left to answer; the app just ends the request
        raise ApiError(400, "The client went away before sending the whole body.") from None
    except asyncio.TimeoutError:
        raise ApiError(408, f"The request body did not arrive within {seconds:g} s; send it at once.",
                       {"Connection": "close"}) from None
    return b"".join(chunks)


def content_type(request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_json(request) -> None:
    """A body must say it is JSON (a cross-site form cannot, without asking first)."""
    if content_type(request) != "application/json":
        raise ApiError(415, "Send the request body as JSON with the header Content-Type: application/json.")


async def json_body(request, limit: int, fields: set[str], required: set[str] = frozenset()) -> dict:
    require_json(request)
    return parse_object(await read_body(request, limit), fields, required)


def parse_object(raw: bytes, fields: set[str], required: set[str] = frozenset()) -> dict:
    try:
        obj = json.loads(raw or b"{}")
    except RecursionError:
        raise ApiError(400, "The request body is nested too deeply to be a digitnet request.") from None
    except (ValueError, UnicodeDecodeError) as e:
        if "integer string conversion" in str(e):  # Python's limit on the digits of an integer
            raise ApiError(400, "The request body holds a number with thousands of digits: it is too large.") from None
        raise ApiError(400, f"The request body is not valid JSON ({str(e)[:120]}).") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "The request body must be a JSON object, such as {\"name\": \"my-model\"}.")
    unknown = sorted(set(obj) - fields)
    if unknown:
        listed = ", ".join(unknown)
        listed = listed if len(listed) <= 200 else listed[:197] + "..."
        raise ApiError(400, f"Unknown field(s): {listed}. "
                            f"Known fields: {', '.join(sorted(fields))}.")
    missing = sorted(required - set(obj))
    if missing:
        raise ApiError(400, f"Missing field(s): {', '.join(missing)}.")
    return obj


# --- values ------------------------------------------------------------------------------
def number(obj: dict, name: str, lo: float, hi: float, default=None, *, integer: bool = False):
    v = obj.get(name, default)
    if v is None and default is None and name not in obj:
        return None
    kind = "a whole number" if integer else "a number"
    span = f"{int(lo)} to {int(hi)}" if integer else f"{lo:g} to {hi:g}"
    bad = ApiError(400, f"The '{name}' field must be {kind} from {span}; got {show(v)}.")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise bad
    try:
        f = float(v)  # an integer above 1e308 does not fit a float: out of range
    except OverflowError:
        raise bad from None
    if (integer and not f.is_integer()) or not (math.isfinite(f) and lo <= v <= hi):
        raise bad
    return int(v) if integer else f


def choice(obj: dict, name: str, choices, default=None):
    v = obj.get(name, default)
    if not isinstance(v, str) or v not in choices:
        raise ApiError(400, f"The '{name}' field must be one of {', '.join(map(str, choices))}; got {show(v)}.")
    return v


def query_int(request, name: str, lo: int, hi: int) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        v = int(text)
    except ValueError:
        raise ApiError(400, f"The '{name}' parameter must be a whole number from {lo} to {hi}; "
                            f"got {show(text)}.") from None
    if not lo <= v <= hi:
        raise ApiError(400, f"The '{name}' parameter must be a whole number from {lo} to {hi}; got {show(v)}.")
    return v


def query_seconds(request, name: str, default: float) -> float:
    text = request.query_params.get(name)
    lo, hi = LIMITS["events_seconds"]
    try:
        seconds = float(text) if text else default
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and lo <= seconds <= hi):
        raise ApiError(400, f"'{name}' must be a number from {lo:g} to {hi:g}; got {show(text)}.")
    return seconds


def grey_pixels(obj: dict) -> np.ndarray:
    """``{"width", "height", "pixels"}`` -> (height, width) float32 grey levels 0..255."""
    lo, hi = LIMITS["image_side"]
    w = number(obj, "width", lo, hi, integer=True)
    h = number(obj, "height", lo, hi, integer=True)
    if w is None or h is None:
        raise ApiError(400, f"Give the drawing's 'width' and 'height' ({lo} to {hi} pixels) with its 'pixels'.")
    pixels = obj.get("pixels")
    if not isinstance(pixels, list) or len(pixels) != w * h:
        got = f"{len(pixels)} values" if isinstance(pixels, list) else type(pixels).__name__
        raise ApiError(400, f"'pixels' must be a list of width x height = {w * h} grey levels, row by row; got {got}.")
    if not set(map(type, pixels)) <= {int, float}:  # not bool, str or nested lists
        raise ApiError(400, "Every pixel must be a number from 0 (black) to 255 (white).")
    try:
        grey = np.asarray(pixels, dtype=np.float64).reshape(h, w)  # float64 first: 1e300 must not overflow
    except OverflowError:  # an integer above 1e308
        raise ApiError(400, "Every pixel must be a number from 0 (black) to 255 (white).") from None
    if not np.isfinite(grey).all() or grey.min() < 0 or grey.max() > 255:
        raise ApiError(400, "Every pixel must be a number from 0 (black) to 255 (white).")
    return grey.astype(np.float32)


# --- requests ----------------------------------------------------------------------------
@dataclass
class PredictRequest:
    """What to predict: a PNG's bytes, a drawing's grey levels, or a test image's index."""

    png: bytes | None = None
    grey: np.ndarray | None = None
    test_index: int | None = None


def parse_predict(ctype: str, raw: bytes, n_test: int) -> PredictRequest:
    if ctype in ("image/png", "image/jpeg"):  # the bytes decide how they are read, as for `digitnet predict`
        return PredictRequest(png=raw)
    if ctype != "application/json":
        raise ApiError(415, "Send the drawing as JSON {width, height, pixels} (Content-Type: application/json) "
                            "or as a PNG or JPEG file (Content-Type: image/png or image/jpeg).")
    obj = parse_object(raw, {"width", "height", "pixels", "test_index"})
    if "test_index" in obj:
        if set(obj) != {"test_index"}:
            raise ApiError(400, "Send either a drawing (width, height, pixels) or a 'test_index', not both.")
        return PredictRequest(test_index=number(obj, "test_index", 0, n_test - 1, integer=True))
    return PredictRequest(grey=grey_pixels(obj))


def parse_drawing(raw: bytes, n_classes: int) -> tuple[int, np.ndarray]:
    """A labelled drawing to save -> (label, grey levels)."""
    obj = parse_object(raw, {"label", "width", "height", "pixels"}, {"label", "pixels"})
    return number(obj, "label", 0, n_classes - 1, integer=True), grey_pixels(obj)


def parse_save(raw: bytes) -> tuple[str, bool]:
    obj = parse_object(raw, {"name", "overwrite"}, {"name"})
    overwrite = obj.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise ApiError(400, f"'overwrite' must be true or false; got {show(overwrite)}.")
    return obj["name"], overwrite


def _hidden_sizes(obj: dict, default: list[int]) -> list[int]:
    hidden = obj.get("hidden", default)
    if isinstance(hidden, str):
        parts = [p.strip() for p in hidden.replace(" ", ",").split(",") if p.strip()]
        try:
            hidden = [int(p) for p in parts]
        except ValueError:
            raise ApiError(400, f"'hidden' lists the hidden layers' sizes, e.g. \"16,16\"; got {show(obj['hidden'])}.") from None
    lo_n, hi_n = LIMITS["hidden_layers"]
    lo_s, hi_s = LIMITS["hidden_size"]
    if (not isinstance(hidden, list) or not lo_n <= len(hidden) <= hi_n
            or not all(type(h) is int and lo_s <= h <= hi_s for h in hidden)):
        raise ApiError(400, f"'hidden' must list {lo_n} to {hi_n} hidden layer sizes, each {lo_s} to {hi_s}, "
                            f"e.g. [16, 16]; got {show(obj.get('hidden'))}.")
    return hidden


# The form's field for each setting it sets (the page has no flags; errors name its fields).
FORM_FIELDS = {"layers": "hidden"}


def parse_train_config(raw: bytes, presets: dict, n_in: int, n_out: int, n_train: int
                       ) -> tuple[NetworkConfig, TrainConfig, int]:
    """The page's "new network" form -> (NetworkConfig, TrainConfig, training images).

    ``presets`` maps the names the page offers to ``(description, NetworkConfig,
    TrainConfig)``. The form's fields are checked against the page's limits (work a request
    may ask for), then become settings over the chosen preset, validated by the library; an
    error names the form's field.
    """
    obj = parse_object(raw, TRAIN_FIELDS)
    preset = choice(obj, "preset", list(presets), "video")
    base_net = presets[preset][1]
    settings = {"preset": preset, "layers": (n_in, *_hidden_sizes(obj, list(base_net.layers[1:-1])), n_out)}
    for name, choices in (("activation", HIDDEN_ACTIVATIONS), ("output_activation", ACTIVATION_NAMES),
                          ("cost", COST_NAMES), ("init", INIT_NAMES), ("optimizer", OPTIMIZER_NAMES)):
        if name in obj:
            settings[name] = choice(obj, name, choices)
    for name in ("eta", "lmbda", "momentum"):
        if name in obj:
            settings[name] = number(obj, name, *LIMITS[name])
    for name in ("batch_size", "epochs", "seed"):
        if name in obj:
            settings[name] = number(obj, name, *LIMITS[name], integer=True)
    train_size = number(obj, "train_size", 1, n_train, n_train, integer=True)
    # the page measures test accuracy as it trains; it keeps no validation split
    settings.update(validation=False, keep_best=False, train_size=train_size if train_size < n_train else None)
    try:
        net_cfg, train_cfg = settings_from_dict(settings)  # the config language the CLI and files use
    except ConfigError as e:
        setting = e.setting
        message = e.render(lambda s: f"'{FORM_FIELDS.get(s, s)}'")
        raise ApiError(400, message, field=FORM_FIELDS.get(setting or "", setting)) from None
    return net_cfg, train_cfg, train_size


@dataclass
class DescentRequest:
    """A checked playground request: the parsed formula and the descent's settings."""

    formula: str
    expr: object  # digitnet.playground.Expression
    start: list[float]
    eta: float
    steps: int
    momentum: float
    view: list[float] | None


def parse_descent(raw: bytes, pg) -> DescentRequest:
    """A playground request -> :class:`DescentRequest`, within the work budget.

    ``pg`` is :mod:`digitnet.playground`; its parser raises
    :class:`~digitnet.errors.ExpressionError` (with the position) for a bad formula.
    """
    obj = parse_object(raw, {"formula", "start", "eta", "steps", "momentum", "view"}, {"formula", "start"})
    formula = obj["formula"]
    if not isinstance(formula, str):
        raise ApiError(400, f"'formula' must be text such as \"3/2x^2 + 1/2y^2\"; got {show(formula)}.")
    eta = number(obj, "eta", *LIMITS["descent_eta"], 0.1)
    steps = number(obj, "steps", *LIMITS["descent_steps"], 500, integer=True)
    momentum = number(obj, "momentum", *LIMITS["momentum"], 0.0)
    lo, hi = LIMITS["descent_coord"]
    start = obj["start"]
    if not isinstance(start, list) or not 1 <= len(start) <= 2:
        raise ApiError(400, f"'start' must be [x] or [x, y]; got {show(start)}.")
    start = [number({"start": v}, "start", lo, hi) for v in start]
    view = obj.get("view")
    if view is not None:
        if not isinstance(view, list) or len(view) != 4:
            raise ApiError(400, f"'view' must be [xmin, xmax, ymin, ymax]; got {show(view)}.")
        view = [number({"view": v}, "view", lo, hi) for v in view]
        if not (view[0] < view[1] and view[2] < view[3]):
            raise ApiError(400, "'view' must have xmin < xmax and ymin < ymax.")
    expr = pg.parse(formula)
    if len(start) != expr.dim:
        raise ConfigError(f"C({', '.join(expr.variables)}) needs a start with {expr.dim} coordinate(s); "
                          f"got {len(start)}.")
    size = max(len(formula), len(str(expr)), 1)  # the work per step grows with the formula written out
    if "steps" not in obj:  # the default: as many as the budget allows, up to 500
        steps = max(1, min(steps, DESCENT_BUDGET // size))
    if size * steps > DESCENT_BUDGET:
        raise ApiError(400, f"This formula ({size:,} characters written out) may run at most "
                            f"{DESCENT_BUDGET // size:,} steps here; got {steps:,}. Ask for fewer steps or "
                            "use a shorter formula.")
    return DescentRequest(formula, expr, start, eta, steps, momentum, view)


@dataclass
class LandscapeRequest:
    """A checked landscape request: the directions, the grid, the half-width (None: the
    directions' own) and the random directions' seed."""

    directions: str
    grid: int
    extent: float | None
    seed: int


def _landscape_directions(obj: dict) -> tuple[str, int]:
    directions = choice(obj, "directions", LANDSCAPE_DIRECTIONS, "auto")
    return directions, number(obj, "seed", *LIMITS["seed"], 0, integer=True)


def _landscape_object(raw: bytes, fields: set[str], required: set[str] = frozenset()) -> dict:
    if not raw.strip():  # an empty body is no request; {} asks for the defaults
        raise ApiError(400, "The request body is empty: send a JSON object ({} for the defaults).")
    return parse_object(raw, fields, required)


def parse_landscape(raw: bytes) -> LandscapeRequest:
    """The landscape view's form: ``directions`` (auto, trajectory, random), ``grid`` (points per
    axis), ``range`` (the half-width; null or absent: the directions' own), ``seed``."""
    obj = _landscape_object(raw, {"directions", "grid", "range", "seed"})
    directions, seed = _landscape_directions(obj)
    grid = number(obj, "grid", *LIMITS["landscape_grid"], 31, integer=True)
    extent = number(obj, "range", *LIMITS["landscape_range"]) if obj.get("range") is not None else None
    return LandscapeRequest(directions, grid, extent, seed)


@dataclass
class LandscapePointRequest:
    """A click on the landscape: the point, the slice's directions and seed, and the weights'
    version the map was drawn for (None: whatever the weights are now)."""

    alpha: float
    beta: float
    directions: str
    seed: int
    weights_version: int | None


def parse_landscape_point(raw: bytes) -> LandscapePointRequest:
    """A click on the landscape: ``alpha``, ``beta``, the slice's ``directions`` and ``seed``, and
    ``weights_version``, the map's (a point of a map drawn for other weights is refused)."""
    obj = _landscape_object(raw, {"alpha", "beta", "directions", "seed", "weights_version"}, {"alpha", "beta"})
    alpha = number(obj, "alpha", *LIMITS["landscape_coord"])
    beta = number(obj, "beta", *LIMITS["landscape_coord"])
    version = number(obj, "weights_version", 0, 2**63 - 1, integer=True) if obj.get("weights_version") is not None else None
    return LandscapePointRequest(alpha, beta, *_landscape_directions(obj), version)
