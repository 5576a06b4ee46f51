"""Salesforce sObject Collections (``.../v60.0/composite/sobjects``): up to 200 records a call.

* ``POST`` ``{allOrNone, records: [{attributes: {type}, ...}]}`` creates; ``PATCH`` the same with
  ``id`` updates; ``DELETE ?ids=a,b&allOrNone=`` deletes; ``GET /{type}?ids=&fields=`` reads
  (``null`` for an id it cannot find); ``PATCH /{type}/{extIdField}`` upserts by external id.
* 200 with one result per record, in order: ``{id, success, errors}`` (upserts add
  ``created``); a refused record has ``success: false`` and ``errors: [{statusCode, message,
  fields}]``. With ``allOrNone: true`` one refused record rolls back all of them (the others
  say ``ALL_OR_NONE_OPERATION_ROLLED_BACK``); without it each record stands alone.
* More than 200 records → 400 ``EXCEEDED_ID_LIMIT``; a body without ``records`` → 400.

One call is one transaction: its changes share the ``transactionKey`` of the change feed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import CrmStore, WriteContext
from sandbox.crm_http import request_context
from sandbox.crm_ids import is_salesforce_id, to_18
from sandbox.payloads import BadPayload, read_json
from sandbox.salesforce import BASE, refuse, sobject
from sandbox.salesforce_rules import FieldError, check_fields
from sandbox.salesforce_session import open_session, store

router = APIRouter(prefix="/salesforce", tags=["salesforce"])
_COLLECTIONS = BASE + "/composite/sobjects"
MAX_RECORDS = 200
ROLLED_BACK = FieldError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)
# One record's plan: the errors that refuse it, or the write that applies it → its result.
Plan = list[FieldError] | Callable[[], dict[str, Any]]


def _too_many(count: int) -> None:
    if count > MAX_RECORDS:
        message = "record limit reached. cannot submit more than 200 records into this call"
        raise refuse(400, [FieldError("EXCEEDED_ID_LIMIT", message)])


async def _records(request: Request) -> tuple[list[dict[str, Any]], bool]:
    try:
        body = await read_json(request)
    except BadPayload as exc:
        raise refuse(400, [FieldError("JSON_PARSER_ERROR", str(exc))]) from exc
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        message = 'the body must be {"allOrNone": bool, "records": [{...}, ...]}'
        raise refuse(400, [FieldError("JSON_PARSER_ERROR", message)])
    _too_many(len(records))
    return records, bool(body.get("allOrNone", False))


def _type_of(record: dict[str, Any]) -> str | None:
    attributes = record.get("attributes")
    kind = attributes.get("type") if isinstance(attributes, dict) else None
    return kind if isinstance(kind, str) and kind else None


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("attributes", "id", "Id")}


NO_TYPE = FieldError("INVALID_TYPE", "Must send a concrete entity type.")


def _run(plans: list[Plan], all_or_none: bool) -> list[dict[str, Any]]:
    failed = any(isinstance(p, list) for p in plans)
    results = []
    for plan in plans:
        if isinstance(plan, list):
            results.append({"success": False, "errors": [e.in_collection() for e in plan]})
        elif all_or_none and failed:
            results.append({"success": False, "errors": [ROLLED_BACK.in_collection()]})
        else:
            results.append(plan())
    return results


def _saved(record_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": record_id, "success": True, "errors": [], **extra}


def _existing(records: CrmStore, kind: str, raw_id: Any) -> str | list[FieldError]:
    if not isinstance(raw_id, str) or not raw_id:
        return [FieldError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])]
    if not is_salesforce_id(raw_id):
        return [FieldError("MALFORMED_ID", f"malformed id {raw_id}", ["Id"])]
    record_id = to_18(raw_id)
    found = records.get(kind, record_id, include_deleted=True)
    if found is None:
        return [FieldError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
    if found.deleted_at is not None:
        return [FieldError("ENTITY_IS_DELETED", "entity is deleted")]
    return record_id


PlanOne = Callable[[CrmStore, dict[str, Any], WriteContext], Plan]


async def _answer(request: Request, planner: Callable[[list[dict[str, Any]]], PlanOne]) -> Response:
    """Plan every record under the store's lock, then apply (or roll back) the call."""
    context = request_context(request, open_session(request))
    records, all_or_none = await _records(request)
    plan, target = planner(records), store(request)
    with target.lock:
        return JSONResponse(_run([plan(target, r, context) for r in records], all_or_none))


def _create_plan(target: CrmStore, record: dict[str, Any], context: WriteContext) -> Plan:
    kind, fields = _type_of(record), _fields(record)
    if kind is None:
        return [NO_TYPE]
    if record.get("id") or record.get("Id"):
        message = "cannot specify Id in an insert call"
        return [FieldError("INVALID_FIELD_FOR_INSERT_UPDATE", message, ["Id"])]
    if errors := check_fields(kind, fields, creating=True):
        return errors
    return lambda: _saved(target.create(kind, fields, context).id)


def _update_plan(target: CrmStore, record: dict[str, Any], context: WriteContext) -> Plan:
    kind, fields = _type_of(record), _fields(record)
    if kind is None:
        return [NO_TYPE]
    found = _existing(target, kind, record.get("id", record.get("Id")))
    if isinstance(found, list):
        return found
    if errors := check_fields(kind, fields, creating=False):
        return errors

    def apply() -> dict[str, Any]:
        target.update(kind, found, fields, context)
        return _saved(found)

    return apply


@router.post(_COLLECTIONS)
async def create_many(request: Request) -> Response:
    return await _answer(request, lambda _: _create_plan)


@router.patch(_COLLECTIONS)
async def update_many(request: Request) -> Response:
    return await _answer(request, lambda _: _update_plan)


@router.delete(_COLLECTIONS)
async def delete_many(request: Request) -> Response:
    context = request_context(request, open_session(request))
    ids = [i for i in request.query_params.get("ids", "").split(",") if i]
    all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
    _too_many(len(ids))
    target = store(request)
    with target.lock:
        plans: list[Plan] = []
        for raw_id in ids:
            record_id = to_18(raw_id)
            found = target.get_any(record_id) if is_salesforce_id(raw_id) else None
            if found is None:
                plans.append(
                    [FieldError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
                )
            elif found.deleted_at is not None:
                plans.append([FieldError("ENTITY_IS_DELETED", "entity is deleted")])
            else:
                plans.append(_deleter(target, found.object_type, record_id, context))
        return JSONResponse(_run(plans, all_or_none))


def _deleter(
    target: CrmStore, kind: str, record_id: str, context: WriteContext
) -> Callable[[], dict[str, Any]]:
    def apply() -> dict[str, Any]:
        target.delete(kind, record_id, context)
        return _saved(record_id)

    return apply


@router.get(_COLLECTIONS + "/{object_type}")
async def read_many(object_type: str, request: Request) -> Response:
    open_session(request)
    ids = [to_18(i) for i in request.query_params.get("ids", "").split(",") if i]
    if len(ids) > 2000:
        raise refuse(400, [FieldError("EXCEEDED_ID_LIMIT", "too many ids: at most 2000")])
    only = request.query_params.get("fields")
    fields = only.split(",") if only else None
    target = store(request)
    found = [target.get(object_type, i) for i in ids]
    return JSONResponse([sobject(r, fields) if r is not None else None for r in found])


@router.patch(_COLLECTIONS + "/{object_type}/{id_field}")
async def upsert_many(object_type: str, id_field: str, request: Request) -> Response:
    def planner(records: list[dict[str, Any]]) -> PlanOne:
        # An external id twice in one call refuses both records, as Salesforce does.
        repeated = Counter(str(r[id_field]).casefold() for r in records if r.get(id_field))

        def plan(target: CrmStore, record: dict[str, Any], context: WriteContext) -> Plan:
            return _upsert_plan(target, object_type, id_field, record, repeated, context)

        return plan

    return await _answer(request, planner)


def _upsert_plan(
    target: CrmStore,
    object_type: str,
    id_field: str,
    record: dict[str, Any],
    repeated: Counter[str],
    context: WriteContext,
) -> Plan:
    kind = _type_of(record)
    if kind != object_type:
        return [NO_TYPE]
    value = record.get(id_field)
    if value in (None, ""):
        return [FieldError("MISSING_ARGUMENT", f"{id_field} not specified", [id_field])]
    if repeated[str(value).casefold()] > 1:
        return [FieldError("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}")]
    fields = _fields(record)
    matches = target.find(kind, id_field, value)
    if len(matches) > 1:
        message = f"{kind}: more than one record found for external id field: {matches}"
        return [FieldError("DUPLICATE_EXTERNAL_ID", message, [id_field])]
    if errors := check_fields(kind, fields, creating=not matches):
        return errors
    if matches:
        record_id = matches[0]

        def update() -> dict[str, Any]:
            target.update(kind, record_id, fields, context)
            return _saved(record_id, created=False)

        return update
    return lambda: _saved(target.create(kind, fields, context).id, created=True)
