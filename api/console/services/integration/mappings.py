"""The mapping editor and the diff between two versions of a mapping.

The editor (``mapping-editor.js``) holds rules as rows and previews them on a sample payload
through ``POST /api/v1/mappings/preview`` at every change; saving is ``POST
/api/v1/mappings`` (a new mapping) or ``POST /api/v1/mappings/{id}/versions`` (version n+1).
The page hands it the version's rules exactly as the JSON route answers them, and a sample:
the payload of a dead letter (``?sample_dead_letter=``), of a run (``?sample_run=``), or the
raw source event of the newest run of a flow that uses the mapping.
"""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import PagesDep, UserDep
from api.console.services.integration.pages import BASE
from api.deps import EngineDep
from api.routes.dead_letters import ReplayDep
from api.routes.integration import flows as flow_routes
from api.routes.integration import mappings as mapping_routes
from api.routes.integration import runs as run_routes
from sinks.dead_letters.replay import DeadLetterReplay
from sinks.integration.runs import load_body

router = APIRouter(prefix=BASE, include_in_schema=False)
Id = Annotated[int, Path(ge=1)]


def _script_json(body: bytes | str) -> str:
    """JSON text safe inside ``<script type="application/json">``."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return text.replace("</", "<\\/")


def _run_source(engine: Any, run_id: int) -> str | None:
    run = run_routes.get_one_run(run_id, engine)
    source = run.request.get("source") if isinstance(run.request, dict) else None
    ref = source.get("body_ref") if isinstance(source, dict) else None
    body = load_body(engine, int(ref)) if ref is not None else None
    return body.decode("utf-8", "replace") if body is not None else None


def _sample(
    engine: Any, replay: DeadLetterReplay, mapping_id: int | None, query: dict[str, str]
) -> tuple[str | None, str]:
    """(sample payload text, where it came from)."""
    letter = query.get("sample_dead_letter", "")
    if letter.isdigit():
        row = replay.get(int(letter))
        if row is not None and row["value"] is not None:
            return bytes(row["value"]).decode("utf-8", "replace"), f"dead letter {letter}"
    run = query.get("sample_run", "")
    if run.isdigit():
        return _run_source(engine, int(run)), f"run {run}"
    if mapping_id is None:
        return None, "paste a payload"
    for flow in flow_routes.list_flows(engine):
        if flow.mapping_id != mapping_id:
            continue
        recent = run_routes.list_flow_runs(
            engine, flow_id=flow.id, status_=None, since=None, until=None, limit=1
        )
        if recent.items:
            text = _run_source(engine, recent.items[0].id)
            if text is not None:
                return text, f"the newest run of flow {flow.name} (run {recent.items[0].id})"
    return None, "paste a payload"


def _editor_context(
    engine: Any, replay: DeadLetterReplay, mapping_id: int | None, query: dict[str, str]
) -> dict[str, Any]:
    context: dict[str, Any] = {"mapping": None, "versions": [], "rules_json": "[]", "flows": []}
    if mapping_id is not None:
        context["mapping"] = mapping_routes.get_mapping(mapping_id, engine)
        versions = json.loads(bytes(mapping_routes.list_mapping_versions(mapping_id, engine).body))
        context["versions"] = versions
        wanted = query.get("version", "")
        chosen = int(wanted) if wanted.isdigit() else context["mapping"].latest_version
        if chosen:
            answer = mapping_routes.get_mapping_version(mapping_id, chosen, engine)
            context["rules_json"] = _script_json(bytes(answer.body))
            context["version"] = chosen
        context["flows"] = [f for f in flow_routes.list_flows(engine) if f.mapping_id == mapping_id]
    sample, origin = _sample(engine, replay, mapping_id, query)
    context["sample"] = sample or ""
    context["sample_origin"] = origin
    context["back_to"] = query.get("sample_dead_letter") or None
    return context


@router.get("/mappings", response_class=HTMLResponse)
async def mapping_list(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    mappings = await run_in_threadpool(mapping_routes.list_mappings, engine)
    flows = await run_in_threadpool(flow_routes.list_flows, engine)
    return pages.render(request, "integration/mappings.html", user, mappings=mappings, flows=flows)


@router.get("/mappings/new", response_class=HTMLResponse)
async def new_mapping(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, replay: ReplayDep
) -> HTMLResponse:
    query = dict(request.query_params)
    context = await run_in_threadpool(_editor_context, engine, replay, None, query)
    return pages.render(request, "integration/editor.html", user, **context)


@router.get("/mappings/{mapping_id}", response_class=HTMLResponse)
async def edit_mapping(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    engine: EngineDep,
    replay: ReplayDep,
    mapping_id: Id,
) -> HTMLResponse:
    query = dict(request.query_params)
    context = await run_in_threadpool(_editor_context, engine, replay, mapping_id, query)
    return pages.render(request, "integration/editor.html", user, **context)


def rule_lines(rules: dict[str, Any]) -> list[str]:
    """One line per rule (compact JSON, keys in their order): a diff shows changed rules."""
    return [json.dumps(rule, ensure_ascii=False) for rule in rules.get("rules", [])]


@router.get("/mappings/{mapping_id}/diff", response_class=HTMLResponse)
async def mapping_diff(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    engine: EngineDep,
    mapping_id: Id,
    a: int | None = None,
    b: int | None = None,
) -> HTMLResponse:
    mapping = await run_in_threadpool(mapping_routes.get_mapping, mapping_id, engine)
    newest = mapping.latest_version or 1
    right = b or newest
    left = a or max(1, right - 1)
    versions = {}
    for number in {left, right}:
        answer = await run_in_threadpool(
            mapping_routes.get_mapping_version, mapping_id, number, engine
        )
        versions[number] = json.loads(bytes(answer.body))
    lines = list(
        difflib.unified_diff(
            rule_lines(versions[left]["rules"]),
            rule_lines(versions[right]["rules"]),
            fromfile=f"version {left}",
            tofile=f"version {right}",
            lineterm="",
            n=2,
        )
    )
    return pages.render(
        request, "integration/diff.html", user, mapping=mapping, left=left, right=right,
        lines=lines, newest=newest,
    )  # fmt: skip
