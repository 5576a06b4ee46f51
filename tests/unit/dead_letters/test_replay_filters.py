"""Filter building for dead-letter selection, replay and discard (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql

from sinks.dead_letters.replay import DeadLetterFilter, filter_clauses


def _sql(criteria: DeadLetterFilter, status: str | None = None) -> str:
    clauses = filter_clauses(criteria, status=status)
    return " AND ".join(
        str(c.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        for c in clauses
    )


def test_empty_filter_has_no_clauses_and_says_so() -> None:
    criteria = DeadLetterFilter()
    assert criteria.is_empty()
    assert filter_clauses(criteria) == []


def test_every_criterion_becomes_one_clause() -> None:
    since = datetime(2025, 1, 1, tzinfo=UTC)
    until = datetime(2025, 2, 1, tzinfo=UTC)
    criteria = DeadLetterFilter(
        ids=[3, 5], pipeline="payments", error_class="TargetRejected", since=since, until=until
    )
    sql = _sql(criteria, status="dead")
    assert "dead_letters.status = 'dead'" in sql
    assert "dead_letters.id IN (3, 5)" in sql
    assert "dead_letters.pipeline = 'payments'" in sql
    assert "dead_letters.error_class = 'TargetRejected'" in sql
    assert "dead_letters.dead_at >= '2025-01-01 00:00:00+00:00'" in sql
    # until is exclusive, so consecutive windows never count a record twice.
    assert "dead_letters.dead_at < '2025-02-01 00:00:00+00:00'" in sql
    assert len(filter_clauses(criteria, status="dead")) == 6
    assert not criteria.is_empty()


def test_status_is_only_a_clause_when_asked() -> None:
    criteria = DeadLetterFilter(pipeline="p")
    assert "status" not in _sql(criteria)
    assert "status = 'replayed'" in _sql(criteria, status="replayed")


def test_an_empty_id_list_matches_nothing_rather_than_everything() -> None:
    criteria = DeadLetterFilter(ids=[])
    # is_empty: no criterion, so replay/discard refuse it unless allow_all ...
    assert criteria.is_empty()
    # ... and if used anyway it selects no row at all.
    assert "IN (NULL)" in _sql(criteria) or "1 != 1" in _sql(criteria)


def test_since_after_until_is_refused() -> None:
    with pytest.raises(ValidationError, match="since must not be after until"):
        DeadLetterFilter(
            since=datetime(2025, 3, 1, tzinfo=UTC), until=datetime(2025, 1, 1, tzinfo=UTC)
        )


def test_filter_as_json_keeps_only_given_criteria() -> None:
    criteria = DeadLetterFilter(pipeline="p", since=datetime(2025, 1, 1, tzinfo=UTC))
    assert criteria.as_json() == {"pipeline": "p", "since": "2025-01-01T00:00:00Z"}
