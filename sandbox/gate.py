"""The ASGI gate in front of every target's routes: record, delay, maybe fail, record again.

Requests under ``/<target>/...`` pass through here (``/_sandbox/*`` does not). The gate
records the attempt, asks the :class:`FaultBook` what to do, and either answers the injected
failure itself (the target never sees the request) or hands the request to the target.

A handler refuses by raising :class:`Refusal` with the platform's own answer (auth, rate
limits, bad input); :func:`add_response_headers` adds headers to whatever answer the request
gets (``Sforce-Limit-Info``, ``X-HubSpot-RateLimit-*``, ``X-RateLimit-*``), and
:func:`attempt_seq` tells a handler which recorded attempt it is serving.

Latency of a request that passes is spent *inside* the target's work: a handler that has a
meaningful "in progress" window (finance, between claiming an idempotency key and completing
it) calls :func:`simulate_work` there; otherwise the gate spends it just before the response
starts — after the target changed its state, the way a slow server behaves for a client that
times out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.faults import FaultBook
from sandbox.recorder import Recorder

SCOPE_KEY = "sandbox.gate"
EXTRA_HEADERS_KEY = "sandbox.headers"


class Refusal(Exception):  # noqa: N818 - it is the answer, not a failure of the sandbox
    """Raised by a target's handler to answer ``response`` at once (auth, limits, bad input)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def answer_refusal(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return exc.response


def add_response_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Headers the gate adds to this request's answer, whatever route or handler answers it."""
    request.scope.setdefault(EXTRA_HEADERS_KEY, {}).update(headers)


@dataclass
class GateContext:
    target: str
    latency_s: float
    record_seq: int | None = None  # the attempt's seq in the recorder
    latency_spent: bool = False
    refused: bool = False

    async def spend_latency(self) -> None:
        if not self.latency_spent and self.latency_s > 0:
            self.latency_spent = True
            await asyncio.sleep(self.latency_s)


async def simulate_work(request: Request) -> None:
    """Spend this request's injected latency now (once), while the target is 'working'."""
    context: GateContext | None = request.scope.get(SCOPE_KEY)
    if context is not None:
        await context.spend_latency()


def mark_refused(request: Request) -> None:
    """A 2xx answer that is a refusal all the same (Slack's ``ok: false``): not 'received'."""
    context: GateContext | None = request.scope.get(SCOPE_KEY)
    if context is not None:
        context.refused = True


def attempt_seq(request: Request) -> int | None:
    """This request's ``seq`` in ``/_sandbox/<target>/attempts`` (None outside the gate)."""
    context: GateContext | None = request.scope.get(SCOPE_KEY)
    return context.record_seq if context is not None else None


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class TargetGate:
    def __init__(
        self, app: ASGIApp, *, recorder: Recorder, faults: FaultBook, targets: frozenset[str]
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.faults = faults
        self.targets = targets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        target = path.split("/", 2)[1] if scope["type"] == "http" and "/" in path else ""
        if target not in self.targets:
            await self.app(scope, receive, send)
            return

        raw = await _read_body(receive)
        query = scope.get("query_string", b"").decode("latin-1")
        record = self.recorder.begin(target, scope["method"], path, query, _headers(scope), raw)
        decision = self.faults.decide(target, path)
        if decision.fail_status is not None:
            await asyncio.sleep(decision.latency_s)
            self.recorder.finish(record, decision.fail_status, "injected", replayed=False)
            body = {"error": "sandbox_injected_fault", "status": decision.fail_status}
            response = JSONResponse(
                {**body, "target": target},
                status_code=decision.fail_status,
                headers=decision.headers(),
            )
            await response(scope, receive, send)
            return

        context = GateContext(target, decision.latency_s, record_seq=record.seq)
        scope[SCOPE_KEY] = context
        body_given = False

        async def replay_receive() -> Message:
            nonlocal body_given
            if not body_given:
                body_given = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        async def gated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status: int = message["status"]
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                accepted = status < 400 and not context.refused
                self.recorder.finish(
                    record,
                    status,
                    "accepted" if accepted else "refused",
                    replayed=headers.get(b"idempotent-replayed") == b"true",
                )
                extra: dict[str, str] = scope.get(EXTRA_HEADERS_KEY) or {}
                if extra:
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            *(
                                (k.lower().encode("latin-1"), v.encode("latin-1"))
                                for k, v in extra.items()
                            ),
                        ],
                    }
                await context.spend_latency()
            await send(message)

        try:
            await self.app(scope, replay_receive, gated_send)
        except Exception:
            if record.status is None:
                self.recorder.finish(record, 500, "refused", replayed=False)
            raise
