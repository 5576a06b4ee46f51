"""The demo's notification setup, through the management API (issue 13's ``make demo``):

* ``dead_letter`` → Slack ``#dead-letters`` in the sandbox workspace (at most 20 per pipeline
  a minute, a burst does not flood the channel) and an e-mail digest per pipeline every 5
  minutes to ``ops@example.test`` (the sandbox's SMTP server);
* ``large_payment`` → Slack ``#approvals`` with approve/reject links, a ``wait_for_approval``
  step (approvers, 24 h, rejected on expiry), then a message with the outcome;
* ``integration_failure`` → a Teams Workflows webhook (Adaptive Card).

Created once: a second run finds the workflows by name and changes nothing.
"""

from __future__ import annotations

from typing import Any, Protocol


class Api(Protocol):
    def _get(self, path: str, **params: Any) -> Any: ...

    def _post(self, path: str, body: dict[str, Any]) -> Any: ...


DEMO_SLACK_TOKEN = "xoxb-synapseops-demo"
DEAD_LETTERS = "demo-dead-letters"


def channels(sandbox_url: str, smtp_host: str, smtp_port: int) -> list[dict[str, Any]]:
    teams = (
        f"{sandbox_url}/teams/workflows/demo-integrations/triggers/manual/paths/invoke"
        "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=demo-signature"
    )
    return [
        {"name": DEAD_LETTERS, "kind": "slack_bot", "config": {"channel": "#dead-letters"},
         "secret": DEMO_SLACK_TOKEN},
        {"name": "demo-approvals", "kind": "slack_bot", "config": {"channel": "#approvals"},
         "secret": DEMO_SLACK_TOKEN},
        {"name": "demo-integrations", "kind": "teams_workflow", "config": {}, "secret": teams},
        {"name": "demo-ops-mail", "kind": "email",
         "config": {"host": smtp_host, "port": smtp_port, "from": "synapseops@example.test",
                    "to": ["ops@example.test"]}},
    ]  # fmt: skip


WORKFLOWS: list[dict[str, Any]] = [
    {
        "name": "dead letters to #dead-letters",
        "trigger_kind": "dead_letter",
        "spec": {"steps": [
            {"type": "throttle", "key": "{{ pipeline }}", "limit": 20, "window_s": 60},
            {"type": "notify", "channel": DEAD_LETTERS,
             "title": "Dead letter #{{ subject_id }} in {{ pipeline }}",
             "text": "{{ summary }}"},
        ]},
    },
    {
        "name": "dead letters digest",
        "trigger_kind": "dead_letter",
        "spec": {"steps": [
            {"type": "digest", "key": "{{ pipeline }}", "window_s": 300,
             "channel": "demo-ops-mail",
             "subject": "{{ count }} dead letter(s) in {{ key }}"},
        ]},
    },
    {
        "name": "large payments need an approver",
        "trigger_kind": "large_payment",
        "spec": {"steps": [
            {"type": "wait_for_approval", "channel": "demo-approvals",
             "title": "Approve payment {{ details.payment_id }}?",
             "text": "{{ details.amount_minor }} {{ details.currency }} (minor units)",
             "roles": ["approver"], "expires_s": 86400, "on_expiry": "reject"},
            {"type": "notify", "channel": "demo-approvals",
             "title": "Payment {{ details.payment_id }} {{ approval.decision }}",
             "text": "by {{ approval.by }}{{ ': ' ~ approval.reason if approval.reason }}"},
        ]},
    },
    {
        "name": "integration failures to Teams",
        "trigger_kind": "integration_failure",
        "spec": {"steps": [
            {"type": "notify", "channel": "demo-integrations",
             "title": "Integration failure: {{ subject_id }}", "text": "{{ summary }}"},
        ]},
    },
]  # fmt: skip


def ensure_notifications(api: Api, sandbox_url: str, smtp_host: str, smtp_port: int) -> int:
    """Create what is missing; how many workflows were created."""
    have = {row["name"] for row in api._get("/api/v1/notification-channels")}
    for channel in channels(sandbox_url, smtp_host, smtp_port):
        if channel["name"] not in have:
            api._post("/api/v1/notification-channels", channel)
    existing = {row["name"] for row in api._get("/api/v1/notification-workflows")}
    created = 0
    for workflow in WORKFLOWS:
        if workflow["name"] not in existing:
            api._post("/api/v1/notification-workflows", workflow)
            created += 1
    return created
