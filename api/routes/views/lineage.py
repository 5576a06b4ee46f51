"""``/api/v1/lineage/{trace_id}``: one trace from its raw input to its effects, across services.

The rows of :func:`sinks.views.lineage.trace`: raw inputs (bytes as text when UTF-8, else base64),
the runs, settlements, finance attempts and dead letters that carry the trace id. The
console's lineage page renders the same function.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.encoders import jsonable_encoder

from api.deps import EngineDep
from sinks.views.lineage import trace

router = APIRouter(prefix="/lineage", tags=["lineage"])

TraceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="W3C trace id")]


def _bytes(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        try:
            return {"text": raw.decode("utf-8")}
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    return value


def _public(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: _bytes(value) for key, value in row.items()} for row in rows]


@router.get("/{trace_id}", responses={404: {"description": "nothing carries this trace id"}})
def get_lineage(trace_id: TraceId, engine: EngineDep) -> dict[str, Any]:
    found = trace(engine, trace_id)
    if found.empty:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"nothing carries trace id {trace_id}")
    body = {
        name: _public(getattr(found, name))
        for name in (
            "inbound_events", "payment_events", "source_events", "runs", "settlements",
            "settlement_attempts", "dead_letters",
        )
    }  # fmt: skip
    result: dict[str, Any] = jsonable_encoder({"trace_id": trace_id, **body})
    return result
