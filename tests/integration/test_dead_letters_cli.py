"""``synapseops replay`` against a fresh, migrated PostgreSQL database (dry runs only: a real
replay would feed the platform's own ``event-log`` retry topic, which other tests share)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy
import typer
from typer.testing import CliRunner

from sinks.dead_letters import DeadLetterRepository, DeadRecord, to_row
from sinks.migrate import upgrade
from streams.road.headers import FailureHistory
from synapseops.cli import replay as replay_cli
from topics.registry import EVENT_LOG

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def db_url(database_url: str) -> Iterator[str]:
    server = sqlalchemy.engine.make_url(database_url)
    name = f"dl_cli_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    engine = sqlalchemy.create_engine(url)
    repository = DeadLetterRepository(engine)
    for n in range(25):
        error_class = "TargetUnavailable" if n % 5 else "SchemaInvalid"
        headers = FailureHistory(attempt=4, pipeline=EVENT_LOG, error_class=error_class)
        history = tuple(headers.to_headers())
        record = DeadRecord(EVENT_LOG, f"{EVENT_LOG}.dlq", 0, n, None, b"{}", history, None)
        repository.store(to_row(record))
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("SYNAPSEOPS_DATABASE_URL", db_url)
    app = typer.Typer()
    replay_cli.register(app)
    app.command("noop")(lambda: None)  # with two commands typer keeps the subcommand name
    return app


def test_dry_run_counts_by_filter(cli: typer.Typer) -> None:
    runner = CliRunner()
    everything = runner.invoke(cli, ["replay", "--pipeline", EVENT_LOG, "--dry-run", "--json"])
    assert everything.exit_code == 0, everything.output
    assert json.loads(everything.stdout) == {
        "replay_id": json.loads(everything.stdout)["replay_id"],
        "matched": 25,
        "replayed": 0,
        "dry_run": True,
    }
    schema = runner.invoke(cli, ["replay", "--error-class", "SchemaInvalid", "--dry-run", "--json"])
    assert json.loads(schema.stdout)["matched"] == 5
    by_id = runner.invoke(cli, ["replay", "--id", "1", "--id", "2", "--dry-run", "--json"])
    assert json.loads(by_id.stdout)["matched"] == 2
    future = runner.invoke(cli, ["replay", "--since", "2999-01-01", "--all", "--dry-run", "--json"])
    assert json.loads(future.stdout)["matched"] == 0


def test_no_filter_is_refused_without_all(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["replay", "--dry-run"])
    assert result.exit_code == 2
    assert "--all" in result.output
    bad = CliRunner().invoke(cli, ["replay", "--since", "yesterday", "--dry-run"])
    assert bad.exit_code != 0
