"""Salesforce-shaped REST API, single records (``/salesforce/services/data/v60.0/...``).

* ``POST sobjects/{type}`` → 201 ``{id, success: true, errors: []}`` (18-character ids, key
  prefixes ``00Q`` Lead, ``003`` Contact, ``006`` Opportunity); ``GET sobjects/{type}/{id}``
  (15 or 18 characters, ``?fields=a,b``) → ``{attributes: {type, url}, Id, ..., CreatedDate,
  CreatedById, LastModifiedDate, LastModifiedById, SystemModstamp, OwnerId, IsDeleted}``;
  ``PATCH`` → 204; ``DELETE`` → 204 (again → 404 ``ENTITY_IS_DELETED``).
* ``PATCH sobjects/{type}/{extIdField}/{value}``: upsert by external id → 201 ``{id, success,
  errors, created: true}`` or 200 ``{..., created: false}`` (API 46.0+); several matches → 300
  with their URLs; ``?updateOnly=true`` → 404 instead of creating. ``GET`` the same path reads it.
* ``GET sobjects/{type}/updated/?start=&end=`` → ``{ids, latestDateCovered}`` and ``.../deleted/``
  → ``{deletedRecords: [{id, deletedDate}], earliestDateAvailable, latestDateCovered}``;
  ``GET limits`` → ``{DailyApiRequests: {Max, Remaining}}``.
* Errors are ``[{message, errorCode, fields}]``: 401 ``INVALID_SESSION_ID`` (no or revoked
  token), 403 ``REQUEST_LIMIT_EXCEEDED`` (the org's daily API requests, see
  :mod:`sandbox.limits`; every answer carries ``Sforce-Limit-Info: api-usage=n/max``), 400
  ``REQUIRED_FIELD_MISSING`` / ``INVALID_EMAIL_ADDRESS`` / ``STRING_TOO_LONG`` /
  ``INVALID_FIELD_FOR_INSERT_UPDATE`` / ``JSON_PARSER_ERROR``, 404 ``NOT_FOUND``.

Records are schemaless apart from those checks. Who wrote (``LastModifiedById``) comes from
:mod:`sandbox.identity`; collections, the query endpoint and the change feed live in
``salesforce_collections``, ``salesforce_query`` and ``salesforce_cdc``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import StoredRecord
from sandbox.crm_http import legacy_feed, request_context
from sandbox.crm_ids import to_18
from sandbox.gate import Refusal
from sandbox.payloads import BadPayload, read_json
from sandbox.salesforce_rules import FieldError, check_fields, error_body, parse_time
from sandbox.salesforce_session import open_session, store

API_VERSION = "v60.0"
BASE = f"/services/data/{API_VERSION}"
router = APIRouter(prefix="/salesforce", tags=["salesforce"])
_SOBJECTS = BASE + "/sobjects"


def sf_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def sobject(record: StoredRecord, only: list[str] | None = None) -> dict[str, object]:
    """A record the way Salesforce renders one (``only``: the ``fields`` asked for)."""
    system: dict[str, object] = {
        "IsDeleted": record.deleted_at is not None,
        "OwnerId": record.created_by.user_id,
        "CreatedDate": sf_time(record.created_at),
        "CreatedById": record.created_by.user_id,
        "LastModifiedDate": sf_time(record.updated_at),
        "LastModifiedById": record.updated_by.user_id,
        "SystemModstamp": sf_time(record.updated_at),
    }
    values = {**system, **record.fields}
    if only is not None:
        values = {name: values.get(name) for name in only if name not in ("Id", "attributes")}
    url = f"{_SOBJECTS}/{record.object_type}/{record.id}"
    return {"attributes": {"type": record.object_type, "url": url}, "Id": record.id, **values}


def refuse(status: int, errors: list[FieldError]) -> Refusal:
    return Refusal(JSONResponse(error_body(errors), status_code=status))


def not_found() -> Refusal:
    return refuse(404, [FieldError("NOT_FOUND", "The requested resource does not exist")])


def deleted() -> Refusal:
    return refuse(404, [FieldError("ENTITY_IS_DELETED", "entity is deleted")])


async def body_fields(request: Request) -> dict[str, object]:
    try:
        body = await read_json(request)
    except BadPayload as exc:
        raise refuse(400, [FieldError("JSON_PARSER_ERROR", str(exc))]) from exc
    if not isinstance(body, dict):
        message = "the body must be a JSON object of fields"
        raise refuse(400, [FieldError("JSON_PARSER_ERROR", message)])
    return {k: v for k, v in body.items() if k != "attributes"}


def _checked(object_type: str, fields: dict[str, object], creating: bool) -> None:
    if errors := check_fields(object_type, fields, creating):
        raise refuse(400, errors)


@router.get(BASE + "/limits")
async def limits(request: Request) -> Response:
    open_session(request)
    state = request.app.state.sandbox
    daily = state.limits.settings.salesforce.daily_requests
    used = state.limits.fixed("salesforce:org", daily, 86_400, count=False)
    return JSONResponse({"DailyApiRequests": {"Max": daily, "Remaining": used.remaining}})


@router.post(_SOBJECTS + "/{object_type}")
async def create(object_type: str, request: Request) -> Response:
    actor = open_session(request)
    fields = await body_fields(request)
    _checked(object_type, fields, creating=True)
    record = store(request).create(object_type, fields, request_context(request, actor))
    return JSONResponse({"id": record.id, "success": True, "errors": []}, status_code=201)


def _window(request: Request) -> tuple[datetime, datetime]:
    try:
        start = parse_time(request.query_params["start"])
        end = parse_time(request.query_params["end"])
    except (KeyError, ValueError) as exc:
        message = "start and end are required ISO 8601 date-times"
        raise refuse(400, [FieldError("INVALID_QUERY_FILTER_OPERATOR", message)]) from exc
    return start, end


@router.get(_SOBJECTS + "/{object_type}/updated/")
@router.get(_SOBJECTS + "/{object_type}/updated")
async def updated(object_type: str, request: Request) -> Response:
    open_session(request)
    start, end = _window(request)
    records = store(request).records(object_type)
    ids = [r.id for r in records if start <= r.updated_at < end]
    return JSONResponse({"ids": ids, "latestDateCovered": sf_time(min(end, datetime.now(UTC)))})


@router.get(_SOBJECTS + "/{object_type}/deleted/")
@router.get(_SOBJECTS + "/{object_type}/deleted")
async def deleted_records(object_type: str, request: Request) -> Response:
    open_session(request)
    start, end = _window(request)
    gone = [
        {"id": r.id, "deletedDate": sf_time(r.deleted_at)}
        for r in store(request).records(object_type, include_deleted=True)
        if r.deleted_at is not None and start <= r.deleted_at < end
    ]
    body = {
        "deletedRecords": gone,
        "earliestDateAvailable": sf_time(start),
        "latestDateCovered": sf_time(min(end, datetime.now(UTC))),
    }
    return JSONResponse(body)


@router.get(_SOBJECTS + "/{object_type}/{record_id}")
async def read(object_type: str, record_id: str, request: Request) -> Response:
    open_session(request)
    record = store(request).get(object_type, to_18(record_id), include_deleted=True)
    if record is None or record.deleted_at is not None:
        raise not_found()
    only = request.query_params.get("fields")
    return JSONResponse(sobject(record, only.split(",") if only else None))


@router.patch(_SOBJECTS + "/{object_type}/{record_id}")
async def update(object_type: str, record_id: str, request: Request) -> Response:
    actor = open_session(request)
    fields = await body_fields(request)
    _checked(object_type, fields, creating=False)
    records = store(request)
    record_id = to_18(record_id)
    if records.update(object_type, record_id, fields, request_context(request, actor)) is None:
        raise deleted() if records.get(object_type, record_id, True) else not_found()
    return Response(status_code=204)


@router.delete(_SOBJECTS + "/{object_type}/{record_id}")
async def delete(object_type: str, record_id: str, request: Request) -> Response:
    actor = open_session(request)
    outcome = store(request).delete(object_type, to_18(record_id), request_context(request, actor))
    if outcome == "missing":
        raise not_found()
    if outcome == "already_deleted":
        raise deleted()
    return Response(status_code=204)


def _matches(request: Request, object_type: str, id_field: str, value: str) -> list[str]:
    if id_field in ("Id", "id"):
        found = store(request).get(object_type, to_18(value))
        return [found.id] if found else []
    return store(request).find(object_type, id_field, value)


def _ambiguous(object_type: str, ids: list[str]) -> Response:
    return JSONResponse([f"{_SOBJECTS}/{object_type}/{i}" for i in ids], status_code=300)


@router.get(_SOBJECTS + "/{object_type}/{id_field}/{id_value}")
async def read_by_external_id(
    object_type: str, id_field: str, id_value: str, request: Request
) -> Response:
    open_session(request)
    ids = _matches(request, object_type, id_field, id_value)
    if len(ids) > 1:
        return _ambiguous(object_type, ids)
    record = store(request).get(object_type, ids[0]) if ids else None
    if record is None:
        raise not_found()
    return JSONResponse(sobject(record))


@router.patch(_SOBJECTS + "/{object_type}/{id_field}/{id_value}")
async def upsert(object_type: str, id_field: str, id_value: str, request: Request) -> Response:
    actor = open_session(request)
    fields = await body_fields(request)
    fields.pop(id_field, None)  # the value in the URL is the one that counts
    records, context = store(request), request_context(request, actor)
    with records.lock:
        ids = _matches(request, object_type, id_field, id_value)
        if len(ids) > 1:
            return _ambiguous(object_type, ids)
        if ids:
            _checked(object_type, fields, creating=False)
            records.update(object_type, ids[0], fields, context)
            body = {"id": ids[0], "success": True, "errors": [], "created": False}
            return JSONResponse(body, status_code=200)
        if request.query_params.get("updateOnly", "").lower() == "true":
            raise not_found()
        fields = {**fields, id_field: id_value}
        _checked(object_type, fields, creating=True)
        record = records.create(object_type, fields, context)
    body = {"id": record.id, "success": True, "errors": [], "created": True}
    return JSONResponse(body, status_code=201)


@router.get("/_changes")
async def changes(request: Request) -> Response:
    """The plain change feed of :mod:`sandbox.crm` (what the integration poller reads)."""
    open_session(request, metered=False)
    return legacy_feed(store(request), request)
