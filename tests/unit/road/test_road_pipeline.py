"""process(): every way a handler can end, and the router's hand-off headers (no broker)."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest

from streams.road import pipeline as road_pipeline
from streams.road.headers import FailureHistory
from streams.road.pipeline import Outcome, Pipeline, process
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.road.tiers import Hop
from synapseops import errors
from synapseops.headers import MESSAGE_KIND
from synapseops.settings import Settings
from topics.registry import EVENT_LOG, INBOUND_EVENT, PipelineSpec

SPEC = PipelineSpec(name="pay", inputs=("in",), retry_delays=(1.0, 2.0, 3.0))
RECORD = RoadRecord(
    topic="in",
    partition=2,
    offset=17,
    timestamp_ms=1_000,
    key=b"pi_1",
    value=b"\xff raw",
    headers=[("traceparent", b"00-abc"), ("synapseops-event-id", b"evt_1")],
)


class RecordingProducer:
    """Stands in for AsyncProducer.send; fails the first ``refuse`` sends like a lost broker."""

    def __init__(self, refuse: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self.refuse = refuse

    async def send(
        self, topic: str, value: bytes | None, *, key: bytes | None, headers: Any
    ) -> Any:
        if self.refuse:
            self.refuse -= 1
            raise errors.KafkaUnavailable("broker away")
        self.sent.append((topic, key, value, list(headers)))
        return (0, 0)


def _run(handler: Any, producer: RecordingProducer | None = None, **kw: Any) -> Any:
    producer = producer or RecordingProducer()
    router = FailureRouter(producer, clock_ms=lambda: 5_000, rng=random.Random(1))  # type: ignore[arg-type]
    pipeline = Pipeline(name="pay", spec=SPEC, handlers={"pay": handler}, jitter=0.0, **kw)
    return asyncio.run(process(pipeline, RECORD, router)), producer


def _raising(exc: BaseException) -> Any:
    async def handler(record: RoadRecord) -> Outcome:
        raise exc

    return handler


def test_done_is_returned_and_nothing_is_routed() -> None:
    async def handler(record: RoadRecord) -> Outcome:
        return Outcome("done", "stored")

    result, producer = _run(handler)
    assert result == Outcome("done", "stored")
    assert producer.sent == []


@pytest.mark.parametrize(
    ("exc", "topic", "kind"),
    [
        (errors.TargetUnavailable("503", status=503), "pay.retry.1s", "retryable"),
        (TimeoutError(), "pay.retry.1s", "retryable"),
        (errors.Undecodable("not json"), "pay.dlq", "fatal"),
        (errors.SchemaInvalid("no id"), "pay.dlq", "fatal"),
        (KeyError("bug"), "pay.dlq", "fatal"),
    ],
)
def test_failures_are_routed_by_kind(exc: BaseException, topic: str, kind: str) -> None:
    result, producer = _run(_raising(exc))
    assert isinstance(result, Hop) and result.topic == topic
    [(sent_topic, key, value, headers)] = producer.sent
    assert (sent_topic, key, value) == (topic, RECORD.key, RECORD.value)
    history = FailureHistory.from_headers(headers)
    assert history.error_kind == kind
    assert history.error_class == type(exc).__name__
    assert (history.original_topic, history.original_partition, history.original_offset) == (
        "in",
        2,
        17,
    )
    assert history.attempt == 1
    # Every other header travels untouched; the kind it was handled as is stamped on it.
    assert history.other == (*RECORD.headers, (MESSAGE_KIND, b"pay"))
    assert history.not_before_ms == (6_000 if kind == "retryable" else None)


def test_business_rejection_is_an_outcome_not_a_failure() -> None:
    result, producer = _run(_raising(errors.BusinessRejection("account frozen")))
    assert result == Outcome("rejected", "account frozen")
    assert producer.sent == []


def test_retry_after_reaches_the_not_before() -> None:
    result, producer = _run(_raising(errors.RateLimited("429", retry_after=30)))
    assert result.not_before_ms == 5_000 + 30_000
    assert FailureHistory.from_headers(producer.sent[0][3]).not_before_ms == 35_000


def test_a_broken_classifier_or_handler_contract_still_keeps_the_record() -> None:
    def broken(exc: BaseException) -> str:
        raise RuntimeError("classifier bug")

    result, _ = _run(_raising(errors.TargetUnavailable("x")), classify=broken)
    assert result.dead

    async def returns_nothing(record: RoadRecord) -> Any:
        return None

    result, producer = _run(returns_nothing)
    assert result.dead
    assert FailureHistory.from_headers(producer.sent[0][3]).error_class == "TypeError"


def test_cancellation_escapes_and_nothing_is_routed() -> None:
    with pytest.raises(asyncio.CancelledError):
        _run(_raising(asyncio.CancelledError()))


def test_a_refused_hand_off_is_tried_again_until_durable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(road_pipeline, "ROUTE_BACKOFF_INITIAL_S", 0.01)
    result, producer = _run(_raising(errors.TargetTimeout("slow")), RecordingProducer(refuse=2))
    assert result.topic == "pay.retry.1s"
    assert len(producer.sent) == 1


def test_declared_pipeline_takes_its_spec_from_the_registry() -> None:
    async def handler(record: RoadRecord) -> Outcome:
        return Outcome("done")

    settings = Settings(retry={"tiers": "1s,2s", "jitter": 0.1})  # type: ignore[arg-type]
    declared = Pipeline.declared(EVENT_LOG, {INBOUND_EVENT: handler}, settings)
    assert declared.spec.retry_delays == (1.0, 2.0)
    assert declared.jitter == 0.1
    assert declared.tier_group("synapseops") == f"synapseops.{EVENT_LOG}.tiers"
    with pytest.raises(errors.ConfigurationError):
        Pipeline.declared("no-such-pipeline", {INBOUND_EVENT: handler}, settings)


def test_record_from_a_faust_event_keeps_bytes_and_headers() -> None:
    message = SimpleNamespace(
        topic="in",
        partition=1,
        offset=9,
        timestamp=1700000000.5,
        key=b"k",
        value=b"\x00v",
        headers={"traceparent": b"00-x", "empty": None},
    )
    record = RoadRecord.from_faust(SimpleNamespace(message=message))
    assert record == RoadRecord(
        "in",
        1,
        9,
        1700000000500,
        b"k",
        b"\x00v",
        [
            ("traceparent", b"00-x"),
            ("empty", b""),
        ],
    )
    assert record.header("traceparent") == b"00-x"
    assert record.coordinates == "in/1@9"


def test_road_records_know_confluents_no_timestamp_marker_without_importing_it() -> None:
    # streams.road.record stays free of the Kafka client (pure logic reads records), so it
    # spells the constant itself; this keeps the two equal.
    import confluent_kafka

    from streams.road import record

    assert record.TIMESTAMP_NOT_AVAILABLE == confluent_kafka.TIMESTAMP_NOT_AVAILABLE
