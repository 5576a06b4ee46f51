"""One contract, every SchemaStore: the local files and a Confluent Schema Registry.

The registry is a small real HTTP server started here that implements the three endpoints
the store uses with the registry's own paths, bodies and error codes; the store talks to it
over a real socket through httpx.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from schemas.store import (
    ConfluentRegistryStore,
    LocalSchemaStore,
    SchemaStore,
    schema_store,
)
from synapseops.errors import ConfigurationError, SchemaInvalid, TargetUnavailable, Undecodable
from synapseops.settings import SchemaRegistrySettings

V1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
V2 = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "total", "type": ["null", "long"], "default": None},
    ],
}


class _Registry:
    """The registry's state: subjects → schema ids, ids → schema text."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.fail_with: int | None = None


class _Handler(BaseHTTPRequestHandler):
    registry: _Registry

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        length = int(self.headers["Content-Length"])
        text = json.loads(self.rfile.read(length))["schema"]
        try:
            canonical = json.dumps(json.loads(text), sort_keys=True)
        except ValueError:
            return self._send(422, {"error_code": 42201, "message": "Invalid schema"})
        reg = self.registry
        with reg.lock:
            found = [sid for sid, known in reg.schemas.items() if known == canonical]
            sid = found[0] if found else len(reg.schemas) + 1
            reg.schemas[sid] = canonical
            versions = reg.subjects.setdefault(parts[1], [])
            if sid not in versions:
                versions.append(sid)
        self._send(200, {"id": sid})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        reg = self.registry
        if reg.fail_with:
            return self._send(reg.fail_with, {"error_code": 50001, "message": "store error"})
        parts = self.path.strip("/").split("/")
        with reg.lock:
            if len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
                text = reg.schemas.get(int(parts[2]))
                if text is None:
                    return self._send(404, {"error_code": 40403, "message": "Schema not found"})
                return self._send(200, {"schema": text})
            if len(parts) == 4 and parts[0] == "subjects" and parts[2:] == ["versions", "latest"]:
                versions = reg.subjects.get(parts[1])
                if not versions:
                    return self._send(404, {"error_code": 40401, "message": "Subject not found"})
                sid = versions[-1]
                body = {"subject": parts[1], "version": len(versions), "id": sid}
                return self._send(200, body | {"schema": reg.schemas[sid]})
        self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})


@pytest.fixture
def registry_server() -> Iterator[tuple[str, _Registry]]:
    state = _Registry()
    handler = type("Handler", (_Handler,), {"registry": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


class SchemaStoreContract:
    """What every SchemaStore must do; subclasses provide the ``store`` fixture."""

    def test_register_then_get_by_id(self, store: SchemaStore) -> None:
        sid = store.register("orders-value", V1)
        assert store.get(sid)["fields"] == V1["fields"]

    def test_latest_is_the_newest_registered_version(self, store: SchemaStore) -> None:
        first = store.register("orders-value", V1)
        second = store.register("orders-value", V2)
        assert first != second
        latest_id, latest = store.latest("orders-value")
        assert latest_id == second
        assert [field["name"] for field in latest["fields"]] == ["id", "total"]
        assert store.get(first)["fields"] == V1["fields"]

    def test_registering_the_same_schema_twice_gives_the_same_id(self, store: SchemaStore) -> None:
        assert store.register("orders-value", V1) == store.register("orders-value", json.dumps(V1))

    def test_unknown_id_is_undecodable(self, store: SchemaStore) -> None:
        with pytest.raises(Undecodable, match="unknown schema id 2147483000"):
            store.get(2147483000)

    def test_unknown_subject_is_a_configuration_error(self, store: SchemaStore) -> None:
        with pytest.raises(ConfigurationError):
            store.latest("no-such-subject")

    def test_an_invalid_schema_is_refused(self, store: SchemaStore) -> None:
        with pytest.raises(SchemaInvalid):
            store.register("orders-value", {"type": "record", "name": "X", "fields": "no"})


class TestLocalSchemaStore(SchemaStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> SchemaStore:
        return LocalSchemaStore(tmp_path)


class TestConfluentRegistryStore(SchemaStoreContract):
    @pytest.fixture
    def store(self, registry_server: tuple[str, _Registry]) -> Iterator[SchemaStore]:
        store = ConfluentRegistryStore(registry_server[0], latest_ttl_s=0)
        yield store
        store.close()

    def test_schemas_by_id_are_fetched_from_the_server(
        self, registry_server: tuple[str, _Registry]
    ) -> None:
        url, _ = registry_server
        writer = ConfluentRegistryStore(url)
        sid = writer.register("orders-value", V2)
        fresh = ConfluentRegistryStore(url)  # nothing cached: must ask GET /schemas/ids/{id}
        assert fresh.get(sid)["fields"][1]["name"] == "total"
        assert fresh.latest("orders-value")[0] == sid

    def test_a_5xx_is_retryable(self, registry_server: tuple[str, _Registry]) -> None:
        url, state = registry_server
        state.fail_with = 500
        with pytest.raises(TargetUnavailable) as caught:
            ConfluentRegistryStore(url).latest("orders-value")
        assert caught.value.status == 500

    def test_an_unreachable_registry_is_retryable(
        self, registry_server: tuple[str, _Registry]
    ) -> None:
        with pytest.raises(TargetUnavailable):
            ConfluentRegistryStore("http://127.0.0.1:9", timeout_s=1).latest("x")

    def test_the_registry_is_chosen_when_its_url_is_set(
        self, registry_server: tuple[str, _Registry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SYNAPSEOPS_SCHEMA_REGISTRY_URL", registry_server[0])
        assert isinstance(schema_store(SchemaRegistrySettings()), ConfluentRegistryStore)
