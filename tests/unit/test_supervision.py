"""The supervisor of background tasks, with units of our own: no broker, no database."""

from __future__ import annotations

import asyncio

import pytest
from mode import Service
from prometheus_client import REGISTRY

from streams.bootstrap import _refuse_unsupervised
from streams.supervision import Supervisor, TaskSpec, failure_reason
from synapseops.errors import ConfigurationError
from synapseops.settings import SupervisionSettings

FAST = SupervisionSettings(backoff_initial_s=0.01, backoff_max_s=0.04, healthy_after_s=60)


class Flaky:
    """Dies ``deaths`` times (counted across instances), then runs until stopped."""

    built = 0
    deaths = 0

    def __init__(self, die: int) -> None:
        type(self).built += 1
        self.die = die
        self._stop = asyncio.Event()

    async def run(self) -> None:
        if type(self).deaths < self.die:
            type(self).deaths += 1
            raise RuntimeError(f"death {type(self).deaths}")
        await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()


def restarts(task: str) -> float:
    return REGISTRY.get_sample_value("synapseops_task_restarts_total", {"task": task}) or 0.0


async def until(condition: object, steps: int = 500) -> None:
    for _ in range(steps):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def test_a_task_that_dies_is_reported_counted_and_restarted_with_backoff() -> None:
    Flaky.built = Flaky.deaths = 0
    name = "unit-flaky"
    before = restarts(name)

    async def scenario() -> None:
        supervisor = Supervisor([TaskSpec(name, lambda: Flaky(die=3))], FAST)
        await supervisor.start()
        try:
            await until(lambda: Flaky.built == 4 and supervisor.states[name].running)
            healthy, tasks = supervisor.health()
            assert healthy and tasks[name]["state"] == "running"
            assert tasks[name]["restarts"] == 3 and tasks[name]["error"] is None
        finally:
            await supervisor.stop()

    asyncio.run(scenario())
    assert restarts(name) - before == 3
    assert REGISTRY.get_sample_value("synapseops_task_up", {"task": name}) == 0.0


def test_a_task_down_makes_health_say_which_and_why() -> None:
    class Dead:
        async def run(self) -> None:
            raise ValueError("bad config in endpoint 7")

        async def stop(self) -> None:
            pass

    slow = SupervisionSettings(backoff_initial_s=30, backoff_max_s=60)

    async def scenario() -> None:
        supervisor = Supervisor(
            [TaskSpec("unit-dead", Dead), TaskSpec("unit-fine", lambda: Flaky(die=0))], slow
        )
        Flaky.deaths = 0
        await supervisor.start()
        try:
            await until(lambda: supervisor.states["unit-dead"].error is not None)
            healthy, tasks = supervisor.health()
            assert not healthy and supervisor.down() == ["unit-dead"]
            assert tasks["unit-dead"]["state"] == "down"
            assert tasks["unit-dead"]["error"] == "ValueError: bad config in endpoint 7"
            assert tasks["unit-dead"]["down_since"] is not None
            assert tasks["unit-fine"]["state"] == "running"
            assert REGISTRY.get_sample_value("synapseops_tasks_down") == 1.0
        finally:
            await supervisor.stop()  # stops during the backoff, without waiting it out

    asyncio.run(scenario())


def test_a_task_that_returns_unasked_counts_as_dead() -> None:
    class Quitter:
        async def run(self) -> None:
            return None

        async def stop(self) -> None:
            pass

    async def scenario() -> None:
        supervisor = Supervisor([TaskSpec("unit-quitter", Quitter)], FAST)
        await supervisor.start()
        try:
            await until(lambda: supervisor.states["unit-quitter"].restarts >= 2)
            assert "returned without being asked" in (supervisor.states["unit-quitter"].error or "")
        finally:
            await supervisor.stop()

    asyncio.run(scenario())


def test_names_are_unique_and_reasons_are_bounded() -> None:
    with pytest.raises(ValueError, match="unique"):
        Supervisor([TaskSpec("a", lambda: Flaky(0)), TaskSpec("a", lambda: Flaky(0))])
    assert len(failure_reason(RuntimeError("x" * 5000))) == 500


def test_a_service_with_its_own_background_task_is_refused() -> None:
    class Unsupervised(Service):
        @Service.task
        async def _work(self) -> None:
            pass

    class StartStopOnly(Service):
        async def on_stop(self) -> None:
            pass

    with pytest.raises(ConfigurationError, match="outside supervision"):
        _refuse_unsupervised("streams.somewhere", Unsupervised())
    _refuse_unsupervised("streams.somewhere", StartStopOnly())
