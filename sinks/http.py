"""Outbound HTTP to targets (ERP, finance, CRMs, chat): httpx in, the error tree out.

Every answer and failure of a target is turned into what the reliability road reads:

=====================================  ==============================================
connection refused / reset / DNS       ``TargetUnavailable`` (retryable)
no answer within the timeout            ``TargetTimeout`` (retryable)
429                                     ``RateLimited`` with ``Retry-After`` (retryable)
408, 5xx                                ``TargetUnavailable`` with the status (retryable)
3xx                                     ``TargetRejected`` with the ``Location`` (fatal)
any other 4xx                           ``TargetRejected`` with status and body (fatal)
address refused by the SSRF guard       ``TargetForbidden`` (fatal)
2xx with a body above the cap           ``ResponseTooLarge`` (fatal)
2xx                                     the :class:`TargetResponse`
=====================================  ==============================================

Redirects are never followed: a 3xx means the endpoint is configured wrong (or a target tries
to steer the call elsewhere, past the SSRF guard); following it would also re-send the
credential to wherever it points. The Run keeps the ``Location`` so a person can fix the URL.

Bodies are streamed and read up to ``max_response_bytes`` (``SYNAPSEOPS_HTTP_MAX_RESPONSE_BYTES``)
before anything else sees them. An error answer is cut there (only an excerpt is ever kept).
A 2xx above the cap is fatal, not retryable: the same call gets the same oversized answer
again, three tiers later (the Idempotency-Key makes the target answer the same way), and a
person has to look at the endpoint anyway; a replay after the fix is safe for the same reason.

Every message and body excerpt put into an error is scrubbed of secrets
(:func:`synapseops.redaction.scrub`): a target that echoes the credential back must not put it
into a Run, a dead letter or a log. A service with a business meaning for some 4xx (finance
refusing a settlement) catches ``TargetRejected`` and records the refusal as an outcome.
httpx types never leave this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sinks.http_guard import AddressRefused, GuardedTransport, OutboundPolicy
from synapseops.errors import (
    RateLimited,
    ResponseTooLarge,
    TargetForbidden,
    TargetRejected,
    TargetTimeout,
    TargetUnavailable,
)
from synapseops.redaction import scrub, scrub_headers
from synapseops.settings import Settings

BODY_EXCERPT = 2048
DEFAULT_MAX_RESPONSE_BYTES = 1_048_576
# A body may trickle in below every per-read timeout; the whole call gets this many timeouts.
TOTAL_TIMEOUT_FACTOR = 3


@dataclass(frozen=True)
class TargetResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_s: float

    def json(self) -> Any:
        import json

        return json.loads(self.body) if self.body else None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # RFC 9110 delay-seconds: ASCII digits only
        return float(value)
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # An HTTP-date is GMT; a "-0000" zone parses as naive and must not read as local time.
    moment = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return max(0.0, moment - (time.time() if now is None else now))


def classify_response(target: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise the road's error for an answer that is not a 2xx; return quietly for a 2xx."""
    if 200 <= status < 300:
        return
    excerpt = scrub(body[:BODY_EXCERPT].decode("utf-8", "replace"))
    shown = scrub_headers(headers)
    if status == 429:
        raise RateLimited(
            f"{target} answered 429", retry_after=retry_after_seconds(headers.get("retry-after"))
        )
    if status == 408 or status >= 500:
        error = TargetUnavailable(
            f"{target} answered {status}: {excerpt[:200]}",
            status=status,
            body=excerpt,
            headers=shown,
        )
        error.retry_after = retry_after_seconds(headers.get("retry-after"))
        raise error
    if 300 <= status < 400:
        location = shown.get("location")
        where = f" to {location}" if location else " without a Location"
        raise TargetRejected(
            f"{target} answered {status} (a redirect{where}; redirects are not followed: "
            "fix the endpoint's URL)",
            status=status,
            body=excerpt,
            headers=shown,
        )
    raise TargetRejected(
        f"{target} answered {status}: {excerpt[:200]}", status=status, body=excerpt, headers=shown
    )


async def read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the (decoded) body, and whether there was more."""
    declared = response.headers.get("content-length", "")
    if (
        declared.isdigit()
        and int(declared) > cap
        and response.headers.get("content-encoding", "identity") in ("identity", "")
    ):
        return b"", True
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


class HttpTarget:
    """One target's base URL with its timeouts, shared by every call of a process.

    ``guard`` puts the SSRF guard under every connection (connector targets and sources;
    the operator's own finance URL goes without). Proxies from the environment are never
    used: a proxy would connect on our behalf, past the guard.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        guard: OutboundPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self._client = client or httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            headers=dict(headers or {}),
            follow_redirects=False,
            trust_env=False,
            transport=GuardedTransport(guard) if guard is not None else None,
        )

    @classmethod
    def for_connector(
        cls, name: str, base_url: str, settings: Settings, *, timeout_s: float = 10.0
    ) -> HttpTarget:
        """A connector's target or REST source: user-given URL, so guarded and capped."""
        return cls(
            name,
            base_url,
            timeout_s=timeout_s,
            guard=OutboundPolicy.parse(settings.outbound_allowed_hosts),
            max_response_bytes=settings.http.max_response_bytes,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> TargetResponse:
        started = time.perf_counter()
        what = f"{method} {scrub(path)}"
        try:
            async with asyncio.timeout(self.timeout_s * TOTAL_TIMEOUT_FACTOR):
                status, lowered, body, cut = await self._exchange(
                    method, path, json_body, content, headers
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise TargetTimeout(f"{self.name} did not answer {what} in time") from exc
        except AddressRefused as exc:
            raise TargetForbidden(f"{self.name} refused for {what}: {scrub(str(exc))}") from exc
        except httpx.TransportError as exc:
            raise TargetUnavailable(
                f"{self.name} unreachable for {what}: {scrub(str(exc))}"
            ) from exc
        elapsed = time.perf_counter() - started
        classify_response(self.name, status, lowered, body)
        if cut:
            raise ResponseTooLarge(
                f"{self.name} answered {status} to {what} with a body over "
                f"{self.max_response_bytes} bytes (SYNAPSEOPS_HTTP_MAX_RESPONSE_BYTES); "
                "it was not read"
            )
        return TargetResponse(status, lowered, body, elapsed)

    async def _exchange(
        self,
        method: str,
        path: str,
        json_body: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[int, dict[str, str], bytes, bool]:
        request = self._client.build_request(
            method, path, json=json_body, content=content, headers=dict(headers or {})
        )
        response = await self._client.send(request, stream=True)
        try:
            body, cut = await read_capped(response, self.max_response_bytes)
        finally:
            await response.aclose()
        lowered = {k.lower(): v for k, v in response.headers.items()}
        return response.status_code, lowered, body, cut

    async def aclose(self) -> None:
        await self._client.aclose()
