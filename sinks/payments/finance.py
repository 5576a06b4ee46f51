"""The finance ledger client: one settlement, one ``POST /v1/settlements``, one ledger entry.

The ``Idempotency-Key`` is the settlement id (derived from Stripe's ids), and the body is built
only from the settlement's own immutable facts — never a timestamp or a trace id — so a retry,
a redelivery after a crash or a replay sends the *same* request and finance answers with the
response it stored the first time instead of booking again.

Answers, mapped onto the error tree (:mod:`synapseops.errors`):

==========================  ==================================================================
2xx                          :class:`FinanceReceipt` with finance's ``reference``
409 (same key in flight)     ``TargetUnavailable(status=409)`` — retryable: the first try is
                             still running; the next one gets its stored answer
408, 429, 5xx, timeouts      retryable (mapped by :class:`sinks.http.HttpTarget`)
422 (key reused, new body)   ``TargetRejected`` — fatal: the same key can never book this body
401, 403, 404                ``TargetRejected`` — fatal: our credentials or URL are wrong, not
                             the settlement; the dead letter waits for a fix and a replay
402, other 4xx               :class:`FinanceRefused` (a ``BusinessRejection``) with the reason
==========================  ==================================================================

Every outcome carries the HTTP status and the (capped) body for the attempt log.

Exactly-once does not rest on the key's retention. Finance keeps an ``Idempotency-Key`` for a
limited time (24 h for Stripe-like APIs, the sandbox's default): a re-post within it gets the
stored answer, a re-post after it would book again. So before re-posting a settlement whose
earlier call has an unknown outcome (timeout, connection reset after sending, 5xx, a crash
mid-call), the gateway asks :meth:`FinanceClient.find` — ``GET /v1/settlements/{settlement_id}``
— and a found entry is recorded as settled with its reference, with no second POST. Only a 404
(finance has no such entry) lets the POST go out again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sinks.http import HttpTarget
from synapseops.errors import (
    FinanceRefused,
    SchemaInvalid,
    TargetRejected,
    TargetUnavailable,
)
from synapseops.settings import Settings

SETTLEMENTS_PATH = "/v1/settlements"
FATAL_STATUSES = frozenset({401, 403, 404, 422})


@dataclass(frozen=True)
class SettlementRequest:
    """What finance books. Every field is fixed once the settlement id is (see module doc)."""

    settlement_id: str
    payment_id: str
    kind: str
    amount: int  # minor units
    currency: str

    def body(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "amount": self.amount,
            "currency": self.currency,
            "kind": self.kind,
            "settlement_id": self.settlement_id,
        }


@dataclass(frozen=True)
class FinanceReceipt:
    reference: str
    status: int
    body: str
    replayed: bool  # finance answered from its idempotency store
    elapsed_s: float
    found: bool = False  # the entry was looked up (it was booked by an earlier call)


class FinanceClient:
    """Settlement calls to one finance ledger; share one per process (it pools connections)."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.target = HttpTarget("finance", base_url, timeout_s=timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> FinanceClient:
        payments = settings.payments
        return cls(payments.finance_url, timeout_s=payments.finance_timeout_s)

    async def settle(self, request: SettlementRequest) -> FinanceReceipt:
        """Book ``request`` once. Raises the error tree as the module docstring says."""
        started = time.perf_counter()
        try:
            response = await self.target.request(
                "POST",
                SETTLEMENTS_PATH,
                json_body=request.body(),
                headers={"Idempotency-Key": request.settlement_id},
            )
        except TargetRejected as exc:
            raise _refusal(exc) from exc
        body_text = response.body.decode("utf-8", "replace")
        reference = _reference(response.body)
        if reference is None:
            # A 2xx without a reference cannot be recorded or reconciled: a person must look.
            raise SchemaInvalid(f"finance answered {response.status} without a reference")
        return FinanceReceipt(
            reference=reference,
            status=response.status,
            body=body_text,
            replayed=response.headers.get("idempotent-replayed") == "true",
            elapsed_s=time.perf_counter() - started,
        )

    async def find(self, request: SettlementRequest) -> FinanceReceipt | None:
        """The entry finance holds for ``request``'s settlement id, or None (404).

        An entry whose amount, currency or kind differ from ``request`` is not this booking:
        :class:`SchemaInvalid` (fatal), a person must look. Other failures raise the error
        tree like :meth:`settle` (retryable ones are worth the wait: re-posting blind is not).
        """
        started = time.perf_counter()
        try:
            response = await self.target.request(
                "GET", f"{SETTLEMENTS_PATH}/{quote(request.settlement_id, safe='')}"
            )
        except TargetRejected as exc:
            if exc.status == 404:
                return None
            raise
        try:
            entry = json.loads(response.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SchemaInvalid(f"finance's entry for {request.settlement_id} is not JSON") from exc
        reference = entry.get("reference") if isinstance(entry, dict) else None
        if not isinstance(reference, str) or not reference:
            raise SchemaInvalid(f"finance's entry for {request.settlement_id} has no reference")
        booked = (entry.get("amount"), str(entry.get("currency", "")).upper(), entry.get("kind"))
        if booked != (request.amount, request.currency.upper(), request.kind):
            raise SchemaInvalid(
                f"finance holds {request.settlement_id} as {booked}, not "
                f"{(request.amount, request.currency.upper(), request.kind)}"
            )
        return FinanceReceipt(
            reference=reference,
            status=response.status,
            body=response.body.decode("utf-8", "replace"),
            replayed=True,
            elapsed_s=time.perf_counter() - started,
            found=True,
        )

    async def aclose(self) -> None:
        await self.target.aclose()


def _refusal(exc: TargetRejected) -> Exception:
    if exc.status == 409:
        error = TargetUnavailable(
            "finance is still processing this Idempotency-Key (409); retry for its answer",
            status=409,
        )
        return error
    if exc.status in FATAL_STATUSES:
        return exc
    return FinanceRefused(_reason(exc.body, exc.status), status=exc.status, body=exc.body)


def _reason(body: str, status: int) -> str:
    """Finance's own word for the refusal (``error``/``message``), else the status."""
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        for name in ("error", "code", "message"):
            value = parsed.get(name)
            if isinstance(value, str) and value:
                return value
    return f"finance refused with {status}"


def _reference(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    reference = parsed.get("reference") if isinstance(parsed, dict) else None
    return reference if isinstance(reference, str) and reference else None
