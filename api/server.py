"""Running the API under uvicorn: in the foreground (``synapseops api``) or in a thread.

uvicorn's own logging config is turned off (``log_config=None``) so its lines go through
the JSON handler of :mod:`synapseops.logging`; its access log is off because
:class:`api.middleware.AccessLogMiddleware` writes a structured one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from api.main import create_app
from synapseops.errors import ConfigurationError
from synapseops.settings import Settings

STARTUP_TIMEOUT_S = 20.0


def _config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on"
    )


def serve(settings: Settings) -> None:
    """Serve the API on ``settings.api.host:port`` until interrupted."""
    uvicorn.Server(_config(create_app(settings), settings.api.host, settings.api.port)).run()


@contextmanager
def serving_in_thread(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` on a free port in a background thread; yields its base URL.

    The socket is bound here (port 0) and handed to uvicorn, so there is no window in which
    another process can take the port. For integration and end-to-end tests.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(app, host, port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}"
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(f"the API did not start on {host}:{port}")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15.0)
        sock.close()
