"""A hostile-ish outside system for the security tests, served over real HTTP in a thread.

- ``/echo/{status}`` answers ``status`` with the request's ``Authorization`` echoed back: in
  the JSON body (raw, and decoded when it is Basic auth), in a response header, and for a
  3xx in the ``Location`` (as a query parameter) — what a careless or malicious target does;
- ``/big/{size}`` answers 200 with ``size`` bytes (``?chunked=1``: without Content-Length);
- ``/redirect`` answers 302 to ``/landing``; ``/landing`` counts what reached it.

Every request is recorded in ``received`` (path and headers).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from api.server import serving_in_thread


@dataclass
class EchoTarget:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [str(item["path"]) for item in self.received]


def _app(target: EchoTarget) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        target.received.append({"path": request.url.path, "headers": dict(request.headers)})
        return await call_next(request)

    @app.post("/echo/{status}")
    async def echo(status: int, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        decoded = ""
        if authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization.split(" ", 1)[1]).decode()
        body = json.dumps(
            {"error": f"refused credentials {authorization}", "decoded": decoded},
            ensure_ascii=True,
        )
        headers = {"X-Echo-Authorization": authorization, "X-Echo-Decoded": quote(decoded)}
        if 300 <= status < 400:
            headers["Location"] = f"https://elsewhere.example/login?token={quote(decoded)}"
        return Response(body, status_code=status, headers=headers, media_type="application/json")

    @app.post("/big/{size}")
    async def big(size: int, chunked: int = 0) -> Response:
        if not chunked:
            return Response(b"x" * size, media_type="application/octet-stream")

        async def pieces() -> AsyncIterator[bytes]:
            sent = 0
            while sent < size:
                piece = min(65536, size - sent)
                sent += piece
                yield b"y" * piece

        return StreamingResponse(pieces(), media_type="application/octet-stream")

    @app.post("/redirect")
    async def redirect() -> Response:
        return Response(status_code=302, headers={"Location": "/landing"})

    @app.api_route("/landing", methods=["GET", "POST"])
    async def landing() -> Response:
        return Response(b'{"landed": true}', media_type="application/json")

    return app


@contextmanager
def echo_target() -> Iterator[EchoTarget]:
    target = EchoTarget()
    with serving_in_thread(_app(target)) as url:
        target.url = url
        yield target
