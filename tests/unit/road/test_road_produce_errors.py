"""Produce errors: a permanent refusal is a dead letter with its reason, never an endless loop."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from confluent_kafka import KafkaError

from streams.road import pipeline as road_pipeline
from streams.road.headers import FailureHistory
from streams.road.pipeline import Outcome, Pipeline, process
from streams.road.record import RoadRecord
from streams.road.router import VALUE_AT, VALUE_OMITTED, FailureRouter
from streams.road.tiers import Hop
from synapseops import errors
from synapseops.kafka import produce_error
from topics.registry import PipelineSpec

SPEC = PipelineSpec(name="pay", inputs=("in",), retry_delays=(1.0, 2.0))
RECORD = RoadRecord("in", 1, 40, 1_000, b"pi_1", b"v" * 64, [("traceparent", b"00-a")])
TOO_LARGE = errors.KafkaRejected("Broker: Message size too large", code="MSG_SIZE_TOO_LARGE")


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    ],
)
def test_permanent_broker_answers_are_rejections(code: int) -> None:
    error = produce_error("t", KafkaError(code))
    assert isinstance(error, errors.KafkaRejected) and errors.classify(error) == "fatal"
    assert error.code == KafkaError(code).name()


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._FATAL,
    ],
)
def test_everything_else_is_worth_trying_again(code: int) -> None:
    assert isinstance(produce_error("t", KafkaError(code)), errors.KafkaUnavailable)


class Broker:
    """Stands in for AsyncProducer.send: a topic's size limit (a value above it is refused
    as too large) and topics missing for the next N sends; records what it took."""

    def __init__(
        self, limits: dict[str, int] | None = None, missing: dict[str, int] | None = None
    ) -> None:
        self.limits = limits or {}
        self.missing = missing or {}
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes | None, *, key: Any, headers: Any) -> Any:
        if self.missing.get(topic):
            self.missing[topic] -= 1
            raise errors.KafkaRejected("Broker: Unknown topic", code="UNKNOWN_TOPIC_OR_PART")
        if len(value or b"") > self.limits.get(topic, 1 << 30):
            raise TOO_LARGE
        self.sent.append((topic, value, list(headers)))
        return (0, 0)


def _process(broker: Broker, exc: BaseException) -> Any:
    async def handler(record: RoadRecord) -> Outcome:
        raise exc

    pipeline = Pipeline(name="pay", spec=SPEC, handlers={"pay": handler}, jitter=0.0)
    router = FailureRouter(broker, clock_ms=lambda: 5_000, rng=random.Random(1))  # type: ignore[arg-type]

    async def bounded() -> Any:
        # Today's code loops forever here; the bound turns that into a failure.
        return await asyncio.wait_for(process(pipeline, RECORD, router), 5)

    return asyncio.run(bounded())


def test_a_tier_that_refuses_the_record_for_good_sends_it_to_its_dead_letter_with_why() -> None:
    broker = Broker(limits={"pay.retry.1s": 10})
    hop = _process(broker, errors.TargetUnavailable("finance answered 503", status=503))
    assert isinstance(hop, Hop) and hop.dead and hop.topic == "pay.dlq"
    [(topic, value, headers)] = broker.sent
    assert (topic, value) == ("pay.dlq", RECORD.value)
    history = FailureHistory.from_headers(headers)
    assert (history.error_kind, history.error_class) == ("fatal", "KafkaRejected")
    assert history.error_message is not None
    assert "Message size too large" in history.error_message
    assert "TargetUnavailable: finance answered 503" in history.error_message
    assert (history.original_topic, history.original_offset, history.attempt) == ("in", 40, 1)


def test_a_dead_letter_too_large_for_its_topic_becomes_a_marker_saying_where_the_bytes_are() -> (
    None
):
    broker = Broker(limits={"pay.dlq": 10})
    hop = _process(broker, errors.SchemaInvalid("no id"))
    assert hop.dead
    [(topic, value, headers)] = broker.sent
    assert (topic, value) == ("pay.dlq", None)
    found = dict(headers)
    assert found[VALUE_OMITTED] == b"64"
    assert found[VALUE_AT] == b"in/1@40"
    assert found["traceparent"] == b"00-a"
    history = FailureHistory.from_headers(headers)
    assert history.error_class == "KafkaRejected"
    assert history.error_message is not None
    assert "without its value" in history.error_message
    assert "SchemaInvalid: no id" in history.error_message


def test_a_dead_letter_topic_that_is_missing_keeps_the_record_and_tries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(road_pipeline, "ROUTE_BACKOFF_INITIAL_S", 0.01)
    # Missing for two tries (until `topics apply` ran, say), then there: nothing is lost.
    broker = Broker(missing={"pay.dlq": 2})
    hop = _process(broker, errors.Undecodable("bad bytes"))
    assert hop.dead
    [(topic, value, _)] = broker.sent
    assert (topic, value) == ("pay.dlq", RECORD.value)


def test_a_producer_that_failed_fatally_is_replaced_before_the_next_send() -> None:
    from synapseops.kafka import AsyncProducer, is_fatal
    from synapseops.settings import KafkaSettings

    producer = AsyncProducer(KafkaSettings(bootstrap="127.0.0.1:1"))
    try:
        fatal = KafkaError(KafkaError._FATAL, "idempotence lost", fatal=True)
        assert is_fatal(fatal) and not is_fatal(KafkaError(KafkaError._TRANSPORT))
        before = producer._producer
        producer._replace_if_broken()
        assert producer._producer is before  # healthy: kept
        producer._mark_broken(fatal)
        producer._replace_if_broken()
        assert producer._producer is not before
    finally:
        producer.close(timeout=0.1)
