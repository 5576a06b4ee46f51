"""``/_sandbox/*``: the control plane tests and the demo use (never subject to faults).

* ``GET /_sandbox/health`` → ``{"status": "ok"}``; ``POST /_sandbox/reset`` forgets everything.
* ``POST /_sandbox/faults`` (a :class:`~sandbox.faults.Fault`) → 201; ``GET`` lists them with
  ``remaining``/``injected``/``passed``; ``DELETE [?target=]`` clears.
* ``GET /_sandbox/<target>/received`` (accepted requests) and ``/attempts`` (all of them),
  oldest first; ``DELETE /_sandbox/<target>/received`` clears both (and, for finance, the
  ledger and its idempotency keys). ``smtp`` lists mail messages instead.
* ``GET /_sandbox/finance/ledger``; ``GET|PUT /_sandbox/finance/rules``.
* ``GET /_sandbox/limits``; ``PUT`` a part of it (``{"hubspot": {"enabled": false}}``) —
  the platforms' rate limits, see :mod:`sandbox.limits`.

Each simulated system adds its own controls beside its routes: ``crm_control`` (seed, edits,
writes, identities), ``hubspot_events`` (webhook pushes), ``github``, ``chat``, ``teams``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from sandbox.faults import Fault, UnknownTarget
from sandbox.finance import FinanceRules
from sandbox.limits import Limits
from sandbox.state import FAULT_TARGETS, SandboxState

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def _known(target: str) -> str:
    if target not in FAULT_TARGETS:
        raise HTTPException(404, f"unknown target {target!r}; known: {sorted(FAULT_TARGETS)}")
    return target


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/reset")
async def reset(request: Request) -> dict[str, str]:
    _state(request).reset()
    return {"status": "reset"}


@router.post("/faults", status_code=201)
async def put_fault(fault: Fault, request: Request) -> dict[str, Any]:
    try:
        return _state(request).faults.put(fault)
    except UnknownTarget as exc:
        raise HTTPException(422, str(exc)) from exc


@router.get("/faults")
async def list_faults(request: Request) -> dict[str, Any]:
    return {"faults": _state(request).faults.list()}


@router.delete("/faults")
async def clear_faults(request: Request, target: str | None = None) -> dict[str, int]:
    return {"cleared": _state(request).faults.clear(target)}


@router.get("/finance/ledger")
async def ledger(request: Request) -> dict[str, Any]:
    entries = _state(request).finance.ledger()
    return {"entries": entries, "count": len(entries)}


@router.get("/finance/rules")
async def get_rules(request: Request) -> FinanceRules:
    return _state(request).finance.rules


@router.put("/finance/rules")
async def put_rules(rules: FinanceRules, request: Request) -> FinanceRules:
    _state(request).finance.rules = rules
    return rules


@router.get("/limits")
async def get_limits(request: Request) -> Limits:
    return _state(request).limits.settings


@router.put("/limits")
async def put_limits(change: dict[str, Any], request: Request) -> Limits:
    try:
        return _state(request).limits.update(change)
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False)) from exc


@router.get("/smtp/message-ids")
async def message_ids(request: Request) -> dict[str, int]:
    return _state(request).mailbox.message_ids()


@router.get("/{target}/received")
async def received(target: str, request: Request) -> JSONResponse:
    state = _state(request)
    if _known(target) == "smtp":
        return JSONResponse(state.mailbox.messages())
    return JSONResponse(state.recorder.received(target))


@router.get("/{target}/attempts")
async def attempts(target: str, request: Request) -> JSONResponse:
    state = _state(request)
    if _known(target) == "smtp":
        return JSONResponse(state.mailbox.attempts())
    return JSONResponse(state.recorder.attempts(target))


@router.delete("/{target}/received")
async def clear_received(target: str, request: Request) -> dict[str, str]:
    state = _state(request)
    if _known(target) == "smtp":
        state.mailbox.clear()
    else:
        state.recorder.clear(target)
    if target == "finance":
        state.finance.clear()
    return {"status": "cleared", "target": target}
