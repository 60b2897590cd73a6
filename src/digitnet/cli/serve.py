"""``digitnet serve``: the local web page (draw a digit, watch it think, watch it learn)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import webbrowser
from pathlib import Path

import sys

import click

from digitnet.cli import main

LOOPBACK_NAMES = ("localhost",)


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port), or a clear error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise click.ClickException(f"Cannot listen on host {host!r}: {e.strerror}. Use an address such as 127.0.0.1.")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        hint = f" Try another port, e.g. --port {port + 1}." if port else ""
        raise click.ClickException(f"Cannot listen on {host}:{port}: {e.strerror or e}.{hint}")
    return sock


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


@main.command()
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default is only reachable from this computer.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option("--model-dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder of models to list, load and save (created if missing).")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="DIGITNET_DATA",
              help="Directory with the four MNIST IDX files (default: the copy shipped with digitnet).")
def serve(port, host, open_browser, model_dir, data_dir):
    """Start the local web page: draw a digit, watch it think, watch it learn.

    The page shows the network reading a digit you draw (with every layer's neurons),
    trains a network live with its cost curve, and has the confusion matrix, the
    misclassified test digits and the gradient-descent playground. It needs no
    internet connection. Stop it with Ctrl-C.

    \b
    Examples:
      digitnet serve
      digitnet serve --open --model-dir models
    """
    import uvicorn

    # Hand the interpreter lock over every millisecond (not every 5): the training thread
    # then cannot keep a request waiting for long between two of its NumPy calls.
    sys.setswitchinterval(0.001)

    from digitnet.web import create_app
    from digitnet.web.app import LOCAL_HOSTS
    from digitnet.web.server import BACKLOG, KEEP_ALIVE_SECONDS, MAX_HEADER_BYTES, connection_limit, make_protocol, quiet_logs

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    local = _is_loopback(host)
    # A loopback address answers to its own name too (127.0.0.2 is loopback but not 127.0.0.1).
    allowed = (*LOCAL_HOSTS, host.strip("[]").lower()) if local else None
    app = create_app(model_dir, data_dir=data_dir, allowed_hosts=allowed)
    for line in app.state.lab.skipped:
        click.echo(f"Skipped a model file: {line}", err=True)
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    click.echo(f"digitnet is serving on {url}  (models in {model_dir.resolve()}; Ctrl-C to stop)")
    if not local:
        click.echo(f"Warning: listening on {host}, so other computers on the network can use this page and "
                   "train on this machine.", err=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    # Bounded connections and timeouts (digitnet.web.server): idle and half-sent requests
    # are closed, and the connection count stays below the file-descriptor limit.
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, access_log=False,
                            http=make_protocol(connection_limit()), timeout_keep_alive=KEEP_ALIVE_SECONDS,
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES, backlog=BACKLOG)
    quiet_logs()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
