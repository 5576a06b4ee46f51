"""One confluent consumer loop under every background consumer of the worker."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from confluent_kafka import Consumer, Message

from streams.consumer import ConsumerLoop
from streams.dead_letters import DeadLetterStore
from streams.integration.kafka_source import KafkaSourceForwarder
from streams.road.tier_consumer import TierConsumer
from synapseops.kafka import consumer_config
from synapseops.settings import PROJECT_ROOT, KafkaSettings


def test_every_background_consumer_runs_on_the_one_loop() -> None:
    for consumer in (TierConsumer, DeadLetterStore, KafkaSourceForwarder):
        assert issubclass(consumer, ConsumerLoop), consumer
    # Nobody else builds, subscribes or closes a confluent consumer in the product.
    lifecycle = re.compile(
        r"\bConsumer\(|(?<!self)\.subscribe\(|executor\.shutdown|ThreadPoolExecutor\("
    )
    for package in ("streams", "sinks", "api"):
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            if path.name == "consumer.py" and path.parent.name == "streams":
                continue
            assert not lifecycle.search(path.read_text()), path


class Idle(ConsumerLoop):
    """Subscribes to a topic of a broker that is not there, and counts what happens."""

    def __init__(self) -> None:
        config = consumer_config(KafkaSettings(bootstrap="127.0.0.1:1"), "t-idle")
        super().__init__(config, name="idle")
        self.polls = 0
        self.polled = asyncio.Event()
        self.stopped = False
        self.messages: list[Message] = []

    def subscription(self) -> Sequence[str]:
        return ["t-idle"]

    def poll_timeout(self) -> float:
        return 0.05

    async def after_poll(self, consumer: Consumer) -> None:
        self.polls += 1
        if self.polls >= 3:
            self.polled.set()

    async def on_message(self, consumer: Consumer, message: Message) -> None:
        self.messages.append(message)

    async def on_stopped(self) -> None:
        self.stopped = True


def test_a_loop_polls_until_asked_to_stop_then_closes_its_consumer() -> None:
    async def scenario() -> Idle:
        loop = Idle()
        task = loop.start_task()
        await asyncio.wait_for(loop.polled.wait(), timeout=30)
        assert loop.consumer is not None and not task.done()
        await loop.stop(grace_s=10)
        assert task.done() and task.exception() is None
        return loop

    loop = asyncio.run(scenario())
    assert loop.stopped and loop.consumer is None and loop.messages == []
