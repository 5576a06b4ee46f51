"""``/api/v1/dead-letters`` served by uvicorn for real (the product's app factory), against the
real broker and a fresh, migrated PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from sqlalchemy import select

from api.main import create_app
from api.server import serving_in_thread
from sinks.dead_letters.replay import DeadLetterFilter
from sinks.dead_letters.store import DeadLetterRepository, DeadRecord, to_row
from sinks.dead_letters.tables import replays
from streams.road.headers import FailureHistory
from synapseops.kafka import consumer_config
from synapseops.settings import ApiSettings, DatabaseSettings, ObservabilitySettings, Settings
from tests.integration.databases import fresh_database
from topics.admin import apply_topics
from topics.registry import PipelineSpec, TopicRegistry, TopicSpec

pytestmark = pytest.mark.integration

TOKEN = "dead-letters-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEAD_AT_MS = 1_750_000_000_000  # 2025-06-15T15:06:40Z


@pytest.fixture(scope="module")
def db_url(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_dl_api") as url:
        yield url


@pytest.fixture(scope="module")
def test_settings(db_url: str, kafka_bootstrap: str) -> Settings:
    return Settings(
        database=DatabaseSettings(url=SecretStr(db_url)),
        api=ApiSettings(token=SecretStr(TOKEN)),
        # The metrics test reads the gauges right after changing rows: no cached GROUP BY.
        observability=ObservabilitySettings(dead_letter_gauges_cache_s=0),
    )


@pytest.fixture(scope="module")
def pipeline(test_settings: Settings) -> PipelineSpec:
    name = f"t-dlapi-{uuid.uuid4().hex[:10]}"
    source = TopicSpec(name=f"{name}.source", partitions=1)
    spec = PipelineSpec(name=name, inputs=(source.name,), retry_delays=(0.5, 2.0), partitions=1)
    registry = TopicRegistry()
    registry.declare(source)
    registry.declare_pipeline(spec)
    apply_topics(test_settings, registry)
    return spec


@pytest.fixture(scope="module")
def base_url(test_settings: Settings, pipeline: PipelineSpec) -> Iterator[str]:
    app = create_app(test_settings)
    app.state.pipelines = {pipeline.name: pipeline}
    with serving_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def ids(test_settings: Settings, pipeline: PipelineSpec) -> dict[str, list[int]]:
    """Six dead letters: three TargetUnavailable, three SchemaInvalid, one minute apart."""
    engine = sqlalchemy.create_engine(test_settings.database_url)
    repository = DeadLetterRepository(engine)
    made: dict[str, list[int]] = {"TargetUnavailable": [], "SchemaInvalid": []}
    for n in range(6):
        error_class = "TargetUnavailable" if n < 3 else "SchemaInvalid"
        headers = FailureHistory(
            attempt=4 if n < 3 else 1,
            pipeline=pipeline.name,
            error_class=error_class,
            error_message=f"failure {n}",
            original_topic=pipeline.inputs[0],
            original_partition=0,
            original_offset=n,
        ).to_headers()
        record = DeadRecord(
            pipeline=pipeline.name,
            topic=pipeline.dlq_topic,
            partition=0,
            offset=n,
            key=f"key-{n}".encode(),
            value=b"\xff\x00binary" if n == 5 else f'{{"n": {n}}}'.encode(),
            headers=tuple(headers),
            timestamp_ms=DEAD_AT_MS + n * 60_000,
        )
        made[error_class].append(repository.store(to_row(record)).id)
    engine.dispose()
    return made


def tier_records(settings: Settings, topic: str) -> int:
    consumer = Consumer(consumer_config(settings.kafka, f"t-count-{uuid.uuid4().hex}"))
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def get(base_url: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base_url}/api/v1/dead-letters{path}", params=params, headers=AUTH)


def post(base_url: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/api/v1/dead-letters{path}",
        json=body,
        headers={**AUTH, **headers},
        timeout=30,
    )


def metric_value(base_url: str, name: str, **labels: str) -> float | None:
    """One sample of the API's ``/metrics`` (None when the series is absent)."""
    text = httpx.get(base_url.replace("/api/v1/dead-letters", "") + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_the_routes_need_the_bearer_token(base_url: str) -> None:
    assert httpx.get(f"{base_url}/api/v1/dead-letters").status_code == 401
    response = httpx.post(f"{base_url}/api/v1/dead-letters/replay", json={"pipeline": "x"})
    assert response.status_code == 401


def test_list_filters_and_pages(
    base_url: str, pipeline: PipelineSpec, ids: dict[str, list[int]]
) -> None:
    everything = get(base_url, "", pipeline=pipeline.name).json()
    assert [item["id"] for item in everything["items"]] == sorted(
        ids["TargetUnavailable"] + ids["SchemaInvalid"], reverse=True
    )
    by_class = get(base_url, "", pipeline=pipeline.name, error_class="SchemaInvalid").json()
    assert sorted(item["id"] for item in by_class["items"]) == ids["SchemaInvalid"]
    # dead_at of record n is DEAD_AT_MS + n minutes: [n=1, n=3) is two records.
    window = get(
        base_url,
        "",
        pipeline=pipeline.name,
        since="2025-06-15T15:07:40Z",
        until="2025-06-15T15:09:40Z",
    ).json()
    assert sorted(item["id"] for item in window["items"]) == ids["TargetUnavailable"][1:3]

    page1 = get(base_url, "", pipeline=pipeline.name, limit=4).json()
    assert len(page1["items"]) == 4 and page1["next_before_id"] == page1["items"][-1]["id"]
    page2 = get(base_url, "", pipeline=pipeline.name, limit=4, before_id=page1["next_before_id"])
    assert len(page2.json()["items"]) == 2 and page2.json()["next_before_id"] is None
    assert get(base_url, "", status="nonsense").status_code == 422


def test_one_dead_letter_in_full(
    base_url: str, pipeline: PipelineSpec, ids: dict[str, list[int]]
) -> None:
    row_id = ids["SchemaInvalid"][-1]
    body = get(base_url, f"/{row_id}").json()
    assert body["pipeline"] == pipeline.name
    assert body["value_base64"] == "/wBiaW5hcnk="  # b"\xff\x00binary", exactly
    assert body["value_text"] is None
    assert body["key_base64"] == "a2V5LTU="
    assert body["error_class"] == "SchemaInvalid"
    assert body["headers"]["synapseops-error-message"] == "failure 5"
    assert get(base_url, "/999999999").status_code == 404


def test_metrics_show_depth_and_age_of_what_waits(base_url: str, pipeline: PipelineSpec) -> None:
    assert metric_value(base_url, "synapseops_dead_letters_depth", pipeline=pipeline.name) == 6
    age = metric_value(
        base_url, "synapseops_dead_letters_oldest_age_seconds", pipeline=pipeline.name
    )
    assert age is not None and age > 0


def test_replay_dry_run_then_idempotent_replay_then_discard(
    base_url: str,
    test_settings: Settings,
    pipeline: PipelineSpec,
    ids: dict[str, list[int]],
) -> None:
    tier = pipeline.retry_topics[0]
    assert post(base_url, "/replay", {}).status_code == 422  # no criterion at all

    dry = post(base_url, "/replay", {"pipeline": pipeline.name, "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert (dry.json()["matched"], dry.json()["replayed"]) == (6, 0)
    assert tier_records(test_settings, tier) == 0

    request = {"pipeline": pipeline.name, "error_class": "TargetUnavailable", "rate_per_s": 100}
    key = f"k-{uuid.uuid4().hex}"
    first = post(base_url, "/replay", request, **{"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert (first.json()["matched"], first.json()["replayed"]) == (3, 3)
    assert first.json()["replay_id"].startswith("rpl_")
    assert tier_records(test_settings, tier) == 3

    again = post(base_url, "/replay", request, **{"Idempotency-Key": key})
    assert again.json() == first.json()
    assert tier_records(test_settings, tier) == 3

    replayed = get(base_url, "", pipeline=pipeline.name, status="replayed").json()["items"]
    assert sorted(item["id"] for item in replayed) == ids["TargetUnavailable"]
    assert {item["replay_id"] for item in replayed} == {first.json()["replay_id"]}
    assert {item["replay_count"] for item in replayed} == {1}

    # Discard one by id; discarding it again is a conflict; a replayed one is not dead.
    one = ids["SchemaInvalid"][0]
    discarded = post(base_url, f"/{one}/discard")
    assert discarded.status_code == 200 and discarded.json() == {"discarded": 1, "ids": [one]}
    assert post(base_url, f"/{one}/discard").status_code == 409
    assert post(base_url, f"/{ids['TargetUnavailable'][0]}/discard").status_code == 409
    assert post(base_url, "/999999999/discard").status_code == 404

    bulk = post(base_url, "/discard", {"pipeline": pipeline.name, "error_class": "SchemaInvalid"})
    assert bulk.json() == {"discarded": 2, "ids": ids["SchemaInvalid"][1:]}
    assert post(base_url, "/discard", {}).status_code == 422

    # Nothing dead is left: a replay by pipeline matches nothing and sends nothing.
    rest = post(base_url, "/replay", {"pipeline": pipeline.name})
    assert (rest.json()["matched"], rest.json()["replayed"]) == (0, 0)
    assert tier_records(test_settings, tier) == 3


def test_metrics_after_replay_and_discard(base_url: str, pipeline: PipelineSpec) -> None:
    # After the test above: 3 replayed, 3 discarded, none waiting.
    name = pipeline.name
    stored = "synapseops_dead_letters_stored"
    assert metric_value(base_url, stored, pipeline=name, status="replayed") == 3
    assert metric_value(base_url, stored, pipeline=name, status="discarded") == 3
    assert metric_value(base_url, "synapseops_dead_letters_depth", pipeline=name) is None
    assert metric_value(base_url, "synapseops_replayed_records_total", pipeline=name) == 3


def test_an_idempotency_key_is_bound_to_its_filter(base_url: str, pipeline: PipelineSpec) -> None:
    key = f"k-{uuid.uuid4().hex}"
    first = post(base_url, "/replay", {"pipeline": pipeline.name}, **{"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    other = post(
        base_url,
        "/replay",
        {"pipeline": pipeline.name, "error_class": "SchemaInvalid"},
        **{"Idempotency-Key": key},
    )
    assert other.status_code == 422
    assert "first used for the filter" in other.json()["detail"]
    # One filter however it is written: ids in another order are the same request.
    ids_key = f"k-{uuid.uuid4().hex}"
    one = post(base_url, "/replay", {"ids": [2, 1, 2]}, **{"Idempotency-Key": ids_key})
    same = post(base_url, "/replay", {"ids": [1, 2]}, **{"Idempotency-Key": ids_key})
    assert one.status_code == same.status_code == 200 and same.json() == one.json()


def test_a_running_replay_answers_409_and_a_dead_ones_key_is_taken_over(
    base_url: str, test_settings: Settings, pipeline: PipelineSpec
) -> None:
    """What a replay whose process was killed leaves: a row with no answer and a lease
    renewed a moment ago (still running, as far as anyone can tell), later a stale one."""
    key = f"k-{uuid.uuid4().hex}"
    criteria = DeadLetterFilter(pipeline=pipeline.name)
    engine = sqlalchemy.create_engine(test_settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                replays.insert().values(
                    replay_id="rpl_killed",
                    idempotency_key=key,
                    filter=criteria.canonical(),
                    lease_token="the-dead-process",
                    heartbeat_at=sqlalchemy.func.now(),
                )
            )
        running = post(base_url, "/replay", {"pipeline": pipeline.name}, **{"Idempotency-Key": key})
        assert running.status_code == 409 and "still running" in running.json()["detail"]
        assert 1 <= int(running.headers["retry-after"]) <= 30

        with engine.begin() as conn:
            conn.execute(
                replays.update()
                .where(replays.c.replay_id == "rpl_killed")
                .values(heartbeat_at=sqlalchemy.func.now() - sqlalchemy.text("interval '1 hour'"))
            )
        taken = post(base_url, "/replay", {"pipeline": pipeline.name}, **{"Idempotency-Key": key})
        assert taken.status_code == 200, taken.text
        assert taken.json()["replay_id"] == "rpl_killed"
        with engine.connect() as conn:
            row = (
                conn.execute(select(replays).where(replays.c.replay_id == "rpl_killed"))
                .mappings()
                .one()
            )
        assert row["response"] == taken.json() and row["lease_token"] != "the-dead-process"
        again = post(base_url, "/replay", {"pipeline": pipeline.name}, **{"Idempotency-Key": key})
        assert again.json() == taken.json()
    finally:
        engine.dispose()
