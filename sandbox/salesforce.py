"""Salesforce-shaped sObject REST API (``/salesforce/services/data/v60.0/sobjects/...``).

* ``POST .../sobjects/{type}`` → 201 ``{id, success: true, errors: []}`` (18-character ids);
  required fields missing → 400 ``[{message, errorCode: "REQUIRED_FIELD_MISSING", fields}]``.
* ``PATCH .../sobjects/{type}/{id}`` → 204; ``GET .../sobjects/{type}/{id}`` → the record with
  ``attributes``, ``Id``, its fields, ``CreatedDate``/``LastModifiedDate``. 15- or 18-char ids.
* ``PATCH .../sobjects/{type}/{ext_field}/{value}``: upsert by external id → 201
  ``{..., created: true}`` or 200 ``{..., created: false}``.
* ``GET /salesforce/_changes?since=`` — the change feed (see :mod:`sandbox.crm`).
Every route needs ``Authorization: Bearer <token>``; without one → 401 ``INVALID_SESSION_ID``.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import CrmStore, Record, changes_response, salesforce_id, to_18
from sandbox.payloads import BadPayload, read_json

API_VERSION = "v60.0"
router = APIRouter(prefix="/salesforce", tags=["salesforce"])
_SOBJECTS = f"/services/data/{API_VERSION}/sobjects"
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": ("Name",),
    "Contact": ("LastName",),
    "Lead": ("LastName", "Company"),
    "Opportunity": ("Name", "StageName", "CloseDate"),
}
_SYSTEM_FIELDS = frozenset({"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"})


def new_store() -> CrmStore:
    return CrmStore(salesforce_id)


def _store(request: Request) -> CrmStore:
    store: CrmStore = request.app.state.sandbox.salesforce
    return store


def _sf_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _errors(
    status: int, error_code: str, message: str, fields: list[str] | None = None
) -> JSONResponse:
    return JSONResponse(
        [{"message": message, "errorCode": error_code, "fields": fields or []}], status_code=status
    )


def _check_auth(request: Request) -> JSONResponse | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
    return None


async def _fields(request: Request) -> Record | JSONResponse:
    try:
        body = await read_json(request)
    except BadPayload as exc:
        return _errors(400, "JSON_PARSER_ERROR", str(exc))
    if not isinstance(body, dict):
        return _errors(400, "JSON_PARSER_ERROR", "the body must be a JSON object of fields")
    reserved = sorted(_SYSTEM_FIELDS & body.keys())
    if reserved:
        message = f"Unable to create/update fields: {', '.join(reserved)}"
        return _errors(400, "INVALID_FIELD_FOR_INSERT_UPDATE", message, reserved)
    return {k: v for k, v in body.items() if k != "attributes"}


def _missing_required(object_type: str, fields: Record) -> JSONResponse | None:
    missing = [f for f in REQUIRED_FIELDS.get(object_type, ()) if fields.get(f) in (None, "")]
    if missing:
        message = f"Required fields are missing: [{', '.join(missing)}]"
        return _errors(400, "REQUIRED_FIELD_MISSING", message, missing)
    return None


@router.post(_SOBJECTS + "/{object_type}")
async def create(object_type: str, request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    fields = await _fields(request)
    if isinstance(fields, JSONResponse):
        return fields
    if invalid := _missing_required(object_type, fields):
        return invalid
    record_id, _ = _store(request).create(object_type, fields)
    return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)


@router.get(_SOBJECTS + "/{object_type}/{record_id}")
async def read(object_type: str, record_id: str, request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    record_id = to_18(record_id)
    record = _store(request).get(object_type, record_id)
    if record is None:
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")
    url = f"/services/data/{API_VERSION}/sobjects/{object_type}/{record_id}"
    return JSONResponse(
        {
            "attributes": {"type": object_type, "url": url},
            "Id": record_id,
            **record["fields"],
            "CreatedDate": _sf_time(record["created_at"]),
            "LastModifiedDate": _sf_time(record["updated_at"]),
            "SystemModstamp": _sf_time(record["updated_at"]),
        }
    )


@router.patch(_SOBJECTS + "/{object_type}/{record_id}")
async def update(object_type: str, record_id: str, request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    fields = await _fields(request)
    if isinstance(fields, JSONResponse):
        return fields
    if _store(request).update(object_type, to_18(record_id), fields) is None:
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")
    return Response(status_code=204)


@router.patch(_SOBJECTS + "/{object_type}/{id_field}/{id_value}")
async def upsert(object_type: str, id_field: str, id_value: str, request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    fields = await _fields(request)
    if isinstance(fields, JSONResponse):
        return fields
    store = _store(request)
    found = store.find(object_type, id_field, id_value)
    if found is not None:
        store.update(object_type, found[0], fields)
        body = {"id": found[0], "success": True, "errors": [], "created": False}
        return JSONResponse(body, status_code=200)
    fields = {**fields, id_field: id_value}
    if invalid := _missing_required(object_type, fields):
        return invalid
    record_id, _ = store.create(object_type, fields)
    body = {"id": record_id, "success": True, "errors": [], "created": True}
    return JSONResponse(body, status_code=201)


@router.get("/_changes")
async def changes(request: Request) -> Response:
    if denied := _check_auth(request):
        return denied
    return changes_response(_store(request), request)
