"""The notification service's pure parts: conditions, templates, platform shapes, links."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.models import NotificationTrigger
from streams.notifications.links import ApprovalLinks
from streams.notifications.messages import (
    TEAMS_MAX_BYTES,
    Action,
    Message,
    email_parts,
    slack_payload,
    teams_body,
)
from streams.notifications.model import Condition, WorkflowSpec, dedup_key, facts, window_bounds
from streams.notifications.templates import check, render
from synapseops.errors import ApprovalLinkInvalid, TemplateFailed

TRIGGER = NotificationTrigger(
    kind="large_payment",
    pipeline="payment-settlement",
    subject_id="stl_1",
    summary="Payment pi_1 waits",
    details={"amount_minor": "2500000", "currency": "USD"},
    occurred_at=datetime(2026, 12, 1, tzinfo=UTC),
    trace_id="ab" * 16,
)


def test_conditions_compare_numbers_as_numbers_and_combine() -> None:
    big = Condition.model_validate({"field": "details.amount_minor", "gte": "1000000"})
    assert big.holds(facts(TRIGGER))
    assert not Condition.model_validate({"field": "details.amount_minor", "gte": 9e6}).holds(
        facts(TRIGGER)
    )
    both = Condition.model_validate(
        {
            "all": [
                {"field": "kind", "equals": "large_payment"},
                {"field": "details.currency", "in": ["USD", "EUR"]},
            ]
        }
    )
    assert both.holds(facts(TRIGGER))
    with pytest.raises(ValidationError):
        Condition.model_validate({"field": "kind", "all": []})


def test_a_workflow_refuses_unknown_steps_and_backward_gotos() -> None:
    with pytest.raises(ValidationError):
        WorkflowSpec.model_validate({"steps": [{"type": "exec", "command": "rm"}]})
    with pytest.raises(ValidationError):
        WorkflowSpec.model_validate(
            {
                "steps": [
                    {"type": "delay", "seconds": 1},
                    {"type": "condition", "when": {"field": "kind", "equals": "x"}, "else_goto": 0},
                ]
            }
        )


def test_templates_render_fields_and_refuse_code() -> None:
    context = TRIGGER.model_dump(mode="json")
    assert render("{{ details.currency }} {{ subject_id }}", context) == "USD stl_1"
    assert render("{{ nothing_here }}", context) == ""
    with pytest.raises(TemplateFailed):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", context)
    with pytest.raises(TemplateFailed):
        render("{{ details.update({'x': 1}) }}", context)  # immutable sandbox
    assert check("{% if %}") is not None
    assert (
        render("<b>{{ summary }}</b>", {"summary": "<script>"}, html=True)
        == "<b>&lt;script&gt;</b>"
    )


def test_slack_blocks_stay_inside_block_kit_limits() -> None:
    message = Message(
        title="t" * 500,
        text="x" * 5000,
        fields=tuple((f"f{i}", "v") for i in range(15)),
        actions=(Action("Approve", "https://a", "primary"),),
    )
    payload = slack_payload(message)
    header, section, fields, actions = payload["blocks"]
    assert len(header["text"]["text"]) == 150 and len(section["text"]["text"]) == 3000
    assert len(fields["fields"]) == 10 and actions["elements"][0]["style"] == "primary"


def test_a_teams_card_is_version_1_5_and_cut_under_28_kb() -> None:
    raw = teams_body(Message(title="t", text="x" * 100_000, fields=(("a", "b"),)))
    assert len(raw) < TEAMS_MAX_BYTES
    card = json.loads(raw)["attachments"][0]["content"]
    assert card["version"] == "1.5" and card["type"] == "AdaptiveCard"


def test_email_has_plain_and_escaped_html() -> None:
    subject, plain, page = email_parts(Message(title="<T>", text="a\nb", subject="S"))
    assert subject == "S" and "a\nb" in plain and "&lt;T&gt;" in page and "a<br>b" in page


def test_links_are_signed_and_expire() -> None:
    links = ApprovalLinks("secret", "http://api", 3600)
    token = links.token("appr_1", "approve")
    claim = links.read(token)
    assert (claim.approval_id, claim.decision) == ("appr_1", "approve")
    # One character of the signature changed, to one that is surely different: replacing the
    # last two with a fixed "xx" left the token valid once in ~1,000 runs (the same
    # characters by chance, or only the base64 padding bits changed).
    at = len(token) - 5
    tampered = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
    with pytest.raises(ApprovalLinkInvalid):
        links.read(tampered)
    with pytest.raises(ApprovalLinkInvalid):
        ApprovalLinks("other", "http://api", 3600).read(token)
    with pytest.raises(ApprovalLinkInvalid):
        ApprovalLinks("secret", "http://api", -1).read(token)


def test_dedup_key_and_windows() -> None:
    assert dedup_key(TRIGGER, b"raw") == dedup_key(TRIGGER, b"raw") != dedup_key(TRIGGER, b"other")
    keyed = TRIGGER.model_copy(update={"dedup_key": "k"})
    assert dedup_key(keyed, b"raw") == "k"
    start, end = window_bounds(datetime(2026, 12, 1, 0, 0, 59, tzinfo=UTC), 60)
    assert (start.second, (end - start).total_seconds()) == (0, 60)
