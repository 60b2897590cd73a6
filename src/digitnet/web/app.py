"""The local web app: draw a digit, watch the network think, watch it learn.

:func:`create_app` builds a `Starlette <https://www.starlette.io>`_ application (served by
uvicorn from ``digitnet serve``) around a :class:`~digitnet.web.lab.Lab`. The page is
plain HTML, CSS and JavaScript in ``static/`` (no build step, nothing fetched from the
internet); it talks to the JSON endpoints below and follows training through
server-sent events.

Every request is checked at the boundary: bodies are capped (``max_body`` bytes),
must be JSON objects with known fields (or a PNG for ``/api/predict``), numbers must lie
in the ranges of :data:`LIMITS`, formulas go through the playground's safe parser, and
models are chosen by name among those in the model directory, never by path. A bad
request gets ``{"error": "..."}`` with a 4xx status: 400 bad input, 404 unknown model or
page, 405 wrong method, 409 conflicts with the running training job, 413 body too large,
415 wrong content type.

Endpoints (all JSON unless said otherwise)::

    GET  /                      the page           GET  /api/info           presets, limits, models, state
    POST /api/predict           a drawing -> every layer's activations and the answer
    GET  /api/network           weights to draw    GET  /api/test-image     a test digit
    GET  /api/models            saved models       POST /api/models/load    POST /api/models/save
    POST /api/train/config      a new network      POST /api/train/start    POST /api/train/step
    POST /api/train/pause       POST /api/train/reset                       GET  /api/train/status
    GET  /api/train/events      server-sent events: cost and test accuracy as training goes
    GET  /api/evaluate          confusion matrix and the misclassified gallery
    POST /api/descent           the gradient-descent playground
    POST /api/drawings          save the drawing with its label (a folder of labelled images)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from digitnet.config import ACTIVATION_NAMES, COST_NAMES, INIT_NAMES, OPTIMIZER_NAMES, NetworkConfig, TrainConfig
from digitnet.errors import ConfigError, DigitnetError, ExpressionError
from digitnet.images import prepare
from digitnet.jsonable import jsonable
from digitnet.presets import PRESETS
from digitnet.web.lab import Busy, Lab, NotFound, check_model_name

# The page sets up fully connected networks (its picture is the video's columns of neurons);
# presets with convolutional features are for the command line.
DENSE_PRESETS = [name for name, (_, net, _) in PRESETS.items() if not net.features]
MAX_BODY = 2 * 1024 * 1024  # bytes: a 1024x1024 drawing as JSON does not fit, a 512x512 one does
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
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
}
DESCENT_GRID = 96  # the contour map is computed on a 96x96 grid
SHOWN_FIRST_LAYER = 64  # first-layer neurons whose weight images are sent
MAX_EDGE_WEIGHTS = 65_536  # deeper layers with more weights than this are drawn without edges
PATH_POINTS = 2_000  # the descent path sent to the page is thinned to this many points


class ApiError(Exception):
    """A request the app refuses: an HTTP status and a message for the person."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


# --- JSON in and out ---------------------------------------------------------------------
def _json(obj, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable(obj), status_code=status)


def _b64(a: np.ndarray) -> str:
    """An array as base64 of its little-endian float32 bytes (a Float32Array in the page)."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _b64_bytes(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def _rounded(a: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(a).ravel()]


async def _body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "The Content-Length header is not a number.")
        if int(length) > limit:
            raise ApiError(413, f"The request body is {int(length):,} bytes; the limit is {limit:,}. "
                                "Send a smaller image (28x28 to 512x512 pixels is plenty).")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"The request body is over the limit of {limit:,} bytes. Send a smaller image.")
        chunks.append(chunk)
    return b"".join(chunks)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _json_body(request: Request, limit: int, fields: set[str], required: set[str] = frozenset()) -> dict:
    if _content_type(request) != "application/json":
        raise ApiError(415, "Send the request body as JSON with the header Content-Type: application/json.")
    raw = await _body(request, limit)
    return _parse_object(raw, fields, required)


def _parse_object(raw: bytes, fields: set[str], required: set[str] = frozenset()) -> dict:
    try:
        obj = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"The request body is not valid JSON ({e}).") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "The request body must be a JSON object, such as {\"name\": \"my-model\"}.")
    unknown = sorted(set(obj) - fields)
    if unknown:
        raise ApiError(400, f"Unknown field(s): {', '.join(unknown)}. Known fields: {', '.join(sorted(fields))}.")
    missing = sorted(required - set(obj))
    if missing:
        raise ApiError(400, f"Missing field(s): {', '.join(missing)}.")
    return obj


def _number(obj: dict, name: str, lo: float, hi: float, default=None, *, integer: bool = False):
    v = obj.get(name, default)
    if v is None and default is None and name not in obj:
        return None
    kind = "a whole number" if integer else "a number"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise ApiError(400, f"The '{name}' field must be {kind} from {lo:g} to {hi:g}; got {v!r}.")
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ApiError(400, f"The '{name}' field must be {kind} from {lo:g} to {hi:g}; got {v!r}.")
    return int(v) if integer else float(v)


def _choice(obj: dict, name: str, choices, default=None):
    v = obj.get(name, default)
    if v not in choices:
        raise ApiError(400, f"The '{name}' field must be one of {', '.join(map(str, choices))}; got {v!r}.")
    return v


def _query_int(request: Request, name: str, lo: int, hi: int) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        v = int(text)
    except ValueError:
        raise ApiError(400, f"The '{name}' parameter must be a whole number from {lo} to {hi}; got {text!r}.") from None
    if not lo <= v <= hi:
        raise ApiError(400, f"The '{name}' parameter must be a whole number from {lo} to {hi}; got {v}.")
    return v


def _grey_pixels(obj: dict) -> np.ndarray:
    """``{"width", "height", "pixels"}`` -> (height, width) float32 grey levels 0..255."""
    lo, hi = LIMITS["image_side"]
    w = _number(obj, "width", lo, hi, integer=True)
    h = _number(obj, "height", lo, hi, integer=True)
    if w is None or h is None:
        raise ApiError(400, f"Give the drawing's 'width' and 'height' ({lo} to {hi} pixels) with its 'pixels'.")
    pixels = obj.get("pixels")
    if not isinstance(pixels, list) or len(pixels) != w * h:
        got = f"{len(pixels)} values" if isinstance(pixels, list) else type(pixels).__name__
        raise ApiError(400, f"'pixels' must be a list of width x height = {w * h} grey levels, row by row; got {got}.")
    if not set(map(type, pixels)) <= {int, float}:  # not bool, str or nested lists
        raise ApiError(400, "Every pixel must be a number from 0 (black) to 255 (white).")
    grey = np.asarray(pixels, dtype=np.float64).reshape(h, w)  # float64 first: 1e300 must not overflow
    if not np.isfinite(grey).all() or grey.min() < 0 or grey.max() > 255:
        raise ApiError(400, "Every pixel must be a number from 0 (black) to 255 (white).")
    return grey.astype(np.float32)


# --- the app -----------------------------------------------------------------------------
def create_app(
    model_dir,
    *,
    dataset=None,
    data_dir=None,
    drawings_dir=None,
    max_body: int = MAX_BODY,
    allowed_hosts: tuple[str, ...] | None = LOCAL_HOSTS,
) -> "_Guard":
    """The web app (an ASGI application) over the models in ``model_dir``.

    ``dataset`` (a :class:`~digitnet.data.datasets.Dataset`) replaces MNIST, e.g. small
    data in tests; ``data_dir`` is where MNIST's files are (default: the shipped copy).
    Drawings saved with a label go to ``drawings_dir`` (default ``model_dir/drawings``).
    Requests whose Host header is not in ``allowed_hosts`` are refused (a guard against
    DNS rebinding; pass ``None`` to accept any host, as ``digitnet serve --host`` does).
    The app's :class:`~digitnet.web.lab.Lab` is ``app.state.lab``.
    """
    lab = Lab(model_dir, dataset=dataset, data_dir=data_dir)
    drawings = Path(drawings_dir) if drawings_dir is not None else Path(model_dir) / "drawings"
    static = Path(str(resources.files("digitnet.web") / "static"))
    data = lab.data

    async def index(request: Request) -> Response:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(request: Request) -> Response:
        return _json({
            "presets": {k: {"description": d, "network": n.to_dict(), "train": t.to_dict()}
                        for k, (d, n, t) in PRESETS.items() if k in DENSE_PRESETS},
            "choices": {"activation": ["sigmoid", "tanh", "relu"], "output_activation": list(ACTIVATION_NAMES),
                        "cost": list(COST_NAMES), "init": list(INIT_NAMES), "optimizer": list(OPTIMIZER_NAMES)},
            "limits": {**LIMITS, "train_size": (1, len(data.train)), "max_body": max_body},
            "data": {"name": data.name, "classes": list(data.classes), "train": len(data.train), "test": len(data.test)},
            "models": lab.list_models(),
            "state": lab.state(),
            "features": {"descent": _descent_module() is not None, "drawings": _save_labelled() is not None},
        })

    # -- draw --
    async def predict(request: Request) -> Response:
        ctype = _content_type(request)
        raw = await _body(request, max_body)
        test_index = None
        if ctype == "image/png":
            source = raw
        elif ctype == "application/json":
            obj = _parse_object(raw, {"width", "height", "pixels", "test_index"})
            if "test_index" in obj:
                if set(obj) != {"test_index"}:
                    raise ApiError(400, "Send either a drawing (width, height, pixels) or a 'test_index', not both.")
                test_index = _number(obj, "test_index", 0, len(data.test) - 1, integer=True)
                source = None
            else:
                source = _grey_pixels(obj)
        else:
            raise ApiError(415, "Send the drawing as JSON {width, height, pixels} (Content-Type: application/json) "
                                "or as a PNG file (Content-Type: image/png).")

        def work():
            with lab.priority():
                x = data.test.x[test_index] if test_index is not None else prepare(source)
                net, acts = lab.predict(x)
                out = acts[-1]
                k = int(out.argmax())
                return {
                    "digit": k,
                    "label": data.classes[k] if k < len(data.classes) else str(k),
                    "outputs": _rounded(out),
                    # the fully connected layers' activations: the columns of neurons on the page
                    "activations": [_rounded(a) for a in acts[len(acts) - len(net.config.layers) + 1:]],
                    "input": _rounded(x, 3),  # the prepared 28x28, as `digitnet predict` makes it
                    "seen": _rounded(acts[0], 3),  # what the first layer sees (deskewed if the network does that)
                    "test_index": test_index,
                    "true_label": int(data.test.y[test_index]) if test_index is not None else None,
                    "weights_version": lab.snapshot_version,
                }

        return _json(await run_in_threadpool(work))

    async def network(request: Request) -> Response:
        def work():
            net, version = lab.snapshot, lab.snapshot_version
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
                "describe": lab.describe(net),  # layers in words, true parameter count, conv filters
                "first": {
                    "neurons": int(len(w0)), "shown": shown,
                    "side": square if square and square * square == w0.shape[1] else None,
                    "weights": _b64(w0[:shown]), "biases": _rounded(biases[0][:shown]),
                },
                "deeper": [
                    {"shape": list(w.shape), "weights": _b64(w) if w.size <= MAX_EDGE_WEIGHTS else None,
                     "biases": _rounded(b)}
                    for w, b in zip(weights[1:], biases[1:])
                ],
            }

        return _json(await run_in_threadpool(work))

    async def test_image(request: Request) -> Response:
        index = _query_int(request, "index", 0, len(data.test) - 1)
        if index is None:
            index = int(np.random.default_rng().integers(len(data.test)))
        return _json({"index": index, "label": int(data.test.y[index]),
                      "side": int(data.test.images.shape[1]), "pixels": _b64_bytes(data.test.images[index])})

    async def save_drawing(request: Request) -> Response:
        save = _save_labelled()
        if save is None:
            raise ApiError(404, "Saving labelled drawings needs digitnet.data.folder, which this install lacks.")
        obj = await _json_body(request, max_body, {"label", "width", "height", "pixels"}, {"label", "pixels"})
        label = _number(obj, "label", 0, len(data.classes) - 1, integer=True)
        grey = _grey_pixels(obj)

        def work():
            x = prepare(grey)  # the same 28x28 the network sees
            drawings.mkdir(parents=True, exist_ok=True)
            path = save(drawings, label, x)
            count = sum(1 for p in path.parent.glob("*.png") if not p.name.startswith("."))
            return {"file": f"{path.parent.name}/{path.name}", "label": label, "count": count,
                    "folder": str(drawings)}

        return _json(await run_in_threadpool(work))

    # -- models --
    async def models(request: Request) -> Response:
        return _json({"models": lab.list_models(), "current": lab.job.name})

    async def load_model(request: Request) -> Response:
        obj = await _json_body(request, max_body, {"name"}, {"name"})
        return _json(await run_in_threadpool(lab.load, obj["name"]))

    async def save_model(request: Request) -> Response:
        obj = await _json_body(request, max_body, {"name", "overwrite"}, {"name"})
        overwrite = obj.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise ApiError(400, f"'overwrite' must be true or false; got {overwrite!r}.")
        check_model_name(obj["name"])
        return _json(await run_in_threadpool(lab.save, obj["name"], overwrite))

    # -- learn --
    train_fields = {"preset", "hidden", "activation", "output_activation", "cost", "init", "optimizer", "eta",
                    "batch_size", "epochs", "seed", "train_size", "lmbda", "momentum"}

    async def train_config(request: Request) -> Response:
        obj = await _json_body(request, max_body, train_fields)
        preset = _choice(obj, "preset", DENSE_PRESETS, "video")
        base_net, base_train = PRESETS[preset][1], PRESETS[preset][2]
        n_in, n_out = data.train.x.shape[1], len(data.classes)
        hidden = obj.get("hidden", list(base_net.layers[1:-1]))
        if isinstance(hidden, str):
            hidden = [p.strip() for p in hidden.replace(" ", ",").split(",") if p.strip()]
            try:
                hidden = [int(p) for p in hidden]
            except ValueError:
                raise ApiError(400, f"'hidden' lists the hidden layers' sizes, e.g. \"16,16\"; got {obj['hidden']!r}.") from None
        lo_n, hi_n = LIMITS["hidden_layers"]
        lo_s, hi_s = LIMITS["hidden_size"]
        if (not isinstance(hidden, list) or not lo_n <= len(hidden) <= hi_n
                or not all(type(h) is int and lo_s <= h <= hi_s for h in hidden)):
            raise ApiError(400, f"'hidden' must list {lo_n} to {hi_n} hidden layer sizes, each {lo_s} to {hi_s}, "
                                f"e.g. [16, 16]; got {obj.get('hidden')!r}.")
        net_changes = {"layers": (n_in, *hidden, n_out)}
        for name, choices in (("activation", ["sigmoid", "tanh", "relu"]), ("output_activation", ACTIVATION_NAMES),
                              ("cost", COST_NAMES), ("init", INIT_NAMES)):
            if name in obj:
                net_changes[name] = _choice(obj, name, choices)
        train_changes = {}
        if "optimizer" in obj:
            train_changes["optimizer"] = _choice(obj, "optimizer", OPTIMIZER_NAMES)
        for name in ("eta", "lmbda", "momentum"):
            if name in obj:
                train_changes[name] = _number(obj, name, *LIMITS[name])
        for name in ("batch_size", "epochs", "seed"):
            if name in obj:
                train_changes[name] = _number(obj, name, *LIMITS[name], integer=True)
        train_size = _number(obj, "train_size", 1, len(data.train), len(data.train), integer=True)
        net_cfg = NetworkConfig.from_dict({**base_net.to_dict(), **net_changes})
        train_cfg = TrainConfig.from_dict({**base_train.to_dict(), **train_changes, "validation": False,
                                           "keep_best": False,
                                           "train_size": train_size if train_size < len(data.train) else None})
        return _json(await run_in_threadpool(lab.configure, net_cfg, train_cfg, train_size))

    async def train_start(request: Request) -> Response:
        obj = await _json_body(request, max_body, {"until", "more_epochs"})
        until = _choice(obj, "until", ["end", "epoch"], "end")
        more = _number(obj, "more_epochs", *LIMITS["epochs"], integer=True) if "more_epochs" in obj else 0
        return _json(await run_in_threadpool(lab.start, until, more))

    async def train_step(request: Request) -> Response:
        await _json_body(request, max_body, set())
        return _json(await run_in_threadpool(lab.step))

    async def train_pause(request: Request) -> Response:
        await _json_body(request, max_body, set())
        return _json(await run_in_threadpool(lab.pause))

    async def train_reset(request: Request) -> Response:
        await _json_body(request, max_body, set())
        return _json(await run_in_threadpool(lab.reset))

    async def train_status(request: Request) -> Response:
        return _json(lab.progress_since(None)[0])

    async def train_events(request: Request) -> Response:
        text = request.query_params.get("max_seconds")
        lo, hi = LIMITS["events_seconds"]
        try:
            seconds = float(text) if text else 600.0
        except ValueError:
            seconds = float("nan")
        if not (math.isfinite(seconds) and lo <= seconds <= hi):
            raise ApiError(400, f"'max_seconds' must be a number from {lo:g} to {hi:g}; got {text!r}.")

        async def stream():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            cursor, seen, beat = None, None, loop.time()
            yield "retry: 1000\n\n"  # the browser reconnects a second after the stream ends
            while True:
                if lab.version != seen or cursor is None:
                    seen = lab.version
                    payload, cursor = lab.progress_since(cursor)
                    yield f"event: progress\ndata: {json.dumps(jsonable(payload))}\n\n"
                    beat = loop.time()
                elif loop.time() - beat > 10:
                    yield ": still here\n\n"  # a comment keeps proxies from closing the stream
                    beat = loop.time()
                if loop.time() >= deadline or await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- look --
    async def evaluation(request: Request) -> Response:
        result = await run_in_threadpool(lab.evaluation)
        images = data.test.images
        gallery = [{**m, "pixels": _b64_bytes(images[m["index"]])} for m in result["misclassified"]]
        return _json({**result, "misclassified": gallery})

    async def descent(request: Request) -> Response:
        pg = _descent_module()
        if pg is None:
            raise ApiError(404, "The gradient-descent playground needs digitnet.playground, which this install lacks.")
        obj = await _json_body(request, max_body, {"formula", "start", "eta", "steps", "momentum", "view"},
                               {"formula", "start"})
        formula = obj["formula"]
        if not isinstance(formula, str):
            raise ApiError(400, f"'formula' must be text such as \"3/2x^2 + 1/2y^2\"; got {formula!r}.")
        eta = _number(obj, "eta", *LIMITS["descent_eta"], 0.1)
        steps = _number(obj, "steps", *LIMITS["descent_steps"], 500, integer=True)
        momentum = _number(obj, "momentum", *LIMITS["momentum"], 0.0)
        lo, hi = LIMITS["descent_coord"]
        start = obj["start"]
        if not isinstance(start, list) or not 1 <= len(start) <= 2:
            raise ApiError(400, f"'start' must be [x] or [x, y]; got {start!r}.")
        start = [_number({"start": v}, "start", lo, hi) for v in start]
        view = obj.get("view")
        if view is not None:
            if not isinstance(view, list) or len(view) != 4:
                raise ApiError(400, f"'view' must be [xmin, xmax, ymin, ymax]; got {view!r}.")
            view = [_number({"view": v}, "view", lo, hi) for v in view]
            if not (view[0] < view[1] and view[2] < view[3]):
                raise ApiError(400, "'view' must have xmin < xmax and ymin < ymax.")

        def work():
            expr = pg.parse(formula)
            if len(start) != expr.dim:
                raise ConfigError(f"C({', '.join(expr.variables)}) needs a start with {expr.dim} coordinate(s); "
                                  f"got {len(start)}.")
            run = pg.descend(expr, start, eta=eta, steps=steps, momentum=momentum)
            return _descent_result(pg, expr, run, view)

        return _json(await run_in_threadpool(work))

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/network", network),
        Route("/api/test-image", test_image),
        Route("/api/drawings", save_drawing, methods=["POST"]),
        Route("/api/models", models),
        Route("/api/models/load", load_model, methods=["POST"]),
        Route("/api/models/save", save_model, methods=["POST"]),
        Route("/api/train/config", train_config, methods=["POST"]),
        Route("/api/train/start", train_start, methods=["POST"]),
        Route("/api/train/step", train_step, methods=["POST"]),
        Route("/api/train/pause", train_pause, methods=["POST"]),
        Route("/api/train/reset", train_reset, methods=["POST"]),
        Route("/api/train/status", train_status),
        Route("/api/train/events", train_events),
        Route("/api/evaluate", evaluation),
        Route("/api/descent", descent, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(lab.close)

    app = Starlette(routes=routes, exception_handlers=_handlers(), lifespan=lifespan)
    app.state.lab = lab
    return _Guard(app, allowed_hosts)


def _handlers() -> dict:
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _json({"error": exc.message, **exc.extra}, exc.status)

    async def digitnet_error(request: Request, exc: DigitnetError) -> Response:
        status = 409 if isinstance(exc, Busy) else 404 if isinstance(exc, NotFound) else 400
        extra = {"position": exc.position} if isinstance(exc, ExpressionError) else {}
        return _json({"error": str(exc), **extra}, status)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        messages = {404: f"Nothing here: {request.url.path}. The page is at /, the API under /api/.",
                    405: f"{request.method} is not allowed on {request.url.path}."}
        return _json({"error": messages.get(exc.status_code, exc.detail)}, exc.status_code)

    return {ApiError: api_error, DigitnetError: digitnet_error, HTTPException: http_error}


class _Guard:
    """ASGI middleware: refuse unknown Host headers; add headers that keep the page local.

    The Content-Security-Policy lets the page load only its own files, so nothing can be
    fetched from elsewhere even by mistake.
    """

    CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

    def __init__(self, app: Starlette, allowed_hosts):
        self.app = app
        self.state = app.state
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.allowed is not None:
            host = _host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                response = _json({"error": f"This app answers only on {', '.join(sorted(self.allowed))}; "
                                           f"the request was for host {host!r}."}, 400)
                return await response(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"content-security-policy", self.CSP.encode())]
                message = {**message, "headers": headers}
            await send(message)

        if scope.get("path") == "/api/predict":
            # The training thread waits between mini-batches while a prediction is anywhere in
            # flight (reading the body, preparing, answering), so predictions stay fast.
            with self.state.lab.priority():
                await self.app(scope, receive, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)


def _host_name(header: str) -> str:
    """``"127.0.0.1:8000"`` -> ``"127.0.0.1"``, ``"[::1]:8000"`` -> ``"::1"``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]")[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _descent_module():
    try:
        import digitnet.playground as pg
    except ImportError:
        return None
    return pg


def _save_labelled():
    try:
        from digitnet.data.folder import save_labelled_image
    except ImportError:
        return None
    return save_labelled_image


def _descent_result(pg, expr, run, view) -> dict:
    path, values = run.path, run.values
    if len(path) > PATH_POINTS:  # thin a long path evenly, keeping the last point
        keep = np.unique(np.r_[np.linspace(0, len(path) - 1, PATH_POINTS).astype(int), len(path) - 1])
        path, values = path[keep], values[keep]
    finite = path[np.isfinite(path).all(axis=1)]
    if view is None:
        reach = max(2.0, 1.2 * float(np.abs(finite).max()) if len(finite) else 2.0)
        reach = min(reach, 1e6)
        view = [-reach, reach, -reach, reach]
    n = DESCENT_GRID
    xs = np.linspace(view[0], view[1], n)
    if expr.dim == 2:
        ys = np.linspace(view[2], view[3], n)
        grid = expr.value(np.stack(np.meshgrid(xs, ys), axis=-1))  # (n, n): row = y, column = x
    else:
        grid = expr.value(xs[:, None])  # (n,)
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
        "grid": {"n": n, "values": [None if not math.isfinite(v) else round(float(v), 6) for v in grid.ravel()]},
    }
