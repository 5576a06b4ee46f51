"""The alert rules and the Grafana dashboard name only metrics the processes really export.

A renamed metric would otherwise leave an alert that never fires and a panel that stays empty.
"""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import REGISTRY

import api.metrics  # noqa: F401  (registers the API's metrics)
import sinks.dead_letters.metrics  # noqa: F401
import streams.payments.metrics  # noqa: F401
import streams.road.metrics  # noqa: F401
import streams.source_metrics  # noqa: F401
import streams.supervision  # noqa: F401
from synapseops.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
METRIC = re.compile(r"\bsynapseops_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "summary": ("_sum", "_count", "_created"),
}


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "synapseops.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "synapseops-overview.json").read_text()
    )
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_alert_rules_use_exported_metrics() -> None:
    exported = exported_names()
    used = {name for expr in rule_expressions() for name in METRIC.findall(expr)}
    assert used and used <= exported, sorted(used - exported)


def test_dashboard_panels_use_exported_metrics() -> None:
    exported = exported_names()
    used = {name for expr in dashboard_expressions() for name in METRIC.findall(expr)}
    assert used and used <= exported, sorted(used - exported)


def test_compose_mounts_exist() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.kafka.yml").read_text())
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), source
