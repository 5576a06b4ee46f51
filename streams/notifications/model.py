"""Workflows as data: the steps, the trigger condition, and the trigger a run carries (pure).

A workflow version is ``{condition?, steps: [...]}``; each step is one of:

* ``notify``: ``channel`` (a channel's name), ``title``/``text`` templates, optional ``subject``
  (e-mail), ``fields`` (show the trigger's details as a field list), ``actions`` (approve/reject
  buttons of the run's pending approval);
* ``delay``: ``seconds``;
* ``wait_for_approval``: ``question`` (a template), ``roles`` and/or ``principals`` who may
  answer, ``expires_s``, ``on_expiry`` (``reject`` | ``approve`` | ``end``), and optionally a
  ``channel`` (+ ``title``/``text``) where the question is asked with approve/reject buttons;
* ``condition``: ``when`` (a :class:`Condition`), ``else_goto`` (a step index, or ``end``);
* ``digest``: ``key`` (a template), ``window_s``, ``channel``, ``title``/``text`` (rendered with
  ``count`` and ``items`` — the first summaries); the run ends here, the digest is sent once per
  key and window;
* ``throttle``: ``key``, ``limit``, ``window_s``: past ``limit`` runs per key and window end.

A :class:`Condition` compares one field — ``kind``, ``pipeline``, ``severity``, ``subject_id``,
``details.<name>`` or ``approval.decision`` — with ``equals`` / ``not_equals`` / ``in`` /
``contains`` / ``gte`` / ``lte`` (numbers compare as numbers); ``all``/``any`` combine several.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.models import NotificationTrigger

_STRICT = ConfigDict(extra="forbid", frozen=True)
Template = Annotated[str, Field(max_length=4000)]


class Condition(BaseModel):
    model_config = _STRICT

    field: str | None = Field(default=None, max_length=200)
    equals: str | None = None
    not_equals: str | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    contains: str | None = None
    gte: str | float | None = None
    lte: str | float | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Condition:
        combined = self.all is not None or self.any is not None
        if combined == (self.field is not None):
            raise ValueError("a condition has either a field or all/any")
        return self

    def holds(self, facts: dict[str, str]) -> bool:
        if self.all is not None:
            return all(part.holds(facts) for part in self.all)
        if self.any is not None:
            return any(part.holds(facts) for part in self.any)
        value = facts.get(self.field or "")
        checks: list[bool] = []
        if self.equals is not None:
            checks.append(value == self.equals)
        if self.not_equals is not None:
            checks.append(value != self.not_equals)
        if self.in_ is not None:
            checks.append(value in self.in_)
        if self.contains is not None:
            checks.append(value is not None and self.contains in value)
        if self.gte is not None:
            checks.append(_compare(value, self.gte) >= 0)
        if self.lte is not None:
            checks.append(_compare(value, self.lte) <= 0 if value is not None else False)
        return bool(checks) and all(checks)


def _compare(value: str | None, bound: str | float) -> int:
    """-1/0/1 of value against bound, numerically when both are numbers (missing: below)."""
    if value is None:
        return -1
    try:
        left, right = Decimal(value), Decimal(str(bound))
    except InvalidOperation:
        left_s, right_s = value, str(bound)
        return (left_s > right_s) - (left_s < right_s)
    return (left > right) - (left < right)


class NotifyStep(BaseModel):
    model_config = _STRICT
    type: Literal["notify"]
    channel: str = Field(min_length=1, max_length=200)
    title: Template = "{{ summary }}"
    text: Template = "{{ summary }}"
    subject: Template | None = None
    fields: bool = True
    actions: bool = False


class DelayStep(BaseModel):
    model_config = _STRICT
    type: Literal["delay"]
    seconds: float = Field(gt=0, le=30 * 24 * 3600)


Role = Literal["approver", "admin"]


def _approvers() -> list[Role]:
    return ["approver"]


class ApprovalStep(BaseModel):
    model_config = _STRICT
    type: Literal["wait_for_approval"]
    question: Template = "{{ summary }}"
    roles: list[Role] = Field(default_factory=_approvers)
    principals: list[str] = Field(default_factory=list)
    expires_s: float = Field(default=24 * 3600, gt=0, le=30 * 24 * 3600)
    on_expiry: Literal["reject", "approve", "end"] = "reject"
    # Where the question is asked, with approve/reject buttons (signed links); none: the inbox.
    channel: str | None = Field(default=None, min_length=1, max_length=200)
    title: Template = "Approval needed: {{ summary }}"
    text: Template = "{{ summary }}"


class ConditionStep(BaseModel):
    model_config = _STRICT
    type: Literal["condition"]
    when: Condition
    else_goto: int | Literal["end"] = "end"


class DigestStep(BaseModel):
    model_config = _STRICT
    type: Literal["digest"]
    key: Template = "{{ kind }}:{{ pipeline }}"
    window_s: float = Field(default=60, gt=0, le=7 * 24 * 3600)
    channel: str = Field(min_length=1, max_length=200)
    title: Template = "{{ count }} × {{ kind }}"
    text: Template = "{% for item in items %}• {{ item }}\n{% endfor %}"
    subject: Template | None = None


class ThrottleStep(BaseModel):
    model_config = _STRICT
    type: Literal["throttle"]
    key: Template = "{{ kind }}:{{ pipeline }}"
    limit: int = Field(default=1, ge=1)
    window_s: float = Field(default=60, gt=0, le=7 * 24 * 3600)


Step = Annotated[
    NotifyStep | DelayStep | ApprovalStep | ConditionStep | DigestStep | ThrottleStep,
    Field(discriminator="type"),
]


class WorkflowSpec(BaseModel):
    """One version of a workflow: when it starts, and its steps."""

    model_config = _STRICT
    condition: Condition | None = None
    steps: list[Step] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _gotos_inside(self) -> WorkflowSpec:
        for index, step in enumerate(self.steps):
            if isinstance(step, ConditionStep) and step.else_goto != "end":
                if not index < step.else_goto <= len(self.steps):
                    raise ValueError(f"steps[{index}].else_goto must point forward")
        return self

    def channels(self) -> set[str]:
        named = (getattr(s, "channel", None) for s in self.steps)
        return {name for name in named if name}


def facts(trigger: NotificationTrigger, context: dict[str, Any] | None = None) -> dict[str, str]:
    """The flat field names conditions read."""
    found = {
        "kind": trigger.kind,
        "pipeline": trigger.pipeline,
        "severity": trigger.severity,
        "subject_id": trigger.subject_id,
        "summary": trigger.summary,
    }
    found |= {f"details.{k}": v for k, v in trigger.details.items()}
    approval = (context or {}).get("approval") or {}
    if approval.get("decision"):
        found["approval.decision"] = str(approval["decision"])
    return found


def dedup_key(trigger: NotificationTrigger, raw: bytes) -> str:
    """The trigger's own key, else one of its bytes: a redelivered record is the same run."""
    if trigger.dedup_key:
        return trigger.dedup_key
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def trigger_json(trigger: NotificationTrigger) -> dict[str, Any]:
    return trigger.model_dump(mode="json")


def trigger_from_json(data: dict[str, Any]) -> NotificationTrigger:
    return NotificationTrigger.model_validate(data)


def window_bounds(now: datetime, window_s: float) -> tuple[datetime, datetime]:
    """The fixed window ``now`` falls in (aligned on the epoch, so every worker agrees)."""
    epoch = now.timestamp()
    start = epoch - (epoch % window_s)
    return (
        datetime.fromtimestamp(start, tz=now.tzinfo),
        datetime.fromtimestamp(start + window_s, tz=now.tzinfo),
    )
