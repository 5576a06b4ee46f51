"""Run a sandbox inside the current process on free ports — for tests of any package.

::

    with SandboxServer() as sandbox:
        httpx.post(f"{sandbox.url}/_sandbox/faults", json={"target": "finance", "count": 1})
        smtplib.SMTP(sandbox.host, sandbox.smtp_port)

Each instance has its own state, so parallel tests never see each other's requests.
:func:`app_client` calls the same app in-process, for tests that need no real connection.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi.testclient import TestClient

from sandbox.server import create_app
from sandbox.state import SandboxState
from synapseops.settings import SandboxSettings, Settings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SandboxServer:
    def __init__(self, host: str = "127.0.0.1", start_timeout_s: float = 10.0) -> None:
        self.host = host
        self.port = free_port(host)
        self.smtp_port = free_port(host)
        self.settings = Settings(
            sandbox=SandboxSettings(host=host, port=self.port, smtp_port=self.smtp_port)
        )
        self.state = SandboxState.fresh()
        config = uvicorn.Config(
            create_app(self.settings, self.state),
            host=host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)
        self._start_timeout_s = start_timeout_s

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def app_client(base_url: str = "http://sandbox.test") -> TestClient:
    """The sandbox app called in-process (no sockets; the SMTP lifespan does not run) — for
    unit tests of the shapes. Use :class:`SandboxServer` where real connections matter."""
    return TestClient(create_app(Settings(), SandboxState.fresh()), base_url=base_url)
