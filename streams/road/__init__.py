"""The reliability road: retry tiers, tier consumers and failure routing for every pipeline.

A pipeline declares itself (:class:`~streams.road.pipeline.Pipeline`) with one handler per
message kind; :func:`process` runs the handler of a record's kind (:mod:`streams.road.kinds`)
and never lets an exception escape; a failure is handed to the
:class:`~streams.road.router.FailureRouter`, which produces the record to its next retry tier,
the parking topic or the dead-letter topic (:mod:`streams.road.tiers` decides which) with its
history and kind in the headers (:mod:`streams.road.headers`); a
:class:`~streams.road.tier_consumer.TierConsumer` per tier topic (and one for parking) holds
each record until it is due (:mod:`streams.road.holds`) and runs it through :func:`process`
again.
"""

from streams.road.headers import FailureHistory
from streams.road.pipeline import Outcome, Pipeline, process
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.road.tier_consumer import TierConsumer, tier_consumers
from streams.road.tiers import Hop, delay_for, next_hop

__all__ = [
    "FailureHistory",
    "FailureRouter",
    "Hop",
    "Outcome",
    "Pipeline",
    "RoadRecord",
    "TierConsumer",
    "delay_for",
    "next_hop",
    "process",
    "tier_consumers",
]
