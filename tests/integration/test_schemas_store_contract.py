"""One contract, every SchemaStore: the local files and a Confluent Schema Registry.

The registry is a small real HTTP server (``tests/integration/schema_registry.py``) that
implements the three endpoints the store uses with the registry's own paths, bodies and
error codes; the store talks to it over a real socket through httpx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.store import (
    ConfluentRegistryStore,
    LocalSchemaStore,
    SchemaStore,
    schema_store,
)
from synapseops.errors import ConfigurationError, SchemaInvalid, TargetUnavailable, Undecodable
from synapseops.settings import SchemaRegistrySettings
from tests.integration.schema_registry import Registry, serving_registry

V1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
V2 = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "total", "type": ["null", "long"], "default": None},
    ],
}


@pytest.fixture
def registry_server() -> Iterator[tuple[str, Registry]]:
    with serving_registry() as served:
        yield served


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
    def store(self, registry_server: tuple[str, Registry]) -> Iterator[SchemaStore]:
        store = ConfluentRegistryStore(registry_server[0], latest_ttl_s=0)
        yield store
        store.close()

    def test_schemas_by_id_are_fetched_from_the_server(
        self, registry_server: tuple[str, Registry]
    ) -> None:
        url, _ = registry_server
        writer = ConfluentRegistryStore(url)
        sid = writer.register("orders-value", V2)
        fresh = ConfluentRegistryStore(url)  # nothing cached: must ask GET /schemas/ids/{id}
        assert fresh.get(sid)["fields"][1]["name"] == "total"
        assert fresh.latest("orders-value")[0] == sid

    def test_a_5xx_is_retryable(self, registry_server: tuple[str, Registry]) -> None:
        url, state = registry_server
        state.fail_with = 500
        with pytest.raises(TargetUnavailable) as caught:
            ConfluentRegistryStore(url).latest("orders-value")
        assert caught.value.status == 500

    def test_an_unreachable_registry_is_retryable(
        self, registry_server: tuple[str, Registry]
    ) -> None:
        with pytest.raises(TargetUnavailable):
            ConfluentRegistryStore("http://127.0.0.1:9", timeout_s=1).latest("x")

    def test_the_registry_is_chosen_when_its_url_is_set(
        self, registry_server: tuple[str, Registry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SYNAPSEOPS_SCHEMA_REGISTRY_URL", registry_server[0])
        assert isinstance(schema_store(SchemaRegistrySettings()), ConfluentRegistryStore)
