"""Fixtures of the ops tests: a running stack (:mod:`.ops_stack`) and a real Prometheus
scraping it (:mod:`.prometheus_server`), one of each per test module, stopped at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.databases import fresh_database
from tests.integration.ops.live_rules import write_live_rules
from tests.integration.ops.ops_stack import OpsStack
from tests.integration.ops.prometheus_server import PrometheusServer


@pytest.fixture(scope="module")
def ops_stack(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpsStack]:
    data_dir = tmp_path_factory.mktemp("ops-stack")
    with fresh_database(database_url, "t_payments") as database:
        stack = OpsStack(kafka_bootstrap, database, data_dir)
        try:
            yield stack.start()
        finally:
            stack.stop()
            for process in (stack.api, stack.sandbox, stack.loader):
                print(f"--- {process.command} log\n{process.log_tail(1500)}")
            print(f"--- worker log\n{stack.worker.log_tail(1500)}")


@pytest.fixture(scope="module")
def prometheus(ops_stack: OpsStack) -> Iterator[PrometheusServer]:
    """Prometheus scraping the stack every second, with the live copy of the alert rules."""
    rules = write_live_rules(ops_stack.data_dir / "live-rules")
    with PrometheusServer(ops_stack.data_dir, ops_stack.targets(), rules) as server:
        server.wait_targets_up()
        yield server
