"""Where a failed record goes next, and when it may be tried again. Pure functions.

With tiers ``(d1, d2, d3)`` a record is tried once on its input and once per tier, then it is
dead: failure 1 → tier 1 (due after d1 ± jitter), 2 → tier 2, 3 → tier 3, 4 → dead letter.
A fatal error goes to the dead letter at once. A 429's ``Retry-After`` is honoured: the hold is
``max(tier delay, retry_after)``. The tier count (``retries``) restarts at 0 after a replay;
``attempt`` never does (see :mod:`streams.road.headers`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streams.road.headers import FailureHistory
from topics.registry import PipelineSpec

RETRYABLE = "retryable"
FATAL = "fatal"


@dataclass(frozen=True)
class Hop:
    """The next stop of a failed record: a retry tier (``tier`` 0-based) or the dead letter."""

    topic: str
    tier: int | None
    not_before_ms: int | None
    retries: int

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
) -> Hop:
    """The hop for a record with ``history`` that just failed with an error of ``kind``.

    ``history`` is the record's history *before* this failure; ``retry_after`` is in seconds.
    """
    if kind != RETRYABLE or history.retries >= len(spec.retry_delays):
        return Hop(topic=spec.dlq_topic, tier=None, not_before_ms=None, retries=history.retries)
    tier = max(history.retries, 0)
    delay = delay_for(tier, spec.retry_delays, jitter, rng)
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return Hop(
        topic=spec.retry_topic(tier),
        tier=tier,
        not_before_ms=now_ms + int(round(delay * 1000)),
        retries=tier + 1,
    )
