"""The Payment Gateway pipeline: Stripe events (and approvals) to exactly one ledger entry each.

Input: ``payments.stripe.events`` (raw Stripe bytes + ingress headers, keyed by payment) and
``payments.settlement.commands`` (a person's approve/reject, JSON). The work per record:

1. **Decide, under lock** (one transaction, :meth:`SettlementRepository.begin_event`): store the
   Stripe event once (``UNIQUE (event_id)``; an event already ``processed_at`` is skipped),
   ``SELECT … FOR UPDATE`` the settlement row, run the pure state machine
   (:func:`streams.payments.settlement.decide`), write the new state + audit entry, commit.
   Duplicates and out-of-order events are absorbed here: the state machine never moves an
   entry backwards.
2. **Call finance outside any transaction**, with ``Idempotency-Key`` = the settlement id,
   which is derived from Stripe's ids, and a body built only from the entry's fixed facts. A
   crash after finance booked and before step 3 commits leaves the event unprocessed and the
   entry ``pending``; the redelivered event decides ``SETTLE`` again. That second decision is
   a *re-post* (the entry was asked before, ``Step.reposting``), so finance is first asked for
   the entry by settlement id: found → recorded as settled with its reference, no POST; only
   a 404 sends the POST again, whose key finance answers from its store while it keeps it.
   Exactly-once therefore holds however late the retry or replay (README, "Exactly once"). A
   concurrent try of the same key (a retry tier racing the main input) gets 409 and retries.
3. **Record the answer** (one transaction, :meth:`SettlementRepository.finish`): state
   (``settled`` + finance reference, or ``failed`` + finance's reason), the attempt with request
   and response, the event's outcome and the audit entry.

Failures ride the road: finance 5xx/timeouts/409 and database trouble raise retryable errors
(the attempt is logged first), 422 and undecodable input are fatal (dead letter), a finance
refusal (402, other 4xx) is a business outcome: ``failed`` with the reason, never retried.
Large charges stop in ``pending_approval``; their ``large_payment`` trigger is published before
the event is marked processed, so a crash in between publishes it again (its ``dedup_key``
lets the notification service drop the repeat).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from schemas.models import LARGE_PAYMENT, NotificationTrigger
from sinks.payments.finance import FinanceClient, FinanceReceipt, SettlementRequest
from sinks.payments.store import Attempt, EventRecord, SettlementRepository, Step
from sinks.payments.tables import ATTEMPT_FATAL, ATTEMPT_REJECTED, ATTEMPT_RETRY, ATTEMPT_SETTLED
from streams.payments import metrics
from streams.payments.events import (
    PaymentEvent,
    created_at,
    decode,
    parse,
    parse_command,
    payment_key,
)
from streams.payments.settlement import (
    Action,
    ApprovalPolicy,
    Decision,
    Settlement,
    after_approval,
    decide,
)
from streams.road import Outcome, Pipeline, RoadRecord
from streams.road.pipeline import Handler
from streams.triggers import TriggerPublisher
from synapseops import headers as h
from synapseops.errors import (
    FatalError,
    FinanceRefused,
    RetryableError,
    SchemaInvalid,
    SynapseOpsError,
)
from synapseops.ids import trace_id_of
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import (
    PAYMENT_SETTLEMENT,
    SETTLEMENT_COMMAND,
    STRIPE_EVENT,
)

if TYPE_CHECKING:
    from streams.bootstrap import Runtime

log = get_logger(__name__)


def large_payment_trigger(settlement: Settlement, traceparent: str | None) -> NotificationTrigger:
    """The ``large_payment`` trigger of a settlement that waits for a person's approval."""
    sid = settlement.settlement_id
    return NotificationTrigger(
        kind=LARGE_PAYMENT,
        pipeline=PAYMENT_SETTLEMENT,
        subject_id=sid,
        summary=(
            f"Payment {settlement.payment_id}: {settlement.amount} {settlement.currency} "
            "(minor units) waits for approval"
        ),
        details={
            "settlement_id": sid,
            "payment_id": settlement.payment_id,
            "amount_minor": str(settlement.amount),
            "currency": settlement.currency,
            "approve": f"/api/v1/settlements/{sid}/approve",
            "reject": f"/api/v1/settlements/{sid}/reject",
        },
        occurred_at=datetime.now(UTC),
        trace_id=trace_id_of(traceparent) or "0" * 32,
        severity="warning",
        dedup_key=f"large_payment:{sid}",
    )


class PaymentGateway:
    """The handler of the ``payment-settlement`` pipeline (see the module docstring)."""

    def __init__(
        self,
        repository: SettlementRepository,
        finance: FinanceClient,
        triggers: TriggerPublisher,
        policy: ApprovalPolicy,
    ) -> None:
        self.repository = repository
        self.finance = finance
        self.triggers = triggers
        self.policy = policy

    @property
    def handlers(self) -> dict[str, Handler]:
        """One handler per message kind: the road dispatches on the kind a record carries, so
        an approval that failed once is still an approval on a retry tier or after a replay."""
        return {STRIPE_EVENT: self.event, SETTLEMENT_COMMAND: self.command}

    async def event(self, record: RoadRecord) -> Outcome:
        """A Stripe event (raw bytes + ingress headers)."""
        raw = record.value or b""
        envelope = decode(raw)
        payment = parse(raw)
        stored = event_record(record, envelope, payment)
        policy = self.policy

        def decide_here(current: Settlement | None, refunded_before: int) -> Decision:
            assert payment is not None
            return decide(payment, current, policy, refunded_before)

        step = await asyncio.to_thread(self.repository.begin_event, stored, payment, decide_here)
        if step.duplicate:
            return Outcome("skipped", f"event {stored.event_id} already processed")
        decision = step.decision
        if decision is None or step.settlement is None:
            return Outcome("skipped", f"{stored.event_type} is not a settlement event")
        if decision.action is Action.IGNORE:
            return Outcome("skipped", decision.reason)
        if decision.action is Action.RECORD:
            _count(step.settlement)
            return Outcome("done", f"{decision.settlement_id} {decision.state}")
        if decision.action is Action.AWAIT_APPROVAL:
            _count(step.settlement)
            trigger = large_payment_trigger(step.settlement, stored.traceparent)
            await self.triggers.publish(
                trigger, key=step.settlement.payment_id.encode(), traceparent=stored.traceparent
            )
            metrics.LARGE_PAYMENT_TRIGGERS.inc()
            await asyncio.to_thread(self.repository.mark_waiting, stored.event_id)
            return Outcome("done", f"{decision.settlement_id} waits for approval")
        return await self._settle(step, stored.event_id, path="direct")

    async def command(self, record: RoadRecord) -> Outcome:
        """A person's approve/reject of a settlement waiting for approval."""
        command = parse_command(record.value)
        approved = command.decision == "approve"

        def decide_here(current: Settlement) -> Decision:
            return after_approval(current, approved, command.actor, command.reason)

        step = await asyncio.to_thread(
            self.repository.begin_command,
            command.settlement_id,
            decide_here,
            command.actor,
            command.at,
        )
        decision = step.decision
        assert decision is not None and step.settlement is not None
        if decision.action is Action.IGNORE:
            return Outcome("skipped", decision.reason)
        if decision.action is Action.RECORD:
            _count(step.settlement)
            return Outcome("done", f"{command.settlement_id} rejected by {command.actor}")
        return await self._settle(step, None, path="approved")

    async def _settle(self, step: Step, event_id: str | None, *, path: str) -> Outcome:
        settlement = step.settlement
        assert settlement is not None
        request = SettlementRequest(
            settlement_id=settlement.settlement_id,
            payment_id=settlement.payment_id,
            kind=settlement.kind.value,
            amount=settlement.amount,
            currency=settlement.currency,
        )
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        sent: dict[str, Any] = {"idempotency_key": request.settlement_id, "body": request.body()}
        if step.reposting:
            sent["looked_up_first"] = f"GET /v1/settlements/{request.settlement_id}"

        def attempt(
            outcome: str, status: int | None, body: str | None, error: str | None
        ) -> Attempt:
            return Attempt(
                settlement_id=settlement.settlement_id,
                event_id=event_id,
                started_at=started_at,
                duration_ms=int((time.perf_counter() - started) * 1000),
                request=sent,
                response_status=status,
                response_body=body,
                outcome=outcome,
                error_class=error,
            )

        try:
            receipt: FinanceReceipt = await self._book(request, reposting=step.reposting)
        except FinanceRefused as exc:
            metrics.FINANCE_CALLS.labels(ATTEMPT_REJECTED, str(exc.status)).inc()
            metrics.FINANCE_SECONDS.observe(time.perf_counter() - started)
            refused = attempt(ATTEMPT_REJECTED, exc.status, exc.body, type(exc).__name__)
            done = await asyncio.to_thread(self.repository.finish, refused, refusal=exc.reason)
            _count(done.settlement)
            return Outcome("rejected", f"finance refused {settlement.settlement_id}: {exc.reason}")
        except (RetryableError, FatalError) as exc:
            kind = ATTEMPT_RETRY if isinstance(exc, RetryableError) else ATTEMPT_FATAL
            status = getattr(exc, "status", None)
            metrics.FINANCE_CALLS.labels(kind, str(status or "none")).inc()
            metrics.FINANCE_SECONDS.observe(time.perf_counter() - started)
            body = getattr(exc, "body", None) or str(exc)
            await self._log_attempt(attempt(kind, status, body, type(exc).__name__))
            raise
        metrics.FINANCE_CALLS.labels(ATTEMPT_SETTLED, str(receipt.status)).inc()
        metrics.FINANCE_SECONDS.observe(receipt.elapsed_s)
        booked = attempt(ATTEMPT_SETTLED, receipt.status, receipt.body, None)
        done = await asyncio.to_thread(self.repository.finish, booked, reference=receipt.reference)
        if done.newly_settled:
            _count(done.settlement)
            metrics.AMOUNT_MINOR.labels(settlement.currency, settlement.kind.value).inc(
                settlement.amount
            )
            if done.received_at is not None:
                latency = (datetime.now(UTC) - done.received_at).total_seconds()
                metrics.SETTLEMENT_LATENCY.labels(path).observe(max(latency, 0.0))
        return Outcome("done", f"{settlement.settlement_id} settled as {receipt.reference}")

    async def _book(self, request: SettlementRequest, *, reposting: bool) -> FinanceReceipt:
        """POST the booking, unless an earlier call with an unknown outcome already made it:
        then finance is asked first, so exactly-once never rests on its key retention."""
        if reposting:
            found = await self.finance.find(request)
            if found is not None:
                log.info(
                    "settlement found at finance; not posted again",
                    extra={"settlement_id": request.settlement_id, "reference": found.reference},
                )
                return found
        return await self.finance.settle(request)

    async def _log_attempt(self, attempt: Attempt) -> None:
        try:
            await asyncio.to_thread(self.repository.record_attempt, attempt)
        except SynapseOpsError:
            # The finance error is what the road must see; a lost log line is not worth more.
            log.warning(
                "finance attempt not logged",
                exc_info=True,
                extra={"settlement_id": attempt.settlement_id},
            )


def event_record(
    record: RoadRecord, envelope: dict[str, Any], payment: PaymentEvent | None
) -> EventRecord:
    """The ``payment_events`` row of one consumed record (raw bytes and HTTP headers kept)."""
    ingress = h.IngressHeaders.read(record.headers)
    event_id = envelope.get("id") or ingress.event_id
    if not isinstance(event_id, str) or not event_id:
        raise SchemaInvalid("Stripe event without an id")
    traceparent = ingress.traceparent
    return EventRecord(
        event_id=event_id,
        payment_id=payment.payment_id if payment else payment_key(envelope),
        event_type=str(envelope.get("type") or ingress.event_type or ""),
        created=created_at(envelope),
        api_version=envelope.get("api_version"),
        livemode=envelope.get("livemode") if isinstance(envelope.get("livemode"), bool) else None,
        raw=record.value or b"",
        http_headers=ingress.http_headers() or {},
        traceparent=traceparent,
        trace_id=trace_id_of(traceparent),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        received_at=ingress.received_at(record.timestamp_ms),
    )


def _count(settlement: Settlement) -> None:
    metrics.SETTLEMENTS.labels(
        settlement.state.value, settlement.kind.value, settlement.currency
    ).inc()


def build_gateway(settings: Settings, runtime: Runtime) -> PaymentGateway:
    return PaymentGateway(
        SettlementRepository(runtime.engine),
        FinanceClient.from_settings(settings),
        TriggerPublisher(runtime.producer, settings),
        ApprovalPolicy(dict(settings.payments.approval_thresholds)),
    )


def pipelines(runtime: Runtime) -> list[Pipeline]:
    gateway = build_gateway(runtime.settings, runtime)
    return [Pipeline.declared(PAYMENT_SETTLEMENT, gateway.handlers, runtime.settings)]
