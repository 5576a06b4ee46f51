"""Consumer lag per group and partition, read from the broker at scrape time.

The lag Prometheus shows is the broker's, not a process's guess: committed offsets come from
the group coordinator (``AdminClient.list_consumer_group_offsets``), end offsets from the
partition leaders (``AdminClient.list_offsets``, read-committed like the platform's
consumers), so a stopped, crashed or stuck worker shows its lag too — the one case a
worker's own gauge could never report.

Which groups: those named by ``SYNAPSEOPS_OBSERVABILITY_LAG_GROUPS`` (comma-separated ids),
each with every group ``<id>.*`` — by default the worker's group, whose Faust agents commit
as ``<id>`` and whose tier consumers, dead-letter store and Kafka sources as ``<id>.<what>``,
and the warehouse loader's (``SYNAPSEOPS_LOADER_GROUP_ID``: it commits what it loaded for
exactly this reading). A second worker pool with its own group id is one more id in the
setting.

Bounded work: a scrape reuses the last reading for ``SYNAPSEOPS_OBSERVABILITY_LAG_CACHE_S``
seconds (concurrent scrapes share the reading in flight); a reading makes one group listing,
one offsets request per watched group (at most :data:`MAX_GROUPS`, sent together), one
end-offsets request and one metadata request, all within one deadline of ``timeout_s`` (3 s,
below a scraper's timeout). A reading that fails is cached as well (a broker that is down
does not make every scrape wait), and reports ``synapseops_kafka_lag_read_ok 0`` without
lag series: stale lag would look healthy.

Exported (labels ``group``, ``topic``, ``partition`` where they apply):

- ``synapseops_kafka_consumer_lag``: end offset minus committed offset (0 when caught up);
- ``synapseops_kafka_consumer_committed_offset`` and ``synapseops_kafka_partition_end_offset``;
- ``synapseops_kafka_brokers``, ``synapseops_kafka_partitions_under_replicated``,
  ``synapseops_kafka_partitions_offline``: the cluster's metadata (every topic);
- ``synapseops_kafka_lag_read_ok``, ``synapseops_kafka_lag_read_seconds``,
  ``synapseops_kafka_lag_groups_skipped``: the reading itself.

A partition a group never committed on has no lag series: where such a group would start
depends on its consumers' ``auto.offset.reset``, which the broker does not know.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

# OffsetSpec is exported by confluent_kafka.admin at run time, not in a way mypy accepts.
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from synapseops.kafka import create_admin
from synapseops.logging import get_logger
from synapseops.settings import KafkaSettings, Settings

log = get_logger(__name__)

MAX_GROUPS = 100
DEFAULT_TIMEOUT_S = 3.0
PARTITION_LABELS = ["group", "topic", "partition"]


def watched_groups(
    group_ids: Iterable[str], prefixes: Sequence[str], limit: int = MAX_GROUPS
) -> tuple[list[str], int]:
    """``(groups to read, how many more matched beyond limit)``: every id equal to a prefix
    or starting with ``<prefix>.``, sorted so the same ones are read every time."""
    matched = sorted(
        {
            group
            for group in group_ids
            if any(group == prefix or group.startswith(prefix + ".") for prefix in prefixes)
        }
    )
    return matched[:limit], max(0, len(matched) - limit)


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        # A committed offset past the end is a truncated (or recreated) partition: no lag.
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class LagReading:
    """One reading of the cluster; ``ok`` False means the rest is empty, not zero."""

    ok: bool
    took_s: float
    partitions: list[PartitionLag] = field(default_factory=list)
    brokers: int = 0
    under_replicated: int = 0
    offline: int = 0
    groups_skipped: int = 0


def lag_prefixes(settings: Settings) -> list[str]:
    """The group ids the setting names, or the worker's and the loader's own."""
    named = [part.strip() for part in settings.observability.lag_groups.split(",")]
    return [name for name in named if name] or [settings.worker.group_id, settings.loader.group_id]


class LagReader:
    """Reads one :class:`LagReading` through an admin client (made on first use)."""

    def __init__(
        self, kafka: KafkaSettings, prefixes: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.kafka = kafka
        self.prefixes = list(prefixes)
        self.timeout_s = timeout_s
        self._admin: AdminClient | None = None
        self._deadline = 0.0

    def read(self) -> LagReading:
        started = time.monotonic()
        # One deadline for the whole reading, so a slow broker cannot stack up the timeouts
        # of four requests past the scraper's own.
        self._deadline = started + self.timeout_s
        try:
            reading = self._read()
        except (KafkaException, FutureTimeout, ValueError) as exc:
            log.warning(
                "consumer lag not read", extra={"kafka": self.kafka.bootstrap, "error": str(exc)}
            )
            return LagReading(ok=False, took_s=time.monotonic() - started)
        return LagReading(**reading, ok=True, took_s=time.monotonic() - started)

    def _read(self) -> dict[str, Any]:
        if self._admin is None:
            self._admin = create_admin(self.kafka)
        admin = self._admin
        metadata = admin.list_topics(timeout=self._left())
        listing = admin.list_consumer_groups(request_timeout=self._left())
        ids = [group.group_id for group in self._result(listing).valid]
        groups, skipped = watched_groups(ids, self.prefixes)
        committed = self._committed(admin, groups)
        ends = self._ends(admin, {(topic, partition) for _, topic, partition, _ in committed})
        partitions = [
            PartitionLag(group, topic, partition, offset, ends[(topic, partition)])
            for group, topic, partition, offset in committed
            if (topic, partition) in ends
        ]
        under, offline = 0, 0
        for topic in metadata.topics.values():
            for meta in topic.partitions.values():
                under += len(meta.isrs) < len(meta.replicas)
                offline += meta.leader < 0
        return {
            "partitions": partitions,
            "brokers": len(metadata.brokers),
            "under_replicated": under,
            "offline": offline,
            "groups_skipped": skipped,
        }

    def _committed(self, admin: AdminClient, groups: list[str]) -> list[tuple[str, str, int, int]]:
        # One group per request (the client's limit); all sent before any is awaited.
        futures = [
            admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=self._left()
            )[group]
            for group in groups
        ]
        found: list[tuple[str, str, int, int]] = []
        for group, future in zip(groups, futures, strict=True):
            try:
                answer = self._result(future)
            except KafkaException as exc:
                # A group deleted between the listing and this request: skip it, not the scrape.
                log.info("group offsets not read", extra={"group": group, "error": str(exc)})
                continue
            for tp in answer.topic_partitions or []:
                if tp.error is None and tp.offset >= 0:
                    found.append((group, tp.topic, tp.partition, tp.offset))
        return found

    def _ends(
        self, admin: AdminClient, partitions: set[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        request = {
            KafkaPartition(topic, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for topic, p in sorted(partitions)
        }
        futures = admin.list_offsets(
            request,
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=self._left(),
        )
        ends: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = int(self._result(future).offset)
            except KafkaException as exc:
                # A partition without a leader right now (a broker is down): no lag for it.
                log.info(
                    "end offset not read",
                    extra={"topic": tp.topic, "partition": tp.partition, "error": str(exc)},
                )
        return ends

    def _left(self) -> float:
        return max(0.1, self._deadline - time.monotonic())

    def _result(self, future: Future[Any]) -> Any:
        # A little past the request's own timeout: the client reports its error first.
        return future.result(timeout=self._left() + 0.5)


class ConsumerLagGauges(Collector):
    """The gauges of the module doc; a no-op until :meth:`watch` gives it a cluster."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reader: LagReader | None = None
        self._watching: Settings | None = None
        self._cache_s = 5.0
        self._cached: tuple[float, LagReader, LagReading] | None = None

    def watch(self, settings: Settings) -> None:
        """Read ``settings``' cluster and groups from now on."""
        with self._lock:
            self._cached = None
            self._reader = LagReader(settings.kafka, lag_prefixes(settings))
            self._watching = settings
            self._cache_s = settings.observability.lag_cache_s

    def unwatch(self, settings: Settings) -> None:
        """Stop reading, unless a later :meth:`watch` (another app) took over."""
        with self._lock:
            if self._watching is settings:
                self._reader, self._watching, self._cached = None, None, None

    def reading(self) -> LagReading | None:
        with self._lock:
            reader = self._reader
            if reader is None:
                return None
            cached = self._cached
            if (
                cached is not None
                and cached[1] is reader
                and time.monotonic() - cached[0] < self._cache_s
            ):
                return cached[2]
            reading = reader.read()
            self._cached = (time.monotonic(), reader, reading)
            return reading

    def describe(self) -> Iterator[Metric]:
        # Registration asks for the names only: no broker round trip at import time.
        yield from _families(None)

    def collect(self) -> Iterator[Metric]:
        yield from _families(self.reading())


def _families(reading: LagReading | None) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "synapseops_kafka_consumer_lag",
        "Records of a partition the group has not committed past (end minus committed offset)",
        labels=PARTITION_LABELS,
    )
    committed = GaugeMetricFamily(
        "synapseops_kafka_consumer_committed_offset",
        "The group's committed offset of the partition, as the broker has it",
        labels=PARTITION_LABELS,
    )
    end = GaugeMetricFamily(
        "synapseops_kafka_partition_end_offset",
        "End offset (read-committed) of a partition some watched group commits on",
        labels=["topic", "partition"],
    )
    ok = GaugeMetricFamily(
        "synapseops_kafka_lag_read_ok", "1 when the last reading of the cluster succeeded"
    )
    took = GaugeMetricFamily(
        "synapseops_kafka_lag_read_seconds", "How long the last reading of the cluster took"
    )
    skipped = GaugeMetricFamily(
        "synapseops_kafka_lag_groups_skipped",
        f"Watched groups beyond the {MAX_GROUPS} read per scrape",
    )
    brokers = GaugeMetricFamily("synapseops_kafka_brokers", "Brokers in the cluster's metadata")
    under = GaugeMetricFamily(
        "synapseops_kafka_partitions_under_replicated",
        "Partitions with fewer in-sync replicas than replicas (every topic)",
    )
    offline = GaugeMetricFamily(
        "synapseops_kafka_partitions_offline", "Partitions without a leader (every topic)"
    )
    if reading is not None:
        ok.add_metric([], 1 if reading.ok else 0)
        took.add_metric([], reading.took_s)
        if reading.ok:
            ends: dict[tuple[str, int], int] = {}
            for row in reading.partitions:
                labels = [row.group, row.topic, str(row.partition)]
                lag.add_metric(labels, row.lag)
                committed.add_metric(labels, row.committed)
                ends[(row.topic, row.partition)] = row.end
            for (topic, partition), offset in sorted(ends.items()):
                end.add_metric([topic, str(partition)], offset)
            skipped.add_metric([], reading.groups_skipped)
            brokers.add_metric([], reading.brokers)
            under.add_metric([], reading.under_replicated)
            offline.add_metric([], reading.offline)
    yield from (lag, committed, end, ok, took, skipped, brokers, under, offline)


# The API process's collector: its lifespan watches its cluster while it runs.
CONSUMER_LAG = ConsumerLagGauges()
REGISTRY.register(CONSUMER_LAG)
