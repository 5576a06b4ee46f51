"""A workflow on a sample trigger, without sending anything (pure): what each step would do.

Used by the API's dry run and template preview: the condition's verdict, each notify step's
rendered message as the platform would get it (Block Kit, Adaptive Card, e-mail parts), each
wait as what it would wait for. Branches take the path the sample's facts take; an approval
is assumed ``approved`` (say ``approval`` in the sample's context to try another answer).
"""

from __future__ import annotations

import json
from typing import Any

from schemas.models import NotificationTrigger
from streams.notifications.messages import Message, email_parts, slack_payload, teams_body
from streams.notifications.model import (
    ApprovalStep,
    ConditionStep,
    DelayStep,
    DigestStep,
    NotifyStep,
    ThrottleStep,
    WorkflowSpec,
    facts,
)
from streams.notifications.templates import render


def preview_message(message: Message, kind: str | None) -> dict[str, Any]:
    """``message`` shaped for a channel kind (all three shapes when the kind is unknown)."""
    shapes: dict[str, Any] = {}
    if kind in (None, "slack_bot", "slack_webhook"):
        shapes["slack"] = slack_payload(message)
    if kind in (None, "teams_workflow"):
        shapes["teams"] = json.loads(teams_body(message))
    if kind in (None, "email"):
        subject, plain, page = email_parts(message)
        shapes["email"] = {"subject": subject, "text": plain, "html": page}
    return shapes


def dry_run(
    spec: WorkflowSpec,
    trigger: NotificationTrigger,
    channel_kinds: dict[str, str],
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a run of ``spec`` on ``trigger`` would do, step by step."""
    context = {"approval": {"decision": "approved", "by": "user:sample"}, **(context or {})}
    values: dict[str, Any] = {**trigger.model_dump(mode="json"), **context, "links": {}}
    if spec.condition is not None and not spec.condition.holds(facts(trigger)):
        return {"starts": False, "steps": []}
    steps: list[dict[str, Any]] = []
    index = 0
    while index < len(spec.steps):
        step = spec.steps[index]
        entry: dict[str, Any] = {"index": index, "type": step.type}
        if isinstance(step, NotifyStep):
            message = Message(
                title=render(step.title, values),
                text=render(step.text, values),
                subject=render(step.subject, values) if step.subject else None,
                fields=tuple(sorted(trigger.details.items()))[:10] if step.fields else (),
            )
            entry |= {"channel": step.channel, "known_channel": step.channel in channel_kinds}
            entry["message"] = preview_message(message, channel_kinds.get(step.channel))
        elif isinstance(step, DelayStep):
            entry["waits_s"] = step.seconds
        elif isinstance(step, ApprovalStep):
            entry |= {"question": render(step.question, values), "expires_s": step.expires_s}
            entry["assumed"] = context["approval"]
        elif isinstance(step, ConditionStep):
            holds = step.when.holds(facts(trigger, context))
            entry["holds"] = holds
            if not holds:
                steps.append(entry)
                if step.else_goto == "end":
                    break
                index = step.else_goto
                continue
        elif isinstance(step, ThrottleStep):
            entry |= {"key": render(step.key, values), "limit": step.limit}
        elif isinstance(step, DigestStep):
            entry |= {"key": render(step.key, values), "window_s": step.window_s}
            steps.append(entry)
            break
        steps.append(entry)
        index += 1
    return {"starts": True, "steps": steps}
