"""The local stack's plan: step order, the children's environment, health URLs, postgres args."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from synapseops.errors import ConfigurationError
from synapseops.local.postgres import LocalPostgres, server_options
from synapseops.local.stack import STEPS, child_environment, parse_steps, platform_process
from synapseops.settings import (
    ApiSettings,
    DatabaseSettings,
    KafkaSettings,
    SandboxSettings,
    Settings,
    WorkerSettings,
)


def _settings(tmp_path: Path, url: str | None = None) -> Settings:
    return Settings(
        data_dir=tmp_path,
        kafka=KafkaSettings(bootstrap="127.0.0.1:19192", controller_port=19193),
        database=DatabaseSettings(local_port=55532, url=SecretStr(url) if url else None),
        api=ApiSettings(port=18000),
        sandbox=SandboxSettings(port=18100, smtp_port=18125),
        worker=WorkerSettings(metrics_port=18200),
    )


def test_steps_run_in_stack_order_whatever_order_they_are_named() -> None:
    # Without names: the platform; the demo's sample traffic only when asked for.
    assert parse_steps(None) == [step for step in STEPS if step != "traffic"]
    assert parse_steps(["traffic"]) == ["traffic"]
    assert parse_steps(["api,kafka", "postgres"]) == ["kafka", "postgres", "api"]
    with pytest.raises(ConfigurationError, match="unknown part"):
        parse_steps(["kafka,zookeeper"])


def test_children_share_the_stack_settings(tmp_path: Path) -> None:
    env = child_environment(_settings(tmp_path), base={"PATH": "/usr/bin", "KEEP": "me"})
    assert env["KEEP"] == "me" and env["PATH"] == "/usr/bin"
    assert env["SYNAPSEOPS_DATA_DIR"] == str(tmp_path)
    assert env["SYNAPSEOPS_KAFKA_BOOTSTRAP"] == "127.0.0.1:19192"
    assert env["SYNAPSEOPS_DATABASE_LOCAL_PORT"] == "55532"
    assert env["SYNAPSEOPS_API_PORT"] == "18000"
    assert env["SYNAPSEOPS_WORKER_METRICS_PORT"] == "18200"
    assert "SYNAPSEOPS_DATABASE_URL" not in env
    external = "postgresql+psycopg2://u@db.example:5432/x"
    assert (
        child_environment(_settings(tmp_path, external), base={})["SYNAPSEOPS_DATABASE_URL"]
        == external
    )


def test_each_process_has_its_health_url_and_log(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    sandbox = platform_process(settings, "sandbox")
    worker = platform_process(settings, "worker")
    api = platform_process(settings, "api")
    assert sandbox.health_url == "http://127.0.0.1:18100/_sandbox/health"
    assert worker.health_url == "http://127.0.0.1:18200/health"
    assert api.health_url == "http://127.0.0.1:18000/health"
    assert 503 in api.alive_statuses and 503 not in sandbox.alive_statuses
    assert api.argv[1:] == ["-m", "synapseops.cli", "api"]
    assert api.pid_path == tmp_path / "run" / "api.pid"
    assert (sandbox.port, worker.port, api.port) == (
        ("127.0.0.1", 18100),
        ("127.0.0.1", 18200),
        ("127.0.0.1", 18000),
    )


def test_postgres_listens_on_localhost_with_its_socket_in_the_data_folder(tmp_path: Path) -> None:
    options = server_options(_settings(tmp_path), tmp_path / "postgres")
    assert "-c listen_addresses=127.0.0.1" in options
    assert "-p 55532" in options
    assert f"unix_socket_directories={tmp_path / 'postgres'}" in options
    deep = tmp_path / ("d" * 120)
    assert "unix_socket_directories=''" in server_options(_settings(tmp_path), deep)


def test_postgres_with_a_database_url_runs_nothing_locally(tmp_path: Path) -> None:
    assert LocalPostgres(_settings(tmp_path)).enabled
    external = LocalPostgres(_settings(tmp_path, "postgresql+psycopg2://u@127.0.0.1:9/x"))
    assert not external.enabled
    assert external.start() is None
    external.remove()
    assert not (tmp_path / "postgres").exists() and not external.pgdata.exists()
