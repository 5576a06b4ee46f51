"""The compiled transcoder (``streams/aggregation/_transcode.pyx``) against the Python path
(``WireTimes.decode`` + ``encode_row``): the same row bytes for every v3 record it reads,
every other record handed back, and no malformed value crashing it or read past its end.

Records are generated over the whole v3 schema (every optional field, unicode and NUL in
text, 64-bit extremes in times and nanoseconds, flat attribute maps, OTel bodies) and
written by fastavro, by an independent encoder that splits arrays and maps into blocks
(negative counts with sizes included), and from the golden fixtures' canonical events.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import CANONICAL_EVENT
from schemas.serde import AvroSerde
from schemas.store import AVRO_DIR, LocalSchemaStore, parse
from sinks.aggregation.copy_format import text
from streams.aggregation import _transcode, decode
from streams.aggregation.decode import (
    NATIVE,
    PYTHON,
    DecodePath,
    WireTimes,
    batch_rows,
    decode_path,
    schema_digest,
    without_logical_types,
)
from streams.aggregation.rows import encode_row
from streams.aggregation.transform import transform_payload
from synapseops.errors import SchemaInvalid, Undecodable
from tests.unit.aggregation.test_logic_golden import CASE_INPUTS

STORE = LocalSchemaStore()
WIRE = WireTimes(STORE, CANONICAL_EVENT)
V3_ID, V3 = STORE.latest(CANONICAL_EVENT)
PLAIN_V3 = parse_schema(without_logical_types(V3))
TOPIC = text("synapseops.aggregation.canonical")
UNDECODABLE, UNFIT = "undecodable", "unfit"
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LONGS = st.integers(-(2**63), 2**63 - 1)
# Times are mostly plausible milliseconds, sometimes anything a long holds (then their
# microseconds since 2000 may overflow: the Python path calls the record unfit).
TIMES = st.one_of(st.integers(-(10**14), 10**14), LONGS)
TEXT = st.text(alphabet=st.characters(codec="utf-8"))
OPTIONAL_TEXT = st.none() | TEXT
SCALARS = st.none() | st.booleans() | LONGS | st.floats() | TEXT
BODIES = st.none() | st.fixed_dictionaries(
    {
        "time_unix_nano": LONGS,
        "observed_time_unix_nano": LONGS,
        "severity_number": st.integers(-(2**31), 2**31 - 1),
        "severity_text": OPTIONAL_TEXT,
        "body": OPTIONAL_TEXT,
        "resource": TEXT,
        "attributes": TEXT,
        "trace_id": OPTIONAL_TEXT,
        "span_id": OPTIONAL_TEXT,
        "event_name": OPTIONAL_TEXT,
    }
)
RECORDS = st.fixed_dictionaries(
    {
        "id": TEXT,
        "source": TEXT,
        "specversion": TEXT,
        "type": TEXT,
        "time": TIMES,
        "subject": OPTIONAL_TEXT,
        "source_type": TEXT,
        "ingested_at": TIMES,
        "actor_id": OPTIONAL_TEXT,
        "attributes": st.dictionaries(TEXT, SCALARS, max_size=4),
        "trace_id": TEXT,
        "tags": st.lists(TEXT, max_size=5),
        "raw_ref": OPTIONAL_TEXT,
        "body": BODIES,
    }
)


def wire(record: dict[str, Any], schema_id: int = V3_ID) -> bytes:
    out = io.BytesIO()
    out.write(struct.pack(">BI", 0, schema_id))
    schemaless_writer(out, PLAIN_V3, record)
    return out.getvalue()


def python_row(value: bytes, partition: int = 3, offset: int = 11) -> bytes | str:
    """The Python path's row, or what it calls the record. Any other exception is a crash
    of today's loader, and fails the test."""
    try:
        record = WIRE.decode(value)
    except Undecodable:
        return UNDECODABLE
    try:
        return encode_row(record, TOPIC, partition, offset)
    except SchemaInvalid:
        return UNFIT


def native_row(value: bytes, partition: int = 3, offset: int = 11) -> bytes | None:
    return _transcode.transcode(value, TOPIC, partition, offset, V3_ID)


def _check(value: bytes, record: dict[str, Any], partition: int, offset: int) -> None:
    expected, got = python_row(value, partition, offset), native_row(value, partition, offset)
    if record["body"] is None and record["attributes"]:
        assert got is None  # flat attributes: their JSON is Python's to write
    elif expected == UNFIT:
        assert got is None
    else:
        assert got == expected


@given(RECORDS, st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1))
@FUZZ
def test_native_rows_are_the_python_rows(
    record: dict[str, Any], partition: int, offset: int
) -> None:
    _check(wire(record), record, partition, offset)


# An encoder of v3 of its own, which splits arrays and maps into blocks as Avro allows.
def _long(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), bytearray()
    z &= (1 << 64) - 1
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _str(s: str) -> bytes:
    data = s.encode()
    return _long(len(data)) + data


def _opt(s: str | None) -> bytes:
    return b"\x00" if s is None else b"\x02" + _str(s)


def _scalar(v: Any) -> bytes:
    if v is None:
        return _long(0)
    if isinstance(v, bool):
        return _long(1) + (b"\x01" if v else b"\x00")
    if isinstance(v, int):
        return _long(2) + _long(v)
    if isinstance(v, float):
        return _long(3) + struct.pack("<d", v)
    return _long(4) + _str(v)


def _blocks(items: list[bytes], cuts: list[int], sized: bool) -> bytes:
    out, start = bytearray(), 0
    for cut in sorted({c % (len(items) + 1) for c in cuts} | {len(items)}):
        block = items[start:cut]
        if block:
            data = b"".join(block)
            out += _long(-len(block)) + _long(len(data)) if sized else _long(len(block))
            out += data
        start = cut
    return bytes(out + b"\x00")


def blocked_wire(record: dict[str, Any], cuts: list[int], sized: bool) -> bytes:
    r, body = record, record["body"]
    out = bytearray(struct.pack(">BI", 0, V3_ID))
    out += _str(r["id"]) + _str(r["source"]) + _str(r["specversion"]) + _str(r["type"])
    out += _long(r["time"]) + _opt(r["subject"]) + _str(r["source_type"])
    out += _long(r["ingested_at"]) + _opt(r["actor_id"])
    out += _blocks([_str(k) + _scalar(v) for k, v in r["attributes"].items()], cuts, sized)
    out += _str(r["trace_id"]) + _blocks([_str(t) for t in r["tags"]], cuts, sized)
    out += _opt(r["raw_ref"])
    if body is None:
        return bytes(out + b"\x00")
    out += b"\x02" + _long(body["time_unix_nano"]) + _long(body["observed_time_unix_nano"])
    out += _long(body["severity_number"]) + _opt(body["severity_text"]) + _opt(body["body"])
    out += _str(body["resource"]) + _str(body["attributes"]) + _opt(body["trace_id"])
    return bytes(out + _opt(body["span_id"]) + _opt(body["event_name"]))


@given(RECORDS, st.lists(st.integers(0, 6), max_size=3), st.booleans())
@FUZZ
def test_arrays_and_maps_in_blocks_read_the_same(
    record: dict[str, Any], cuts: list[int], sized: bool
) -> None:
    _check(blocked_wire(record, cuts, sized), record, 0, 0)


def test_golden_fixtures_transcode_as_the_python_path_writes_them() -> None:
    serde = AvroSerde(STORE, CANONICAL_EVENT)
    checked = 0
    for logic, payload, context in CASE_INPUTS.values():
        for n, event in enumerate(transform_payload(logic, payload, context)):
            value = serde.encode(event.to_record())
            row = python_row(value, 1, n)
            assert isinstance(row, bytes) and native_row(value, 1, n) == row
            checked += 1
    assert checked >= len(CASE_INPUTS)


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    value = bytearray(wire(draw(RECORDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(value)))
        kind = draw(st.sampled_from(["cut", "flip", "insert", "delete"]))
        if kind == "cut":
            del value[at:]
        elif kind == "flip" and at < len(value):
            value[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            value[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif at < len(value):
            del value[at : at + draw(st.integers(1, 8))]
    return bytes(value)


@given(st.one_of(malformed(), st.binary(max_size=64).map(lambda b: wire_head() + b)))
@FUZZ
def test_malformed_values_are_handed_back_never_misread(value: bytes) -> None:
    got = native_row(value)
    expected = python_row(value)  # only Undecodable or SchemaInvalid, never a crash
    if got is not None:
        assert got == expected


def wire_head() -> bytes:
    return struct.pack(">BI", 0, V3_ID)


def test_values_it_does_not_read_for_sure_are_handed_back() -> None:
    record = {
        "id": "e", "source": "s", "specversion": "1.0", "type": "t", "time": 0,
        "subject": None, "source_type": "stream", "ingested_at": 0, "actor_id": None,
        "attributes": {}, "trace_id": "x", "tags": [], "raw_ref": None, "body": None,
    }  # fmt: skip
    good = wire(record)
    assert native_row(good) == python_row(good)
    padded_varint = good[:5] + b"\x82\x00" + good[6:]  # the id's length, 1, in two bytes
    assert native_row(padded_varint) == python_row(padded_varint) != UNDECODABLE
    for bad in (
        good[:-1],  # truncated
        good + b"\x00",  # a byte after the record
        good[:5] + b"\x01" + good[6:],  # a negative string length
        good[:5] + b"\xff" * 10 + b"\x01" + good[6:],  # a varint beyond 64 bits
        good[:5] + b"\x04\xc3\x28" + good[7:],  # invalid UTF-8 ("e" replaced)
        good[:5] + b"\x06\xed\xa0\x80" + good[7:],  # an encoded surrogate
        b"\x01" + good[1:],  # not the magic byte
        good[:4],  # shorter than the header
        wire(record | {"time": 2**62}),  # microseconds overflow: the Python path's call
        wire(record | {"attributes": {"n": 1}}),  # flat attributes
    ):
        assert native_row(bad) is None
    assert python_row(wire(record | {"time": 2**62})) == UNFIT
    assert _transcode.transcode(good, TOPIC, 3, 11, V3_ID + 1) is None  # another writer


def test_the_transcoder_reads_the_schema_it_names() -> None:
    v3 = parse((AVRO_DIR / CANONICAL_EVENT / "v3.avsc").read_text())
    assert schema_digest(v3) == _transcode.SCHEMA_DIGEST


def test_the_loader_takes_the_native_path_for_the_newest_schema() -> None:
    """When this fails, a new canonical schema came: the loader now reads every record in
    Python (correct, slower) until _transcode.pyx reads the new version too."""
    path = decode_path(STORE, CANONICAL_EVENT)
    assert (path.name, path.schema_id) == (NATIVE, V3_ID)


def test_other_schemas_and_an_unbuilt_module_take_the_python_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = LocalSchemaStore()
    region = {"name": "region", "type": ["null", "string"], "default": None}
    store.register(CANONICAL_EVENT, V3 | {"fields": [*V3["fields"], region]})
    assert decode_path(store, CANONICAL_EVENT).name == PYTHON
    monkeypatch.setattr(decode, "_transcode", None)
    path = decode_path(STORE, CANONICAL_EVENT)
    assert (path.name, path.reason) == (PYTHON, "the native transcoder is not built")


class _Message:
    """What the loader reads of a confluent-kafka Message."""

    def __init__(self, value: bytes | None, partition: int, offset: int) -> None:
        self._value, self._partition, self._offset = value, partition, offset

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


@given(st.lists(st.one_of(RECORDS.map(wire), malformed(), st.none()), max_size=12))
@settings(max_examples=100, deadline=None)
def test_a_batch_is_the_python_path_s_batch(values: list[bytes | None]) -> None:
    messages = [_Message(value, n % 3, 100 + n) for n, value in enumerate(values)]

    def fallback(message: Any) -> bytes | None:
        row = python_row(message.value() or b"", message.partition(), message.offset())
        return row if isinstance(row, bytes) else None

    native = batch_rows(messages, TOPIC, DecodePath(NATIVE, V3_ID, ""), fallback)
    python = batch_rows(messages, TOPIC, DecodePath(PYTHON, None, ""), fallback)
    assert native[:3] == python[:3]
    assert python[3] == 0 and native[3] == sum(
        1 for v in values if v is not None and native_row(v) is not None
    )
