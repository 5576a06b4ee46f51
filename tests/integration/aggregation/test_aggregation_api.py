"""The Data Aggregation API over real HTTP: a real broker, a fresh migrated database.

Data sources (CRUD, the ingest token shown once, pause), the OTLP/HTTP logs receiver
(partial success, authentication, a paused source, a malformed request), the logic test, the
canonical schema and its versions, ingestion health from warehouse rows, a job's SSE stream.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from sinks.aggregation.copy_format import text
from sinks.aggregation.jobs import progress, start_job
from sinks.aggregation.warehouse import Warehouse
from streams.aggregation.rows import encode_row
from synapseops import headers as h
from tests.fixtures import SAMPLES
from tests.integration.aggregation.canonical import end_offsets, read_topic
from tests.integration.aggregation.conftest import AUTH
from tests.integration.aggregation.events import wire_record_without_body
from topics.registry import AGGREGATION_RAW

pytestmark = pytest.mark.integration


def _create(base_url: str, name: str, kind: str = "stream", logic: str = "otel") -> dict:
    body = {"name": name, "kind": kind, "logic": logic}
    answer = httpx.post(f"{base_url}/api/v1/aggregation/sources", json=body, headers=AUTH)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _export_with_a_bad_record(run: str) -> dict:
    request = json.loads((SAMPLES / "otel" / "logs.json").read_bytes())
    logs = request["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    good = logs[0]
    good["attributes"].append({"key": "run", "value": {"stringValue": run}})
    bad = copy.deepcopy(good) | {"traceId": "not-hex"}
    logs.append(bad)
    return request


def test_sources_crud_and_the_token_is_shown_once(base_url: str) -> None:
    name = f"logs-{uuid.uuid4().hex[:6]}"
    created = _create(base_url, name)
    assert created["token"].startswith("sosrc_") and created["logic_version"] == 1
    again = httpx.post(
        f"{base_url}/api/v1/aggregation/sources",
        json={"name": name, "kind": "stream", "logic": "otel"},
        headers=AUTH,
    )
    assert again.status_code == 409
    read = httpx.get(f"{base_url}/api/v1/aggregation/sources/{name}", headers=AUTH).json()
    assert "token" not in read and "token_hash" not in read
    patched = httpx.patch(
        f"{base_url}/api/v1/aggregation/sources/{name}", json={"schedule_s": 30}, headers=AUTH
    )
    assert patched.json()["schedule_s"] == 30
    unknown = httpx.post(
        f"{base_url}/api/v1/aggregation/sources",
        json={"name": "x", "kind": "stream", "logic": "nope"},
        headers=AUTH,
    )
    assert unknown.status_code == 422
    mapping = httpx.get(f"{base_url}/api/v1/aggregation/sources/{name}/mapping", headers=AUTH)
    assert mapping.json()["logic"] == "otel" and "traceId / spanId" in mapping.json()["fields"]
    deleted = httpx.delete(f"{base_url}/api/v1/aggregation/sources/{name}", headers=AUTH)
    assert deleted.status_code == 204
    gone = httpx.get(f"{base_url}/api/v1/aggregation/sources/{name}", headers=AUTH)
    assert gone.status_code == 404


def test_otlp_logs_partial_success_with_the_source_token(
    base_url: str, kafka_bootstrap: str
) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"app-{run}"
    token = _create(base_url, name)["token"]
    start = end_offsets(kafka_bootstrap, AGGREGATION_RAW.name)
    answer = httpx.post(
        f"{base_url}/v1/logs",
        json=_export_with_a_bad_record(run),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1" and "traceId" in partial["errorMessage"]
    found = read_topic(kafka_bootstrap, AGGREGATION_RAW.name, start, want=50, deadline_s=5)
    mine = [(v, hs) for v, hs in found if hs.get(h.SOURCE) == name.encode()]
    assert len(mine) == 1
    value, headers = mine[0]
    assert headers[h.AGGREGATION_LOGIC] == b"otel"
    assert json.loads(value)["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"]


def test_otlp_refusals_answer_as_otlp_says(base_url: str) -> None:
    name = f"paused-{uuid.uuid4().hex[:6]}"
    token = _create(base_url, name)["token"]
    url = f"{base_url}/v1/logs"
    body = json.loads((SAMPLES / "otel" / "logs.json").read_bytes())
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401 and missing.json()["code"] == 16
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer sosrc_nope"})
    assert wrong.status_code == 401
    own = {"Authorization": f"Bearer {token}"}
    broken = httpx.post(url, content=b'{"resourceLogs": ', headers=own)
    assert broken.status_code == 400 and broken.json()["code"] == 3
    text = httpx.post(url, content=b"hello", headers=own | {"Content-Type": "text/plain"})
    assert text.status_code == 415
    httpx.post(f"{base_url}/api/v1/aggregation/sources/{name}/pause", headers=AUTH)
    paused = httpx.post(url, json=body, headers=own)
    assert paused.status_code == 503 and paused.headers["Retry-After"]
    # An admin API token (operator and above) may ingest into a source named by header.
    httpx.post(f"{base_url}/api/v1/aggregation/sources/{name}/resume", headers=AUTH)
    by_api_token = httpx.post(url, json=body, headers=AUTH | {"X-SynapseOps-Source": name})
    assert by_api_token.status_code == 200 and by_api_token.json() == {}


def _protobuf_export(run: str) -> ExportLogsServiceRequest:
    """Two log records built with OpenTelemetry's own messages; the second one's trace id is
    5 bytes (OTLP's are 16), so it is rejected."""
    good = LogRecord(
        time_unix_nano=1_544_712_660_300_000_123,
        severity_number=SeverityNumber.SEVERITY_NUMBER_WARN,
        severity_text="Warning",
        trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
        span_id=bytes.fromhex("eee19b7ec3c1b174"),
        body=AnyValue(kvlist_value=KeyValueList(values=[_kv("nested", AnyValue(int_value=7))])),
        attributes=[_kv("run", AnyValue(string_value=run)), _kv("b", AnyValue(bytes_value=b"\0"))],
    )
    bad = LogRecord(time_unix_nano=1, trace_id=b"short", body=AnyValue(string_value="x"))
    resource = Resource(attributes=[_kv("service.name", AnyValue(string_value="proto-svc"))])
    scope = ScopeLogs(scope=InstrumentationScope(name="lib"), log_records=[good, bad])
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[scope])]
    )


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def test_otlp_protobuf_is_read_and_answered_in_protobuf(
    base_url: str, kafka_bootstrap: str
) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"proto-{run}"
    own = {"Authorization": f"Bearer {_create(base_url, name)['token']}"}
    start = end_offsets(kafka_bootstrap, AGGREGATION_RAW.name)
    protobuf = {"Content-Type": "application/x-protobuf"}
    body = _protobuf_export(run).SerializeToString()
    answer = httpx.post(f"{base_url}/v1/logs", content=body, headers=own | protobuf)
    assert answer.status_code == 200, answer.content
    assert answer.headers["content-type"] == "application/x-protobuf"
    partial = ExportLogsServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_log_records == 1 and "traceId" in partial.error_message
    found = read_topic(kafka_bootstrap, AGGREGATION_RAW.name, start, want=50, deadline_s=5)
    mine = [json.loads(v) for v, hs in found if hs.get(h.SOURCE) == name.encode()]
    assert len(mine) == 1
    resource_logs = mine[0]["resourceLogs"][0]
    record = resource_logs["scopeLogs"][0]["logRecords"][0]
    assert record["traceId"] == "5b8efff798038103d269b633813fc60c"
    assert record["spanId"] == "eee19b7ec3c1b174"
    assert record["timeUnixNano"] == "1544712660300000123" and record["severityNumber"] == 13
    assert resource_logs["resource"]["attributes"][0]["value"] == {"stringValue": "proto-svc"}
    # Failures of a protobuf request answer with a protobuf google.rpc.Status.
    broken = httpx.post(f"{base_url}/v1/logs", content=body[:-3], headers=own | protobuf)
    assert broken.status_code == 400
    assert Status.FromString(broken.content).code == 3
    unknown = httpx.post(f"{base_url}/v1/logs", content=body, headers=protobuf)
    assert unknown.status_code == 401 and Status.FromString(unknown.content).code == 16
    everything = _protobuf_export(run)
    del everything.resource_logs[0].scope_logs[0].log_records[1]
    whole = httpx.post(
        f"{base_url}/v1/logs", content=everything.SerializeToString(), headers=own | protobuf
    )
    assert whole.status_code == 200 and whole.content == b""  # an empty ExportLogsServiceResponse


def test_logic_test_answers_events_or_the_reason(base_url: str) -> None:
    name = f"gh-{uuid.uuid4().hex[:6]}"
    _create(base_url, name, kind="poll", logic="github")
    url = f"{base_url}/api/v1/aggregation/sources/{name}/test"
    good = {"id": "1", "type": "PushEvent", "created_at": "2026-01-01T00:00:00Z", "payload": {}}
    ok = httpx.post(url, json={"payload": good}, headers=AUTH).json()
    assert ok["ok"] and ok["events"][0]["type"] == "github.PushEvent"
    bad = httpx.post(url, json={"payload": {"type": "PushEvent"}}, headers=AUTH).json()
    assert not bad["ok"] and "id is missing" in bad["reason"]


def test_schema_versions(base_url: str) -> None:
    schema = httpx.get(f"{base_url}/api/v1/aggregation/schema", headers=AUTH).json()
    assert schema["version"] == 3 and len(schema["versions"]) == 3
    names = [field["name"] for field in schema["schema"]["fields"]]
    assert names[:6] == ["id", "source", "specversion", "type", "time", "subject"]
    v1 = httpx.get(f"{base_url}/api/v1/aggregation/schema/versions/1", headers=AUTH).json()
    assert v1["schema"]["fields"][0]["name"] == "event_id"
    missing = httpx.get(f"{base_url}/api/v1/aggregation/schema/versions/9", headers=AUTH)
    assert missing.status_code == 404


def _row(source: str, n: int, latency_s: float) -> bytes:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    record = wire_record_without_body(
        source=source,
        id=f"r{n}",
        time=now_ms - int(latency_s * 1000),
        ingested_at=now_ms,
        attributes={},
    )
    return encode_row(record, text("t"), 0, n)


def test_health_per_source_flags_the_slow_one(base_url: str, api_database: str) -> None:
    engine = sqlalchemy.create_engine(api_database)
    run = uuid.uuid4().hex[:6]
    rows = [_row(f"fast-{run}", n, 0.5) for n in range(50)]
    rows += [_row(f"slow-{run}", n, 120 + n) for n in range(50)]
    Warehouse(engine, "t").load(rows, {})
    engine.dispose()
    health = httpx.get(f"{base_url}/api/v1/aggregation/health", headers=AUTH).json()
    by_source = {entry["source"]: entry for entry in health}
    fast, slow = by_source[f"fast-{run}"], by_source[f"slow-{run}"]
    assert fast["events"] == 50 and not fast["flagged"] and 0.4 < fast["p50_s"] < 0.6
    assert slow["flagged"] and slow["p99_s"] > 160
    minutes = httpx.get(
        f"{base_url}/api/v1/aggregation/health/slow-{run}/minutes", headers=AUTH
    ).json()
    assert sum(minute["events"] for minute in minutes) == 50


def test_job_progress_streams_over_sse(base_url: str, api_database: str) -> None:
    engine = sqlalchemy.create_engine(api_database)
    job_id = start_job(engine, "uploads", "bulk", bytes_total=100)
    progress(
        engine,
        job_id,
        records_in=3,
        records_out=2,
        records_failed=1,
        bytes_done=100,
        errors=[{"line": 2, "reason": "missing time"}],
        state="succeeded",
    )
    engine.dispose()
    with httpx.stream(
        "GET", f"{base_url}/api/v1/aggregation/jobs/{job_id}/events", headers=AUTH
    ) as stream:
        text = "".join(stream.iter_text())
    assert text.startswith("event: done\ndata: ")
    job = json.loads(text.split("data: ", 1)[1])
    assert job["records_failed"] == 1 and job["errors"][0]["line"] == 2 and job["progress"] == 1.0
