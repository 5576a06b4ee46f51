"""One supervisor for every background task of a worker process.

A background task (the dead-letter store, a retry tier's consumer, the REST pollers, the
Kafka-topic forwarders, whatever a next service adds) is declared as a :class:`TaskSpec`: a
name and a factory of a fresh :class:`Supervised` unit. The :class:`Supervisor` runs each
unit's :meth:`~Supervised.run` as an asyncio task and, when one dies (raises, or returns
without having been asked to stop):

- records which and why: :meth:`Supervisor.health` lists it as ``down`` with the error, and
  the worker's ``/health`` answers 503 naming it (``streams/health.py``);
- counts it: ``synapseops_task_restarts_total{task}`` grows by one per restart,
  ``synapseops_tasks_down`` is the number of tasks down right now, ``synapseops_task_up{task}``
  is 1 while a task runs;
- builds a fresh unit and starts it again after a backoff (doubling from
  ``SYNAPSEOPS_SUPERVISION_BACKOFF_INITIAL_S`` up to ``_BACKOFF_MAX_S``; a unit that ran for
  ``_HEALTHY_AFTER_S`` before dying starts over from the initial delay).

A fresh unit per start, because a unit that died may hold a closed consumer or a shut-down
executor; the unit's own ``run`` sets up and tears down what it uses (``finally``).

Why not mode's own supervisors: they restart a :class:`mode.Service` without a backoff, keep
the reason only in a log line, and a ``Service.task`` that raises crashes the whole worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mode import Service
from prometheus_client import Counter, Gauge

from synapseops.logging import get_logger
from synapseops.settings import SupervisionSettings

log = get_logger(__name__)

TASK_RESTARTS = Counter(
    "synapseops_task_restarts_total",
    "Background tasks of this process restarted after they died, by task",
    ["task"],
)
TASKS_DOWN = Gauge("synapseops_tasks_down", "Background tasks of this process down right now")
TASK_UP = Gauge(
    "synapseops_task_up", "1 while a background task runs, 0 while it is down", ["task"]
)
# Every running supervisor of this process (one in a worker; tests may hold several).
_LIVE: set[Supervisor] = set()
TASKS_DOWN.set_function(lambda: sum(len(supervisor.down()) for supervisor in _LIVE))

MAX_REASON_CHARS = 500


class Supervised(Protocol):
    """A unit of background work. ``run`` works until ``stop`` is asked, then returns; an
    exception out of ``run`` means it died. ``stop`` only asks (it may be called before or
    while ``run`` runs, and more than once)."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class TaskSpec:
    """A supervised task: its name (as ``/health`` and the metrics show it) and a factory of
    a fresh unit for each start."""

    name: str
    build: Callable[[], Supervised]


@dataclass
class TaskState:
    """What the supervisor knows of one task (read by ``/health``)."""

    name: str
    running: bool = False
    restarts: int = 0
    error: str | None = None
    down_since: float | None = None
    started_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        since = (
            datetime.fromtimestamp(self.down_since, UTC).isoformat(timespec="seconds")
            if self.down_since is not None
            else None
        )
        return {
            "state": "running" if self.running else "down",
            "restarts": self.restarts,
            "error": self.error,
            "down_since": since,
        }


def failure_reason(exc: BaseException) -> str:
    """The one place a dead task's exception becomes text (health body, logs)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


class Supervisor(Service):
    """Runs and restarts the given tasks for the life of the worker (see the module doc)."""

    def __init__(
        self,
        specs: Sequence[TaskSpec],
        settings: SupervisionSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"supervised task names must be unique, got {names}")
        self.specs = list(specs)
        self.config = settings or SupervisionSettings()
        self.states = {spec.name: TaskState(spec.name) for spec in self.specs}
        self._units: dict[str, Supervised] = {}
        self._keepers: dict[asyncio.Task[None], str] = {}
        self._stopping = asyncio.Event()

    # ---- what /health reads ------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(every task running, {task: state})``."""
        tasks = {name: state.as_json() for name, state in self.states.items()}
        return all(state.running for state in self.states.values()), tasks

    def down(self) -> list[str]:
        return sorted(name for name, state in self.states.items() if not state.running)

    # ---- lifecycle ---------------------------------------------------------------------

    async def on_start(self) -> None:
        self._stopping.clear()
        _LIVE.add(self)
        for spec in self.specs:
            # Down until its unit runs: a task that never started is not healthy either.
            self.states[spec.name].down_since = time.time()
            TASK_UP.labels(spec.name).set(0)
            TASK_RESTARTS.labels(spec.name)  # from 0: the first restart is an increase
            keeper = asyncio.create_task(self._keep(spec), name=f"supervise:{spec.name}")
            self._keepers[keeper] = spec.name
        log.info("supervised tasks started", extra={"tasks": [spec.name for spec in self.specs]})

    async def on_stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(
            *(self._ask_stop(name, unit) for name, unit in list(self._units.items()))
        )
        if self._keepers:
            _, pending = await asyncio.wait(self._keepers, timeout=self.config.stop_grace_s)
            for keeper in pending:
                log.warning(
                    "supervised task did not stop in time; cancelled",
                    extra={"task": self._keepers[keeper]},
                )
                keeper.cancel()
            await asyncio.gather(*self._keepers, return_exceptions=True)
        self._keepers.clear()
        for state in self.states.values():
            state.running = False
            TASK_UP.labels(state.name).set(0)
        _LIVE.discard(self)
        log.info("supervised tasks stopped")

    async def _ask_stop(self, name: str, unit: Supervised) -> None:
        try:
            await unit.stop()
        except Exception:
            log.exception("stopping a supervised task failed", extra={"task": name})

    # ---- the loop of one task ----------------------------------------------------------

    async def _keep(self, spec: TaskSpec) -> None:
        state = self.states[spec.name]
        delay = self.config.backoff_initial_s
        first = True
        while not self._stopping.is_set():
            if not first:
                state.restarts += 1
                TASK_RESTARTS.labels(spec.name).inc()
                log.info(
                    "supervised task restarting",
                    extra={"task": spec.name, "restarts": state.restarts},
                )
            first = False
            started = time.monotonic()
            reason = await self._run_once(spec, state)
            if reason is None:  # asked to stop, and it did
                return
            self._mark_down(state, reason)
            if time.monotonic() - started >= self.config.healthy_after_s:
                delay = self.config.backoff_initial_s
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            delay = min(delay * 2, self.config.backoff_max_s)

    async def _run_once(self, spec: TaskSpec, state: TaskState) -> str | None:
        """Build and run one unit; ``None`` if it ended because it was asked to, else why not."""
        try:
            unit = spec.build()
            if self._stopping.is_set():
                return None
            # No await between the check and this: on_stop either sees the unit or it never runs.
            self._units[spec.name] = unit
            self._mark_running(state)
            await unit.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._stopping.is_set():
                log.warning(
                    "supervised task failed while stopping",
                    extra={"task": spec.name, "error": failure_reason(exc)},
                )
                return None
            log.exception(
                "supervised task died", extra={"task": spec.name, "error": failure_reason(exc)}
            )
            return failure_reason(exc)
        finally:
            self._units.pop(spec.name, None)
        if self._stopping.is_set():
            return None
        log.error("supervised task returned without being asked to", extra={"task": spec.name})
        return "returned without being asked to stop"

    def _mark_running(self, state: TaskState) -> None:
        state.running, state.error, state.down_since = True, None, None
        state.started_at = time.time()
        TASK_UP.labels(state.name).set(1)

    def _mark_down(self, state: TaskState, reason: str) -> None:
        state.running, state.error, state.down_since = False, reason, time.time()
        TASK_UP.labels(state.name).set(0)
