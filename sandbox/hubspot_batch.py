"""HubSpot CRM v3 batch endpoints: ``/hubspot/crm/v3/objects/{type}/batch/<action>``.

At most 100 ``inputs`` per call (more → 400 ``VALIDATION_ERROR``). Each input stands alone:
the answer is ``{status: "COMPLETE", results, startedAt, completedAt}`` — 201 (create) or 200
when all succeeded, 207 with ``numErrors`` and ``errors: [{status, category, message,
context}]`` when some did not (``context.objectWriteTraceId`` names an input that sent one,
``context.ids`` the ids that failed, as HubSpot's multi-status answers do).

* ``create`` ``{inputs: [{properties, objectWriteTraceId?}]}``
* ``update`` ``{inputs: [{id, properties, idProperty?}]}`` (unknown ids → ``OBJECT_NOT_FOUND``)
* ``upsert`` ``{inputs: [{id, idProperty, properties}]}``: creates or updates by a unique
  property (e.g. ``email``); each result has ``new: true/false``
* ``read`` ``{inputs: [{id}], properties?, idProperty?}``
* ``archive`` ``{inputs: [{id}]}`` → 204
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import CrmStore, WriteContext
from sandbox.crm_http import request_context
from sandbox.gate import Refusal
from sandbox.hubspot import (
    DEFAULT_PROPERTIES,
    OBJECTS,
    InputError,
    body_of,
    check,
    hs_time,
    lookup,
    object_type,
    properties_of,
    public,
)
from sandbox.hubspot_session import error, open_session, store

router = APIRouter(prefix="/hubspot", tags=["hubspot"])
MAX_INPUTS = 100
_BATCH = OBJECTS + "/{raw_type}/batch"


async def _inputs(request: Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    body = await body_of(request)
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise Refusal(error(400, "VALIDATION_ERROR", 'body must be {"inputs": [{...}, ...]}'))
    if len(inputs) > MAX_INPUTS:
        message = (
            f"The maximum number of inputs supported in a batch request is {MAX_INPUTS}. "
            "Please reduce the number of items and try again"
        )
        raise Refusal(error(400, "VALIDATION_ERROR", message))
    return body, inputs


class Batch:
    """Collects one call's results and errors and answers the way HubSpot does."""

    def __init__(self) -> None:
        self.started = hs_time(datetime.now(UTC))
        self.results: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def fail(self, problem: InputError, item: dict[str, Any], ids: list[str] | None = None) -> None:
        trace = item.get("objectWriteTraceId")
        entry = problem.in_batch(trace if isinstance(trace, str) else None)
        if ids:
            entry["context"] = {**entry["context"], "ids": ids}
        self.errors.append(entry)

    def answer(self, ok_status: int = 200) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": self.results,
            "startedAt": self.started,
            "completedAt": hs_time(datetime.now(UTC)),
        }
        if self.errors:
            body |= {"numErrors": len(self.errors), "errors": self.errors}
        return JSONResponse(body, status_code=207 if self.errors else ok_status)


def _properties(item: dict[str, Any]) -> dict[str, str | None] | InputError:
    return properties_of({"properties": item.get("properties", {})})


OneWrite = Callable[[CrmStore, str, dict[str, Any], Batch, WriteContext], None]


async def _write_each(raw_type: str, request: Request, one: OneWrite, ok: int = 200) -> Response:
    """Each input on its own, all under the store's lock (one transaction for the feeds)."""
    actor = open_session(request)
    kind, (_, inputs) = object_type(raw_type), await _inputs(request)
    records, context = store(request), request_context(request, actor)
    batch = Batch()
    with records.lock:
        for item in inputs:
            one(records, kind, item, batch, context)
    return batch.answer(ok)


def _create_one(
    records: CrmStore, kind: str, item: dict[str, Any], batch: Batch, context: WriteContext
) -> None:
    properties = _properties(item)
    if isinstance(properties, InputError):
        batch.fail(properties, item)
    elif problem := check(records, kind, properties, None):
        batch.fail(problem, item)
    else:
        batch.results.append(public(records.create(kind, properties, context)))


@router.post(_BATCH + "/create")
async def create(raw_type: str, request: Request) -> Response:
    return await _write_each(raw_type, request, _create_one, ok=201)


def _missing(kind: str) -> InputError:
    noun = kind.removesuffix("s").upper()
    message = (
        f"Could not get some {noun} objects, they may be deleted or not exist. "
        "Check that ids are valid."
    )
    return InputError(404, "OBJECT_NOT_FOUND", message)


def _update_one(
    records: CrmStore, kind: str, item: dict[str, Any], batch: Batch, context: WriteContext
) -> None:
    raw_id = str(item.get("id", ""))
    found = lookup(records, kind, raw_id, item.get("idProperty"))
    properties = _properties(item)
    if isinstance(properties, InputError):
        batch.fail(properties, item)
    elif found is None or records.get(kind, found) is None:
        batch.fail(_missing(kind), item, ids=[raw_id])
    elif problem := check(records, kind, properties, found):
        batch.fail(problem, item, ids=[raw_id])
    else:
        updated = records.update(kind, found, properties, context)
        assert updated is not None
        batch.results.append(public(updated))


@router.post(_BATCH + "/update")
async def update(raw_type: str, request: Request) -> Response:
    return await _write_each(raw_type, request, _update_one)


def _upsert_one(
    records: CrmStore, kind: str, item: dict[str, Any], batch: Batch, context: WriteContext
) -> None:
    id_property, value = item.get("idProperty"), item.get("id")
    properties = _properties(item)
    if isinstance(properties, InputError):
        batch.fail(properties, item)
        return
    if not isinstance(id_property, str) or not id_property or value in (None, ""):
        batch.fail(InputError(400, "VALIDATION_ERROR", "upsert needs id and idProperty"), item)
        return
    found = records.find(kind, id_property, value)
    target = found[0] if found else None
    merged = properties if target else {**properties, id_property: str(value)}
    if problem := check(records, kind, merged, target):
        batch.fail(problem, item, ids=[str(value)])
    elif target:
        updated = records.update(kind, target, merged, context)
        assert updated is not None
        batch.results.append({**public(updated), "new": False})
    else:
        batch.results.append({**public(records.create(kind, merged, context)), "new": True})


@router.post(_BATCH + "/upsert")
async def upsert(raw_type: str, request: Request) -> Response:
    return await _write_each(raw_type, request, _upsert_one)


@router.post(_BATCH + "/read")
async def read(raw_type: str, request: Request) -> Response:
    open_session(request)
    kind, (body, inputs) = object_type(raw_type), await _inputs(request)
    records = store(request)
    wanted = body.get("properties") or list(DEFAULT_PROPERTIES.get(kind, ()))
    id_property = body.get("idProperty")
    batch, missing = Batch(), []
    for item in inputs:
        raw_id = str(item.get("id", ""))
        found = lookup(records, kind, raw_id, id_property)
        record = records.get(kind, found) if found else None
        if record is None:
            missing.append(raw_id)
        else:
            batch.results.append(public(record, [str(p) for p in wanted]))
    if missing:
        batch.fail(_missing(kind), {}, ids=missing)
    return batch.answer()


@router.post(_BATCH + "/archive")
async def archive(raw_type: str, request: Request) -> Response:
    actor = open_session(request)
    kind, (_, inputs) = object_type(raw_type), await _inputs(request)
    records, context = store(request), request_context(request, actor)
    with records.lock:
        for item in inputs:
            records.delete(kind, str(item.get("id", "")), context)
    return Response(status_code=204)
