"""The worker's consumer waits ``SYNAPSEOPS_KAFKA_FETCH_MAX_WAIT_MS`` for a fetch, not Faust's
fixed 1,500 ms (streams/app.py says why: paced records arrived in 1.5 s waves)."""

from __future__ import annotations

import asyncio

from streams.app import create_app
from synapseops.settings import KafkaSettings, Settings


def consumer_fetch_wait(settings: Settings) -> int:
    async def build() -> int:
        app = create_app(settings)
        thread = app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        try:
            wait: int = consumer._fetch_max_wait_ms  # what start() gives the fetcher
            return wait
        finally:
            await consumer.stop()  # never started: closes nothing but marks it closed

    return asyncio.run(build())


def test_the_worker_consumer_waits_the_project_setting_not_faust_1500_ms() -> None:
    assert Settings().kafka.fetch_max_wait_ms == 25
    assert consumer_fetch_wait(Settings()) == 25


def test_the_fetch_wait_is_a_setting() -> None:
    settings = Settings().model_copy(update={"kafka": KafkaSettings(fetch_max_wait_ms=400)})
    assert consumer_fetch_wait(settings) == 400
