"""The headers of a source payload on ``aggregation.raw``: what every producer onto it (the
OTLP receiver, bulk uploads, the GitHub poller) stamps, and what the pipeline reads back."""

from __future__ import annotations

import uuid

from synapseops import headers as h
from topics.registry import AGGREGATION_PAYLOAD


def raw_headers(
    *,
    source: str,
    logic: str,
    source_type: str,
    event_id: str,
    event_type: str,
    traceparent: str,
    job_id: uuid.UUID | None = None,
) -> h.HeaderList:
    headers = h.ingress_headers(
        event_id=event_id,
        source=source,
        traceparent=traceparent,
        received_at=h.received_at_now(),
        event_type=event_type,
    )
    headers += [(h.AGGREGATION_LOGIC, logic.encode()), (h.SOURCE_TYPE, source_type.encode())]
    if job_id is not None:
        headers.append((h.AGGREGATION_JOB, str(job_id).encode()))
    return h.with_kind(headers, AGGREGATION_PAYLOAD)
