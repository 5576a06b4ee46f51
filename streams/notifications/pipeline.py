"""The ``notification-dispatch`` pipeline: triggers, resume commands and settlement decisions.

Inputs (``topics/registry.py``): ``synapseops.notifications.triggers`` (Avro triggers from every
service), ``notifications.commands`` (resume a run / flush a digest, from the waker and the
API) and ``payments.settlement.commands`` (a large payment's decision; see
:mod:`streams.notifications.engine`). A send refused for now (429, the channel's rate gate) is
no failure: its run waits for the ``Retry-After`` and the waker resumes it, no tier spent.
Every other failure rides the road: a 5xx goes to the next retry tier, a refusal for good (bad
token, unknown channel, a card that does not fit) to the dead letter — whose own
``dead_letter`` trigger this pipeline then ignores. The waker runs as a supervised task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.notifications.engine import Engine
from streams.notifications.waker import Waker
from streams.road import Pipeline
from streams.supervision import TaskSpec
from topics.registry import NOTIFICATION_DISPATCH

if TYPE_CHECKING:
    from streams.bootstrap import Runtime

_engines: dict[int, Engine] = {}


def engine_of(runtime: Runtime) -> Engine:
    """One engine per runtime (its rate gates and HTTP clients are shared by all sends)."""
    found = _engines.get(id(runtime))
    if found is None:
        found = _engines[id(runtime)] = Engine(runtime.settings, runtime.engine, runtime.producer)
    return found


def pipelines(runtime: Runtime) -> list[Pipeline]:
    engine = engine_of(runtime)
    return [Pipeline.declared(NOTIFICATION_DISPATCH, engine.handlers, runtime.settings)]


def tasks(runtime: Runtime) -> list[TaskSpec]:
    engine = engine_of(runtime)
    return [TaskSpec("notification-waker", lambda: Waker(engine))]
