"""Outbound HTTP to targets (ERP, finance, CRMs, chat): httpx in, the error tree out.

Every answer and failure of a target is turned into what the reliability road reads:

=====================================  ==============================================
connection refused / reset / DNS       ``TargetUnavailable`` (retryable)
no answer within the timeout            ``TargetTimeout`` (retryable)
429                                     ``RateLimited`` with ``Retry-After`` (retryable)
408, 5xx                                ``TargetUnavailable`` with the status (retryable)
any other 4xx                           ``TargetRejected`` with status and body (fatal)
2xx / 3xx                               the :class:`TargetResponse`
=====================================  ==============================================

A service with a business meaning for some 4xx (finance refusing a settlement) catches
``TargetRejected`` and records the refusal as an outcome. httpx types never leave this module.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from synapseops.errors import RateLimited, TargetRejected, TargetTimeout, TargetUnavailable

BODY_EXCERPT = 2048


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
    """Raise the road's error for a failed answer; return quietly for a success."""
    if status < 400:
        return
    excerpt = body[:BODY_EXCERPT].decode("utf-8", "replace")
    if status == 429:
        raise RateLimited(
            f"{target} answered 429", retry_after=retry_after_seconds(headers.get("retry-after"))
        )
    if status == 408 or status >= 500:
        error = TargetUnavailable(f"{target} answered {status}: {excerpt[:200]}", status=status)
        error.retry_after = retry_after_seconds(headers.get("retry-after"))
        raise error
    raise TargetRejected(
        f"{target} answered {status}: {excerpt[:200]}", status=status, body=excerpt
    )


class HttpTarget:
    """One target's base URL with its timeouts, shared by every call of a process."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self._client = client or httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            headers=dict(headers or {}),
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
        try:
            response = await self._client.request(
                method, path, json=json_body, content=content, headers=dict(headers or {})
            )
        except httpx.TimeoutException as exc:
            raise TargetTimeout(f"{self.name} did not answer {method} {path} in time") from exc
        except httpx.TransportError as exc:
            raise TargetUnavailable(f"{self.name} unreachable for {method} {path}: {exc}") from exc
        elapsed = time.perf_counter() - started
        lowered = {k.lower(): v for k, v in response.headers.items()}
        classify_response(self.name, response.status_code, lowered, response.content)
        return TargetResponse(response.status_code, lowered, response.content, elapsed)

    async def aclose(self) -> None:
        await self._client.aclose()
