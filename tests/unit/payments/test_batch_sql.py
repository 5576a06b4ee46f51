"""The settlement batch's driver SQL names only columns its tables have, and each VALUES row has
one placeholder per column it fills."""

from __future__ import annotations

import re

import pytest

from sinks.driver_sql import Script
from sinks.payments import batch_sql as sql
from sinks.payments.tables import payment_events, settlement_attempts, settlement_audit, settlements


def _names(text: str) -> set[str]:
    return {name.strip().strip('"') for name in text.split(",")}


def test_every_column_written_is_a_column_of_its_table() -> None:
    assert set(sql.UPSERT_COLUMNS) <= set(settlements.c.keys())
    assert sql.UPSERT_ROW.count("%s") == len(sql.UPSERT_COLUMNS)
    inserted = re.search(r"INSERT INTO payment_events AS e \(([^)]*)\)", sql.INSERT_EVENTS)
    assert inserted is not None
    assert _names(inserted.group(1)) <= set(payment_events.c.keys())
    values = re.search(r"AS v \(([^)]*)\)", sql.INSERT_EVENTS)
    assert values is not None
    # The VALUES carry the event's facts, its settlement, whether it is done, and its outcome.
    assert sql.EVENT_ROW.count("%s") == len(_names(values.group(1))) == len(sql.EVENT_FACTS) + 4
    assert set(sql.ATTEMPT_COLUMNS) <= set(settlement_attempts.c.keys())
    assert sql.ATTEMPT_ROW.count("%s") == len(sql.ATTEMPT_COLUMNS)
    assert set(sql.AUDIT_COLUMNS) <= set(settlement_audit.c.keys())
    assert sql.AUDIT_ROW.count("%s") == len(sql.AUDIT_COLUMNS)
    assert set(sql.SETTLEMENT_COLUMNS) == set(settlements.c.keys())


def test_a_script_joins_its_statements_and_their_parameters_in_order() -> None:
    script = Script()
    script.add("SELECT %s", (1,))
    script.add_rows("INSERT INTO t VALUES {rows}", "(%s, %s)", [("a", 2), ("b", 3)])
    script.add_rows("INSERT INTO u VALUES {rows}", "(%s)", [])  # no rows: no statement
    assert ";\n".join(script.statements) == "SELECT %s;\nINSERT INTO t VALUES (%s, %s), (%s, %s)"
    assert script.params == [1, "a", 2, "b", 3]
    with pytest.raises(ValueError, match="placeholders"):
        script.add("SELECT %s, %s", (1,))
