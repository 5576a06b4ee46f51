"""Every topic of the platform, declared once, as data.

Input topics are declared by hand below. Retry-tier and dead-letter topics are never typed
anywhere: they are derived from each :class:`PipelineSpec` (``<pipeline>.retry.<delay>`` and
``<pipeline>.dlq``), so a pipeline that changes its tiers changes its topics with it.
Retry topics belong to the pipeline (the processor), not to the source topic: two pipelines
reading one topic fail, retry and dead-letter independently.

An input topic declares the message kinds it carries (``kinds``, the first being what a record
without a ``synapseops-message-kind`` header is); a pipeline declares one handler per kind, and
the road dispatches on the kind, never on the topic a retried record happens to sit on.

Sizes and retention of the road's own topics (tiers, parking, dead letters) are chosen so that
nothing a pipeline consumed can be refused or expire on the road:

* every input takes at most :data:`INPUT_MAX_MESSAGE_BYTES`; a record on the road is that
  record plus its history headers (under :data:`ROAD_HEADER_BUDGET`), and road topics take
  :data:`ROAD_MAX_MESSAGE_BYTES`, checked when a pipeline is declared;
* a record waits on a tier at most that tier's delay (a longer ``Retry-After`` goes to a
  later tier or the parking topic, capped by ``SYNAPSEOPS_RETRY_MAX_RETRY_AFTER``, at most a
  day); tiers and parking keep records :data:`HOLD_RETENTION_MS` (two weeks, and at least ten
  times the tier's delay), so a worker may be down for days without a held record expiring.
"""

from __future__ import annotations

from topics.specs import (
    DAY_MS,
    HOLD_RETENTION_MS,
    INPUT_MAX_MESSAGE_BYTES,
    ROAD_HEADER_BUDGET,
    ROAD_MAX_MESSAGE_BYTES,
    CleanupPolicy,
    PipelineSpec,
    TopicRegistry,
    TopicSpec,
    format_delay,
    parse_tiers,
)

# The declaring machinery, re-exported: callers import every topic name from here.
__all__ = [
    "CleanupPolicy",
    "DAY_MS",
    "HOLD_RETENTION_MS",
    "INPUT_MAX_MESSAGE_BYTES",
    "PipelineSpec",
    "ROAD_HEADER_BUDGET",
    "ROAD_MAX_MESSAGE_BYTES",
    "TopicRegistry",
    "TopicSpec",
    "format_delay",
    "parse_tiers",
]

# ---- message kinds (synapseops/headers.py MESSAGE_KIND) ---------------------------------
# What a record is, whichever topic it sits on. A service that adds an input adds its kinds.

INBOUND_EVENT = "events.inbound-event"
STRIPE_EVENT = "payments.stripe-event"
SETTLEMENT_COMMAND = "payments.settlement-command"
INTEGRATION_EVENT = "integration.source-event"
INTEGRATION_RERUN = "integration.rerun-command"
NOTIFICATION_TRIGGER = "notifications.trigger"
NOTIFICATION_RESUME = "notifications.resume-command"

AGGREGATION_PAYLOAD = "aggregation.source-payload"
MARKET_TICK = "aggregation.market-tick"

CRM_CHANGE = "crm.change"
CRM_RESOLVE = "crm.resolve-command"

# ---- the platform's topics -------------------------------------------------------------

INBOUND_EVENTS = TopicSpec(
    name="synapseops.events.inbound",
    partitions=6,
    # The value is the raw body exactly as received (signatures stay verifiable); what we know
    # about it travels in headers (synapseops/headers.py).
    value_schema="bytes",
    description="every event accepted at ingress (raw bytes + headers), keyed by its entity",
    kinds=(INBOUND_EVENT,),
)

NOTIFICATION_TRIGGERS = TopicSpec(
    name="synapseops.notifications.triggers",
    partitions=3,
    value_schema="notification_trigger",
    description="triggers for the notification service (dead_letter, large_payment, ...)",
    kinds=(NOTIFICATION_TRIGGER,),
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
    kinds=(STRIPE_EVENT,),
)

SETTLEMENT_COMMANDS = TopicSpec(
    name="payments.settlement.commands",
    partitions=6,
    description="approve/reject decisions on large payments, keyed by payment",
    kinds=(SETTLEMENT_COMMAND,),
)

# ---- API Integration -------------------------------------------------------------------

INTEGRATION_EVENTS = TopicSpec(
    name="integration.events",
    partitions=6,
    value_schema="bytes",
    description="source events of integration flows (raw bytes + headers), keyed by entity",
    kinds=(INTEGRATION_EVENT,),
)

INTEGRATION_COMMANDS = TopicSpec(
    name="integration.commands",
    partitions=6,
    description="re-run requests for integration runs, published by the API",
    kinds=(INTEGRATION_RERUN,),
)

# ---- SaaS Notifications ----------------------------------------------------------------

NOTIFICATION_COMMANDS = TopicSpec(
    name="notifications.commands",
    partitions=6,
    description="resume a workflow run or flush a digest (JSON), keyed by run or digest",
    kinds=(NOTIFICATION_RESUME,),
)

# ---- Data Aggregation (raw JSON bytes; the DataSource and its logic in headers) ---------
AGGREGATION_RAW = TopicSpec(
    name="aggregation.raw",
    value_schema="bytes",
    description="source payloads of data sources, before their TransformationLogic",
    kinds=(AGGREGATION_PAYLOAD,),
)
MARKET_TICKS = TopicSpec(
    name="market.ticks",
    retention_ms=3 * DAY_MS,
    description="market-data ticks (JSON), keyed by symbol",
    kinds=(MARKET_TICK,),
)
CANONICAL_EVENTS = TopicSpec(
    name="synapseops.canonical.events",
    retention_ms=30 * DAY_MS,
    value_schema="canonical_event",
    description="canonical events of every data source (Avro, Confluent wire format), keyed "
    "by source and subject; other teams consume it, the warehouse loader loads it",
)

# ---- CRM Automation ---------------------------------------------------------------------

CRM_CHANGES = TopicSpec(
    name="crm.changes",
    partitions=6,
    # Which record moved on which side (never its fields: the sync reads both sides when it
    # handles it), keyed by the record's link so one pair's changes stay in order; and the
    # API's resolve commands for held conflicts, keyed the same way.
    description="CRM change events from both sides' feeds and conflict resolutions, by link",
    kinds=(CRM_CHANGE, CRM_RESOLVE),
)

PLATFORM_TOPICS: tuple[TopicSpec, ...] = (
    INBOUND_EVENTS,
    NOTIFICATION_TRIGGERS,
    STRIPE_EVENTS,
    SETTLEMENT_COMMANDS,
    INTEGRATION_EVENTS,
    INTEGRATION_COMMANDS,
    NOTIFICATION_COMMANDS,
    AGGREGATION_RAW,
    MARKET_TICKS,
    CANONICAL_EVENTS,
    CRM_CHANGES,
)

_PLATFORM_TOPIC_BY_NAME = {spec.name: spec for spec in PLATFORM_TOPICS}


def default_kind(topic: str) -> str | None:
    """The message kind of a record produced onto platform topic ``topic`` without saying."""
    spec = _PLATFORM_TOPIC_BY_NAME.get(topic)
    return spec.kinds[0] if spec is not None and spec.kinds else None


# ---- the platform's pipelines ----------------------------------------------------------
# A pipeline is named after what it does, not after the topic it reads. Tiers left as None
# take SYNAPSEOPS_RETRY_TIERS; a pipeline may pin its own.

EVENT_LOG = "event-log"
PAYMENT_SETTLEMENT = "payment-settlement"
INTEGRATION_DELIVERY = "integration-delivery"
NOTIFICATION_DISPATCH = "notification-dispatch"
AGGREGATION_TRANSFORM = "aggregation-transform"
CRM_SYNC = "crm-sync"
PIPELINE_INPUTS: dict[str, tuple[str, ...]] = {
    EVENT_LOG: (INBOUND_EVENTS.name,),
    PAYMENT_SETTLEMENT: (STRIPE_EVENTS.name, SETTLEMENT_COMMANDS.name),
    INTEGRATION_DELIVERY: (INTEGRATION_EVENTS.name, INTEGRATION_COMMANDS.name),
    # Settlement commands too: a large payment's decision, from the inbox or the settlement's
    # own API, is the first command on that payment's partition, read here as by payments.
    NOTIFICATION_DISPATCH: (
        NOTIFICATION_TRIGGERS.name,
        NOTIFICATION_COMMANDS.name,
        SETTLEMENT_COMMANDS.name,
    ),
    AGGREGATION_TRANSFORM: (AGGREGATION_RAW.name, MARKET_TICKS.name),
    CRM_SYNC: (CRM_CHANGES.name,),
}
PIPELINE_TIERS: dict[str, tuple[float, ...] | None] = {
    EVENT_LOG: None,
    PAYMENT_SETTLEMENT: None,
    INTEGRATION_DELIVERY: None,
    NOTIFICATION_DISPATCH: None,
    AGGREGATION_TRANSFORM: None,
    CRM_SYNC: None,
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
