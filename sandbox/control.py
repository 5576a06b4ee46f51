"""``/_sandbox/*``: the control plane tests and the demo use (never subject to faults).

* ``GET /_sandbox/health`` → ``{"status": "ok"}``; ``POST /_sandbox/reset`` forgets everything.
* ``POST /_sandbox/faults`` (a :class:`~sandbox.faults.Fault`) → 201; ``GET`` lists them with
  ``remaining``/``injected``/``passed``; ``DELETE [?target=]`` clears.
* ``GET /_sandbox/<target>/received`` (accepted requests) and ``/attempts`` (all of them),
  oldest first; ``DELETE /_sandbox/<target>/received`` clears both (and, for finance, the
  ledger and its idempotency keys). ``smtp`` lists mail messages instead.
* ``GET /_sandbox/finance/ledger``; ``GET|PUT /_sandbox/finance/rules``;
  ``GET|PUT /_sandbox/slack/channels`` (``{"channels": ["name", ...]}`` adds channels).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from sandbox.faults import Fault, UnknownTarget
from sandbox.finance import FinanceRules
from sandbox.state import FAULT_TARGETS, SandboxState

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])


class ChannelList(BaseModel):
    channels: list[str]


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


@router.get("/slack/channels")
async def get_channels(request: Request) -> dict[str, Any]:
    return {"channels": _state(request).slack.channels()}


@router.put("/slack/channels")
async def add_channels(body: ChannelList, request: Request) -> dict[str, Any]:
    workspace = _state(request).slack
    workspace.add_channels(body.channels)
    return {"channels": workspace.channels()}


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
