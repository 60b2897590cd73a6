"""The local web app: draw a digit, watch the network think, watch it learn.

:func:`create_app` builds a `Starlette <https://www.starlette.io>`_ application (served by
uvicorn from ``digitnet serve``) around a :class:`~digitnet.web.lab.Lab`. The page is
plain HTML, CSS and JavaScript in ``static/`` (no build step, nothing fetched from the
internet); it talks to the JSON endpoints below and follows training through
server-sent events.

The routes here are thin: :mod:`digitnet.web.requests` reads and checks every request
(bodies capped at ``max_body`` bytes and read within a time limit, JSON objects with known
fields or a PNG, numbers in the ranges of its ``LIMITS``, formulas through the playground's
safe parser and a work budget, models chosen by name, never by path), the library and the
:class:`~digitnet.web.lab.Lab` do the work, and :mod:`digitnet.web.views` shapes the answer.

Every answer is JSON, errors too: ``{"error": "..."}`` with 400 bad input, 404 unknown model
or page, 405 wrong method, 408 body too slow, 409 conflicts with the training job or a full
drawings folder, 413 body too large, 415 wrong content type, 503 busy (with
``Retry-After``), and 500 for a bug (logged once; no internals are sent).

Work is bounded: requests run in small thread pools of their own kind (:data:`POOLS`:
predictions; the playground, whose work runs in a worker process; changes to the training
job, one at a time; everything else), each with a short queue; a full pool answers 503 at
once rather than queueing without end, so one kind of request cannot starve another. A prediction asks the training thread to wait between mini-batches
only once its body has fully arrived, so a slow client never slows training.

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
    POST /api/landscape         the cost on a slice through the weights, with the training path
    POST /api/landscape/point   the network at one point of the slice: cost, accuracy, answers
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from importlib import resources
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import digitnet.playground as pg
from digitnet.config import ACTIVATION_NAMES, COST_NAMES, INIT_NAMES, OPTIMIZER_NAMES
from digitnet.data.folder import save_labelled_image
from digitnet.data.images import prepare
from digitnet.errors import DigitnetError, ExpressionError
from digitnet.jsonable import jsonable
from digitnet.training.presets import PRESETS
from digitnet.web import views
from digitnet.web.lab import Busy, Lab, NotFound, check_model_name
from digitnet.web.requests import (
    HIDDEN_ACTIVATIONS,
    LIMITS,
    MAX_BODY,
    ApiError,
    choice,
    content_type,
    json_body,
    number,
    parse_descent,
    parse_drawing,
    parse_landscape,
    parse_landscape_point,
    parse_predict,
    parse_save,
    parse_train_config,
    query_int,
    query_seconds,
    read_body,
    require_json,
)

log = logging.getLogger("digitnet.web")

# The page sets up fully connected networks (its picture is the video's columns of neurons);
# presets with convolutional features are for the command line.
DENSE_PRESETS = [name for name, (_, net, _) in PRESETS.items() if not net.features]
DENSE_PRESET_TABLE = {name: PRESETS[name] for name in DENSE_PRESETS}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# Thread pools by kind of request: (threads, requests that may wait for one). A request that
# finds its pool's threads and queue full is answered 503 with Retry-After at once.
# "control" has one thread: requests that change the training job or the model folder (start,
# pause, reset, load, save, ...) run one at a time, so a pause never meets a half-started start.
POOLS = {"predict": (2, 30), "descent": (1, 3), "work": (4, 32), "control": (1, 32)}
MAX_EVENT_STREAMS = 32  # pages following training at once
MAX_DRAWINGS = 10_000  # pictures the page saves into its drawings folder, all labels together
RETRY_AFTER = 1  # seconds a busy server asks a client to wait
WORKER_NICENESS = 10  # the playground's worker process runs this much nicer (lower CPU priority)


class Pool:
    """A bounded pool of threads for one kind of request (see :data:`POOLS`)."""

    def __init__(self, name: str, threads: int, queue: int):
        self.name, self.threads, self.capacity = name, threads, threads + queue
        self.admitted = 0
        self._limiter: anyio.CapacityLimiter | None = None

    def check(self) -> None:
        """Answer 503 now if the pool is full (before a request's body is even read)."""
        if self.admitted >= self.capacity:
            raise ApiError(503, f"The server is busy with {self.admitted} {self.name} requests; "
                                f"try again in {RETRY_AFTER} s.", {"Retry-After": str(RETRY_AFTER)})

    async def run(self, fn, *args):
        self.check()
        if self._limiter is None:  # made in the event loop that uses it
            self._limiter = anyio.CapacityLimiter(self.threads)
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            self.admitted -= 1


class RateLimitedLog:
    """Log a kind of message at most ``per_minute`` times a minute, then say how many were left out."""

    def __init__(self, logger: logging.Logger, per_minute: int = 10):
        self.logger, self.per_minute = logger, per_minute
        self._window, self._count, self._dropped = 0.0, 0, 0
        self._lock = threading.Lock()

    def error(self, message: str, exc: BaseException | None = None) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._window >= 60:
                if self._dropped:
                    self.logger.error("%d similar errors were not logged in the last minute.", self._dropped)
                self._window, self._count, self._dropped = now, 0, 0
            self._count += 1
            if self._count > self.per_minute:
                self._dropped += 1
                return
        self.logger.error(message, exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)


# --- the app -----------------------------------------------------------------------------
def create_app(
    model_dir,
    *,
    dataset=None,
    data_dir=None,
    drawings_dir=None,
    max_body: int = MAX_BODY,
    allowed_hosts: tuple[str, ...] | None = LOCAL_HOSTS,
    pools: dict[str, tuple[int, int]] | None = None,
) -> "_Guard":
    """The web app (an ASGI application) over the models in ``model_dir``.

    ``dataset`` (a :class:`~digitnet.data.datasets.Dataset`) replaces MNIST, e.g. small
    data in tests; ``data_dir`` is where MNIST's files are (default: the shipped copy).
    Drawings saved with a label go to ``drawings_dir`` (default ``model_dir/drawings``).
    Requests whose Host header is not in ``allowed_hosts`` are refused (a guard against
    DNS rebinding; pass ``None`` to accept any host, as ``digitnet serve --host`` does).
    ``pools`` overrides :data:`POOLS` (threads and queue per kind of request).
    The app's :class:`~digitnet.web.lab.Lab` is ``app.state.lab``.
    """
    lab = Lab(model_dir, dataset=dataset, data_dir=data_dir)
    drawings = Path(drawings_dir) if drawings_dir is not None else Path(model_dir) / "drawings"
    static = Path(str(resources.files("digitnet.web") / "static"))
    data = lab.data
    pool = {kind: Pool(kind, *size) for kind, size in {**POOLS, **(pools or {})}.items()}
    drawing_counts: dict[int, int] = {}  # pictures per label in the drawings folder, counted once
    streams = {"open": 0}

    async def index(request: Request) -> Response:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(request: Request) -> Response:
        return _json({
            "presets": {k: {"description": d, "network": n.to_dict(), "train": t.to_dict()}
                        for k, (d, n, t) in DENSE_PRESET_TABLE.items()},
            "choices": {"activation": list(HIDDEN_ACTIVATIONS), "output_activation": list(ACTIVATION_NAMES),
                        "cost": list(COST_NAMES), "init": list(INIT_NAMES), "optimizer": list(OPTIMIZER_NAMES)},
            "limits": {**LIMITS, "train_size": (1, len(data.train)), "max_body": max_body},
            "data": {"name": data.name, "classes": list(data.classes), "train": len(data.train), "test": len(data.test)},
            "models": lab.list_models(),
            "state": lab.state(),
            "features": {"descent": True, "drawings": True},
        })

    # -- draw --
    async def predict(request: Request) -> Response:
        ctype = content_type(request)
        raw = await read_body(request, max_body)  # all of it, before anything waits on training
        req = parse_predict(ctype, raw, len(data.test))

        def work():
            if req.test_index is not None:
                x, true_label = data.test.x[req.test_index], int(data.test.y[req.test_index])
            else:
                # an uploaded picture that is not one digit is refused with the reason; a drawing
                # on the page is read whatever it looks like (the person is still drawing it)
                x = prepare(req.png, strict=True) if req.png is not None else prepare(req.grey)
                true_label = None
            net, acts = lab.predict(x)
            return views.prediction(net, acts, x, data.classes, req.test_index, true_label, lab.snapshot_version)

        # The training thread waits between mini-batches while a prediction is queued or
        # running, so predictions stay fast while training runs.
        with lab.priority():
            return _fast_json(await pool["predict"].run(work))

    async def network(request: Request) -> Response:
        def work():
            net = lab.snapshot
            # layers in words, true parameter count, conv filters: what the page writes under the picture
            return {**views.network_picture(net, lab.snapshot_version), "describe": lab.describe(net)}

        return _json(await pool["work"].run(work))

    async def test_image(request: Request) -> Response:
        index = query_int(request, "index", 0, len(data.test) - 1)
        if index is None:
            index = int(np.random.default_rng().integers(len(data.test)))
        return _json({"index": index, "label": int(data.test.y[index]),
                      "side": int(data.test.images.shape[1]), "pixels": views.b64_bytes(data.test.images[index])})

    async def save_drawing(request: Request) -> Response:
        require_json(request)
        label, grey = parse_drawing(await read_body(request, max_body), len(data.classes))

        def work():
            if not drawing_counts:  # count the folder once; later saves keep the count
                for k in range(len(data.classes)):
                    folder = drawings / str(k)
                    drawing_counts[k] = (sum(1 for p in folder.glob("*.png") if not p.name.startswith("."))
                                         if folder.is_dir() else 0)
            if sum(drawing_counts.values()) >= MAX_DRAWINGS:
                raise ApiError(409, f"The drawings folder is full: it holds {MAX_DRAWINGS:,} pictures, the most "
                                    "this page saves. Move them out of 'drawings' in the model folder to save more.")
            x = prepare(grey)  # the same 28x28 the network sees
            drawings.mkdir(parents=True, exist_ok=True)
            path = save_labelled_image(drawings, label, x)
            drawing_counts[label] += 1
            # the file relative to the drawings folder: the server's own paths are not sent
            return {"file": f"{path.parent.name}/{path.name}", "label": label, "count": drawing_counts[label],
                    "folder": drawings.name}

        return _json(await pool["control"].run(work))

    # -- models --
    async def models(request: Request) -> Response:
        return _json({"models": lab.list_models(), "current": lab.job.name})

    async def load_model(request: Request) -> Response:
        obj = await json_body(request, max_body, {"name"}, {"name"})
        return _json(await pool["control"].run(lab.load, obj["name"]))

    async def save_model(request: Request) -> Response:
        require_json(request)
        name, overwrite = parse_save(await read_body(request, max_body))
        check_model_name(name)
        return _json(await pool["control"].run(lab.save, name, overwrite))

    # -- learn --
    async def train_config(request: Request) -> Response:
        require_json(request)
        net_cfg, train_cfg, train_size = parse_train_config(
            await read_body(request, max_body), DENSE_PRESET_TABLE, data.train.x.shape[1], len(data.classes),
            len(data.train))
        return _json(await pool["control"].run(lab.configure, net_cfg, train_cfg, train_size))

    async def train_start(request: Request) -> Response:
        obj = await json_body(request, max_body, {"until", "more_epochs"})
        until = choice(obj, "until", ["end", "epoch"], "end")
        more = number(obj, "more_epochs", *LIMITS["epochs"], integer=True) if "more_epochs" in obj else 0
        return _json(await pool["control"].run(lab.start, until, more))

    def _control(method):
        async def route(request: Request) -> Response:
            await json_body(request, max_body, set())
            return _json(await pool["control"].run(method))
        return route

    async def train_status(request: Request) -> Response:
        return _json(lab.progress_since(None)[0])

    async def train_events(request: Request) -> Response:
        seconds = query_seconds(request, "max_seconds", 600.0)
        if streams["open"] >= MAX_EVENT_STREAMS:
            raise ApiError(503, f"{MAX_EVENT_STREAMS} pages are following training already; try again later.",
                           {"Retry-After": str(RETRY_AFTER)})

        async def stream():
            streams["open"] += 1
            try:
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
            finally:
                streams["open"] -= 1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- look --
    async def evaluation(request: Request) -> Response:
        result = await pool["work"].run(lab.evaluation)
        images = data.test.images
        gallery = [{**m, "pixels": views.b64_bytes(images[m["index"]])} for m in result["misclassified"]]
        return _json({**result, "misclassified": gallery})

    async def descent(request: Request) -> Response:
        require_json(request)
        pool["descent"].check()  # a busy playground says so before reading or parsing anything
        raw = await read_body(request, max_body)
        # Parsing a long formula is CPU work too (16 ms for 999 characters): it runs in the
        # worker process with the descent, never in the event loop or this process's threads.
        return _json(await pool["descent"].run(_descent, raw))

    # A map is up to 61x61 passes over the images: maps get their own thread, one at a time
    # (another is refused at once), and clicks their own small pool, so that neither waits
    # behind the other and /api/network, /api/evaluate and predictions never wait behind maps.
    maps, points = Pool("landscape", 1, 0), Pool("landscape point", 2, 8)  # (threads, queue)

    async def landscape(request: Request) -> Response:
        require_json(request)
        req = parse_landscape(await read_body(request, max_body, what="a map request"))
        if maps.admitted >= maps.capacity:
            raise ApiError(503, "The server is busy drawing another map; try again in a few seconds.",
                           {"Retry-After": str(RETRY_AFTER)})
        return _json(await maps.run(lab.landscape, req.directions, req.grid, req.extent, req.seed))

    async def landscape_point(request: Request) -> Response:
        require_json(request)
        req = parse_landscape_point(await read_body(request, max_body, what="a point request"))
        changed = ApiError(409, "The model changed since the map was drawn: draw it again.")
        if req.weights_version is not None and lab.snapshot_version != req.weights_version:
            raise changed  # at once, without the work
        result = await points.run(lab.landscape_point, req.alpha, req.beta, req.directions, req.seed)
        if req.weights_version is not None and result["weights_version"] != req.weights_version:
            raise changed  # the weights changed while the point was computed
        return _json(views.landscape_point(result, data.test.images))

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
        Route("/api/train/step", _control(lab.step), methods=["POST"]),
        Route("/api/train/pause", _control(lab.pause), methods=["POST"]),
        Route("/api/train/reset", _control(lab.reset), methods=["POST"]),
        Route("/api/train/status", train_status),
        Route("/api/train/events", train_events),
        Route("/api/evaluate", evaluation),
        Route("/api/descent", descent, methods=["POST"]),
        Route("/api/landscape", landscape, methods=["POST"]),
        Route("/api/landscape/point", landscape_point, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await anyio.to_thread.run_sync(lab.close)

    app = Starlette(routes=routes, exception_handlers=_handlers([Path(model_dir), drawings]), lifespan=lifespan)
    app.state.lab = lab
    app.state.pools = pool
    return _Guard(app, allowed_hosts)


def _json(obj, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(jsonable(obj), status_code=status, headers=headers)


def _fast_json(obj) -> JSONResponse:
    """:func:`_json` of an answer that is plain lists and numbers already (a prediction's):
    the same bytes, without converting its ~1,600 numbers one by one first; NaN (a diverged
    network) or a NumPy value takes the usual way."""
    try:
        return JSONResponse(obj)  # allow_nan=False: NaN and infinity raise ValueError
    except (TypeError, ValueError):
        return _json(obj)


def _without_folders(message: str, folders) -> str:
    """The server's own folders are not the visitor's business: ``/srv/models/a.safetensors``
    is said as ``a.safetensors``."""
    for folder in folders:
        for form in {str(folder), str(Path(folder).resolve()), os.path.abspath(folder)}:
            if form not in ("", ".", os.sep):
                message = message.replace(form + os.sep, "").replace(form, "the model folder")
    return message


def _handlers(folders=()) -> dict:
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _json({"error": exc.message, **exc.extra}, exc.status, exc.headers)

    async def digitnet_error(request: Request, exc: DigitnetError) -> Response:
        status = 409 if isinstance(exc, Busy) else 404 if isinstance(exc, NotFound) else 400
        extra = {"position": exc.position} if isinstance(exc, ExpressionError) else {}
        return _json({"error": _without_folders(str(exc), folders), **extra}, status)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        messages = {404: f"Nothing here: {request.url.path}. The page is at /, the API under /api/.",
                    405: f"{request.method} is not allowed on {request.url.path}."}
        return _json({"error": messages.get(exc.status_code, exc.detail)}, exc.status_code)

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette sends this, then raises the error again for _Guard to log
        return _json({"error": UNEXPECTED}, 500)

    return {ApiError: api_error, DigitnetError: digitnet_error, HTTPException: http_error, Exception: unexpected}


_unexpected = RateLimitedLog(log)
UNEXPECTED = "Something went wrong inside digitnet (a bug, logged on the server). Try again, or reload the page."


class _Guard:
    """ASGI middleware: refuse unknown Host headers; add headers that keep the page local;
    answer an unexpected error (a bug) with a JSON 500, logging it (rate-limited) but
    sending no internals.

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
                                           f"the request was for host {host[:100]!r}."}, 400)
                return await response(scope, receive, send)
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                            (b"content-security-policy", self.CSP.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as e:  # a bug: one JSON line for the page, the traceback in the log
            _unexpected.error(f"Unexpected error in {scope.get('method')} {scope.get('path')}: "
                              f"{type(e).__name__}", e)
            if not started:
                response = _json({"error": UNEXPECTED}, 500)
                await response(scope, receive, send_with_headers)


_processes = None  # the worker process for the playground, started on first use
_processes_lock = threading.Lock()


def _descent_in_worker(raw: bytes):
    """A playground request's body -> ``("ok", answer)`` or ``("error", status, message, extra)``.

    Runs in the worker process: the errors travel back as plain values (an exception with
    extra fields does not survive pickling) and :func:`_descent` raises them again.
    """
    try:
        req = parse_descent(raw, pg)  # digitnet.playground
        return ("ok", views.descent_answer(req.formula, req.start, req.eta, req.steps, req.momentum, req.view))
    except ApiError as e:
        return ("error", e.status, e.message, e.extra)
    except DigitnetError as e:
        return ("error", 400, str(e), {"position": e.position} if isinstance(e, ExpressionError) else {})


def _descent(raw: bytes) -> dict:
    """The answer to a playground request, worked out in the worker process (its errors raised here)."""
    answer = _in_worker_process(_descent_in_worker, raw)
    if answer[0] == "error":
        _, status, message, extra = answer
        raise ApiError(status, message, **extra)
    return answer[1]


def _lower_priority() -> None:
    """The worker process's initializer: the playground yields the CPU to training and predictions."""
    with contextlib.suppress(AttributeError, OSError):  # os.nice: not on Windows
        os.nice(WORKER_NICENESS)


def _in_worker_process(fn, *args):
    """``fn(*args)`` in a worker process: pure-Python number crunching (the playground) there
    does not take the interpreter lock from the training thread and the server's requests,
    and at a lower CPU priority (:data:`WORKER_NICENESS`) it gets only the CPU they leave."""
    global _processes
    import concurrent.futures
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    with _processes_lock:
        if _processes is None:
            _processes = concurrent.futures.ProcessPoolExecutor(
                max_workers=POOLS["descent"][0], mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority)
            import atexit

            atexit.register(_processes.shutdown, cancel_futures=True)
        processes = _processes
    try:
        answer = processes.submit(fn, *args).result()
    except BrokenProcessPool:  # the worker died (killed, out of memory): start a new one next time
        with _processes_lock:
            if _processes is processes:
                _processes = None
        raise ApiError(503, "The playground's worker stopped; try again.", {"Retry-After": str(RETRY_AFTER)}) from None
    return answer


def _host_name(header: str) -> str:
    """``"127.0.0.1:8000"`` -> ``"127.0.0.1"``, ``"[::1]:8000"`` -> ``"::1"``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]")[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


