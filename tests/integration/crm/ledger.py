"""The chaos proof's accounting: every change a person made, and how many times the
integration wrote it to the other side, counted from the sandbox's received (writes) log.

A person's update carries a value no other edit carries (``<field>-<n>-<random>``, ``n`` the
editor's global order), so an integration write is traced to the one change it carries. The
rules, per change:

* an update is written to the other side at most once, and a change written zero times has a
  reason: a later edit of the same field (on either side) superseded it before the sync read
  it, the person was deleted, or the other side's edit of that field won (last writer wins,
  by record) and the sync wrote it over this one;
* a create is created on the other side exactly once; a deleted person ends deleted exactly
  once on each side (by a person or by the sync);
* every integration write carries a person's change made on the *other* side (a write that
  carries a value from its own side is an echo), and every update it makes changes something.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SIDES = ("salesforce", "hubspot")


def other(side: str) -> str:
    return "hubspot" if side == "salesforce" else "salesforce"


@dataclass(frozen=True)
class Change:
    side: str
    seq: int  # its position in its side's writes log
    id: str
    pair: int  # the index of the field pair
    value: str

    @property
    def order(self) -> int:
        """The editor's global order, from the value (``<field>-<n>-<random>``)."""
        return int(self.value.split("-")[1])


@dataclass
class Ledger:
    changes: Counter[str] = field(default_factory=Counter)  # "<side> <op>" → people's changes
    written: Counter[int] = field(default_factory=Counter)  # writes per update → changes
    not_written: Counter[str] = field(default_factory=Counter)  # reason → changes
    integration: Counter[str] = field(default_factory=Counter)  # "<side> <op>" → writes
    problems: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "changes": dict(sorted(self.changes.items())),
            "writes_per_update": dict(sorted(self.written.items())),
            "updates_not_written": dict(self.not_written),
            "integration_writes": dict(sorted(self.integration.items())),
        }


def account(
    logs: dict[str, list[dict[str, Any]]],
    emails: dict[str, dict[str, str]],
    pairs: tuple[tuple[str, str], ...],
) -> Ledger:
    """``logs``: each side's whole writes log (every actor); ``emails``: each side's record id →
    e-mail of the people seeded before the sync; ``pairs``: (Salesforce, HubSpot) field names."""
    ledger = Ledger()
    emails = {side: dict(emails[side]) for side in SIDES}
    for side in SIDES:
        for write in logs[side]:
            if write["op"] == "create":
                fields = write["fields"]
                email = fields.get("Email") or fields.get("email")
                emails[side][write["id"]] = str(email).lower()
    index = {(side, name): i for side in SIDES for i, name in enumerate(_named(pairs, side))}
    changes: dict[tuple[str, int, str], Change] = {}  # (side, pair, value)
    for side in SIDES:
        for write in logs[side]:
            key = f"{side} {write['op']}"
            if write["actor"] == "integration":
                ledger.integration[key] += 1
                continue
            ledger.changes[key] += 1
            if write["op"] != "update":
                continue
            for name, value in write["fields"].items():
                pair = index[(side, name)]
                change = Change(side, int(write["seq"]), write["id"], pair, str(value))
                changes[(side, pair, change.value)] = change
    carried: Counter[Change] = Counter()
    overwritten: dict[tuple[str, str, int], list[int]] = {}  # (side, id, pair) → write seqs
    for side in SIDES:
        for write in logs[side]:
            if write["actor"] != "integration" or write["op"] != "update":
                continue
            if not write["changed"]:
                ledger.problems.append(f"a write that changed nothing: {side} {write}")
            for name, value in write["fields"].items():
                pair = index.get((side, name), -1)
                source = changes.get((other(side), pair, str(value)))
                if source is None:
                    ledger.problems.append(f"{side} {write['id']} {name}={value!r}: no change")
                    continue
                carried[source] += 1
                overwritten.setdefault((side, write["id"], pair), []).append(int(write["seq"]))
    deleted = _deletes(logs, emails, ledger)
    _creates(logs, emails, ledger)
    latest: dict[tuple[str, int], int] = {}  # (email, pair) → the last change's order
    for change in changes.values():
        key = (emails[change.side].get(change.id, change.id), change.pair)
        latest[key] = max(latest.get(key, -1), change.order)
    for change in changes.values():
        times = carried[change]
        ledger.written[times] += 1
        if times > 1:
            ledger.problems.append(f"written {times} times: {change}")
        if times:
            continue
        email = emails[change.side].get(change.id, change.id)
        seqs = overwritten.get((change.side, change.id, change.pair), [])
        if latest[(email, change.pair)] > change.order:
            ledger.not_written["superseded by a later edit of the field"] += 1
        elif email in deleted:
            ledger.not_written["the person was deleted"] += 1
        elif any(seq > change.seq for seq in seqs):
            ledger.not_written["the other side's edit won (last writer wins)"] += 1
        else:
            ledger.problems.append(f"never written, no reason: {change} ({email})")
    return ledger


def _named(pairs: tuple[tuple[str, str], ...], side: str) -> list[str]:
    return [s if side == "salesforce" else h for s, h in pairs]


def _deletes(
    logs: dict[str, list[dict[str, Any]]], emails: dict[str, dict[str, str]], ledger: Ledger
) -> set[str]:
    """Each deleted person ends deleted exactly once on each side; the people deleted."""
    by: dict[str, Counter[str]] = {}  # email → "<side> <actor>" → deletes
    for side in SIDES:
        for write in logs[side]:
            if write["op"] == "delete":
                email = emails[side].get(write["id"], write["id"])
                by.setdefault(email, Counter())[f"{side} {write['actor']}"] += 1
    for email, counts in by.items():
        for side in SIDES:
            if counts[f"{side} human"] + counts[f"{side} integration"] != 1:
                ledger.problems.append(f"{email} deleted on {side}: {dict(counts)}")
            if counts[f"{side} integration"] and not counts[f"{other(side)} human"]:
                ledger.problems.append(f"{email} deleted on {side} by the sync alone")
    return set(by)


def _creates(
    logs: dict[str, list[dict[str, Any]]], emails: dict[str, dict[str, str]], ledger: Ledger
) -> None:
    """A person created on one side is created on the other exactly once, by the sync."""
    made: dict[str, Counter[str]] = {}
    for side in SIDES:
        for write in logs[side]:
            if write["op"] == "create":
                email = emails[side][write["id"]]
                made.setdefault(email, Counter())[f"{side} {write['actor']}"] += 1
    for email, counts in made.items():
        for side in SIDES:
            wanted = 1 if counts[f"{other(side)} human"] else 0
            if counts[f"{side} integration"] != wanted:
                ledger.problems.append(f"{email} created on {side}: {dict(counts)}")
