"""``synapseops sandbox`` serves the HTTP targets and SMTP from one real process."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox.harness import free_port

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("synapseops")


def test_cli_serves_health_targets_and_smtp() -> None:
    port, smtp_port = free_port(), free_port()
    env = {
        **os.environ,
        "SYNAPSEOPS_SANDBOX_PORT": str(port),
        "SYNAPSEOPS_SANDBOX_SMTP_PORT": str(smtp_port),
    }
    process = subprocess.Popen([str(CLI), "sandbox"], env=env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(f"{url}/_sandbox/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "sandbox exited early"
                assert time.monotonic() < deadline, "sandbox did not answer in 15 s"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        teams = httpx.post(f"{url}/teams/webhook/x", json={"type": "message"})
        assert teams.status_code == 400
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], "Subject: hi\r\n\r\nbody\r\n")
        (mail,) = httpx.get(f"{url}/_sandbox/smtp/received").json()
        assert mail["subject"] == "hi"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    # uvicorn shuts down cleanly on SIGTERM, then re-raises the signal as its exit status.
    assert process.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
    assert b"Application shutdown complete" in stderr
