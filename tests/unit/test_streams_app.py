"""The Faust app factory, the worker wiring, health, and the sink base — no broker, no database."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import sqlalchemy

from sinks.base import Sink
from sinks.db import database_errors
from streams.app import broker_url, create_app
from streams.bootstrap import SharedProducer
from streams.health import app_health
from streams.worker import build_worker
from synapseops.errors import DatabaseUnavailable, SchemaInvalid, SinkUnavailable
from synapseops.settings import KafkaSettings, Settings, WorkerSettings
from topics.registry import INBOUND_EVENTS


def settings(bootstrap: str = "127.0.0.1:19999") -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap=bootstrap),
        worker=WorkerSettings(group_id="g-unit"),
    )


def test_broker_comes_from_settings() -> None:
    assert broker_url(settings("a:1, b:2")) == "kafka://a:1;kafka://b:2"
    app = create_app(settings())
    assert [str(url) for url in app.conf.broker] == ["kafka://127.0.0.1:19999"]


def test_app_is_configured_for_the_registry_and_durability() -> None:
    conf = create_app(settings()).conf
    assert conf.id == "g-unit"
    assert conf.web_enabled is False
    assert conf.topic_disable_leader is True
    assert conf.topic_allow_declare is False
    assert conf.producer_acks == -1
    assert conf.consumer_auto_offset_reset == "earliest"
    assert str(conf.store) == "memory:"


def test_two_apps_do_not_share_state() -> None:
    # No import-time app: each call builds its own.
    assert create_app(settings()) is not create_app(settings())


def test_worker_puts_every_declared_pipeline_on_the_road() -> None:
    s = settings()
    engine = sqlalchemy.create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    worker = build_worker(s, engine)
    agents = {agent.name: agent for agent in worker.app.agents.values()}
    assert "road.event-log" in agents
    assert agents["road.event-log"].channel.get_topic_name() == INBOUND_EVENTS.name
    assert all(agent.concurrency == 1 for agent in agents.values())
    # The runtime's producer connects at once; close it so it does not outlive the test.
    (shared,) = [service for service in worker.services if isinstance(service, SharedProducer)]
    shared.runtime.producer.close(timeout=0)


def test_health_is_503_before_the_app_runs() -> None:
    healthy, details = app_health(create_app(settings()))
    assert healthy is False
    assert details["app"] == "init" and details["consumer"] == "absent"


def test_health_is_503_while_the_consumer_thread_has_not_started() -> None:
    # A /health or /metrics request can come between building the consumer and starting its
    # thread; assignment() raises ConsumerNotStarted then, which aiohttp logged as a 500.
    app = create_app(settings())
    consumer = app.consumer  # built, not started
    healthy, details = app_health(app)
    assert healthy is False
    assert details["consumer"] == consumer.state and details["assigned_partitions"] == 0


# ---- sink base ----------------------------------------------------------------------------


class FlakySink(Sink[int]):
    def __init__(self, error: Exception | None) -> None:
        super().__init__()
        self.error = error
        self.written: list[int] = []

    def write(self, batch: Sequence[int]) -> int:
        if self.error is not None:
            raise self.error
        self.written.extend(batch)
        return len(batch)


def test_flush_writes_the_buffer_once() -> None:
    sink = FlakySink(None)
    sink.add(1)
    sink.add(2)
    assert sink.flush() == 2 and sink.flush() == 0
    assert sink.written == [1, 2]


def test_failed_flush_keeps_the_buffer_and_wraps_foreign_errors() -> None:
    sink = FlakySink(OSError("socket closed"))
    sink.add(1)
    with pytest.raises(SinkUnavailable) as info:
        sink.flush()
    assert isinstance(info.value.__cause__, OSError)
    assert sink.pending() == 1
    sink.error = None
    assert sink.flush() == 1


def test_platform_errors_pass_through_unchanged() -> None:
    with pytest.raises(SchemaInvalid):
        FlakySink(SchemaInvalid("bad")).write_one(1)


def _dbapi(cls: type[sqlalchemy.exc.DBAPIError]) -> sqlalchemy.exc.DBAPIError:
    return cls("INSERT ...", {"secret": "payload"}, Exception("server closed the connection\nx"))


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (_dbapi(sqlalchemy.exc.OperationalError), DatabaseUnavailable),
        (_dbapi(sqlalchemy.exc.ProgrammingError), DatabaseUnavailable),
        (_dbapi(sqlalchemy.exc.DataError), SchemaInvalid),
        (_dbapi(sqlalchemy.exc.IntegrityError), SchemaInvalid),
        (sqlalchemy.exc.TimeoutError("pool exhausted"), DatabaseUnavailable),
    ],
)
def test_database_errors_map_onto_the_error_tree(
    raised: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as info, database_errors("inbound_events"):
        raise raised
    # The statement's parameters (payload data) never reach the message.
    assert "payload" not in str(info.value)


def test_a_worker_can_run_only_some_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.bootstrap import Runtime, load_services
    from synapseops.errors import ConfigurationError

    engine = sqlalchemy.create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    chosen = Settings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:19999"),
        worker=WorkerSettings(group_id="g-unit", pipelines="event-log"),
    )
    runtime = Runtime.build(chosen, engine)
    try:
        loaded = load_services(runtime)
        assert [p.name for p in loaded.pipelines] == ["event-log"]
        runtime.settings = chosen.model_copy(
            update={"worker": WorkerSettings(group_id="g", pipelines="event-log,nope")}
        )
        with pytest.raises(ConfigurationError, match="nope"):
            load_services(runtime)
    finally:
        runtime.producer.close(timeout=0)
