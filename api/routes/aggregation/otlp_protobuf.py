"""OTLP/HTTP's protobuf encoding of ``POST /v1/logs``
(https://opentelemetry.io/docs/specs/otlp/#binary-protobuf-encoding).

A request body is an ``ExportLogsServiceRequest`` (the OpenTelemetry project's own generated
messages, ``opentelemetry-proto``); it is turned into the OTLP/JSON shape the JSON path reads
(:func:`request_as_json`), so one reader checks and transforms both encodings. The proto3
JSON mapping already writes 64-bit integers as decimal strings and enums as their numbers
(asked for) the way OTLP/JSON does; the one difference OTLP names is ``traceId``/``spanId``:
hex in OTLP/JSON, base64 in proto3 JSON, converted here. Answers to a protobuf request are
protobuf too: an ``ExportLogsServiceResponse`` (with ``partial_success`` when some records
were rejected), or a ``google.rpc.Status`` for a failed request, as the spec says.
"""

from __future__ import annotations

from base64 import b64decode
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from streams.aggregation.logic import otel
from synapseops.errors import Undecodable

MEDIA_TYPE = "application/x-protobuf"
_ID_FIELDS = ("traceId", "spanId")


def request_as_json(body: bytes) -> dict[str, Any]:
    """The request in the OTLP/JSON shape; :class:`Undecodable` if it is not one."""
    try:
        request = ExportLogsServiceRequest.FromString(body)
    except DecodeError as exc:
        raise Undecodable(f"body is not a protobuf ExportLogsServiceRequest: {exc}") from exc
    export: dict[str, Any] = MessageToDict(request, use_integers_for_enums=True)
    for _, _, record in otel.log_records(export):
        for field in _ID_FIELDS:
            if field in record:
                record[field] = b64decode(record[field]).hex()
    return export


def response(rejected: int = 0, message: str = "") -> bytes:
    """An ``ExportLogsServiceResponse``: empty when all was accepted."""
    answer = ExportLogsServiceResponse()
    if rejected:
        answer.partial_success.rejected_log_records = rejected
        answer.partial_success.error_message = message
    return answer.SerializeToString()


def status(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (the body of a 4xx/5xx answer to a protobuf request)."""
    encoded: bytes = Status(code=code, message=message).SerializeToString()
    return encoded
