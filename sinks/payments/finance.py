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

Many settlements at once (:meth:`FinanceClient.settle_many`) go as one
``POST /v1/settlements/batch`` of keyed items, each answered as its single ``POST`` would be
(same key store; per item 409 ``idempotency_key_reused`` is the batch API's word for the
single API's 422, and 422 is an invalid item). A ledger without that route (404 or 405 on the
first try) is remembered as such, and the client books with single ``POST``\ s instead:
at most :data:`FALLBACK_CONCURRENCY` at once, the settlements of one payment one after the
other in the order given. A batch request that fails as a whole (timeout, 5xx) fails each of
its items the same way: an unknown outcome, looked up before the next post.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msgspec

from sinks.http import HttpTarget
from synapseops.errors import (
    FinanceRefused,
    SchemaInvalid,
    TargetRejected,
    TargetUnavailable,
)
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)

SETTLEMENTS_PATH = "/v1/settlements"
BATCH_PATH = "/v1/settlements/batch"
FATAL_STATUSES = frozenset({401, 403, 404, 422})
# A ledger answering these to the batch route has none (405: the path exists for GET only).
NO_BATCH_API = frozenset({404, 405})
BATCH_LIMIT = 500  # items per batch request
FALLBACK_CONCURRENCY = 16  # single POSTs in flight at once against a ledger without batches
JSON_HEADERS = {"Content-Type": "application/json"}
_FAST = msgspec.json.Decoder()


def _json(body: bytes) -> Any:
    """``json.loads(body)``, by msgspec when it can (twice as fast on a batch's answer);
    whatever msgspec refuses, json.loads decides (a ValueError when it is not JSON)."""
    try:
        return _FAST.decode(body)
    except msgspec.DecodeError:
        return json.loads(body)


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
        self.batch_api: bool | None = None  # unknown until the first batch is sent

    @classmethod
    def from_settings(cls, settings: Settings) -> FinanceClient:
        return cls(settings.finance_url, timeout_s=settings.payments.finance_timeout_s)

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

    async def settle_many(
        self, requests: Sequence[SettlementRequest]
    ) -> list[FinanceReceipt | Exception]:
        """Book each of ``requests`` once (distinct settlement ids); one answer per request, in
        order: its receipt, or the error :meth:`settle` would have raised for it."""
        if len(requests) == 1:
            return [await _answer_of(self.settle(requests[0]))]
        answers: list[FinanceReceipt | Exception] = []
        for start in range(0, len(requests), BATCH_LIMIT):
            chunk = requests[start : start + BATCH_LIMIT]
            if self.batch_api is not False:
                batch = await self._post_batch(chunk)
                if batch is not None:
                    answers.extend(batch)
                    continue
            answers.extend(await self._settle_singly(chunk))
        return answers

    async def _post_batch(
        self, requests: Sequence[SettlementRequest]
    ) -> list[FinanceReceipt | Exception] | None:
        """The batch request's answers, or None: this ledger has no batch API."""
        items = [{"idempotency_key": r.settlement_id, "body": r.body()} for r in requests]
        # Encoded by msgspec (the same JSON, several times faster than httpx's json.dumps).
        content = msgspec.json.encode({"items": items})
        started = time.perf_counter()
        try:
            response = await self.target.request(
                "POST", BATCH_PATH, content=content, headers=JSON_HEADERS
            )
        except TargetRejected as exc:
            if exc.status in NO_BATCH_API and self.batch_api is None:
                log.warning(
                    "finance has no batch API; booking with single calls",
                    extra={"status": exc.status},
                )
                self.batch_api = False
                return None
            return [_refusal(exc)] * len(requests)
        except Exception as exc:  # the whole request failed: each item failed the same way
            return [exc] * len(requests)
        self.batch_api = True
        elapsed = time.perf_counter() - started
        try:
            results = _json(response.body)["results"]
            if not isinstance(results, list) or len(results) != len(requests):
                raise ValueError("not one result per item")
        except (ValueError, KeyError, TypeError) as exc:
            error = SchemaInvalid(f"finance's batch answer is not one result per item: {exc}")
            return [error] * len(requests)
        return [_item_answer(result, elapsed) for result in results]

    async def _settle_singly(
        self, requests: Sequence[SettlementRequest]
    ) -> list[FinanceReceipt | Exception]:
        """Single POSTs, bounded in number, one payment's settlements in the order given."""
        answers: dict[int, FinanceReceipt | Exception] = {}
        chains: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            chains.setdefault(request.payment_id, []).append(index)
        gate = asyncio.Semaphore(FALLBACK_CONCURRENCY)

        async def chain(indexes: list[int]) -> None:
            for index in indexes:
                async with gate:
                    answers[index] = await _answer_of(self.settle(requests[index]))

        await asyncio.gather(*(chain(indexes) for indexes in chains.values()))
        return [answers[index] for index in range(len(requests))]

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


async def _answer_of(call: Awaitable[FinanceReceipt]) -> FinanceReceipt | Exception:
    try:
        receipt: FinanceReceipt = await call
    except Exception as exc:
        return exc
    return receipt


def _item_answer(result: Any, elapsed_s: float) -> FinanceReceipt | Exception:
    """One item of a batch answer, mapped as :meth:`FinanceClient.settle` maps a response."""
    status = result.get("status") if isinstance(result, dict) else None
    if not isinstance(status, int):
        return SchemaInvalid("finance's batch answer has an item without a status")
    body = result.get("body")
    text = msgspec.json.encode(body).decode()
    error = body.get("error") if isinstance(body, dict) else None
    if 200 <= status < 300:
        reference = body.get("reference") if isinstance(body, dict) else None
        if not isinstance(reference, str) or not reference:
            return SchemaInvalid(f"finance answered {status} without a reference")
        replayed = result.get("replayed") is True
        return FinanceReceipt(reference, status, text, replayed, elapsed_s)
    if status == 409 and error == "idempotency_key_in_flight":
        return TargetUnavailable(
            "finance is still processing this Idempotency-Key (409); retry for its answer",
            status=409,
            body=text,
        )
    if status == 409 or status in FATAL_STATUSES:
        return TargetRejected(f"finance answered {status}: {text[:200]}", status=status, body=text)
    if status in (408, 429) or status >= 500:
        return TargetUnavailable(
            f"finance answered {status}: {text[:200]}", status=status, body=text
        )
    return FinanceRefused(_reason(text, status), status=status, body=text)


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
