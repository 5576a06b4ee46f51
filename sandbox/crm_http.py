"""The CRM store seen from a request: its transaction, and the plain change feed.

``GET /<platform>/_changes?since=<seq>&limit=`` (limit ≤ 5000, default 500) → ``{changes:
[{seq, op, object_type, id, at, changed, fields}], last_seq}`` with ``op`` created / updated /
deleted / undeleted and ``fields`` the record after the change — the shape the REST poller
of the integration service reads; pass ``last_seq`` back as ``since``.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import CrmStore, WriteContext
from sandbox.gate import attempt_seq
from sandbox.identity import Actor


def request_context(request: Request, actor: Actor) -> WriteContext:
    """One request, one transaction (its changes share a ``transactionKey``)."""
    return WriteContext(
        actor=actor,
        transaction=str(uuid.uuid4()),
        request_seq=attempt_seq(request),
        method=request.method,
        path=request.url.path,
    )


def legacy_feed(store: CrmStore, request: Request) -> Response:
    try:
        since = int(request.query_params.get("since", "0"))
        limit = min(int(request.query_params.get("limit", "500")), 5000)
    except ValueError:
        return JSONResponse({"error": "since and limit must be integers"}, status_code=400)
    found = store.changes_after(since, limit)
    last_seq = found[-1].seq if found else max(since, 0)
    return JSONResponse({"changes": [c.legacy() for c in found], "last_seq": last_seq})
