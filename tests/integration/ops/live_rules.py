"""The product's alert rules as the live stack test loads them: every ``for:`` set to zero.

Why a copy, and why only ``for:``. A rule's ``for:`` (2 to 15 minutes) is a property of
time, not of the stack: ``promtool test rules`` proves each one with its real duration on
synthetic series (``deploy/prometheus/tests``). What only a live stack can prove is that the
expression, as written in ``deploy/prometheus/rules``, becomes true under the real failure
it is meant for, on the series the real processes export, with the labels the rule groups
by and the annotations it templates. So the live copy keeps every expression, label and
annotation byte for byte and drops the wait. Querying the expressions by hand would skip
Prometheus's own rule evaluation and alert state; loading the copy keeps both.

The one other change is a threshold that *is* a duration nobody can wait for in CI (a dead
letter older than a day, an approval waiting an hour): :data:`LIVE_THRESHOLDS` names each,
the text it replaces must be in the rule (a changed rule breaks the test instead of silently
passing), and the replaced expression still reads the same series with the same aggregation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synapseops.settings import PROJECT_ROOT

RULES_DIR = PROJECT_ROOT / "deploy" / "prometheus" / "rules"

# alert -> (text in its expression, what the live copy has instead)
LIVE_THRESHOLDS: dict[str, tuple[str, str]] = {
    "DeadLetterOlderThanADay": ("> 86400", "> 5"),
    "ApprovalsWaitingTooLong": ("> 3600", "> 5"),
}


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    return sorted(rules_dir.glob("*.yml"))


def alert_rules(rules_dir: Path = RULES_DIR) -> dict[str, dict[str, Any]]:
    """Every alert rule of the product, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in rule_files(rules_dir):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found[rule["alert"]] = rule
    return found


def write_live_rules(dest: Path, rules_dir: Path = RULES_DIR) -> list[Path]:
    """The copies of the module doc, one per rule file, under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    unused = dict(LIVE_THRESHOLDS)
    written = []
    for path in rule_files(rules_dir):
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                rule.pop("for", None)
                name = rule.get("alert")
                if name in unused:
                    old, new = unused.pop(name)
                    if old not in rule["expr"]:
                        raise AssertionError(f"{name}: {old!r} is no longer in {rule['expr']!r}")
                    rule["expr"] = rule["expr"].replace(old, new)
        target = dest / path.name
        target.write_text(yaml.safe_dump(document, sort_keys=False))
        written.append(target)
    if unused:
        raise AssertionError(f"LIVE_THRESHOLDS names alerts that do not exist: {sorted(unused)}")
    return written
