"""Finance calls for a batch of bookings, and the one transaction that records their answers.

:meth:`Settler.settle` takes the bookings one wave of the gateway decided (at most one per
payment): re-posts are looked up at finance first (``GET`` by settlement id, concurrently);
the rest are booked with one :meth:`~sinks.payments.finance.FinanceClient.settle_many` call;
then :meth:`~sinks.payments.store.SettlementRepository.record` stores every answer, attempt and
outcome in one transaction. Each booking gets its own answer: an ``Outcome``, or the error the
road classifies for that record alone (a finance 5xx/timeout/409 is retryable, a 422 fatal; a
refusal is a business outcome). A failed call is logged as an attempt in that same transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sinks.payments.finance import FinanceClient, FinanceReceipt, SettlementRequest
from sinks.payments.store import Answer, Attempt, Finished, SettlementRepository, Step
from sinks.payments.tables import ATTEMPT_FATAL, ATTEMPT_REJECTED, ATTEMPT_RETRY, ATTEMPT_SETTLED
from streams.payments import metrics
from streams.payments.settlement import Settlement
from streams.road import Outcome
from synapseops.errors import FinanceRefused, RetryableError
from synapseops.logging import get_logger

log = get_logger(__name__)

LOOKUP_CONCURRENCY = 16  # finance lookups of re-posts in flight at once


@dataclass(frozen=True)
class Booking:
    """One settlement to book: ``index`` is its record's place in the batch."""

    index: int
    step: Step
    event_id: str | None  # the Stripe event that asked (None: a person's approval)
    path: str  # "direct" | "approved", the latency metric's label

    @property
    def settlement(self) -> Settlement:
        assert self.step.settlement is not None
        return self.step.settlement

    @cached_property
    def request(self) -> SettlementRequest:
        settlement = self.settlement
        return SettlementRequest(
            settlement_id=settlement.settlement_id,
            payment_id=settlement.payment_id,
            kind=settlement.kind.value,
            amount=settlement.amount,
            currency=settlement.currency,
        )


@dataclass(frozen=True)
class Waiting:
    """A large payment whose ``large_payment`` trigger is on Kafka: its event is done."""

    index: int
    event_id: str
    settlement_id: str
    lock_key: str  # its payment's (sinks.payments.deciding.Pending.lock_key)


def count(settlement: Settlement) -> None:
    metrics.child(
        metrics.SETTLEMENTS, settlement.state.value, settlement.kind.value, settlement.currency
    ).inc()


class Settler:
    def __init__(self, repository: SettlementRepository, finance: FinanceClient) -> None:
        self.repository = repository
        self.finance = finance

    async def settle(
        self, bookings: Sequence[Booking], waiting: Sequence[Waiting] = ()
    ) -> dict[int, Outcome | Exception]:
        """Book, record, and answer each booking and waiting event by its index."""
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        calls = await self._call(bookings)
        answers = [
            _answer(booking, call, started_at, started)
            for booking, call in zip(bookings, calls, strict=True)
        ]
        results: dict[int, Outcome | Exception] = {}
        try:
            payments = [b.settlement.payment_id for b in bookings] + [w.lock_key for w in waiting]
            events = [w.event_id for w in waiting]
            recorded = await asyncio.to_thread(self.repository.record, answers, events, payments)
        except Exception as exc:
            # Booked but not recorded: the retry is a re-post, looked up before posting.
            for booking, call, answer in zip(bookings, calls, answers, strict=True):
                failed = call if isinstance(call, Exception) and not answer.final else exc
                results[booking.index] = failed
            results |= {w.index: exc for w in waiting}
            return results
        for w in waiting:
            results[w.index] = Outcome("done", f"{w.settlement_id} waits for approval")
        for booking, call, answer in zip(bookings, calls, answers, strict=True):
            if not answer.final:
                assert isinstance(call, Exception)
                results[booking.index] = call
                continue
            done = recorded[booking.settlement.settlement_id]
            if isinstance(done, Exception):
                results[booking.index] = done
                continue
            results[booking.index] = _outcome(booking, answer, done)
        return results

    async def _call(self, bookings: Sequence[Booking]) -> list[FinanceReceipt | Exception]:
        """Finance's answer to each booking: found by a lookup, or booked now."""
        calls: list[FinanceReceipt | Exception | None] = [None] * len(bookings)
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def look_up(position: int, request: SettlementRequest) -> None:
            async with gate:
                try:
                    calls[position] = await self.finance.find(request)
                except Exception as exc:
                    calls[position] = exc

        await asyncio.gather(
            *(look_up(i, b.request) for i, b in enumerate(bookings) if b.step.reposting)
        )
        for call in calls:
            if isinstance(call, FinanceReceipt):
                log.info(
                    "settlement found at finance; not posted again",
                    extra={"reference": call.reference},
                )
        to_post = [i for i, b in enumerate(bookings) if calls[i] is None]
        posted = await self.finance.settle_many([bookings[i].request for i in to_post])
        for position, answer in zip(to_post, posted, strict=True):
            calls[position] = answer
        return [call for call in calls if call is not None]


def _answer(
    booking: Booking, call: FinanceReceipt | Exception, started_at: datetime, started: float
) -> Answer:
    """The attempt log of one call, with finance's final word if it gave one."""
    request = booking.request
    sent: dict[str, Any] = {"idempotency_key": request.settlement_id, "body": request.body()}
    if booking.step.reposting:
        sent["looked_up_first"] = f"GET /v1/settlements/{request.settlement_id}"
    seconds = call.elapsed_s if isinstance(call, FinanceReceipt) else time.perf_counter() - started

    def attempt(outcome: str, status: int | None, body: str | None, error: str | None) -> Attempt:
        return Attempt(
            settlement_id=request.settlement_id,
            event_id=booking.event_id,
            started_at=started_at,
            duration_ms=int(seconds * 1000),
            request=sent,
            response_status=status,
            response_body=body,
            outcome=outcome,
            error_class=error,
        )

    metrics.FINANCE_SECONDS.observe(seconds)
    if isinstance(call, FinanceReceipt):
        metrics.child(metrics.FINANCE_CALLS, ATTEMPT_SETTLED, str(call.status)).inc()
        booked = attempt(ATTEMPT_SETTLED, call.status, call.body, None)
        return Answer(booked, reference=call.reference)
    if isinstance(call, FinanceRefused):
        metrics.child(metrics.FINANCE_CALLS, ATTEMPT_REJECTED, str(call.status)).inc()
        refused = attempt(ATTEMPT_REJECTED, call.status, call.body, type(call).__name__)
        return Answer(refused, refusal=call.reason)
    kind = ATTEMPT_RETRY if isinstance(call, RetryableError) else ATTEMPT_FATAL
    status = getattr(call, "status", None)
    metrics.child(metrics.FINANCE_CALLS, kind, str(status or "none")).inc()
    body = getattr(call, "body", None) or str(call)
    return Answer(attempt(kind, status, body, type(call).__name__))


def _outcome(booking: Booking, answer: Answer, done: Finished) -> Outcome:
    sid = booking.settlement.settlement_id
    if answer.refusal is not None:
        count(done.settlement)
        return Outcome("rejected", f"finance refused {sid}: {answer.refusal}")
    if done.newly_settled:
        count(done.settlement)
        settlement = booking.settlement
        amount = metrics.child(metrics.AMOUNT_MINOR, settlement.currency, settlement.kind.value)
        amount.inc(settlement.amount)
        if done.received_at is not None:
            latency = (datetime.now(UTC) - done.received_at).total_seconds()
            metrics.child(metrics.SETTLEMENT_LATENCY, booking.path).observe(max(latency, 0.0))
    return Outcome("done", f"{sid} settled as {answer.reference}")
