"""The Payment Gateway pipeline: Stripe events (and approvals) to exactly one ledger entry each.

Input: ``payments.stripe.events`` (raw Stripe bytes + ingress headers, keyed by payment) and
``payments.settlement.commands`` (a person's approve/reject, JSON). Stripe events are handled a
batch at a time (:meth:`PaymentGateway.events`, the road's batch handler; the per-record
handler is the same code on a batch of one). Each envelope is parsed once; then, in waves:

1. **Decide, under lock** (one transaction, :meth:`SettlementRepository.begin_events`): store
   the batch's events once (``UNIQUE (event_id)``; an event already ``processed_at`` is
   skipped), lock the payments and their settlement rows in a fixed order, run the pure state
   machine (:func:`streams.payments.settlement.decide`) on each event in offset order, write
   states, outcomes and audit entries, commit. Duplicates and out-of-order events are absorbed
   here: the state machine never moves an entry backwards. A second booking of one payment in
   a batch waits for the next wave (see :mod:`sinks.payments.deciding`).
2. **Call finance outside any transaction** (:mod:`streams.payments.booking`), with
   ``Idempotency-Key`` = the settlement id, which is derived from Stripe's ids, and a body built
   only from the entry's fixed facts; the wave's bookings go as one batch request. A crash after
   finance booked and before step 3 commits leaves the event unprocessed and the entry
   ``pending``; the redelivered event decides ``SETTLE`` again. That second decision is a
   *re-post* (``Step.reposting``), so finance is first asked for the entry by settlement id:
   found → recorded as settled with its reference, no POST; only a 404 sends the POST again.
   Exactly-once therefore holds however late the retry or replay (README, "Exactly once").
3. **Record the answers** (one transaction, :meth:`SettlementRepository.record`): states
   (``settled`` + finance reference, or ``failed`` + finance's reason), the attempts with
   request and response, the events' outcomes and the audit entries.

Failures ride the road, record by record: finance 5xx/timeouts/409 and database trouble are
retryable errors (the attempt is logged first), 422 and undecodable input are fatal (dead
letter), a finance refusal (402, other 4xx) is a business outcome: ``failed`` with the reason,
never retried. Large charges stop in ``pending_approval``; their ``large_payment`` trigger is
published before the event is marked processed, so a crash in between publishes it again (its
``dedup_key`` lets the notification service drop the repeat).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from schemas.models import LARGE_PAYMENT, NotificationTrigger
from sinks.payments.finance import FinanceClient
from sinks.payments.store import EventRecord, Pending, SettlementRepository, Step
from streams.payments import metrics
from streams.payments.booking import Booking, Settler, Waiting, count
from streams.payments.events import (
    PaymentEvent,
    created_at,
    decode,
    parse_command,
    parse_envelope,
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
from streams.road.coalesce import Coalescer
from streams.road.pipeline import BatchHandler, Handler
from streams.triggers import TriggerPublisher
from synapseops import headers as h
from synapseops.errors import SchemaInvalid, classify
from synapseops.ids import trace_id_of
from synapseops.logging import get_logger
from synapseops.settings import PaymentSettings, Settings
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


Answer = Outcome | BaseException


class PaymentGateway:
    """The handler of the ``payment-settlement`` pipeline (see the module docstring)."""

    def __init__(
        self,
        repository: SettlementRepository,
        finance: FinanceClient,
        triggers: TriggerPublisher,
        policy: ApprovalPolicy,
        waves: PaymentSettings | None = None,
    ) -> None:
        self.repository = repository
        self.finance = finance
        self.settler = Settler(repository, finance)
        self.triggers = triggers
        self.policy = policy
        # Batches of the worker's partitions that arrive together are decided, booked and
        # recorded together (streams/road/coalesce.py): one decide, one finance request and
        # one record per wave instead of one per partition.
        waves = waves or PaymentSettings()
        self.events = Coalescer(
            self.decide_events,
            max_records=waves.wave_events,
            in_flight=waves.waves_in_flight,
            pipeline=PAYMENT_SETTLEMENT,
        )

    @property
    def handlers(self) -> dict[str, Handler]:
        """One handler per message kind: the road dispatches on the kind a record carries, so
        an approval that failed once is still an approval on a retry tier or after a replay."""
        return {STRIPE_EVENT: self.event, SETTLEMENT_COMMAND: self.command}

    @property
    def batch_handlers(self) -> dict[str, BatchHandler]:
        return {STRIPE_EVENT: self.events}

    async def event(self, record: RoadRecord) -> Outcome:
        """A Stripe event (raw bytes + ingress headers): :meth:`events` on a batch of one."""
        (answer,) = await self.events([record])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def decide_events(self, records: Sequence[RoadRecord]) -> list[Answer]:
        """Stripe events, each payment's in offset order (one partition's batch, or several
        partitions' batches one after another); one answer per record, in order."""
        answers: list[Answer | None] = [None] * len(records)
        pending: list[tuple[int, Pending]] = []
        for index, record in enumerate(records):
            try:
                envelope = decode(record.value or b"")
                payment = parse_envelope(envelope)
                pending.append((index, Pending(event_record(record, envelope, payment), payment)))
            except Exception as exc:  # this record's own failure: dead-lettered alone
                answers[index] = exc
        while pending:
            batch = [item for _, item in pending]
            try:
                wave = await asyncio.to_thread(self.repository.begin_events, batch, self.decide)
            except Exception as exc:
                if len(pending) > 1 and classify(exc) != "retryable":
                    # Data PostgreSQL refuses for one record (a NUL in a text field) fails
                    # the wave's statements for all of them: each is decided alone, in offset
                    # order, so only that one is dead-lettered and its neighbours settle.
                    for index, _ in pending:
                        (answers[index],) = await self.decide_events([records[index]])
                else:
                    for index, _ in pending:
                        answers[index] = exc
                break
            if not wave.decided:
                raise RuntimeError("a wave decided nothing")  # the first record is never deferred
            decided = [(pending[j][0], pending[j][1].event, s) for j, s in wave.decided.items()]
            for index, answer in (await self._conclude(decided)).items():
                answers[index] = answer
            pending = [pending[j] for j in wave.deferred]
        return [a if a is not None else RuntimeError("record left unanswered") for a in answers]

    def decide(
        self, payment: PaymentEvent, current: Settlement | None, refunded_before: int
    ) -> Decision:
        return decide(payment, current, self.policy, refunded_before)

    async def _conclude(self, decided: list[tuple[int, EventRecord, Step]]) -> dict[int, Answer]:
        """What the decided events of a wave come to: triggers, finance, the recorded answers."""
        results: dict[int, Answer] = {}
        bookings: list[Booking] = []
        approvals: list[tuple[int, EventRecord, Settlement]] = []
        for index, stored, step in decided:
            decision, settlement = step.decision, step.settlement
            if step.duplicate:
                results[index] = Outcome("skipped", f"event {stored.event_id} already processed")
            elif decision is None or settlement is None:
                results[index] = Outcome(
                    "skipped", f"{stored.event_type} is not a settlement event"
                )
            elif decision.action is Action.IGNORE:
                results[index] = Outcome("skipped", decision.reason)
            elif decision.action is Action.RECORD:
                count(settlement)
                results[index] = Outcome("done", f"{decision.settlement_id} {decision.state}")
            elif decision.action is Action.AWAIT_APPROVAL:
                count(settlement)
                approvals.append((index, stored, settlement))
            else:
                bookings.append(Booking(index, step, stored.event_id, path="direct"))
        waiting: list[Waiting] = []
        published = await asyncio.gather(
            *(self._announce(stored, settlement) for _, stored, settlement in approvals),
            return_exceptions=True,
        )
        for (index, stored, settlement), failure in zip(approvals, published, strict=True):
            if isinstance(failure, BaseException):
                results[index] = failure
            else:
                lock_key = stored.payment_id or stored.event_id
                waiting.append(Waiting(index, stored.event_id, settlement.settlement_id, lock_key))
        if bookings or waiting:
            results |= await self.settler.settle(bookings, waiting)
        return results

    async def _announce(self, stored: EventRecord, settlement: Settlement) -> None:
        trigger = large_payment_trigger(settlement, stored.traceparent)
        key = settlement.payment_id.encode()
        await self.triggers.publish(trigger, key=key, traceparent=stored.traceparent)
        metrics.LARGE_PAYMENT_TRIGGERS.inc()

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
            count(step.settlement)
            return Outcome("done", f"{command.settlement_id} rejected by {command.actor}")
        (answer,) = (await self.settler.settle([Booking(0, step, None, "approved")])).values()
        if isinstance(answer, BaseException):
            raise answer
        return answer


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


def build_gateway(settings: Settings, runtime: Runtime) -> PaymentGateway:
    return PaymentGateway(
        SettlementRepository(runtime.engine),
        FinanceClient.from_settings(settings),
        TriggerPublisher(runtime.producer, settings),
        ApprovalPolicy(dict(settings.payments.approval_thresholds)),
        settings.payments,
    )


def pipelines(runtime: Runtime) -> list[Pipeline]:
    gateway = build_gateway(runtime.settings, runtime)
    return [
        Pipeline.declared(
            PAYMENT_SETTLEMENT,
            gateway.handlers,
            runtime.settings,
            batch_handlers=gateway.batch_handlers,
        )
    ]
