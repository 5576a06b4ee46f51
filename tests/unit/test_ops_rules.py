"""The alert rules pass promtool, and every alert has a promtool unit test that fires it.

``deploy/prometheus/rules/<name>.yml`` (one file per service, plus platform.yml) is tested
by ``deploy/prometheus/tests/<name>.test.yml`` with the rules' real ``for:`` durations. An
alert no test fires, a rule file without its test file, or an alert the runbook does not
explain fails here; the live stack test (tests/integration/ops/test_alerts_fire.py) makes the
important ones fire under real failures.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from synapseops.settings import PROJECT_ROOT

PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
RUNBOOK = PROJECT_ROOT / "docs" / "runbook.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("no promtool on PATH: run scripts/bootstrap-system.sh (apt: prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def alerts(path: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def fired_by_tests() -> dict[str, set[str]]:
    """``{alert: {test file names}}`` of the tests that expect it firing."""
    fired: dict[str, set[str]] = {}
    for path in TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.setdefault(case["alertname"], set()).add(path.name)
    return fired


def test_there_are_rules_and_tests() -> None:
    assert RULES and TESTS
    assert sum(len(alerts(path)) for path in RULES) >= 28


def test_every_rule_file_passes_promtool_check() -> None:
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_config_passes_promtool_check() -> None:
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_unit_test_passes() -> None:
    result = promtool("test", "rules", *map(str, TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_rule_file_has_its_test_file_and_it_loads_that_file() -> None:
    for path in RULES:
        test = PROMETHEUS / "tests" / f"{path.stem}.test.yml"
        assert test.exists(), f"{path.name} has no {test.name}"
        loaded = {
            (test.parent / name).resolve()
            for name in yaml.safe_load(test.read_text())["rule_files"]
        }
        assert path.resolve() in loaded, f"{test.name} does not load {path.name}"


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired = fired_by_tests()
    names = [rule["alert"] for path in RULES for rule in alerts(path)]
    assert len(names) == len(set(names)), "alert names must be unique across rule files"
    untested = sorted(set(names) - set(fired))
    assert untested == [], f"alerts no promtool test fires: {untested}"
    assert set(fired) <= set(names), "a test fires an alert that no rule defines"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    runbook = RUNBOOK.read_text()
    for path in RULES:
        for rule in alerts(path):
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert f"### {rule['alert']}" in runbook, f"docs/runbook.md: no ### {rule['alert']}"


def test_every_job_is_one_process_and_loads_the_rules_directory() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            continue
        [static] = job["static_configs"]
        process = static["labels"]["process"]
        # The rules select jobs as synapseops-.+ (SynapseOpsProcessDown).
        assert job["job_name"] == f"synapseops-{process}"
