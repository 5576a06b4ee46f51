"""GitHub events (the Events API's shape) as canonical events.

An event is ``{id, type, actor {id, login}, repo {id, name}, payload, public, created_at,
org?}``; ``type`` is ``PushEvent``, ``PullRequestEvent``… and ``payload.action`` refines it.
A webhook delivery carries the same payload without the envelope (the event name is the
``X-GitHub-Event`` header, the id ``X-GitHub-Delivery``): :func:`from_webhook` wraps it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.models import CanonicalEvent, LogBody
from streams.aggregation.logic.common import (
    SEVERITY_INFO,
    Context,
    as_json,
    canonical,
    fail,
    flat,
    parse_time,
    to_nanos,
)

NAME = "github"
VERSION = 1
FIELD_MAPPING: dict[str, str] = {
    "id": "id",
    "type (+ payload.action)": "type",
    "created_at": "time, body.time_unix_nano",
    "repo.name": "subject, body.resource.github.repository",
    "actor.login": "actor_id, body.attributes.github.actor",
    "org.login": "body.resource.github.org",
    "payload": "body.body",
    "payload.action / ref / size / number": "attributes",
}
# Webhook event names → Events API types (the ones the fixtures and the sandbox carry).
WEBHOOK_TYPES = {
    "push": "PushEvent",
    "pull_request": "PullRequestEvent",
    "issues": "IssuesEvent",
    "issue_comment": "IssueCommentEvent",
    "release": "ReleaseEvent",
    "workflow_run": "WorkflowRunEvent",
    "create": "CreateEvent",
    "delete": "DeleteEvent",
    "fork": "ForkEvent",
    "watch": "WatchEvent",
}


def from_webhook(
    event_name: str, delivery_id: str, payload: dict[str, Any], received_at: datetime
) -> dict[str, Any]:
    """A webhook delivery in the Events API's shape. A webhook names no time of its own, so
    the event's time is when it was received."""
    kind = WEBHOOK_TYPES.get(event_name)
    if kind is None:
        raise fail(NAME, f"webhook event {event_name!r} is not one this logic knows")
    sender = payload.get("sender") or {}
    repository = payload.get("repository") or {}
    event: dict[str, Any] = {
        "id": delivery_id,
        "type": kind,
        "actor": {"id": sender.get("id"), "login": sender.get("login")},
        "repo": {"id": repository.get("id"), "name": repository.get("full_name")},
        "payload": payload,
        "public": not repository.get("private", False),
        "created_at": received_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if organization := payload.get("organization"):
        event["org"] = {"id": organization.get("id"), "login": organization.get("login")}
    return event


def transform(event: Any, context: Context) -> list[CanonicalEvent]:
    """One canonical event per GitHub event."""
    if not isinstance(event, dict):
        raise fail(NAME, f"an event is a JSON object, got {type(event).__name__}")
    event_id, kind = event.get("id"), event.get("type")
    if not isinstance(event_id, (str, int)) or isinstance(event_id, bool) or event_id == "":
        raise fail(NAME, "id is missing")
    if not isinstance(kind, str) or not kind:
        raise fail(NAME, "type is missing")
    payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    action = payload.get("action")
    repo = (event.get("repo") or {}).get("name")
    actor = (event.get("actor") or {}).get("login")
    org = (event.get("org") or {}).get("login")
    occurred = parse_time(NAME, event.get("created_at"), "created_at")
    summary = {
        "action": action,
        "ref": payload.get("ref"),
        "size": payload.get("size"),
        "number": payload.get("number"),
        "public": event.get("public"),
    }
    resource = {"github.repository": repo, "github.org": org, "service.name": "github"}
    log_attributes = {"github.event.type": kind, "github.actor": actor, **summary}
    body = LogBody(
        time_unix_nano=to_nanos(occurred),
        observed_time_unix_nano=to_nanos(context.ingested_at),
        severity_number=SEVERITY_INFO,
        severity_text="INFO",
        body=as_json(payload),
        resource=as_json({k: v for k, v in resource.items() if v is not None}),
        attributes=as_json({k: v for k, v in log_attributes.items() if v is not None}),
        event_name=kind,
    )
    return [
        canonical(
            context,
            id=str(event_id),
            type=f"github.{kind}" + (f".{action}" if isinstance(action, str) else ""),
            time=occurred,
            subject=repo if isinstance(repo, str) and repo.strip() else None,
            actor_id=actor if isinstance(actor, str) and actor.strip() else None,
            attributes=flat({k: v for k, v in summary.items() if v is not None}),
            tags=["github", kind],
            body=body,
        )
    ]
