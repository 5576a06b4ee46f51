"""Prometheus metrics of every source a worker reads (the worker's ``/metrics``): the REST
pollers, the Kafka-topic forwarders, and the CRM and GitHub pollers to come (``kind``).

The endpoint is not a label: connector and endpoint names are user input, and one label
value per name would let configuration grow the scrape without bound. Which endpoint failed
is in the log line next to the count.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter

from synapseops.logging import get_logger

log = get_logger(__name__)

SOURCE_FAILURES = Counter(
    "synapseops_source_failures_total",
    "Source endpoints that failed a poll or a forward, or were skipped as misconfigured, by "
    "kind (rest, kafka) and reason (invalid_config, poll_failed, forward_failed)",
    ["kind", "reason"],
)
# Every series from 0 at start: one born at 1 by its first failure reads as no increase.
for _kind, _reason in (("rest", "invalid_config"), ("rest", "poll_failed"),
                       ("kafka", "invalid_config"), ("kafka", "forward_failed")):  # fmt: skip
    SOURCE_FAILURES.labels(_kind, _reason)


class MisconfiguredSources:
    """Says which source endpoints of one ``kind`` are skipped as misconfigured: logged and
    counted once per endpoint and problem, not once per refresh of the list."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._reported: dict[str, list[str]] = {}

    def report(self, invalid: Mapping[str, list[str]]) -> None:
        for where, problems in invalid.items():
            if self._reported.get(where) != problems:
                SOURCE_FAILURES.labels(self.kind, "invalid_config").inc()
                log.error(
                    f"{self.kind} source endpoint skipped: invalid configuration",
                    extra={"endpoint": where, "problems": problems},
                )
        self._reported = dict(invalid)
