"""Every subject's newest schema reads what each of its earlier versions wrote.

Subjects are discovered from schemas/avro, so a new subject or version is covered as soon as
its file exists. Two proofs per pair: the resolution rules (:mod:`schemas.compat`) find
nothing, and generated data written with the old version reads back through the newest. A
breaking change (a field without a default, a narrowed or retyped field) is refused by
:func:`test_every_version_is_backward_compatible`; the refusals themselves are tested below.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from schemas.compat import incompatibilities
from schemas.store import AVRO_DIR, LocalSchemaStore

STORE = LocalSchemaStore()
PAIRS = [
    (subject, version_index)
    for subject in STORE.subjects()
    for version_index in range(len(STORE.versions(subject)))
]


def _fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in schema["fields"]}


def _written_as(field: dict[str, Any], written: dict[str, Any]) -> str | None:
    """The name the writer gave this reader field (its own or one of its aliases)."""
    for name in (field["name"], *field.get("aliases", ())):
        if name in written:
            return str(name)
    return None


def test_the_folder_holds_the_platform_subjects_with_two_versions_each() -> None:
    on_disk = sorted(path.name for path in AVRO_DIR.iterdir() if path.is_dir())
    assert STORE.subjects() == on_disk
    assert {"notification_trigger", "canonical_event"} <= set(on_disk)
    for subject in on_disk:
        assert len(STORE.versions(subject)) >= 2, f"{subject} has no evolved version yet"


@pytest.mark.parametrize(("subject", "version_index"), PAIRS)
def test_every_version_is_backward_compatible(subject: str, version_index: int) -> None:
    _, writer = STORE.versions(subject)[version_index]
    _, reader = STORE.latest(subject)
    assert incompatibilities(writer, reader) == []


@pytest.mark.parametrize(("subject", "version_index"), PAIRS)
def test_newest_version_reads_data_of_every_version(subject: str, version_index: int) -> None:
    _, writer = STORE.versions(subject)[version_index]
    _, reader = STORE.latest(subject)
    reader_fields = _fields(reader)
    for datum in generate_many(writer, 25):
        body = io.BytesIO()
        schemaless_writer(body, writer, datum)
        # What the writer's own schema reads back (logical types applied) is the reference.
        body.seek(0)
        as_written = schemaless_reader(body, writer)
        body.seek(0)
        record = schemaless_reader(body, writer, reader)
        assert set(record) == set(reader_fields)
        for name, value in record.items():
            old_name = _written_as(reader_fields[name], as_written)
            if old_name is not None:
                assert value == as_written[old_name], f"{subject}.{name} changed on the way"
            else:
                # A field the writer did not know comes back as the reader's default.
                assert value == reader_fields[name]["default"]


@pytest.mark.parametrize("subject", STORE.subjects())
def test_every_new_field_has_a_default(subject: str) -> None:
    """What makes old data readable: fields added after v1 must say what old data means."""
    versions = [schema for _, schema in STORE.versions(subject)]
    first = _fields(versions[0])
    for schema in versions[1:]:
        for field in schema["fields"]:
            if _written_as(field, first) is None:
                assert "default" in field, f"{subject}: {field['name']} needs a default"


def _newest_canonical() -> dict[str, Any]:
    _, schema = STORE.latest("canonical_event")
    return copy.deepcopy(schema)


def _edited(edit: str) -> dict[str, Any]:
    schema = _newest_canonical()
    fields = _fields(schema)
    if edit == "new field without default":
        schema["fields"].append({"name": "region", "type": "string"})
    elif edit == "alias dropped":
        fields["id"].pop("aliases")
    elif edit == "long narrowed to int":
        fields["body"]["type"][1]["fields"][0]["type"] = "int"
    elif edit == "optional made required":
        fields["subject"]["type"] = "string"
    elif edit == "millis became micros":
        fields["time"]["type"] = {"type": "long", "logicalType": "timestamp-micros"}
    elif edit == "map values narrowed":
        fields["attributes"]["type"] = {"type": "map", "values": ["null", "string"]}
    return dict(parse_schema(schema))


@pytest.mark.parametrize(
    "edit",
    [
        "new field without default",
        "alias dropped",
        "long narrowed to int",
        "optional made required",
        "millis became micros",
        "map values narrowed",
    ],
)
def test_a_breaking_change_to_the_canonical_schema_is_refused(edit: str) -> None:
    """Each edit would break a reader of existing data; the check names why."""
    for _, writer in STORE.versions("canonical_event"):
        problems = incompatibilities(writer, _edited(edit))
        if problems:
            break
    assert problems, f"{edit} was not refused"


def test_a_safe_change_is_accepted() -> None:
    schema = _newest_canonical()
    schema["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    reader = dict(parse_schema(schema))
    for _, writer in STORE.versions("canonical_event"):
        assert incompatibilities(writer, reader) == []
