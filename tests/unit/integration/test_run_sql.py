"""The Runs' driver SQL names only columns the ``runs`` table has, and its VALUES rows line up
with their parameters."""

from __future__ import annotations

import re

from sinks.integration import run_sql
from sinks.integration.tables import run_bodies, runs


def _names(text: str) -> set[str]:
    return {name.strip() for name in text.split(",")}


def test_every_column_the_statements_write_is_a_column_of_runs() -> None:
    inserted = re.search(r"INSERT INTO runs \(([^)]*)\)", run_sql.START)
    assert inserted is not None
    updated = set(re.findall(r"^\s+(\w+) = ", run_sql.START + run_sql.FINISH, re.MULTILINE))
    values = re.search(r"AS v \(([^)]*)\)", run_sql.FINISH)
    assert values is not None
    columns = set(runs.c.keys())
    assert _names(inserted.group(1)) <= columns
    assert updated <= columns and "status" in updated and "response_body_ref" in updated
    assert _names(values.group(1)) <= columns
    # One placeholder per VALUES column, the status of a start written by the statement itself.
    assert run_sql.FINISH_ROW.count("%s") == len(_names(values.group(1)))
    assert run_sql.START_ROW.count("%s") + 1 == len(_names(inserted.group(1)))
    bodies = re.search(r"INSERT INTO run_bodies \(([^)]*)\)", run_sql.BODIES)
    assert bodies is not None and _names(bodies.group(1)) <= set(run_bodies.c.keys())


def test_rows_of_repeats_the_template_and_flattens_the_parameters() -> None:
    text, params = run_sql.rows_of("(%s, %s::int)", [("a", 1), ("b", 2), ("c", None)])
    assert text == "(%s, %s::int), (%s, %s::int), (%s, %s::int)"
    assert params == ("a", 1, "b", 2, "c", None)
