"""LocalSchemaStore: ids derived from the schema itself, the same in every process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.store import LocalSchemaStore, schema_id, schema_store
from synapseops.errors import ConfigurationError, SchemaInvalid
from synapseops.settings import SchemaRegistrySettings

RECORD_V1 = {
    "type": "record",
    "name": "Thing",
    "namespace": "test",
    "fields": [{"name": "a", "type": "string"}],
}
RECORD_V2 = {
    "type": "record",
    "name": "Thing",
    "namespace": "test",
    "fields": [
        {"name": "a", "type": "string"},
        {"name": "b", "type": "long", "default": 0},
    ],
}


def _write(root: Path, subject: str, version: int, schema: dict[str, object]) -> None:
    folder = root / subject
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"v{version}.avsc").write_text(json.dumps(schema), encoding="utf-8")


def test_ids_are_the_same_in_two_store_instances() -> None:
    first, second = LocalSchemaStore(), LocalSchemaStore()
    for subject in first.subjects():
        assert first.latest(subject)[0] == second.latest(subject)[0]
        assert [sid for sid, _ in first.versions(subject)] == [
            sid for sid, _ in second.versions(subject)
        ]


def test_ids_are_the_same_in_another_process() -> None:
    here = {
        subject: LocalSchemaStore().latest(subject)[0] for subject in LocalSchemaStore().subjects()
    }
    code = (
        "import json; from schemas.store import LocalSchemaStore as S; s = S(); "
        "print(json.dumps({x: s.latest(x)[0] for x in s.subjects()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == here


def test_id_is_a_positive_31_bit_int_and_ignores_whitespace_and_docs() -> None:
    sid = schema_id(RECORD_V1)
    assert 0 < sid < 2**31
    documented = dict(RECORD_V1, doc="a thing")
    assert schema_id(json.dumps(documented, indent=4)) == sid
    assert schema_id(RECORD_V2) != sid


def test_versions_are_ordered_by_number_not_by_name(tmp_path: Path) -> None:
    for version in range(1, 11):
        fields = [{"name": f"f{i}", "type": "int", "default": 0} for i in range(version)]
        _write(tmp_path, "many", version, {"type": "record", "name": "M", "fields": fields})
    store = LocalSchemaStore(tmp_path)
    latest_id, latest = store.latest("many")
    assert len(latest["fields"]) == 10
    assert store.versions("many")[-1][0] == latest_id


def test_a_version_that_only_changes_a_default_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "thing", 1, RECORD_V2)
    changed = json.loads(json.dumps(RECORD_V2))
    changed["fields"][1]["default"] = 7
    _write(tmp_path, "thing", 2, changed)
    with pytest.raises(ConfigurationError, match="v2.avsc"):
        LocalSchemaStore(tmp_path)


def test_a_broken_schema_file_is_a_configuration_error(tmp_path: Path) -> None:
    _write(tmp_path, "broken", 1, {"type": "record", "name": "B", "fields": [{"name": "x"}]})
    with pytest.raises(ConfigurationError, match="broken"):
        LocalSchemaStore(tmp_path)


def test_register_rejects_a_non_avro_schema(tmp_path: Path) -> None:
    store = LocalSchemaStore(tmp_path)
    with pytest.raises(SchemaInvalid):
        store.register("x", '{"type": "nonsense"}')


def test_the_local_store_is_chosen_without_a_registry_url() -> None:
    assert isinstance(schema_store(SchemaRegistrySettings(url=None)), LocalSchemaStore)
