"""HubSpot-shaped CRM v3 objects API (``/hubspot/crm/v3/objects/{type}``), single objects.

* Types: ``contacts``, ``companies``, ``deals``, ``tickets`` (or ``0-1``, ``0-2``, ``0-3``,
  ``0-5``); another → 400 "Unable to infer object type".
* ``GET {type}?limit=&after=&properties=&archived=`` lists them by id (≤ 100 a page) →
  ``{results, paging: {next: {after, link}}}`` (no ``paging`` on the last page) — a full read.
* ``POST {type}`` ``{properties}`` → 201 ``{id, properties, createdAt, updatedAt, archived}``;
  ids are numeric strings and every property value comes back a string (``12`` → ``"12"``),
  with ``createdate``, ``hs_object_id`` and ``lastmodifieddate`` (contacts) or
  ``hs_lastmodifieddate`` (other types). ``PATCH {type}/{id}`` → 200 the object (an empty
  string clears a property); ``DELETE`` archives → 204; ``GET {type}/{id}`` (``?idProperty=
  email`` looks up by a unique property, ``?properties=a,b`` picks them, else HubSpot's default
  set; ``?archived=true`` finds archived ones) → the object, or 404 ``OBJECT_NOT_FOUND``.
* A contact's ``email`` is unique (case-insensitive): a second one → 409 ``CONFLICT``
  ("Contact already exists. Existing ID: …"); an invalid one → 400 ``VALIDATION_ERROR``
  (``INVALID_EMAIL``).
* Errors: ``{status: "error", message, correlationId, category, ...}``; auth and rate limits in
  :mod:`sandbox.hubspot_session`; batches, search and change events in ``hubspot_batch``,
  ``hubspot_search``, ``hubspot_events``; ``GET /hubspot/_changes?since=`` is the plain feed of
  :mod:`sandbox.crm`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import CrmStore, StoredRecord
from sandbox.crm_http import legacy_feed, request_context
from sandbox.gate import Refusal
from sandbox.hubspot_session import error, open_session, store
from sandbox.payloads import BadPayload, read_json

router = APIRouter(prefix="/hubspot", tags=["hubspot"])
OBJECTS = "/crm/v3/objects"
OBJECT_TYPES = {
    "contacts": "contacts",
    "companies": "companies",
    "deals": "deals",
    "tickets": "tickets",
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-5": "tickets",
}
DEFAULT_PROPERTIES = {
    "contacts": ("email", "firstname", "lastname"),
    "companies": ("domain", "name"),
    "deals": ("amount", "closedate", "dealname", "dealstage", "pipeline"),
    "tickets": ("content", "hs_pipeline", "hs_pipeline_stage", "subject"),
}
READ_ONLY = frozenset(
    {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_createdate"}
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def object_type(raw: str) -> str:
    kind = OBJECT_TYPES.get(raw.lower())
    if kind is None:
        raise Refusal(error(400, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {raw}"))
    return kind


def modified_property(kind: str) -> str:
    return "lastmodifieddate" if kind == "contacts" else "hs_lastmodifieddate"


def hs_time(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def system_properties(record: StoredRecord) -> dict[str, str]:
    return {
        "createdate": hs_time(record.created_at),
        modified_property(record.object_type): hs_time(record.updated_at),
        "hs_object_id": record.id,
    }


def public(record: StoredRecord, only: list[str] | None = None) -> dict[str, Any]:
    """The object as HubSpot answers it; ``only`` limits the properties to those asked for."""
    values: dict[str, Any] = {**record.fields, **system_properties(record)}
    if only is not None:
        values = {name: values.get(name) for name in [*only, *system_properties(record)]}
    body: dict[str, Any] = {
        "id": record.id,
        "properties": values,
        "createdAt": hs_time(record.created_at),
        "updatedAt": hs_time(record.updated_at),
        "archived": record.deleted_at is not None,
    }
    if record.deleted_at is not None:
        body["archivedAt"] = hs_time(record.deleted_at)
    return body


def requested(request: Request, kind: str) -> list[str]:
    raw = request.query_params.get("properties")
    return [p for p in raw.split(",") if p] if raw else list(DEFAULT_PROPERTIES.get(kind, ()))


@dataclass(frozen=True)
class InputError:
    """Why one input is refused, as HubSpot says it alone (status) or in a batch (the rest)."""

    status: int
    category: str
    message: str
    context: dict[str, list[str]] | None = None

    def response(self) -> JSONResponse:
        extra = {"context": self.context} if self.context else {}
        return error(self.status, self.category, self.message, **extra)

    def in_batch(self, trace_id: str | None = None) -> dict[str, Any]:
        context = dict(self.context or {})
        if trace_id:
            context["objectWriteTraceId"] = [trace_id]
        return {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": context,
        }


def properties_of(body: Any) -> dict[str, str | None] | InputError:
    properties = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(properties, dict):
        return InputError(400, "VALIDATION_ERROR", 'body must be {"properties": {...}}')
    if any(isinstance(v, dict | list) for v in properties.values()):
        return InputError(400, "VALIDATION_ERROR", "property values must be scalars")
    read_only = sorted(READ_ONLY & properties.keys())
    if read_only:
        message = f"Property values were not valid: {read_only[0]} is a read only property"
        return InputError(400, "VALIDATION_ERROR", message, {"propertyName": read_only})
    return {k: as_string(v) for k, v in properties.items()}


def check(
    records: CrmStore, kind: str, properties: dict[str, str | None], record_id: str | None
) -> InputError | None:
    """The refusal HubSpot would give these properties (``record_id``: the one updated)."""
    email = properties.get("email")
    if kind != "contacts" or not email:
        return None
    if not _EMAIL.match(email):
        problem = {
            "isValid": False,
            "message": f"Email address {email} is invalid",
            "error": "INVALID_EMAIL",
            "name": "email",
        }
        message = f"Property values were not valid: {json.dumps([problem])}"
        return InputError(400, "VALIDATION_ERROR", message, {"propertyName": ["email"]})
    taken = [i for i in records.find(kind, "email", email) if i != record_id]
    if taken:
        message = f"Contact already exists. Existing ID: {taken[0]}"
        return InputError(409, "CONFLICT", message, {"existingId": [taken[0]]})
    return None


async def body_of(request: Request) -> Any:
    try:
        return await read_json(request)
    except BadPayload as exc:
        raise Refusal(error(400, "VALIDATION_ERROR", str(exc))) from exc


async def _properties(request: Request) -> dict[str, str | None]:
    found = properties_of(await body_of(request))
    if isinstance(found, InputError):
        raise Refusal(found.response())
    return found


def not_found() -> Refusal:
    return Refusal(
        error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
    )


@router.get("/_changes")
async def changes(request: Request) -> Response:
    """The plain change feed of :mod:`sandbox.crm` (what the integration poller reads)."""
    open_session(request, metered=False)
    return legacy_feed(store(request), request)


@router.get(OBJECTS + "/{raw_type}")
async def list_objects(raw_type: str, request: Request) -> Response:
    open_session(request)
    kind = object_type(raw_type)
    try:
        limit = max(1, min(int(request.query_params.get("limit", "10")), 100))
        after = int(request.query_params.get("after", "0"))
    except ValueError as exc:
        raise Refusal(error(400, "VALIDATION_ERROR", "limit and after are integers")) from exc
    archived = request.query_params.get("archived", "false").lower() == "true"
    every = store(request).records(kind, include_deleted=archived)
    chosen = sorted(
        (r for r in every if (r.deleted_at is not None) == archived and int(r.id) > after),
        key=lambda r: int(r.id),
    )
    page, wanted = chosen[:limit], requested(request, kind)
    body: dict[str, Any] = {"results": [public(r, wanted) for r in page]}
    if len(chosen) > limit:
        next_after = page[-1].id
        link = f"{request.url.replace(query='')}?after={next_after}&limit={limit}"
        body["paging"] = {"next": {"after": next_after, "link": link}}
    return JSONResponse(body)


@router.post(OBJECTS + "/{raw_type}")
async def create(raw_type: str, request: Request) -> Response:
    actor = open_session(request)
    kind, properties = object_type(raw_type), await _properties(request)
    records = store(request)
    with records.lock:
        if problem := check(records, kind, properties, None):
            raise Refusal(problem.response())
        record = records.create(kind, properties, request_context(request, actor))
    return JSONResponse(public(record), status_code=201)


def lookup(records: CrmStore, kind: str, raw_id: str, id_property: str | None) -> str | None:
    if id_property and id_property != "hs_object_id":
        found = records.find(kind, id_property, raw_id)
        return found[0] if found else None
    return raw_id


@router.get(OBJECTS + "/{raw_type}/{record_id}")
async def read(raw_type: str, record_id: str, request: Request) -> Response:
    open_session(request)
    kind, records = object_type(raw_type), store(request)
    found = lookup(records, kind, record_id, request.query_params.get("idProperty"))
    archived = request.query_params.get("archived", "false").lower() == "true"
    record = records.get(kind, found, include_deleted=True) if found else None
    if record is None or (record.deleted_at is not None) != archived:
        raise not_found()
    return JSONResponse(public(record, requested(request, kind)))


@router.patch(OBJECTS + "/{raw_type}/{record_id}")
async def update(raw_type: str, record_id: str, request: Request) -> Response:
    actor = open_session(request)
    kind, properties = object_type(raw_type), await _properties(request)
    records = store(request)
    with records.lock:
        found = lookup(records, kind, record_id, request.query_params.get("idProperty"))
        if found is None or records.get(kind, found) is None:
            raise not_found()
        if problem := check(records, kind, properties, found):
            raise Refusal(problem.response())
        record = records.update(kind, found, properties, request_context(request, actor))
    assert record is not None  # checked under the same lock
    return JSONResponse(public(record))


@router.delete(OBJECTS + "/{raw_type}/{record_id}")
async def archive(raw_type: str, record_id: str, request: Request) -> Response:
    actor = open_session(request)
    kind = object_type(raw_type)
    # HubSpot answers 204 whether or not the object existed.
    store(request).delete(kind, record_id, request_context(request, actor))
    return Response(status_code=204)
