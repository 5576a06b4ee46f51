"""Where a failed record goes next, and when it may be tried again. Pure functions.

With tiers ``(d1, d2, d3)`` a record is tried once on its input and once per tier, then it is
dead: failure 1 → tier 1 (due after d1 ± jitter), 2 → tier 2, 3 → tier 3, 4 → dead letter.
A fatal error goes to the dead letter at once. The tier count (``retries``) restarts at 0
after a replay; ``attempt`` never does (see :mod:`streams.road.headers`).

``Retry-After`` (429, some 5xx) is honoured, but never at the price of the records behind:

* the wait is ``max(tier delay, retry_after)``, with ``retry_after`` cut to the pipeline's
  ``max_retry_after_s`` (``SYNAPSEOPS_RETRY_MAX_RETRY_AFTER``, 1 h by default); a negative,
  NaN or missing one is no request at all;
* a tier consumer holds a partition's head by pausing that partition, so a record must never
  wait on a tier longer than that tier's delay: a longer wait goes to the tier with the
  smallest delay that covers it, or — longer than every tier — to the pipeline's parking
  topic, whose consumer holds many records per partition (:mod:`streams.road.tier_consumer`).
  Where it waits does not change how many tries it has used: ``retries`` counts tries, the
  topic is only a waiting room.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from streams.road.headers import FailureHistory
from topics.registry import PipelineSpec

RETRYABLE = "retryable"
FATAL = "fatal"


@dataclass(frozen=True)
class Hop:
    """The next stop of a failed record: retry ``tier`` (0-based: which try this is), waiting
    on ``topic`` (that tier's, a later one's or the parking topic, ``parked``), or the dead
    letter (``tier`` None)."""

    topic: str
    tier: int | None
    not_before_ms: int | None
    retries: int
    parked: bool = False

    @property
    def dead(self) -> bool:
        return self.tier is None


def delay_for(
    tier: int, delays: tuple[float, ...], jitter: float, rng: random.Random | None = None
) -> float:
    """Tier ``tier``'s delay in seconds, spread uniformly by ``±jitter`` (0.2 = ±20 %) so a
    burst of failures does not come back as a burst."""
    base = delays[tier]
    if jitter <= 0:
        return base
    return base * (1.0 + (rng or random).uniform(-jitter, jitter))


def next_hop(
    history: FailureHistory,
    spec: PipelineSpec,
    now_ms: int,
    retry_after: float | None = None,
    *,
    kind: str = RETRYABLE,
    jitter: float = 0.2,
    rng: random.Random | None = None,
    max_retry_after_s: float = 3600.0,
) -> Hop:
    """The hop for a record with ``history`` that just failed with an error of ``kind``.

    ``history`` is the record's history *before* this failure; ``retry_after`` is in seconds.
    """
    if kind != RETRYABLE or history.retries >= len(spec.retry_delays):
        return Hop(topic=spec.dlq_topic, tier=None, not_before_ms=None, retries=history.retries)
    tier = max(history.retries, 0)
    wait = delay_for(tier, spec.retry_delays, jitter, rng)
    asked = capped_retry_after(retry_after, max_retry_after_s)
    topic, parked = spec.retry_topic(tier), False
    if asked is not None and asked > wait:
        wait = asked
        if asked > spec.retry_delays[tier]:
            topic, parked = waiting_room(spec, asked)
    return Hop(
        topic=topic,
        tier=tier,
        not_before_ms=now_ms + int(round(wait * 1000)),
        retries=tier + 1,
        parked=parked,
    )


def capped_retry_after(retry_after: float | None, cap_s: float) -> float | None:
    """``retry_after`` seconds as the road honours it: None unless a positive number, and
    never above ``cap_s`` (infinity included)."""
    if retry_after is None or math.isnan(retry_after) or retry_after <= 0:
        return None
    return min(retry_after, cap_s)


def waiting_room(spec: PipelineSpec, wait_s: float) -> tuple[str, bool]:
    """Where a record waits ``wait_s``: the tier with the smallest delay that covers it (its
    partitions are held at most that long anyway), else the parking topic (``True``)."""
    covering = [(delay, tier) for tier, delay in enumerate(spec.retry_delays) if delay >= wait_s]
    if covering:
        return spec.retry_topic(min(covering)[1]), False
    return spec.parking_topic, True
