"""The Grafana dashboards and their provisioning, checked as files (no Grafana server).

The JSON files are what ``deploy/grafana/dashboards.py`` writes (edit that, run it); each is
a well-formed dashboard on the provisioned datasource, whose variables are defined where
they are used, with one dashboard for the platform and one per built service. Whether each
panel returns data is tests/integration/ops/test_dashboards_return_data.py.
"""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path
from typing import Any

import yaml

from synapseops.settings import PROJECT_ROOT

GRAFANA = PROJECT_ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def test_the_json_files_are_what_the_code_writes() -> None:
    generator = runpy.run_path(str(GRAFANA / "dashboards.py"))
    expected = generator["rendered"]()
    actual = {path.name: path.read_text() for path in DASHBOARDS.glob("*.json")}
    assert actual == expected, "run: .venv/bin/python deploy/grafana/dashboards.py"


def test_a_platform_dashboard_and_one_per_built_service() -> None:
    uids = {dashboard["uid"] for dashboard in dashboards().values()}
    assert {
        "synapseops-platform",
        "synapseops-payments",
        "synapseops-integration",
        "synapseops-notifications",
        "synapseops-crm",
        "synapseops-aggregation",
    } <= uids
    assert len(uids) == len(dashboards())


def test_panels_are_well_formed_on_the_provisioned_datasource() -> None:
    [datasource] = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    for name, dashboard in dashboards().items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        defined = {variable["name"] for variable in dashboard["templating"]["list"]}
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == datasource["uid"], (name, panel["title"])
            refs = [target["refId"] for target in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), (name, panel["title"])
            for target in panel["targets"]:
                assert target["expr"].strip() and target["datasource"] == panel["datasource"]
                used = {a or b for a, b in VARIABLE.findall(target["expr"])}
                assert used <= defined, (name, panel["title"], used - defined)


def test_provisioning_points_grafana_at_the_mounted_dashboards() -> None:
    [provider] = yaml.safe_load((GRAFANA / "provisioning/dashboards/synapseops.yml").read_text())[
        "providers"
    ]
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.kafka.yml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_the_runbook_says_how_to_read_each_dashboard() -> None:
    runbook = (PROJECT_ROOT / "docs" / "runbook.md").read_text()
    for dashboard in dashboards().values():
        assert f"`{dashboard['uid']}`" in runbook, dashboard["uid"]


def test_every_dashboard_file_is_named_by_its_uid() -> None:
    for name, dashboard in dashboards().items():
        assert Path(name).stem == dashboard["uid"]
