"""Every topic of the platform, declared once, as data.

Input topics are declared by hand below. Retry-tier and dead-letter topics are never typed
anywhere: they are derived from each :class:`PipelineSpec` (``<pipeline>.retry.<delay>`` and
``<pipeline>.dlq``), so a pipeline that changes its tiers changes its topics with it.
Retry topics belong to the pipeline (the processor), not to the source topic: two pipelines
reading one topic fail, retry and dead-letter independently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from synapseops.settings import parse_duration

DAY_MS = 24 * 3600 * 1000
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

    def configs(self) -> dict[str, str]:
        """The topic-level configs this declaration owns (what drift is checked against)."""
        configs = {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}
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

    def derived_topics(self) -> list[TopicSpec]:
        topics = [
            TopicSpec(
                name=self.retry_topic(tier),
                partitions=self.partitions,
                # A record waits at most its delay here; keep a day for a stopped worker.
                retention_ms=max(DAY_MS, int(delay * 1000 * 10)),
                value_schema="bytes",
                description=f"retry tier {tier + 1} ({format_delay(delay)}) of {self.name}",
            )
            for tier, delay in enumerate(self.retry_delays)
        ]
        topics.append(
            TopicSpec(
                name=self.dlq_topic,
                partitions=self.partitions,
                retention_ms=self.dlq_retention_ms,
                value_schema="bytes",
                description=f"dead letters of {self.name}",
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


# ---- the platform's topics -------------------------------------------------------------

INBOUND_EVENTS = TopicSpec(
    name="synapseops.events.inbound",
    partitions=6,
    # The value is the raw body exactly as received (signatures stay verifiable); what we know
    # about it travels in headers (synapseops/headers.py).
    value_schema="bytes",
    description="every event accepted at ingress (raw bytes + headers), keyed by its entity",
)

NOTIFICATION_TRIGGERS = TopicSpec(
    name="synapseops.notifications.triggers",
    partitions=3,
    value_schema="notification_trigger",
    description="triggers for the notification service (dead_letter, large_payment, ...)",
)

# ---- Payment Gateway -------------------------------------------------------------------

STRIPE_EVENTS = TopicSpec(
    name="payments.stripe.events",
    partitions=6,
    # Raw Stripe bytes (the signature stays verifiable), keyed by the payment intent so one
    # payment's events stay in order on one partition; headers per synapseops/headers.py.
    value_schema="bytes",
    retention_ms=30 * DAY_MS,
    description="verified Stripe webhook events, keyed by payment",
)

SETTLEMENT_COMMANDS = TopicSpec(
    name="payments.settlement.commands",
    partitions=6,
    description="approve/reject decisions on large payments, keyed by payment",
)

# ---- API Integration -------------------------------------------------------------------

INTEGRATION_EVENTS = TopicSpec(
    name="integration.events",
    partitions=6,
    value_schema="bytes",
    description="source events of integration flows (raw bytes + headers), keyed by entity",
)

INTEGRATION_COMMANDS = TopicSpec(
    name="integration.commands",
    partitions=6,
    description="re-run requests for integration runs, published by the API",
)

PLATFORM_TOPICS: tuple[TopicSpec, ...] = (
    INBOUND_EVENTS,
    NOTIFICATION_TRIGGERS,
    STRIPE_EVENTS,
    SETTLEMENT_COMMANDS,
    INTEGRATION_EVENTS,
    INTEGRATION_COMMANDS,
)

# ---- the platform's pipelines ----------------------------------------------------------
# A pipeline is named after what it does, not after the topic it reads. Tiers left as None
# take SYNAPSEOPS_RETRY_TIERS; a pipeline may pin its own.

EVENT_LOG = "event-log"
PAYMENT_SETTLEMENT = "payment-settlement"
INTEGRATION_DELIVERY = "integration-delivery"
PIPELINE_INPUTS: dict[str, tuple[str, ...]] = {
    EVENT_LOG: (INBOUND_EVENTS.name,),
    PAYMENT_SETTLEMENT: (STRIPE_EVENTS.name, SETTLEMENT_COMMANDS.name),
    INTEGRATION_DELIVERY: (INTEGRATION_EVENTS.name, INTEGRATION_COMMANDS.name),
}
PIPELINE_TIERS: dict[str, tuple[float, ...] | None] = {
    EVENT_LOG: None,
    PAYMENT_SETTLEMENT: None,
    INTEGRATION_DELIVERY: None,
}


def platform_registry(default_retry_delays: tuple[float, ...]) -> TopicRegistry:
    """The registry of one deployment: platform topics plus each pipeline's derived topics."""
    registry = TopicRegistry()
    for spec in PLATFORM_TOPICS:
        registry.declare(spec)
    for name, inputs in PIPELINE_INPUTS.items():
        delays = PIPELINE_TIERS.get(name) or default_retry_delays
        registry.declare_pipeline(PipelineSpec(name=name, inputs=inputs, retry_delays=delays))
    return registry
