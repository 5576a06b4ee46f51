"""Slack and Teams refusals and rate limits, and the per-channel logs tests count with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sandbox.harness import app_client
from sandbox.samples import load
from sandbox.teams import ADAPTIVE_CARD

SLACK = {"Authorization": "Bearer xoxb-sandbox"}
POST = "/slack/api/chat.postMessage"
WORKFLOW = "/teams/workflows/wf-1/triggers/manual/paths/invoke"
SIGNED = {"api-version": "2016-06-01", "sp": "/triggers/manual/run", "sv": "1.0", "sig": "abc"}


@pytest.fixture
def chat() -> Iterator[TestClient]:
    yield app_client()


def card_message(**card: Any) -> dict[str, Any]:
    content = {**load("notifications/adaptivecards/ExpenseReport.json"), **card}
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "content": content}]}


def test_block_kit_limits_name_the_offending_block(chat: TestClient) -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    too_many = chat.post(POST, json={"channel": "alerts", "blocks": [section] * 51}, headers=SLACK)
    assert too_many.json()["error"] == "invalid_blocks"
    assert too_many.json()["response_metadata"]["messages"] == [
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    ]
    long_text = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    answer = chat.post(
        POST, json={"channel": "alerts", "blocks": [section, long_text]}, headers=SLACK
    )
    assert answer.json()["errors"] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]"
    ]
    weird = chat.post(
        POST, json={"channel": "alerts", "blocks": [{"type": "carousel"}]}, headers=SLACK
    )
    assert weird.json()["error"] == "invalid_blocks"
    not_a_list = chat.post(POST, json={"channel": "alerts", "blocks": "nope"}, headers=SLACK)
    assert not_a_list.json()["error"] == "invalid_blocks_format"
    home = load("notifications/slack/view_home_002.json")["blocks"]
    fine = chat.post(POST, json={"channel": "alerts", "blocks": home}, headers=SLACK)
    assert fine.json()["ok"] is True


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Authorization": "Bearer not-a-slack-token"}, "invalid_auth"),
        ({"Authorization": "Bearer xoxb-revoked"}, "token_revoked"),
        ({}, "not_authed"),
    ],
)
def test_tokens(chat: TestClient, headers: dict[str, str], error: str) -> None:
    chat.put("/_sandbox/slack/tokens", json={"revoked": ["xoxb-revoked"]})
    answer = chat.post(POST, json={"channel": "alerts", "text": "x"}, headers=headers)
    assert (answer.status_code, answer.json()) == (200, {"ok": False, "error": error})


def test_post_message_is_limited_per_channel_with_a_short_burst(chat: TestClient) -> None:
    chat.put("/_sandbox/limits", json={"slack": {"burst": 3, "per_channel_per_s": 0.1}})
    answers = [
        chat.post(POST, json={"channel": "alerts", "text": f"{n}"}, headers=SLACK) for n in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[3]
    assert limited.json() == {"ok": False, "error": "ratelimited"}
    assert int(limited.headers["Retry-After"]) >= 1
    other = chat.post(POST, json={"channel": "ops", "text": "x"}, headers=SLACK)
    assert other.json()["ok"] is True  # each channel has its own allowance
    # Refills follow the rate: at 50 a second a token is back well within 0.2 s.
    chat.put("/_sandbox/limits", json={"slack": {"per_channel_per_s": 50}})
    time.sleep(0.2)
    assert chat.post(POST, json={"channel": "alerts", "text": "again"}, headers=SLACK).json()["ok"]
    shown = chat.get("/_sandbox/slack/messages", params={"channel": "#alerts"}).json()
    assert [m["text"] for m in shown] == ["0", "1", "2", "again"]
    assert all(m["channel_name"] == "alerts" and m["via"] == "chat.postMessage" for m in shown)
    assert len(chat.get("/_sandbox/slack/received").json()) == 5


def test_archived_channels_conversations_and_auth_test(chat: TestClient) -> None:
    chat.put("/_sandbox/slack/channels", json={"channels": ["old-news"], "archived": ["old-news"]})
    archived = chat.post(POST, json={"channel": "old-news", "text": "x"}, headers=SLACK)
    assert archived.json()["error"] == "is_archived"
    listed = chat.get("/slack/api/conversations.list", params={"limit": 5}, headers=SLACK).json()
    assert listed["ok"] and len(listed["channels"]) == 5
    cursor = listed["response_metadata"]["next_cursor"]
    rest = chat.get(
        "/slack/api/conversations.list", params={"cursor": cursor}, headers=SLACK
    ).json()
    names = [c["name"] for c in listed["channels"] + rest["channels"]]
    assert "old-news" in names and rest["response_metadata"]["next_cursor"] == ""
    open_only = chat.post(
        "/slack/api/conversations.list", data={"exclude_archived": "true"}, headers=SLACK
    )
    assert "old-news" not in [c["name"] for c in open_only.json()["channels"]]
    identity = chat.post("/slack/api/auth.test", headers=SLACK).json()
    assert identity["ok"] and identity["team_id"].startswith("T")


def test_incoming_webhooks_answer_like_slacks(chat: TestClient) -> None:
    hooks = {h["name"]: h["url"] for h in chat.get("/_sandbox/slack/webhooks").json()["webhooks"]}
    path = hooks["dead-letters"].removeprefix("http://sandbox.test")
    assert chat.post(path, json={"text": "one"}).text == "ok"
    form = chat.post(path, data={"payload": '{"text": "two"}'})
    assert (form.status_code, form.text) == (200, "ok")
    bad = chat.post(path, content=b"{nope")
    assert (bad.status_code, bad.text) == (400, "invalid_payload")
    assert chat.post(path, json={"blocks": [{"type": "nope"}]}).text == "invalid_blocks"
    unknown = chat.post("/slack/services/T000/B000/XXXX", json={"text": "x"})
    assert (unknown.status_code, unknown.text) == (404, "no_service")
    made = chat.post("/_sandbox/slack/webhooks", json={"channel": "#ops"}).json()
    assert (
        chat.post(made["url"].removeprefix("http://sandbox.test"), json={"text": "x"}).text == "ok"
    )
    chat.put("/_sandbox/slack/channels", json={"archived": ["ops"]})
    gone = chat.post(made["url"].removeprefix("http://sandbox.test"), json={"text": "x"})
    assert (gone.status_code, gone.text) == (410, "channel_is_archived")
    chat.put("/_sandbox/limits", json={"slack": {"burst": 1, "per_channel_per_s": 0.01}})
    chat.post(path, json={"text": "three"})
    limited = chat.post(path, json={"text": "four"})
    assert (limited.status_code, limited.text) == (429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    shown = chat.get("/_sandbox/slack/messages", params={"channel": "dead-letters"}).json()
    assert [m["text"] for m in shown] == ["one", "two", "three"] and shown[0]["via"] == "webhook"


def test_teams_workflows_accept_cards_up_to_28_kb_and_version_1_5(chat: TestClient) -> None:
    accepted = chat.post(WORKFLOW, params=SIGNED, json=card_message())
    assert (accepted.status_code, accepted.content) == (202, b"")
    unsigned = chat.post(WORKFLOW, json=card_message())
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["code"] == "DirectApiAuthorizationRequired"
    newer = chat.post(WORKFLOW, params=SIGNED, json=card_message(version="1.6"))
    assert (
        newer.status_code == 400 and newer.json()["error"]["code"] == "TriggerInputSchemaMismatch"
    )
    padding = [{"type": "TextBlock", "text": "x" * 1000} for _ in range(29)]
    large = chat.post(WORKFLOW, params=SIGNED, json=card_message(body=padding))
    assert large.status_code == 413
    legacy_large = chat.post("/teams/webhook/hook-1", json=card_message(body=padding))
    assert legacy_large.status_code == 200 and "returned HTTP error 413" in legacy_large.text
    (kept,) = chat.get("/_sandbox/teams/messages", params={"webhook": "wf-1"}).json()
    assert kept["kind"] == "workflow" and kept["card_versions"] == ["1.5"]
    assert chat.get("/_sandbox/teams/messages", params={"webhook": "hook-1"}).json() == []
    assert len(chat.get("/_sandbox/teams/received").json()) == 1


def test_teams_takes_a_few_requests_a_second_per_webhook(chat: TestClient) -> None:
    assert chat.get("/_sandbox/limits").json()["teams"]["per_webhook_per_s"] == 4
    # Two a second here, so a slow machine still sends three within the second.
    chat.put("/_sandbox/limits", json={"teams": {"per_webhook_per_s": 2}})
    answers = [chat.post("/teams/webhook/busy", json=card_message()) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "1"
    assert chat.post("/teams/webhook/quiet", json=card_message()).status_code == 200
    chat.put("/_sandbox/limits", json={"teams": {"enabled": False}})
    assert chat.post("/teams/webhook/busy", json=card_message()).status_code == 200
