"""A small SOQL: ``GET .../v60.0/query?q=`` and ``queryAll`` (deleted records too).

Understood: ``SELECT <fields> | COUNT() FROM <object> [WHERE <field> <op> <value> [AND ...]]
[ORDER BY <field> [ASC|DESC]] [LIMIT n] [OFFSET n]`` with ``= != <> < <= > >= LIKE IN (...)
NOT IN (...)`` and string (``'...'``), number, ``true``/``false``/``null``, date
(``2026-01-31``) and date-time (``2026-01-31T10:00:00Z``) literals — enough for "everything
changed since" and for a full read of an object. Names are case-insensitive, as in SOQL.
Anything else → 400 ``MALFORMED_QUERY``.

Answers are Salesforce's: ``{totalSize, done, records, nextRecordsUrl}``, 2,000 records a
batch (``Sforce-Query-Options: batchSize=200..2000``); ``nextRecordsUrl``
(``/services/data/v60.0/query/01g…-2000``) reads the next batch of the same snapshot.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import StoredRecord
from sandbox.salesforce import BASE, refuse, sobject
from sandbox.salesforce_rules import FieldError, parse_time
from sandbox.salesforce_session import open_session, store

router = APIRouter(prefix="/salesforce", tags=["salesforce"])
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)"
    r"|(?P<word>[A-Za-z0-9_.:+\-]+))"
)
_OPS = {"=", "!=", "<>", "<", "<=", ">", ">=", "LIKE", "IN", "NOT IN"}
_KNOWN_TYPES = {"lead": "Lead", "contact": "Contact", "opportunity": "Opportunity"}
_SYSTEM_TIMES = {"createddate", "lastmodifieddate", "systemmodstamp"}
MAX_LOCATORS = 64


class MalformedQuery(ValueError):
    pass


@dataclass
class Condition:
    field: str
    op: str
    value: Any


@dataclass
class Query:
    object_type: str
    fields: list[str]
    count: bool = False
    where: list[Condition] = field(default_factory=list)
    order_by: str | None = None
    descending: bool = False
    limit: int | None = None
    offset: int = 0


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise MalformedQuery(f"unexpected token at: {text[position : position + 20]!r}")
        tokens.append(match.group(match.lastgroup or "word"))
        position = match.end()
    return tokens


def _literal(token: str) -> Any:
    if token.startswith("'"):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    lowered = token.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if re.fullmatch(r"-?\d+(\.\d+)?", token):
        return float(token) if "." in token else int(token)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", token):
        return date.fromisoformat(token)
    try:
        return parse_time(token)
    except ValueError as exc:
        raise MalformedQuery(f"not a literal: {token}") from exc


def parse(text: str) -> Query:
    tokens = _tokens(text)
    upper = [t.upper() for t in tokens]
    if len(tokens) < 4 or upper[0] != "SELECT" or "FROM" not in upper:
        raise MalformedQuery("expected SELECT <fields> FROM <object>")
    at = upper.index("FROM")
    selected = [t for t in tokens[1:at] if t != ","]
    count = [s.upper() for s in selected] == ["COUNT", "(", ")"] or selected == ["COUNT()"]
    if not selected or (not count and any(s in ("(", ")") for s in selected)):
        raise MalformedQuery("expected a field list or COUNT()")
    kind = tokens[at + 1]
    query = Query(_KNOWN_TYPES.get(kind.lower(), kind), [] if count else selected, count)
    rest, words = tokens[at + 2 :], upper[at + 2 :]
    i = 0
    while i < len(rest):
        if words[i] in ("WHERE", "AND"):
            i = _condition(rest, words, i + 1, query)
        elif words[i] == "ORDER" and i + 2 < len(rest) and words[i + 1] == "BY":
            query.order_by, i = rest[i + 2], i + 3
            if i < len(rest) and words[i] in ("ASC", "DESC"):
                query.descending, i = words[i] == "DESC", i + 1
        elif words[i] in ("LIMIT", "OFFSET") and i + 1 < len(rest) and rest[i + 1].isdigit():
            setattr(query, words[i].lower(), int(rest[i + 1]))
            i += 2
        else:
            raise MalformedQuery(f"unexpected token: {rest[i]}")
    return query


def _condition(rest: list[str], words: list[str], i: int, query: Query) -> int:
    if i + 2 > len(rest):
        raise MalformedQuery("incomplete condition")
    name, op = rest[i], words[i + 1]
    if op == "NOT" and i + 2 < len(rest) and words[i + 2] == "IN":
        op, i = "NOT IN", i + 1
    if op not in _OPS:
        raise MalformedQuery(f"unknown operator: {rest[i + 1]}")
    if op in ("IN", "NOT IN"):
        if i + 2 >= len(rest) or rest[i + 2] != "(" or ")" not in rest[i + 2 :]:
            raise MalformedQuery("IN needs a parenthesised list")
        end = rest.index(")", i + 2)
        values = [_literal(t) for t in rest[i + 3 : end] if t != ","]
        query.where.append(Condition(name, op, values))
        return end + 1
    if i + 2 >= len(rest):
        raise MalformedQuery("a condition needs a value")
    query.where.append(Condition(name, op, _literal(rest[i + 2])))
    return i + 3


def _raw(record: dict[str, Any], name: str) -> Any:
    """A field's value by its case-insensitive name, as the record renders it."""
    for key, value in record.items():
        if key.lower() == name.lower():
            return value
    return None


def _value(record: dict[str, Any], name: str) -> Any:
    """A field's value for comparing: system date-times as datetimes."""
    value = _raw(record, name)
    if name.lower() in _SYSTEM_TIMES and isinstance(value, str):
        return parse_time(value)
    return value


def _comparable(value: Any, literal: Any) -> tuple[Any, Any] | None:
    if value is None or literal is None:
        return None
    if isinstance(literal, datetime | date) and isinstance(value, str):
        try:
            value = (
                parse_time(value)
                if isinstance(literal, datetime)
                else date.fromisoformat(value[:10])
            )
        except ValueError:
            return None
    if isinstance(literal, str) and isinstance(value, str):
        return value.casefold(), literal.casefold()
    if isinstance(literal, bool) != isinstance(value, bool):
        return None
    if isinstance(literal, int | float) and not isinstance(value, int | float):
        return None
    return value, literal


def matches(record: dict[str, Any], condition: Condition) -> bool:
    value, op, literal = _value(record, condition.field), condition.op, condition.value
    if op in ("IN", "NOT IN"):
        inside = any(_equal(value, v) for v in literal)
        return inside if op == "IN" else not inside
    if op in ("=", "!=", "<>"):
        return _equal(value, literal) == (op == "=")
    if op == "LIKE":
        pattern = re.escape(str(literal)).replace("%", ".*").replace("_", ".")
        return isinstance(value, str) and re.fullmatch(pattern, value, re.I | re.S) is not None
    pair = _comparable(value, literal)
    if pair is None:
        return False
    left, right = pair
    return bool(
        {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    )


def _equal(value: Any, literal: Any) -> bool:
    if value is None or literal is None:
        return value is None and literal is None
    pair = _comparable(value, literal)
    return pair is not None and pair[0] == pair[1]


def run(query: Query, records: list[StoredRecord]) -> list[dict[str, Any]]:
    rendered = [sobject(r) for r in records]
    selected = [r for r in rendered if all(matches(r, c) for c in query.where)]
    if query.order_by:
        key = query.order_by

        def order(row: dict[str, Any]) -> tuple[bool, str]:
            value = _value(row, key)
            return value is None, "" if value is None else str(value)

        selected.sort(key=order, reverse=query.descending)
    end = None if query.limit is None else query.offset + query.limit
    selected = selected[query.offset : end]
    if query.fields:
        names = [n for n in query.fields if n.lower() != "id"]
        selected = [_only(row, names) for row in selected]
    return selected


def _only(row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    canonical = {k.lower(): k for k in row}
    picked = {canonical.get(n.lower(), n): _raw(row, n) for n in names}
    return {"attributes": row["attributes"], "Id": row["Id"], **picked}


class QueryCursors:
    """Snapshots of query results not yet read to the end, by locator (newest kept)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._snapshots: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def keep(self, rows: list[dict[str, Any]]) -> str:
        with self._lock:
            locator = f"01g5e{next(self._numbers):010d}"
            self._snapshots[locator] = rows
            while len(self._snapshots) > MAX_LOCATORS:
                self._snapshots.popitem(last=False)
            return locator

    def clear(self) -> None:
        with self._lock:
            self._snapshots.clear()

    def get(self, locator: str) -> list[dict[str, Any]] | None:
        with self._lock:
            return self._snapshots.get(locator)


def _batch_size(request: Request) -> int:
    options = request.headers.get("sforce-query-options", "")
    found = re.search(r"batchSize\s*=\s*(\d+)", options)
    return max(200, min(int(found.group(1)), 2000)) if found else 2000


def _page(request: Request, locator: str, rows: list[dict[str, Any]], start: int) -> dict[str, Any]:
    size = _batch_size(request)
    page = rows[start : start + size]
    body: dict[str, Any] = {"totalSize": len(rows), "done": start + size >= len(rows)}
    if not body["done"]:
        body["nextRecordsUrl"] = f"{BASE}/query/{locator}-{start + size}"
    body["records"] = page
    return body


def _answer(request: Request, include_deleted: bool) -> Response:
    open_session(request)
    try:
        query = parse(request.query_params.get("q", ""))
    except MalformedQuery as exc:
        raise refuse(400, [FieldError("MALFORMED_QUERY", str(exc))]) from exc
    records = store(request).records(query.object_type, include_deleted=include_deleted)
    rows = run(query, records)
    if query.count:
        return JSONResponse({"totalSize": len(rows), "done": True, "records": []})
    cursors: QueryCursors = request.app.state.sandbox.salesforce_queries
    return JSONResponse(_page(request, cursors.keep(rows), rows, 0))


@router.get(BASE + "/query")
@router.get(BASE + "/query/")
async def query(request: Request) -> Response:
    return _answer(request, include_deleted=False)


@router.get(BASE + "/queryAll")
async def query_all(request: Request) -> Response:
    return _answer(request, include_deleted=True)


@router.get(BASE + "/query/{cursor}")
async def more(cursor: str, request: Request) -> Response:
    open_session(request)
    locator, _, start = cursor.rpartition("-")
    cursors: QueryCursors = request.app.state.sandbox.salesforce_queries
    rows = cursors.get(locator)
    if rows is None or not start.isdigit():
        message = "invalid query locator"
        raise refuse(400, [FieldError("INVALID_QUERY_LOCATOR", message)])
    return JSONResponse(_page(request, locator, rows, int(start)))
