"""Which dead letters a replay or a discard means: the filter, and its SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import ColumnElement

from sinks.dead_letters.tables import dead_letters

MAX_IDS = 10_000


class DeadLetterFilter(BaseModel):
    """Which dead letters: every given criterion must hold (``since``/``until`` on ``dead_at``)."""

    ids: list[int] | None = Field(default=None, max_length=MAX_IDS)
    pipeline: str | None = None
    error_class: str | None = None
    # The record's Kafka key as text (the business entity: a payment intent, an order).
    key: str | None = Field(default=None, max_length=1000)
    since: datetime | None = None
    until: datetime | None = None

    @model_validator(mode="after")
    def _range_in_order(self) -> DeadLetterFilter:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be after until")
        return self

    def is_empty(self) -> bool:
        return not (
            self.ids or self.pipeline or self.error_class or self.key or self.since or self.until
        )

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def canonical(self) -> dict[str, Any]:
        """The filter as stored with a replay and compared with a repeat of its request: ids
        sorted and unique, times in UTC, so one filter has one form however it was written."""
        same = self.model_copy(
            update={
                "ids": sorted(set(self.ids)) if self.ids is not None else None,
                "since": _utc(self.since),
                "until": _utc(self.until),
            }
        )
        return same.as_json()


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def filter_clauses(
    criteria: DeadLetterFilter, *, status: str | None = None
) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a filter; ``status`` narrows to one status."""
    c = dead_letters.c
    clauses: list[ColumnElement[bool]] = []
    if status is not None:
        clauses.append(c.status == status)
    if criteria.ids is not None:
        clauses.append(c.id.in_(criteria.ids))
    if criteria.pipeline is not None:
        clauses.append(c.pipeline == criteria.pipeline)
    if criteria.error_class is not None:
        clauses.append(c.error_class == criteria.error_class)
    if criteria.key is not None:
        clauses.append(c.key == criteria.key.encode("utf-8"))
    if criteria.since is not None:
        clauses.append(c.dead_at >= criteria.since)
    if criteria.until is not None:
        clauses.append(c.dead_at < criteria.until)
    return clauses
