"""The test session runs its own stack, apart from the one ``make demo`` starts.

Tests fill the platform's topics with thousands of records (the payment chaos test alone
sends 10,000); a demo worker sharing that broker would first chew through all of them. So,
unless the environment says otherwise, the tests use their own data folder and ports: the
integration fixtures start a broker and a PostgreSQL cluster there, and every worker or API
process a test spawns inherits this environment.
"""

from __future__ import annotations

import os

from synapseops.settings import PROJECT_ROOT

TEST_STACK = {
    "SYNAPSEOPS_DATA_DIR": str(PROJECT_ROOT / ".data" / "test"),
    "SYNAPSEOPS_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
    "SYNAPSEOPS_KAFKA_CONTROLLER_PORT": "29093",
    "SYNAPSEOPS_DATABASE_LOCAL_PORT": "29433",
    "SYNAPSEOPS_DATABASE_LOCAL_DURABLE": "false",
    "SYNAPSEOPS_API_PORT": "28000",
    "SYNAPSEOPS_SANDBOX_PORT": "28100",
    "SYNAPSEOPS_SANDBOX_SMTP_PORT": "28125",
    "SYNAPSEOPS_WORKER_METRICS_PORT": "28200",
    "SYNAPSEOPS_LOADER_METRICS_PORT": "28300",
    "SYNAPSEOPS_DEMO_TRAFFIC_PORT": "28400",
    # Test sandboxes (and their echo targets) listen on free ports of 127.0.0.1: the SSRF
    # guard lets delivery reach that address only (outside dev/test nothing internal).
    "SYNAPSEOPS_HTTP_ALLOWED_HOSTS": "127.0.0.1",
}

for name, value in TEST_STACK.items():
    os.environ.setdefault(name, value)
