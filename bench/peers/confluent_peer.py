"""Row a: a raw confluent-kafka loop — consume a batch, map it, produce it, commit it.

The fastest correct shape we know without a framework: batches of up to 500 from
``consume()``, every output produced with a large linger (``linger.ms=50``) and the project's
durable producer settings (``acks=all``, idempotent, lz4), and a batch's input offsets
committed only once every output of that batch *and of every batch before it* was delivered —
so a crash re-delivers, never skips. Consuming the next batch does not wait for the previous
one's deliveries: the producer's batching overlaps the mapping.

    python -m bench.peers.confluent_peer --bootstrap H:P --input T --output T --group G
"""

from __future__ import annotations

import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from bench.peers.args import peer_parser
from bench.peers.work import order_mapper
from synapseops.kafka import consumer_config, producer_config
from synapseops.settings import KafkaSettings

BATCH = 500


@dataclass
class Batch:
    """One consumed batch: the offsets to commit once ``pending`` reaches zero."""

    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    pending: int = 0
    failed: KafkaError | None = None

    def delivered(self, err: KafkaError | None, _msg: Message) -> None:
        self.pending -= 1
        if err is not None:
            self.failed = err


class Relay:
    def __init__(self, args: Any) -> None:
        kafka = KafkaSettings(bootstrap=args.bootstrap, client_id="bench-confluent")
        self.output = args.output
        self.map_order = order_mapper()
        self.producer = Producer(
            producer_config(kafka, **{"linger.ms": 50, "batch.size": 1_000_000})
        )
        self.consumer = Consumer(consumer_config(kafka, args.group))
        self.consumer.subscribe([args.input], on_revoke=self._on_revoke)
        self.batches: deque[Batch] = deque()
        self.stopping = False

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        # Everything handed to the producer lands and is committed before another member
        # takes the partitions over.
        self.producer.flush(30)
        self.commit_done()

    def commit_done(self) -> None:
        """Commit the prefix of batches whose every output was delivered."""
        offsets: dict[tuple[str, int], int] = {}
        while self.batches and self.batches[0].pending == 0:
            batch = self.batches.popleft()
            if batch.failed is not None:
                raise RuntimeError(f"delivery failed: {batch.failed.str()}")
            offsets.update(batch.offsets)
        if offsets:
            parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            self.consumer.commit(offsets=parts, asynchronous=True)

    def relay(self, messages: list[Message]) -> None:
        batch = Batch()
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consume failed: {err.str()}")
            value = self.map_order(message.value() or b"")
            batch.pending += 1
            while True:
                try:
                    self.producer.produce(
                        self.output, value, key=message.key(), on_delivery=batch.delivered
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)  # queue full: let deliveries drain
            topic, partition = message.topic() or "", message.partition() or 0
            batch.offsets[(topic, partition)] = (message.offset() or 0) + 1
        self.batches.append(batch)
        self.producer.poll(0)
        self.commit_done()

    def run(self) -> None:
        while not self.stopping:
            self.relay(self.consumer.consume(num_messages=BATCH, timeout=0.2))
        self.producer.flush(30)
        self.commit_done()
        self.consumer.close()


def main(argv: list[str]) -> int:
    relay = Relay(peer_parser(__doc__ or "").parse_args(argv))

    def stop(_signum: int, _frame: object) -> None:
        relay.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    relay.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
