"""The local web app behind ``digitnet serve``: draw a digit, watch it think, watch it learn.

:func:`~digitnet.web.app.create_app` builds the ASGI application; its page lives in
``static/`` and works offline (no build step, nothing fetched from the internet).
"""

from digitnet.web.app import create_app

__all__ = ["create_app"]
