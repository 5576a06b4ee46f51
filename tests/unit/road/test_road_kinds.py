"""A record keeps its kind on the whole road: dispatch by message kind, never by tier topic."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.road.headers import ORIGINAL_TOPIC, FailureHistory
from streams.road.kinds import kind_of
from streams.road.pipeline import Outcome, Pipeline, process
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.road.tiers import Hop
from synapseops import errors
from synapseops.headers import MESSAGE_KIND, message_kind, with_kind
from synapseops.settings import Settings
from topics.registry import (
    INTEGRATION_DELIVERY,
    INTEGRATION_EVENT,
    INTEGRATION_RERUN,
    PAYMENT_SETTLEMENT,
    SETTLEMENT_COMMAND,
    SETTLEMENT_COMMANDS,
    STRIPE_EVENT,
    STRIPE_EVENTS,
    default_kind,
)

SETTINGS = Settings(retry={"tiers": "1s,2s,3s"})  # type: ignore[arg-type]
INPUTS = {STRIPE_EVENTS.name: (STRIPE_EVENT,), SETTLEMENT_COMMANDS.name: (SETTLEMENT_COMMAND,)}
HANDLED = (STRIPE_EVENT, SETTLEMENT_COMMAND)
TIER = "payment-settlement.retry.1s"


def _record(topic: str, headers: list[tuple[str, bytes]] | None = None) -> RoadRecord:
    return RoadRecord(topic, 0, 7, None, b"pi_1", b"{}", headers or [])


def test_on_an_input_the_topic_says_what_a_record_is() -> None:
    assert kind_of(_record(SETTLEMENT_COMMANDS.name), INPUTS, HANDLED) == SETTLEMENT_COMMAND
    assert kind_of(_record(STRIPE_EVENTS.name), INPUTS, HANDLED) == STRIPE_EVENT


def test_a_kind_header_the_input_does_not_carry_never_chooses_the_handler() -> None:
    # A foreign record copied onto the Stripe input claiming to be a command stays an event.
    forged = _record(STRIPE_EVENTS.name, [(MESSAGE_KIND, SETTLEMENT_COMMAND.encode())])
    assert kind_of(forged, INPUTS, HANDLED) == STRIPE_EVENT


def test_on_a_tier_the_stamped_kind_wins_never_the_tier_name() -> None:
    command = _record(TIER, [(MESSAGE_KIND, SETTLEMENT_COMMAND.encode())])
    assert kind_of(command, INPUTS, HANDLED) == SETTLEMENT_COMMAND
    event = _record(TIER, [(MESSAGE_KIND, STRIPE_EVENT.encode())])
    assert kind_of(event, INPUTS, HANDLED) == STRIPE_EVENT


def test_a_record_from_before_the_header_falls_back_to_its_original_topic() -> None:
    old = _record(TIER, [(ORIGINAL_TOPIC, SETTLEMENT_COMMANDS.name.encode())])
    assert kind_of(old, INPUTS, HANDLED) == SETTLEMENT_COMMAND


def test_a_record_nothing_can_place_is_unknown_not_guessed() -> None:
    with pytest.raises(errors.UnknownKind, match="fits none of"):
        kind_of(_record(TIER), INPUTS, HANDLED)
    with pytest.raises(errors.UnknownKind):
        kind_of(_record(TIER, [(MESSAGE_KIND, b"crm.sync")]), INPUTS, HANDLED)
    # A pipeline with a single handler takes whatever reaches it.
    assert kind_of(_record(TIER), {"in": ()}, ("only",)) == "only"


def test_with_kind_replaces_any_kind_claimed_before() -> None:
    headers = [(MESSAGE_KIND, b"foreign.kind"), ("traceparent", b"00-x"), (MESSAGE_KIND, b"b")]
    stamped = with_kind(headers, STRIPE_EVENT)
    assert stamped == [("traceparent", b"00-x"), (MESSAGE_KIND, STRIPE_EVENT.encode())]
    assert message_kind(stamped) == STRIPE_EVENT
    assert message_kind([(MESSAGE_KIND, b"")]) is None


@given(st.lists(st.tuples(st.text(max_size=30), st.one_of(st.none(), st.binary(max_size=40)))))
def test_the_kind_reader_never_raises(headers: list[tuple[str, bytes | None]]) -> None:
    found = message_kind(headers)
    assert found is None or (isinstance(found, str) and found == found.strip() and found)


def test_every_platform_input_declares_its_kind_and_commands_are_their_own() -> None:
    assert default_kind(STRIPE_EVENTS.name) == STRIPE_EVENT
    assert default_kind(SETTLEMENT_COMMANDS.name) == SETTLEMENT_COMMAND
    assert default_kind(TIER) is None


def test_a_declared_pipeline_needs_a_handler_for_every_kind_its_inputs_carry() -> None:
    async def handler(record: RoadRecord) -> Outcome:
        return Outcome("done")

    with pytest.raises(errors.ConfigurationError, match="handlers for"):
        Pipeline.declared(PAYMENT_SETTLEMENT, {STRIPE_EVENT: handler}, SETTINGS)
    with pytest.raises(errors.ConfigurationError):
        Pipeline.declared(INTEGRATION_DELIVERY, {INTEGRATION_EVENT: handler}, SETTINGS)
    declared = Pipeline.declared(
        INTEGRATION_DELIVERY, {INTEGRATION_EVENT: handler, INTEGRATION_RERUN: handler}, SETTINGS
    )
    assert declared.input_kinds == {
        "integration.events": (INTEGRATION_EVENT,),
        "integration.commands": (INTEGRATION_RERUN,),
    }


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes | None, *, key: Any, headers: Any) -> Any:
        self.sent.append((topic, list(headers)))
        return (0, 0)


def test_a_command_that_failed_once_is_a_command_on_its_tier_and_after_a_replay() -> None:
    """Regression for the stuck approval: the handler is chosen by kind on every hop."""
    calls: list[str] = []
    failures = iter([errors.TargetUnavailable("finance answered 503", status=503)])

    def handler(name: str) -> Any:
        async def run(record: RoadRecord) -> Outcome:
            calls.append(name)
            failure = next(failures, None) if name == "command" else None
            if failure is not None:
                raise failure
            return Outcome("done")

        return run

    pipeline = Pipeline.declared(
        PAYMENT_SETTLEMENT,
        {STRIPE_EVENT: handler("event"), SETTLEMENT_COMMAND: handler("command")},
        SETTINGS,
    )
    producer = Producer()
    router = FailureRouter(producer, rng=random.Random(1))  # type: ignore[arg-type]
    # The API's command, as it was before the header existed (no kind stamped).
    command = _record(SETTLEMENT_COMMANDS.name)
    hop = asyncio.run(process(pipeline, command, router))
    assert isinstance(hop, Hop) and hop.topic == TIER
    [(topic, headers)] = producer.sent
    assert message_kind(headers) == SETTLEMENT_COMMAND
    on_tier = RoadRecord(topic, 0, 0, None, b"pi_1", b"{}", headers)
    assert asyncio.run(process(pipeline, on_tier, router)) == Outcome("done")
    # A replay sends the dead letter's stored headers back to the first tier.
    replayed = FailureHistory.from_headers(headers).for_replay("rpl_1").to_headers()
    again = RoadRecord(TIER, 3, 9, None, b"pi_1", b"{}", replayed)
    assert asyncio.run(process(pipeline, again, router)) == Outcome("done")
    assert calls == ["command", "command", "command"]
