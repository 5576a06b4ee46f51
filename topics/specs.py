"""How topics are declared: :class:`TopicSpec` for an input, :class:`PipelineSpec` for a
pipeline and the road topics derived from it, and the :class:`TopicRegistry` of a deployment.

The declarations themselves are :mod:`topics.registry`; its docstring says how road topics
are derived and sized.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from synapseops.settings import parse_duration

DAY_MS = 24 * 3600 * 1000
# Two weeks: far above the longest hold (a day at most) plus a long weekend of a stopped worker.
HOLD_RETENTION_MS = 14 * DAY_MS
# What an input topic takes: the broker's own default (1 MiB + 12 bytes of batch overhead),
# made explicit so a cluster with a larger default cannot let an input take what the road
# would then refuse.
INPUT_MAX_MESSAGE_BYTES = 1_048_588
# Room for the road's history headers on top of a record (error message 1 KiB, trace 4 KiB,
# a dozen small ones); generous on purpose.
ROAD_HEADER_BUDGET = 64 * 1024
# What tiers, parking and dead-letter topics take: any input record with its history fits.
ROAD_MAX_MESSAGE_BYTES = 4 * 1_048_576
CleanupPolicy = Literal["delete", "compact", "compact,delete"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 6
    # None: the deployment's SYNAPSEOPS_KAFKA_REPLICATION_FACTOR / _MIN_INSYNC_REPLICAS
    # (filled in by :meth:`with_durability` where a broker is talked to, topics/admin.py).
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    retention_ms: int = 7 * DAY_MS
    cleanup_policy: CleanupPolicy = "delete"
    key_schema: str = "string"
    # An Avro subject under schemas/avro/ for topics other teams consume, else "json"/"bytes".
    value_schema: str = "json"
    description: str = ""
    extra_configs: tuple[tuple[str, str], ...] = ()
    max_message_bytes: int = INPUT_MAX_MESSAGE_BYTES
    # The message kinds records on this topic are (synapseops/headers.py MESSAGE_KIND); the
    # first is the kind of a record that carries no kind header. Empty: not a pipeline input.
    kinds: tuple[str, ...] = ()

    def configs(self) -> dict[str, str]:
        """The topic-level configs this declaration owns (what drift is checked against)."""
        configs = {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            "max.message.bytes": str(self.max_message_bytes),
        }
        if self.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(self.min_insync_replicas)
        configs.update(dict(self.extra_configs))
        return configs

    def with_durability(self, replication_factor: int, min_insync_replicas: int) -> TopicSpec:
        """This declaration with the deployment's durability where it names none of its own."""
        return replace(
            self,
            replication_factor=self.replication_factor or replication_factor,
            min_insync_replicas=self.min_insync_replicas or min_insync_replicas,
        )


def format_delay(seconds: float) -> str:
    """The delay as it appears in a topic name: 10 → ``10s``, 300 → ``300s``, 0.5 → ``500ms``."""
    if seconds < 1 or seconds != int(seconds):
        return f"{int(round(seconds * 1000))}ms"
    return f"{int(seconds)}s"


@dataclass(frozen=True)
class PipelineSpec:
    """What the topic registry needs to know of a pipeline: its name, inputs and tiers."""

    name: str
    inputs: tuple[str, ...]
    retry_delays: tuple[float, ...]
    partitions: int = 6
    dlq_retention_ms: int = 30 * DAY_MS
    description: str = ""

    def __post_init__(self) -> None:
        names = [format_delay(delay) for delay in self.retry_delays]
        if len(set(names)) != len(names):
            # Two tiers with one delay would share one topic and one consumer group.
            raise ValueError(f"pipeline {self.name}: retry delays must differ, got {names}")

    def retry_topic(self, tier: int) -> str:
        return f"{self.name}.retry.{format_delay(self.retry_delays[tier])}"

    @property
    def retry_topics(self) -> tuple[str, ...]:
        return tuple(self.retry_topic(tier) for tier in range(len(self.retry_delays)))

    @property
    def dlq_topic(self) -> str:
        return f"{self.name}.dlq"

    @property
    def parking_topic(self) -> str:
        """Where a record waits whose ``Retry-After`` is longer than every tier's delay."""
        return f"{self.name}.parking"

    def derived_topics(self) -> list[TopicSpec]:
        topics = [
            TopicSpec(
                name=self.retry_topic(tier),
                partitions=self.partitions,
                # A record waits at most its delay here; the rest is for a stopped worker.
                retention_ms=max(HOLD_RETENTION_MS, int(delay * 1000 * 10)),
                value_schema="bytes",
                description=f"retry tier {tier + 1} ({format_delay(delay)}) of {self.name}",
                max_message_bytes=ROAD_MAX_MESSAGE_BYTES,
            )
            for tier, delay in enumerate(self.retry_delays)
        ]
        topics.append(
            TopicSpec(
                name=self.parking_topic,
                partitions=self.partitions,
                retention_ms=max(HOLD_RETENTION_MS, int(max(self.retry_delays) * 1000 * 10)),
                value_schema="bytes",
                description=f"records of {self.name} told to wait longer than its tiers",
                max_message_bytes=ROAD_MAX_MESSAGE_BYTES,
            )
        )
        topics.append(
            TopicSpec(
                name=self.dlq_topic,
                partitions=self.partitions,
                retention_ms=self.dlq_retention_ms,
                value_schema="bytes",
                description=f"dead letters of {self.name}",
                max_message_bytes=ROAD_MAX_MESSAGE_BYTES,
            )
        )
        return topics


def parse_tiers(text: str) -> tuple[float, ...]:
    return tuple(parse_duration(part) for part in text.split(",") if part.strip())


@dataclass
class TopicRegistry:
    topics: dict[str, TopicSpec] = field(default_factory=dict)
    pipelines: dict[str, PipelineSpec] = field(default_factory=dict)

    def declare(self, spec: TopicSpec) -> TopicSpec:
        existing = self.topics.get(spec.name)
        if existing is not None and existing != spec:
            raise ValueError(f"topic {spec.name} declared twice with different settings")
        self.topics[spec.name] = spec
        return spec

    def declare_pipeline(self, pipeline: PipelineSpec) -> PipelineSpec:
        if pipeline.name in self.pipelines and self.pipelines[pipeline.name] != pipeline:
            raise ValueError(f"pipeline {pipeline.name} declared twice")
        for name in pipeline.inputs:
            if name not in self.topics:
                raise ValueError(f"pipeline {pipeline.name} reads undeclared topic {name}")
            if self.topics[name].max_message_bytes + ROAD_HEADER_BUDGET > ROAD_MAX_MESSAGE_BYTES:
                # A record the input took must always fit on the road with its history.
                raise ValueError(
                    f"input {name} of {pipeline.name} takes records the road could not carry"
                )
        self.pipelines[pipeline.name] = pipeline
        for spec in pipeline.derived_topics():
            self.declare(spec)
        return pipeline

    def __iter__(self) -> Iterator[TopicSpec]:
        """Every declared topic, derived ones included, sorted by name."""
        return iter(sorted(self.topics.values(), key=lambda spec: spec.name))

    def __len__(self) -> int:
        return len(self.topics)

    def __contains__(self, name: object) -> bool:
        return name in self.topics

    def get(self, name: str) -> TopicSpec:
        return self.topics[name]
