"""Prometheus metrics of the API process (default registry, served at ``/metrics``).

The ``source`` label comes from an unauthenticated URL segment, so its values are bounded:

- a connector webhook is labelled with the connector's name only once a request has found
  that connector in the database (:func:`confirm_connector`); until then, and for every
  invented name, it is :data:`UNKNOWN_CONNECTOR` — made-up names never take a label, so
  they cannot crowd out the real connectors;
- other sources: after :data:`MAX_SOURCE_LABELS` distinct ones, new ones count as ``_other``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

from sinks.crm.metrics import CrmConflictGauges
from sinks.dead_letters.metrics import DeadLetterGauges

MAX_SOURCE_LABELS = 100
OTHER_SOURCE = "_other"
INVALID_SOURCE = "_invalid"
UNKNOWN_CONNECTOR = "unknown"

# Outcomes of one ingress request (the Stripe ingress adds invalid_signature, not_configured).
ACCEPTED = "accepted"
TOO_LARGE = "too_large"
INVALID = "invalid"
UNAVAILABLE = "unavailable"
OVERLOADED = "overloaded"  # 503 from api/overload.py: the process holds all it may

INGRESS_REQUESTS = Counter(
    "synapseops_ingress_requests_total",
    "Webhook ingress requests by source and outcome "
    "(accepted, too_large, invalid, invalid_signature, unavailable, ...).",
    ["source", "outcome"],
)
INGRESS_LATENCY = Histogram(
    "synapseops_ingress_latency_seconds",
    "Time from request start to the answer, including the wait for Kafka's acks=all.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INGRESS_BYTES = Counter(
    "synapseops_ingress_bytes_total",
    "Raw body bytes of accepted ingress requests.",
    ["source"],
)

# Read from PostgreSQL at scrape time; the app's lifespan points it at its engine.
DEAD_LETTER_GAUGES = DeadLetterGauges()
REGISTRY.register(DEAD_LETTER_GAUGES)
CRM_CONFLICT_GAUGES = CrmConflictGauges()
REGISTRY.register(CRM_CONFLICT_GAUGES)

_seen_sources: set[str] = set()
_seen_lock = threading.Lock()


def source_label(source: str, *, valid: bool = True) -> str:
    """The label value for ``source``, bounded in cardinality."""
    if not valid:
        return INVALID_SOURCE
    with _seen_lock:
        if source in _seen_sources:
            return source
        if len(_seen_sources) >= MAX_SOURCE_LABELS:
            return OTHER_SOURCE
        _seen_sources.add(source)
        return source


_known_connectors: set[str] = set()


def connector_label(connector: str) -> str:
    """The label of a connector webhook request before its connector was looked up."""
    with _seen_lock:
        return connector if connector in _known_connectors else UNKNOWN_CONNECTOR


def confirm_connector(connector: str) -> str:
    """``connector`` exists (its endpoint was found): its name is a label from now on."""
    with _seen_lock:
        if connector not in _known_connectors and len(_known_connectors) >= MAX_SOURCE_LABELS:
            return OTHER_SOURCE
        _known_connectors.add(connector)
        return connector


def count_5xx_from_zero(sources: Iterable[str]) -> None:
    """Create each source's ``unavailable`` series at 0 when the app starts: a counter born at
    1 by its first 5xx reads as flat to ``rate()``, and the ingress 5xx alert never fires."""
    for source in sources:
        INGRESS_REQUESTS.labels(source=source_label(source), outcome=UNAVAILABLE)
        INGRESS_REQUESTS.labels(source=source_label(source), outcome=OVERLOADED)


def exposition() -> tuple[bytes, str]:
    """The default registry in the text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
