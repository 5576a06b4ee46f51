"""The demo's Data Aggregation traffic: a polled GitHub source against the sandbox's GitHub,
an OTel logs source fed over OTLP/HTTP, and a look at the warehouse through the API.

Used by ``synapseops demo`` (once) and ``synapseops traffic`` (steadily). Everything goes
through the public HTTP APIs: the management API to declare the sources, ``/v1/logs`` for
logs, the sandbox's control plane for new GitHub events.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from sandbox.samples import SAMPLES
from synapseops.settings import Settings

REPO = "Codertocat/Hello-World"
GITHUB_SOURCE = "demo-github"
LOGS_SOURCE = "demo-logs"
# The sandbox asks pollers to wait this long (GitHub says 60 s; a demo wants to see things).
DEMO_POLL_INTERVAL_S = 5


class AggregationDemo:
    def __init__(self, settings: Settings, http: httpx.Client) -> None:
        self.http = http
        self.api = settings.api.url
        self.sandbox = settings.sandbox.url
        self.auth = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
        self._logs = json.loads((SAMPLES / "otel" / "logs.json").read_text())

    def ensure_sources(self) -> None:
        """The demo's poll and stream sources (kept if they exist)."""
        limits = {"github": {"poll_interval_s": DEMO_POLL_INTERVAL_S}}
        self.http.put(f"{self.sandbox}/_sandbox/limits", json=limits).raise_for_status()
        url = f"{self.sandbox}/github/repos/{REPO}/events"
        for body in (
            {"name": GITHUB_SOURCE, "kind": "poll", "logic": "github",
             "config": {"url": url, "per_page": 100}, "schedule_s": DEMO_POLL_INTERVAL_S},
            {"name": LOGS_SOURCE, "kind": "stream", "logic": "otel"},
        ):  # fmt: skip
            answer = self.http.post(
                f"{self.api}/api/v1/aggregation/sources", json=body, headers=self.auth
            )
            if answer.status_code not in (201, 409):
                raise RuntimeError(f"creating {body['name']} answered {answer.status_code}")

    def send_logs(self) -> httpx.Response:
        """One OTLP export: the public example record, stamped now and made unique."""
        export = json.loads(json.dumps(self._logs))
        record = export["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
        now = str(time.time_ns())
        record["timeUnixNano"] = record["observedTimeUnixNano"] = now
        record["attributes"].append({"key": "demo.id", "value": {"stringValue": uuid.uuid4().hex}})
        return self.http.post(
            f"{self.api}/v1/logs",
            json=export,
            headers=self.auth | {"X-SynapseOps-Source": LOGS_SOURCE},
        )

    def add_github_events(self, count: int = 1) -> httpx.Response:
        return self.http.post(
            f"{self.sandbox}/_sandbox/github/events", json={"repo": REPO, "count": count}
        )

    def health(self) -> list[dict[str, Any]]:
        answer = self.http.get(f"{self.api}/api/v1/aggregation/health", headers=self.auth)
        answer.raise_for_status()
        return list(answer.json())
