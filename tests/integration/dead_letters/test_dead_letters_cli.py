"""``synapseops replay`` against a fresh, migrated PostgreSQL database: dry runs, and one real
replay killed with ``kill -9`` half-way (into retry tiers of its own, which no other test
or worker reads)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy
import typer
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import func, select
from typer.testing import CliRunner

from sinks.dead_letters.store import DeadLetterRepository, DeadRecord, to_row
from sinks.dead_letters.tables import dead_letters, replays
from streams.road.headers import FailureHistory
from synapseops.cli import replay as replay_cli
from synapseops.kafka import consumer_config
from synapseops.settings import RetrySettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.worker_process import CLI
from topics.admin import apply_topics
from topics.registry import EVENT_LOG, platform_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def db_url(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "dl_cli") as url:
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


# ---- a replay killed half-way: its key is usable again -------------------------------------

# Tiers no other test runs: the replay's first tier is a topic of this test alone.
KILL_TIERS = "1357ms,2468ms"
KILLED_ROWS = 12


def test_a_killed_replays_key_is_taken_over_and_finishes_the_rows_still_dead(
    settings: Settings, kafka_bootstrap: str, database_url: str
) -> None:
    run = uuid.uuid4().hex[:8].encode()  # the tier topic outlives a test run: keys of this one
    with fresh_database(database_url, "t_dl_killed") as url:
        engine = sqlalchemy.create_engine(url)
        try:
            repository = DeadLetterRepository(engine)
            for n in range(KILLED_ROWS):
                history = FailureHistory(attempt=4, pipeline=EVENT_LOG, error_class="Boom")
                record = DeadRecord(
                    EVENT_LOG, f"{EVENT_LOG}.dlq", 0, n, run + f"-{n}".encode(), b"{}",
                    tuple(history.to_headers()), None,
                )  # fmt: skip
                repository.store(to_row(record))
            tiers = settings.model_copy(update={"retry": RetrySettings(tiers=KILL_TIERS)})
            apply_topics(tiers)
            first_tier = platform_registry(tiers.retry.delays).pipelines[EVENT_LOG].retry_topics[0]
            env = {
                **os.environ,
                "SYNAPSEOPS_DATABASE_URL": url,
                "SYNAPSEOPS_KAFKA_BOOTSTRAP": kafka_bootstrap,
                "SYNAPSEOPS_RETRY_TIERS": KILL_TIERS,
                "SYNAPSEOPS_REPLAY_LEASE_S": "3",
                "SYNAPSEOPS_REPLAY_HEARTBEAT_S": "0.5",
            }
            command = [str(CLI), "replay", "--pipeline", EVENT_LOG, "--json",
                       "--idempotency-key", "nightly-1"]  # fmt: skip

            slow = subprocess.Popen([*command, "--rate", "2"], env=env)
            try:
                wait_until(lambda: replayed(engine) >= 3, "3 rows replayed")
            finally:
                slow.send_signal(signal.SIGKILL)  # no cleanup: its key is left without answer
                slow.wait(timeout=10)
            killed_at = replayed(engine)
            assert killed_at < KILLED_ROWS
            wait_until(lambda: lease_age_s(engine) > 3.5, "the lease to go stale")

            again = subprocess.run(
                [*command, "--rate", "100"], env=env, capture_output=True, timeout=60
            )
            assert again.returncode == 0, again.stderr.decode()
            answer = json.loads(again.stdout)
            # A different filter under the same key is refused, not answered for.
            other = subprocess.run(
                [*command[:-2], "--idempotency-key", "nightly-1", "--error-class", "Other"],
                env=env, capture_output=True, timeout=60,
            )  # fmt: skip
        finally:
            with engine.connect() as conn:
                statuses = Counter(conn.execute(select(dead_letters.c.status)).scalars())
                request = conn.execute(select(replays)).mappings().one()
            engine.dispose()
    assert statuses == Counter({"replayed": KILLED_ROWS})
    assert answer["replay_id"] == request["replay_id"], "the same replay, taken over"
    assert answer["replayed"] == answer["matched"] == KILLED_ROWS - killed_at
    assert request["response"] == {k: answer[k] for k in ("replay_id", "matched", "replayed")}
    assert other.returncode == 2 and b"first used for the filter" in other.stdout + other.stderr
    sent = Counter(key for key in tier_keys(settings, first_tier) if key.startswith(run))
    assert set(sent) == {run + f"-{n}".encode() for n in range(KILLED_ROWS)}
    # At most the one row in flight when the process died went out twice.
    assert sum(sent.values()) - KILLED_ROWS <= 1


def replayed(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as conn:
        statement = select(func.count()).where(dead_letters.c.status == "replayed")
        return int(conn.execute(statement).scalar_one())


def lease_age_s(engine: sqlalchemy.Engine) -> float:
    with engine.connect() as conn:
        age = conn.execute(
            select(
                func.extract(
                    "epoch",
                    func.now()
                    - func.max(func.coalesce(replays.c.heartbeat_at, replays.c.created_at)),
                )
            )
        ).scalar_one()
    return float(age or 0.0)


def wait_until(condition: Callable[[], bool], what: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def tier_keys(settings: Settings, topic: str) -> list[bytes]:
    consumer = Consumer(consumer_config(settings.kafka, f"t-keys-{uuid.uuid4().hex}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}  # fmt: skip
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        keys: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(keys) < sum(ends.values()) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                keys.append(message.key() or b"")
        return keys
    finally:
        consumer.close()
