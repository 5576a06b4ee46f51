"""HubSpot-shaped CRM v3 objects API (``/hubspot/crm/v3/objects/{type}``).

* ``POST /hubspot/crm/v3/objects/{type}`` with ``{properties: {...}}`` → 201
  ``{id, properties, createdAt, updatedAt, archived}``; ids are numeric strings and property
  values come back as strings, as HubSpot does. A second contact with the same email → 409
  ``CONFLICT`` ("Contact already exists. Existing ID: …").
* ``PATCH .../{type}/{id}`` → 200 the updated object; ``GET .../{type}/{id}`` → the object
  (``?idProperty=email`` looks it up by a property instead); unknown → 404 ``OBJECT_NOT_FOUND``.
* ``GET /hubspot/_changes?since=`` — the change feed (see :mod:`sandbox.crm`).
Every route needs ``Authorization: Bearer <token>``; without one → 401.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import CrmStore, Record, changes_response
from sandbox.payloads import BadPayload, read_json

router = APIRouter(prefix="/hubspot", tags=["hubspot"])
_OBJECTS = "/crm/v3/objects"
# HubSpot's object ids are numeric and start well above 1; the offset keeps that look.
_ID_OFFSET = 51_000


def new_store() -> CrmStore:
    return CrmStore(lambda _type, number: str(_ID_OFFSET + number))


def _store(request: Request) -> CrmStore:
    store: CrmStore = request.app.state.sandbox.hubspot
    return store


def _error(status: int, category: str, message: str) -> JSONResponse:
    body = {"status": "error", "message": message, "category": category}
    return JSONResponse(body, status_code=status)


def _check_auth(request: Request) -> JSONResponse | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        message = "Authentication credentials not found."
        return _error(401, "INVALID_AUTHENTICATION", message)
    return None


def _as_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _properties(request: Request) -> Record | JSONResponse:
    try:
        body = await read_json(request)
    except BadPayload as exc:
        return _error(400, "VALIDATION_ERROR", str(exc))
    properties = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(properties, dict):
        return _error(400, "VALIDATION_ERROR", 'body must be {"properties": {...}}')
    if any(isinstance(v, dict | list) for v in properties.values()):
        return _error(400, "VALIDATION_ERROR", "property values must be scalars")
    return {k: _as_string(v) for k, v in properties.items()}


def _public(record_id: str, record: Record) -> dict[str, Any]:
    created = record["created_at"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
    updated = record["updated_at"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
    properties = {
        **record["fields"],
        "createdate": created,
        "hs_lastmodifieddate": updated,
        "hs_object_id": record_id,
    }
    return {
        "id": record_id,
        "properties": properties,
        "createdAt": created,
        "updatedAt": updated,
        "archived": False,
    }


def _email_taken(store: CrmStore, object_type: str, properties: Record) -> str | None:
    email = properties.get("email")
    if object_type != "contacts" or not email:
        return None
    found = store.find(object_type, "email", email) or store.find(
        object_type, "email", email.lower()
    )
    return found[0] if found is not None else None


@router.post(_OBJECTS + "/{object_type}")
async def create(object_type: str, request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    properties = await _properties(request)
    if isinstance(properties, JSONResponse):
        return properties
    store = _store(request)
    if existing := _email_taken(store, object_type, properties):
        return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
    record_id, record = store.create(object_type, properties)
    return JSONResponse(_public(record_id, record), status_code=201)


@router.get(_OBJECTS + "/{object_type}/{record_id}")
async def read(object_type: str, record_id: str, request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    store = _store(request)
    id_property = request.query_params.get("idProperty")
    if id_property:
        found = store.find(object_type, id_property, record_id)
    else:
        record = store.get(object_type, record_id)
        found = (record_id, record) if record is not None else None
    if found is None:
        return _error(404, "OBJECT_NOT_FOUND", "Object not found.")
    return JSONResponse(_public(*found))


@router.patch(_OBJECTS + "/{object_type}/{record_id}")
async def update(object_type: str, record_id: str, request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    properties = await _properties(request)
    if isinstance(properties, JSONResponse):
        return properties
    record = _store(request).update(object_type, record_id, properties)
    if record is None:
        return _error(404, "OBJECT_NOT_FOUND", "Object not found.")
    return JSONResponse(_public(record_id, record))


@router.get("/_changes")
async def changes(request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    return changes_response(_store(request), request)
