"""A small real Confluent-compatible Schema Registry for tests: the three endpoints the store
uses, with the registry's own paths, bodies and error codes, over a real socket.

``requests`` logs every request (``"GET /subjects/x/versions/latest"``); ``before_get``, when
set, runs in the server's thread before a GET is answered (a test can hold an answer there).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Registry:
    """The registry's state: subjects → schema ids, ids → schema text."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.fail_with: int | None = None
        self.requests: list[str] = []
        self.before_get: Callable[[str], None] | None = None


class _Handler(BaseHTTPRequestHandler):
    registry: Registry

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self.registry.requests.append(f"POST {self.path}")
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        length = int(self.headers["Content-Length"])
        text = json.loads(self.rfile.read(length))["schema"]
        try:
            canonical = json.dumps(json.loads(text), sort_keys=True)
        except ValueError:
            return self._send(422, {"error_code": 42201, "message": "Invalid schema"})
        reg = self.registry
        with reg.lock:
            found = [sid for sid, known in reg.schemas.items() if known == canonical]
            sid = found[0] if found else len(reg.schemas) + 1
            reg.schemas[sid] = canonical
            versions = reg.subjects.setdefault(parts[1], [])
            if sid not in versions:
                versions.append(sid)
        self._send(200, {"id": sid})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        reg = self.registry
        reg.requests.append(f"GET {self.path}")
        if reg.before_get is not None:
            reg.before_get(self.path)
        if reg.fail_with:
            return self._send(reg.fail_with, {"error_code": 50001, "message": "store error"})
        parts = self.path.strip("/").split("/")
        with reg.lock:
            if len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
                text = reg.schemas.get(int(parts[2]))
                if text is None:
                    return self._send(404, {"error_code": 40403, "message": "Schema not found"})
                return self._send(200, {"schema": text})
            if len(parts) == 4 and parts[0] == "subjects" and parts[2:] == ["versions", "latest"]:
                versions = reg.subjects.get(parts[1])
                if not versions:
                    return self._send(404, {"error_code": 40401, "message": "Subject not found"})
                sid = versions[-1]
                body = {"subject": parts[1], "version": len(versions), "id": sid}
                return self._send(200, body | {"schema": reg.schemas[sid]})
        self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})


@contextmanager
def serving_registry() -> Iterator[tuple[str, Registry]]:
    """A registry on a free port: ``(url, state)`` while the block runs."""
    state = Registry()
    handler = type("Handler", (_Handler,), {"registry": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
