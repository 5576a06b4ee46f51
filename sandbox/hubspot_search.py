"""HubSpot CRM search: ``POST /hubspot/crm/v3/objects/{type}/search``.

Body: ``{filterGroups: [{filters: [{propertyName, operator, value | values | highValue}]}],
sorts: [{propertyName, direction: ASCENDING | DESCENDING}], properties, limit (≤ 200, default
10), after, query}``. Groups are OR-ed, filters in a group AND-ed (≤ 5 groups, ≤ 6 filters in
one, ≤ 18 in all). Operators: ``EQ NEQ LT LTE GT GTE BETWEEN IN NOT_IN HAS_PROPERTY
NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN``. Date properties (``createdate``,
``lastmodifieddate``, ``hs_lastmodifieddate``, ``closedate``) compare as instants, the value
in epoch milliseconds or ISO 8601 — "changed since" is a ``GTE`` on the modified date sorted
ascending. Answer: ``{total, results, paging: {next: {after}}}`` (no ``paging`` on the last
page); paging past 10,000 results → 400, as HubSpot caps search. Search has its own rate limit
(:mod:`sandbox.hubspot_session`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import StoredRecord
from sandbox.gate import Refusal
from sandbox.hubspot import OBJECTS, body_of, object_type, public, requested, system_properties
from sandbox.hubspot_session import error, open_session, store

router = APIRouter(prefix="/hubspot", tags=["hubspot"])
MAX_LIMIT = 200
MAX_RESULTS = 10_000
DATE_PROPERTIES = frozenset({"createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate"})
_OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


def _invalid(message: str) -> Refusal:
    return Refusal(error(400, "VALIDATION_ERROR", message))


def _instant(value: Any) -> float | None:
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return float(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def _key(name: str, value: Any) -> Any:
    """A value in a form that compares the way HubSpot's search does."""
    if value is None:
        return None
    if name in DATE_PROPERTIES:
        return _instant(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        return text.casefold()


def _compare(left: Any, right: Any, op: str) -> bool:
    if left is None or right is None or type(left) is not type(right):
        return False
    return bool(
        {"LT": left < right, "LTE": left <= right, "GT": left > right, "GTE": left >= right}[op]
    )


def matches(values: dict[str, Any], spec: dict[str, Any]) -> bool:
    name, op = str(spec.get("propertyName", "")), str(spec.get("operator", "EQ")).upper()
    present = values.get(name) not in (None, "")
    value = _key(name, values.get(name)) if present else None
    if op == "HAS_PROPERTY":
        return present
    if op == "NOT_HAS_PROPERTY":
        return not present
    if op in ("IN", "NOT_IN"):
        wanted = {_key(name, v) for v in spec.get("values") or []}
        return (value in wanted) == (op == "IN") if present else op == "NOT_IN"
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(spec.get("value", "")).casefold().strip("*")
        found = present and token in str(values.get(name)).casefold()
        return found == (op == "CONTAINS_TOKEN")
    target = _key(name, spec.get("value"))
    if op == "EQ":
        return present and value == target
    if op == "NEQ":
        return not present or value != target
    if op == "BETWEEN":
        high = _key(name, spec.get("highValue"))
        return _compare(value, target, "GTE") and _compare(value, high, "LTE")
    return _compare(value, target, op)


def _groups(body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > 5:
        raise _invalid("filterGroups must be a list of at most 5 groups")
    filters = [g.get("filters") or [] for g in groups if isinstance(g, dict)]
    if any(len(f) > 6 for f in filters) or sum(len(f) for f in filters) > 18:
        raise _invalid("at most 6 filters in a group and 18 in all")
    for spec in (s for group in filters for s in group):
        if not isinstance(spec, dict) or str(spec.get("operator", "EQ")).upper() not in _OPERATORS:
            raise _invalid(f"unknown filter: {spec}")
    return filters


def _order(body: dict[str, Any]) -> tuple[str, bool]:
    sorts = body.get("sorts") or []
    if not sorts:
        return "hs_object_id", False
    first = sorts[0]
    if isinstance(first, str):
        return first.lstrip("-"), first.startswith("-")
    if not isinstance(first, dict):
        raise _invalid("sorts must be [{propertyName, direction}]")
    return str(first.get("propertyName")), str(first.get("direction", "")).upper() == "DESCENDING"


def search_records(records: list[StoredRecord], body: dict[str, Any]) -> list[StoredRecord]:
    groups = _groups(body)
    text = str(body.get("query") or "").casefold()
    found = []
    for record in records:
        values = {**record.fields, **system_properties(record)}
        if groups and not any(all(matches(values, s) for s in group) for group in groups):
            continue
        if text and not any(text in str(v).casefold() for v in values.values() if v):
            continue
        found.append((values, record))
    name, descending = _order(body)

    def order(item: tuple[dict[str, Any], StoredRecord]) -> tuple[bool, bool, Any, int]:
        key = _key(name, item[0].get(name))
        # Numbers before text, so one sort never compares a float with a string.
        return key is None, isinstance(key, str), key if key is not None else 0, int(item[1].id)

    found.sort(key=order, reverse=descending)
    return [record for _, record in found]


@router.post(OBJECTS + "/{raw_type}/search")
async def search(raw_type: str, request: Request) -> Response:
    open_session(request, search=True)
    kind = object_type(raw_type)
    body = await body_of(request)
    if not isinstance(body, dict):
        raise _invalid("the body must be a JSON object")
    try:
        limit = int(body.get("limit", 10))
        after = int(body.get("after") or 0)
    except (TypeError, ValueError) as exc:
        raise _invalid("limit and after must be integers") from exc
    if not 0 < limit <= MAX_LIMIT or after < 0:
        raise _invalid(f"limit must be 1..{MAX_LIMIT} and after ≥ 0")
    if after + limit > MAX_RESULTS:
        raise _invalid(f"Search results are limited to {MAX_RESULTS:,}; narrow the filters")
    found = search_records(store(request).records(kind), body)
    properties = body.get("properties") or requested(request, kind)
    page = found[after : after + limit]
    answer: dict[str, Any] = {
        "total": len(found),
        "results": [public(r, [str(p) for p in properties]) for r in page],
    }
    if after + limit < len(found):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return JSONResponse(answer)
