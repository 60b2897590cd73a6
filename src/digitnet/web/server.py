"""Serving the web app with bounded connections, timeouts and quiet logs (uvicorn + h11).

uvicorn alone keeps a connection that never sends a request open for ever, and its
``limit_concurrency`` counts such idle connections too and answers the next request with a
plain-text 503. So :class:`BoundedH11Protocol` adds, per connection:

* a **header timeout**: a connection with no request in progress (never sent one, or idle
  after a response) for :data:`HEADER_SECONDS` is closed, so slow or half-sent requests and
  idle connections cannot pile up;
* a **connection limit** below the file-descriptor limit (:func:`connection_limit`): when
  it is reached, the connection idle for longest is closed to make room, so a thousand idle
  connections cannot lock out a real request and the server never runs out of descriptors.

Request bodies have their own time limit (:data:`digitnet.web.requests.BODY_SECONDS`), and
:class:`RateLimitFilter` keeps any one message (such as "Too many open files") from being
logged more than a few times a minute.
"""

from __future__ import annotations

import logging
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0  # a connection without a request in progress is closed after this long
KEEP_ALIVE_SECONDS = 5  # uvicorn's timeout_keep_alive
MAX_HEADER_BYTES = 16 * 1024  # h11_max_incomplete_event_size: the request line and headers
RESERVED_FDS = 320  # descriptors kept for files, models, logs, and connections accepted before the
# limit can close others (asyncio accepts up to BACKLOG at a time, and closes a beat later)
BACKLOG = 64  # connections the listening socket queues, and accepts in one burst
MAX_CONNECTIONS = 4096


def connection_limit() -> int:
    """Connections to allow: below the soft descriptor limit (raised to the hard one first)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
            if want > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                soft = want
    except (ImportError, ValueError, OSError):
        return 256
    return max(16, min(MAX_CONNECTIONS, soft - RESERVED_FDS))


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout and a connection limit (see the module)."""

    max_connections = MAX_CONNECTIONS  # set by make_protocol
    header_seconds = HEADER_SECONDS

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._idle_since = time.monotonic()
        if len(self.connections) > self.max_connections:
            self._evict_one()
        self._timer = self.loop.call_later(self.header_seconds, self._check_idle)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _check_idle(self) -> None:
        if self.transport.is_closing():
            return
        waited = time.monotonic() - self._idle_since
        if self._idle() and waited >= self.header_seconds:
            self.transport.close()
            return
        self._timer = self.loop.call_later(max(0.5, self.header_seconds - waited if self._idle() else
                                               self.header_seconds), self._check_idle)

    def _evict_one(self) -> None:
        idle = [c for c in self.connections if isinstance(c, BoundedH11Protocol) and c is not self and c._idle()
                and not c.transport.is_closing()]
        victim = min(idle, key=lambda c: c._idle_since) if idle else self
        victim.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if not self._idle():
            self._idle_since = time.monotonic()

    def on_response_complete(self) -> None:
        self._idle_since = time.monotonic()
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)


def make_protocol(max_connections: int, header_seconds: float = HEADER_SECONDS) -> type[BoundedH11Protocol]:
    return type("DigitnetH11Protocol", (BoundedH11Protocol,),
                {"max_connections": max_connections, "header_seconds": header_seconds})


class RateLimitFilter(logging.Filter):
    """Let each message through at most ``per_minute`` times a minute; then one summary line."""

    def __init__(self, per_minute: int = 5):
        super().__init__()
        self.per_minute = per_minute
        self._seen: dict[str, list] = {}  # message -> [window start, count]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            key = f"{record.name}:{record.getMessage()[:80]}"
        except Exception:  # a record whose arguments do not format
            key = f"{record.name}:{record.msg!r:.80}"
        now = time.monotonic()
        window = self._seen.get(key)
        if window is None or now - window[0] >= 60:
            dropped = window[1] - self.per_minute if window is not None and window[1] > self.per_minute else 0
            if dropped:
                record.msg = f"{record.getMessage()} ({dropped} more like this in the last minute were not logged)"
                record.args = ()
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = [now, 1]
            return True
        window[1] += 1
        return window[1] <= self.per_minute


def quiet_logs(per_minute: int = 5) -> RateLimitFilter:
    """Rate-limit what uvicorn, asyncio and digitnet's web app log (see :class:`RateLimitFilter`)."""
    f = RateLimitFilter(per_minute)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio", "digitnet.web"):
        logger = logging.getLogger(name)
        logger.addFilter(f)
        for handler in logger.handlers:
            handler.addFilter(f)
    return f
