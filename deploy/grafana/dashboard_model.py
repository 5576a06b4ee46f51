"""The dashboards' building blocks: the model, the panel helpers, and Grafana's JSON model.

``dashboards.py`` (the platform dashboard) and ``service_dashboards.py`` (one per service)
are written with these; :func:`render` turns a :class:`Dashboard` into the JSON Grafana provisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
WIDTH, HEIGHT = 12, 8  # two panels side by side on Grafana's 24-column grid


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    metric: str
    label: str


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = field(default=())


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def panel(title: str, *queries: Query, unit: str = "short", kind: str = "timeseries") -> Panel:
    return Panel(title, queries, unit, kind)


def row(title: str, *panels: Panel) -> Row:
    return Row(title, panels)


def quantiles(metric: str, by: str, selector: str = "", window: str = "5m") -> tuple[Query, ...]:
    """p50 and p99 of a histogram, by ``by``."""
    return tuple(
        q(
            f"histogram_quantile({p}, sum by (le, {by}) "
            f"(rate({metric}_bucket{selector}[{window}])))",
            f"p{int(p * 100)} {{{{{by}}}}}",
        )
        for p in (0.5, 0.99)
    )


def failure_ratio(pipeline: str) -> str:
    """The share of a pipeline's tries that failed (its alert's expression, no threshold)."""
    tries = f'synapseops_road_records_total{{pipeline="{pipeline}"'
    return f'sum(rate({tries},outcome=~"retry|dead|rejected"}}[10m])) / sum(rate({tries}}}[10m]))'


def road_row(pipeline: str, failing: str, *extra: Panel, retries: bool = True) -> Row:
    """One service pipeline on the road: its tries, failure rate, processing time, retries
    and dead letters (every service dashboard has this row; ``failing`` names its tries).
    ``retries=False`` for a pipeline whose handler is pure: only the platform fails it
    retryably, which the platform dashboard's retries panel shows."""
    only = f'{{pipeline="{pipeline}"}}'
    by_tier = panel(
        "Retries by tier",
        q(f"sum by (tier) (rate(synapseops_road_retries_total{only}[5m]))", "tier {{tier}}"),
        unit="ops",
    )
    return row(
        f"{pipeline} on the road",
        panel("Tries by outcome",
              q(f"sum by (outcome) (rate(synapseops_road_records_total{only}[5m]))", "{{outcome}}"),
              unit="ops"),
        panel(f"{failing} failure rate (tries that retried, died or were refused)",
              q(failure_ratio(pipeline), "failing"), unit="percentunit"),
        panel("Processing time p50 / p99",
              *quantiles("synapseops_road_processing_seconds", "pipeline", only), unit="s"),
        *((by_tier,) if retries else ()),
        panel("Dead letters waiting / oldest age (s)",
              q(f"max(synapseops_dead_letters_depth{only})", "waiting"),
              q(f"max(synapseops_dead_letters_oldest_age_seconds{only})", "oldest (s)")),
        *extra,
    )  # fmt: skip


INGRESS = "synapseops_ingress_requests_total"


def _variable(variable: Variable) -> dict[str, Any]:
    definition = f"label_values({variable.metric}, {variable.label})"
    return {
        "name": variable.name,
        "label": variable.name,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"query": definition, "refId": "variable"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model: rows, then their panels two abreast."""
    panels: list[dict[str, Any]] = []
    y = 0
    for section in dashboard.rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": section.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        for index, item in enumerate(section.panels):
            x = (index % 2) * WIDTH
            panels.append(
                {
                    "id": len(panels) + 1,
                    "type": item.kind,
                    "title": item.title,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": HEIGHT, "w": WIDTH, "x": x, "y": y},
                    "fieldConfig": {"defaults": {"unit": item.unit}, "overrides": []},
                    "targets": [
                        {
                            "refId": chr(ord("A") + n),
                            "datasource": DATASOURCE,
                            "expr": query.expr,
                            "legendFormat": query.legend,
                        }
                        for n, query in enumerate(item.queries)
                    ],
                }
            )
            if x:
                y += HEIGHT
        if len(section.panels) % 2:
            y += HEIGHT
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["synapseops"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [_variable(variable) for variable in dashboard.variables]},
        "panels": panels,
    }
