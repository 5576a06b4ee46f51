"""Every subject's newest schema reads what each of its earlier versions wrote.

Subjects are discovered from schemas/avro, so a new subject or version is covered as soon as
its file exists.
"""

from __future__ import annotations

import io

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from schemas.store import AVRO_DIR, LocalSchemaStore

STORE = LocalSchemaStore()
PAIRS = [
    (subject, version_index)
    for subject in STORE.subjects()
    for version_index in range(len(STORE.versions(subject)))
]


def test_the_folder_holds_the_platform_subjects_with_two_versions_each() -> None:
    on_disk = sorted(path.name for path in AVRO_DIR.iterdir() if path.is_dir())
    assert STORE.subjects() == on_disk
    assert {"notification_trigger", "canonical_event"} <= set(on_disk)
    for subject in on_disk:
        assert len(STORE.versions(subject)) >= 2, f"{subject} has no evolved version yet"


@pytest.mark.parametrize(("subject", "version_index"), PAIRS)
def test_newest_version_reads_data_of_every_version(subject: str, version_index: int) -> None:
    _, writer = STORE.versions(subject)[version_index]
    _, reader = STORE.latest(subject)
    reader_fields = {field["name"]: field for field in reader["fields"]}
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
            if name in as_written:
                assert value == as_written[name], f"{subject}.{name} changed on the way"
            else:
                # A field the writer did not know comes back as the reader's default.
                assert value == reader_fields[name]["default"]


@pytest.mark.parametrize("subject", STORE.subjects())
def test_every_new_field_has_a_default(subject: str) -> None:
    """What makes old data readable: fields added after v1 must say what old data means."""
    versions = [schema for _, schema in STORE.versions(subject)]
    first = {field["name"] for field in versions[0]["fields"]}
    for schema in versions[1:]:
        for field in schema["fields"]:
            if field["name"] not in first:
                assert "default" in field, f"{subject}: {field['name']} needs a default"
