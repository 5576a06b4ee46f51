"""The alert rules and the Grafana dashboards name only metrics the processes really export.

A renamed metric would otherwise leave an alert that never fires and a panel that stays empty
(the live stack tests catch that too, but only for what they exercise; this covers every
expression of every rule and dashboard file, in milliseconds).
"""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import REGISTRY
from prometheus_client.registry import CollectorRegistry

import api.metrics  # noqa: F401  (registers the API's metrics)
import api.middleware  # noqa: F401  (the HTTP answers counter)
import api.overload  # noqa: F401  (the ingress overload gauges)
import sinks.dead_letters.metrics  # noqa: F401
import streams.aggregation.metrics  # noqa: F401
import streams.crm.metrics  # noqa: F401
import streams.notifications.metrics  # noqa: F401
import streams.payments.metrics  # noqa: F401
import streams.road.metrics  # noqa: F401
import streams.source_metrics  # noqa: F401
import streams.supervision  # noqa: F401
import synapseops.kafka_lag  # noqa: F401  (the API's consumer-lag collector)
from sandbox.metrics import SandboxMetrics
from sandbox.state import TARGETS
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
    # The sandbox keeps a registry per app; the platform's processes use the default one.
    registries: list[CollectorRegistry] = [REGISTRY, SandboxMetrics(TARGETS).registry]
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def rule_expressions() -> list[str]:
    expressions = []
    for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            expressions += [rule["expr"] for rule in group["rules"]]
    return expressions


def dashboard_expressions() -> list[str]:
    expressions = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            expressions += [target["expr"] for target in panel.get("targets", [])]
        expressions += [var["definition"] for var in dashboard["templating"]["list"]]
    return expressions


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
