"""Which handler of a pipeline takes a record: its message kind, never the topic it sits on.

A pipeline reads several inputs (Stripe events and settlement commands; source events and
re-run commands) but has one set of retry tiers, so a record on ``<pipeline>.retry.10s`` may
be any of them. The record says what it is in ``synapseops-message-kind``
(:data:`synapseops.headers.MESSAGE_KIND`), and :func:`kind_of` reads it like this:

1. **On one of the pipeline's inputs** the topic is the authority on what it carries: the
   header when it names a kind that input declares (``TopicSpec.kinds``), else the input's
   first kind. A header naming a kind the input does not carry (copied from a foreign record
   by a Kafka-topic source, say) never chooses the handler.
2. **Anywhere else** (a retry tier, the parking topic, a replay, which goes to the first tier):
   the header. The router stamps the kind a record was handled as on every hand-off, so every
   record on the road carries one. A record that reached the road before the header existed
   falls back to the kind of its ``synapseops-original-topic``, which the router has always set.
3. A pipeline with a single handler gives it every record it cannot place otherwise.

Anything else is :class:`~synapseops.errors.UnknownKind` (fatal: the dead letter keeps it for
a person). The tier's own topic name is never looked at.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from streams.road.record import RoadRecord
from synapseops import headers as kh
from synapseops.errors import UnknownKind


def kind_of(
    record: RoadRecord,
    inputs: Mapping[str, tuple[str, ...]],
    handled: Collection[str],
) -> str:
    """The message kind of ``record`` for a pipeline reading ``inputs`` (input topic → the
    kinds it carries, first is the default) with handlers for ``handled`` kinds."""
    stamped = kh.message_kind(record.headers)
    if record.topic in inputs:
        carried = inputs[record.topic]
        if stamped is not None and stamped in (carried or handled):
            return stamped
        if carried:
            return carried[0]
    else:
        if stamped is not None and stamped in handled:
            return stamped
        original = record.history.original_topic
        if original is not None and inputs.get(original):
            return inputs[original][0]
    if len(handled) == 1:
        return next(iter(handled))
    raise UnknownKind(
        f"record {record.coordinates} of kind {stamped or '(none)'} fits none of {sorted(handled)}"
    )
