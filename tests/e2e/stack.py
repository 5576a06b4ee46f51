"""A whole SynapseOps stack for the browser tests: real API and worker processes, the real
broker and PostgreSQL of the test session, the sandbox's outside systems over HTTP.

A fresh migrated database, the platform topics (short retry tiers), consumer groups that
begin at the topics' ends (older records are other tests'), the console's four users, and
helpers that speak to the stack the way its outside world does (signed webhooks, faults).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from cryptography.fernet import Fernet
from pydantic import SecretStr

from sandbox.harness import SandboxServer
from sinks.principals.users import create_user
from synapseops.settings import DatabaseSettings, RetrySettings, Settings
from synapseops.signatures import sign_stripe
from tests.integration.databases import fresh_database
from tests.integration.groups import start_groups_at_end
from tests.integration.worker_process import CLI, WorkerProcess, free_port
from topics.admin import apply_topics

TIERS = "1s,2s"
API_TOKEN = f"t-e2e-{uuid.uuid4().hex}"
STRIPE_SECRET = f"whsec_e2e{uuid.uuid4().hex}"
PASSWORDS = {role: f"{role}-e2e-password" for role in ("admin", "operator", "approver", "viewer")}


@dataclass
class Stack:
    api: str
    sandbox: str
    engine: sqlalchemy.Engine
    settings: Settings
    data_dir: Path
    auth: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {API_TOKEN}"})

    # ---- the management API, as a machine ---------------------------------------------

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.api}{path}", json=body, headers=self.auth, timeout=30)
        assert response.status_code < 300, f"POST {path}: {response.status_code} {response.text}"
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.api}{path}", params=params, headers=self.auth, timeout=30)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    # ---- the outside world ------------------------------------------------------------

    def fault(self, target: str, **fault: Any) -> None:
        response = httpx.post(f"{self.sandbox}/_sandbox/faults", json={"target": target, **fault})
        assert response.status_code < 300, response.text

    def clear_faults(self, target: str) -> None:
        httpx.delete(f"{self.sandbox}/_sandbox/faults", params={"target": target})

    def ledger(self, payment_id: str) -> list[dict[str, Any]]:
        entries = httpx.get(f"{self.sandbox}/_sandbox/finance/ledger", timeout=10).json()
        items = entries["entries"] if isinstance(entries, dict) else entries
        return [entry for entry in items if entry.get("payment_id") == payment_id]

    def erp_orders(self, external_id: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.sandbox}/erp/api/orders",
            params={"external_id": external_id},
            headers={"Authorization": "Bearer e2e"},
            timeout=10,
        )
        return list(response.json()["orders"])

    def send_stripe(self, payment_id: str, amount: int, currency: str = "usd") -> str:
        event_id = f"evt_e2e{uuid.uuid4().hex[:20]}"
        template = Path(__file__).resolve().parents[2] / "samples/stripe/events"
        event = json.loads((template / "payment_intent.succeeded.json").read_text())
        event.update({"id": event_id, "created": int(time.time())})
        event["data"]["object"].update(
            {"id": payment_id, "amount": amount, "amount_received": amount, "currency": currency}
        )
        body = json.dumps(event).encode()
        response = httpx.post(
            f"{self.api}/webhooks/stripe",
            content=body,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign_stripe(body, STRIPE_SECRET),
            },
            timeout=20,
        )
        assert response.status_code < 300, response.text
        return event_id

    def send_shopify(self, connector: str, endpoint: str, body: bytes, secret: str) -> None:
        signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
        response = httpx.post(
            f"{self.api}/webhooks/{connector}/{endpoint}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Hmac-Sha256": signature.decode(),
                "X-Shopify-Webhook-Id": uuid.uuid4().hex,
                "X-Shopify-Topic": "orders/create",
            },
            timeout=20,
        )
        assert response.status_code < 300, response.text


def wait_for(what: str, check: Any, timeout: float = 60.0, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)


class ApiProcess:
    """``synapseops api`` as a subprocess, on its own port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['SYNAPSEOPS_API_PORT']}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(CLI), "api"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for("the API's /health", self._healthy, timeout=60)

    def _healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "the API exited"
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running_stack(
    settings: Settings, kafka_bootstrap: str, database_url: str, data_dir: Path
) -> Iterator[Stack]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with fresh_database(database_url, "t_console") as url, SandboxServer() as sandbox:
        group = f"t-console-{uuid.uuid4().hex[:8]}"
        apply_topics(settings.model_copy(update={"retry": RetrySettings(tiers=TIERS)}))
        start_groups_at_end(settings.kafka, group, TIERS)
        worker_port = free_port()
        env = {
            **os.environ,
            "SYNAPSEOPS_ENV": "dev",
            "SYNAPSEOPS_DATABASE_URL": url,
            "SYNAPSEOPS_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SYNAPSEOPS_API_TOKEN": API_TOKEN,
            "SYNAPSEOPS_API_PORT": str(free_port()),
            "SYNAPSEOPS_CREDENTIALS_KEY": Fernet.generate_key().decode(),
            "SYNAPSEOPS_STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"{sandbox.url}/finance",
            "SYNAPSEOPS_SANDBOX_PORT": str(sandbox.port),
            "SYNAPSEOPS_RETRY_TIERS": TIERS,
            "SYNAPSEOPS_WORKER_METRICS_PORT": str(worker_port),
            "SYNAPSEOPS_DATA_DIR": str(data_dir),
        }
        own = settings.model_copy(
            update={"database": DatabaseSettings(url=SecretStr(url)), "data_dir": data_dir}
        )
        engine = sqlalchemy.create_engine(url)
        for role, password in PASSWORDS.items():
            create_user(engine, name=role, roles=[role], password=password, created_by="e2e")
        api = ApiProcess(env, data_dir / "api.log")
        worker = WorkerProcess(
            kafka_bootstrap,
            url,
            data_dir,
            tiers=TIERS,
            group_id=group,
            extra_env={k: v for k, v in env.items() if k.startswith("SYNAPSEOPS_")},
        )
        worker.port = worker_port
        worker.base = f"http://127.0.0.1:{worker_port}"
        try:
            api.start()
            worker.start()
            worker.wait_healthy()
            yield Stack(api.url, sandbox.url, engine, own, data_dir)
        finally:
            worker.stop()
            api.stop()
            engine.dispose()
