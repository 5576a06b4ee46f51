"""Slack, Teams and SMTP receivers over real connections (httpx and smtplib)."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from sandbox.harness import SandboxServer
from sandbox.teams import ADAPTIVE_CARD
from tests.fixtures import SAMPLES

pytestmark = pytest.mark.integration

FIXTURES = SAMPLES / "notifications"
SLACK = {"Authorization": "Bearer xoxb-test"}
POST_MESSAGE = "/slack/api/chat.postMessage"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


def home_blocks() -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = json.loads((FIXTURES / "slack/view_home_002.json").read_text())[
        "blocks"
    ]
    return blocks


def teams_message() -> dict[str, Any]:
    card = json.loads((FIXTURES / "adaptivecards/ExpenseReport.json").read_text())
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "content": card}]}


def test_slack_post_message_with_real_blocks(client: httpx.Client) -> None:
    body = {"channel": "#payments", "text": "Large payment", "blocks": home_blocks()}
    response = client.post(POST_MESSAGE, json=body, headers=SLACK)
    assert response.status_code == 200
    answer = response.json()
    assert answer["ok"] is True
    assert answer["channel"].startswith("C")
    assert answer["message"]["blocks"] == home_blocks()
    assert answer["message"]["ts"] == answer["ts"]
    (received,) = client.get("/_sandbox/slack/received").json()
    assert received["body"]["blocks"][0]["text"]["type"] == "mrkdwn"


def test_slack_form_encoded_post_message_and_thread(client: httpx.Client) -> None:
    first = client.post(POST_MESSAGE, json={"channel": "alerts", "text": "a"}, headers=SLACK)
    form = {
        "token": "xoxb-form",
        "channel": first.json()["channel"],
        "text": "reply",
        "thread_ts": first.json()["ts"],
        "blocks": json.dumps(home_blocks()[:1]),
    }
    reply = client.post(POST_MESSAGE, data=form).json()
    assert reply["ok"] is True
    assert reply["message"]["thread_ts"] == first.json()["ts"]
    assert reply["ts"] != first.json()["ts"]


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        ({"channel": "#nope", "text": "x"}, SLACK, "channel_not_found"),
        ({"channel": "#alerts", "text": "x"}, {}, "not_authed"),
        ({"channel": "#alerts"}, SLACK, "no_text"),
        ({"channel": "#alerts", "blocks": [{"text": "x"}]}, SLACK, "invalid_blocks"),
    ],
)
def test_slack_errors_are_200_ok_false_and_not_received(
    client: httpx.Client, body: dict[str, Any], headers: dict[str, str], error: str
) -> None:
    response = client.post(POST_MESSAGE, json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert response.json()["error"] == error
    assert client.get("/_sandbox/slack/received").json() == []
    (attempt,) = client.get("/_sandbox/slack/attempts").json()
    assert attempt["outcome"] == "refused"


def test_slack_channels_can_be_added(client: httpx.Client) -> None:
    client.put("/_sandbox/slack/channels", json={"channels": ["#finance-ops"]})
    response = client.post(
        POST_MESSAGE, json={"channel": "finance-ops", "text": "x"}, headers=SLACK
    )
    assert response.json()["ok"] is True


def test_slack_incoming_webhook(client: httpx.Client) -> None:
    hooks = client.get("/_sandbox/slack/webhooks").json()["webhooks"]
    url = next(h["url"] for h in hooks if h["name"] == "alerts")
    ok = client.post(url, json={"text": "hello", "blocks": home_blocks()})
    assert (ok.status_code, ok.text) == (200, "ok")
    empty = client.post(url, json={"username": "bot"})
    assert (empty.status_code, empty.text) == (400, "no_text")
    assert len(client.get("/_sandbox/slack/received").json()) == 1


def test_teams_accepts_an_adaptive_card_message(client: httpx.Client) -> None:
    response = client.post("/teams/webhook/abc-123", json=teams_message())
    assert (response.status_code, response.text) == (200, "1")
    (received,) = client.get("/_sandbox/teams/received").json()
    assert received["body"]["attachments"][0]["content"]["version"] == "1.5"


@pytest.mark.parametrize(
    "body",
    [
        {"text": "a plain MessageCard-ish body"},
        {"type": "message", "attachments": [{"contentType": "text/plain", "content": "x"}]},
        {"type": "message", "attachments": []},
    ],
)
def test_teams_refuses_other_shapes(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/teams/webhook/abc-123", json=body)
    assert response.status_code == 400
    assert client.get("/_sandbox/teams/received").json() == []


def _mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "synapseops@example.com"
    message["To"] = "oncall@example.com"
    message["Subject"] = subject
    message.set_content("A dead letter arrived.\nPipeline: payments — see the console.")
    message.add_alternative("<p>A dead letter arrived.</p>", subtype="html")
    return message


def test_smtp_delivers_and_lists_the_message(sandbox: SandboxServer, client: httpx.Client) -> None:
    with smtplib.SMTP(sandbox.host, sandbox.smtp_port, timeout=10) as smtp:
        smtp.send_message(_mail("Dead letter: payments"))
    (message,) = client.get("/_sandbox/smtp/received").json()
    assert message["mail_from"] == "synapseops@example.com"
    assert message["rcpt_tos"] == ["oncall@example.com"]
    assert message["subject"] == "Dead letter: payments"
    assert message["body"] == "A dead letter arrived.\nPipeline: payments — see the console.\n"
    assert message["html"].startswith("<p>A dead letter arrived.")


def test_smtp_fault_answers_the_reply_code_then_recovers(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    client.post("/_sandbox/faults", json={"target": "smtp", "count": 1, "status": 451})
    with smtplib.SMTP(sandbox.host, sandbox.smtp_port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as failure:
            smtp.send_message(_mail("first try"))
        assert failure.value.smtp_code == 451
    with smtplib.SMTP(sandbox.host, sandbox.smtp_port, timeout=10) as smtp:
        smtp.send_message(_mail("second try"))
    assert [m["subject"] for m in client.get("/_sandbox/smtp/received").json()] == ["second try"]
    attempts = client.get("/_sandbox/smtp/attempts").json()
    assert [a["outcome"] for a in attempts] == ["injected", "accepted"]


def test_reset_forgets_everything(sandbox: SandboxServer, client: httpx.Client) -> None:
    client.post(POST_MESSAGE, json={"channel": "#alerts", "text": "x"}, headers=SLACK)
    with smtplib.SMTP(sandbox.host, sandbox.smtp_port, timeout=10) as smtp:
        smtp.send_message(_mail("x"))
    client.post("/_sandbox/faults", json={"target": "erp", "count": 1})
    assert client.post("/_sandbox/reset").status_code == 200
    assert client.get("/_sandbox/slack/received").json() == []
    assert client.get("/_sandbox/smtp/received").json() == []
    assert client.get("/_sandbox/faults").json() == {"faults": []}


def test_smtp_keeps_multipart_parts_attachments_and_counts_message_ids(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    message = _mail("Digest: 3 dead letters")
    message["Message-ID"] = "<digest-1@synapseops.example>"
    message.add_attachment(
        b"id,pipeline\n1,payments\n", maintype="text", subtype="csv", filename="dead-letters.csv"
    )
    with smtplib.SMTP(sandbox.host, sandbox.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)
        smtp.send_message(message)  # the same message sent twice: a duplicate to count
    first, _ = client.get("/_sandbox/smtp/received").json()
    assert first["content_type"] == "multipart/mixed"
    assert first["body"].startswith("A dead letter arrived.") and first["html"].startswith("<p>")
    assert first["attachments"] == [
        {"filename": "dead-letters.csv", "content_type": "text/csv", "size": 23}
    ]
    assert first["headers"]["Message-ID"] == "<digest-1@synapseops.example>"
    assert client.get("/_sandbox/smtp/message-ids").json() == {"<digest-1@synapseops.example>": 2}
