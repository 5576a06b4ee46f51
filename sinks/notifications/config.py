"""Channels and workflows: what an admin configures (the API's write and read side).

A channel's secret is sealed on the way in (:class:`~sinks.notifications.secrets.SecretBox`)
and never read back out: rows leave this module without it (``has_secret`` says whether one is
stored). A workflow's every save is a new immutable version; runs keep the version they
started with. Errors: :class:`RecordNotFound` (404), :class:`RecordConflict` (409: a name taken,
a channel still used by a workflow or as a fallback).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from sinks.db import database_errors
from sinks.notifications.secrets import SecretBox
from sinks.notifications.tables import channels, workflow_versions, workflows
from synapseops.errors import RecordConflict, RecordNotFound

_CHANNEL_PUBLIC = [c for c in channels.c if c.name != "secret"]


def _public_channel(row: Any) -> dict[str, Any]:
    out = {c.name: row[c.name] for c in _CHANNEL_PUBLIC}
    out["has_secret"] = row["secret"] is not None
    return out


class ConfigStore:
    def __init__(self, engine: sqlalchemy.Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    # ---- channels -------------------------------------------------------------------------

    def list_channels(self) -> list[dict[str, Any]]:
        with database_errors("list channels"), self.engine.connect() as conn:
            return [
                _public_channel(r)
                for r in conn.execute(select(channels).order_by(channels.c.id)).mappings()
            ]

    def get_channel(self, channel_id: int) -> dict[str, Any]:
        with database_errors("read channel"), self.engine.connect() as conn:
            row = (
                conn.execute(select(channels).where(channels.c.id == channel_id)).mappings().first()
            )
        if row is None:
            raise RecordNotFound(f"no channel {channel_id}")
        return _public_channel(row)

    def create_channel(self, *, secret: str | None, **values: Any) -> dict[str, Any]:
        sealed = self.box.seal(secret) if secret else None
        try:
            with self.engine.begin() as conn:
                row = (
                    conn.execute(
                        channels.insert().values(secret=sealed, **values).returning(channels)
                    )
                    .mappings()
                    .one()
                )
        except IntegrityError as exc:
            raise RecordConflict(f"a channel named {values.get('name')!r} exists already") from exc
        return _public_channel(row)

    def update_channel(
        self, channel_id: int, *, secret: str | None, **values: Any
    ) -> dict[str, Any]:
        if secret:
            values["secret"] = self.box.seal(secret)
        values["updated_at"] = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                row = (
                    conn.execute(
                        update(channels)
                        .where(channels.c.id == channel_id)
                        .values(**values)
                        .returning(channels)
                    )
                    .mappings()
                    .first()
                )
        except IntegrityError as exc:
            raise RecordConflict(f"a channel named {values.get('name')!r} exists already") from exc
        if row is None:
            raise RecordNotFound(f"no channel {channel_id}")
        return _public_channel(row)

    def delete_channel(self, channel_id: int) -> None:
        name = self.get_channel(channel_id)["name"]
        users = [w["name"] for w in self.list_workflows() if name in _channels_of(w["spec"])]
        if users:
            raise RecordConflict(f"channel {name!r} is used by workflow(s) {', '.join(users)}")
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(channels).where(channels.c.id == channel_id))
        except IntegrityError as exc:
            raise RecordConflict(
                f"channel {name!r} is still referenced (a fallback, a send)"
            ) from exc

    # ---- workflows ------------------------------------------------------------------------

    def _workflow_query(self) -> sqlalchemy.Select[Any]:
        return select(
            workflows,
            workflow_versions.c.spec,
        ).join(
            workflow_versions,
            sqlalchemy.and_(
                workflow_versions.c.workflow_id == workflows.c.id,
                workflow_versions.c.version == workflows.c.version,
            ),
        )

    def list_workflows(self) -> list[dict[str, Any]]:
        with database_errors("list workflows"), self.engine.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(self._workflow_query().order_by(workflows.c.id)).mappings()
            ]

    def get_workflow(self, workflow_id: int) -> dict[str, Any]:
        with database_errors("read workflow"), self.engine.connect() as conn:
            row = (
                conn.execute(self._workflow_query().where(workflows.c.id == workflow_id))
                .mappings()
                .first()
            )
        if row is None:
            raise RecordNotFound(f"no workflow {workflow_id}")
        return dict(row)

    def create_workflow(
        self, *, name: str, trigger_kind: str, enabled: bool, spec: dict[str, Any], actor: str
    ) -> dict[str, Any]:
        try:
            with self.engine.begin() as conn:
                workflow_id = conn.execute(
                    workflows.insert()
                    .values(name=name, trigger_kind=trigger_kind, enabled=enabled, version=1)
                    .returning(workflows.c.id)
                ).scalar_one()
                conn.execute(
                    workflow_versions.insert().values(
                        workflow_id=workflow_id, version=1, spec=spec, created_by=actor
                    )
                )
        except IntegrityError as exc:
            raise RecordConflict(f"a workflow named {name!r} exists already") from exc
        return self.get_workflow(workflow_id)

    def new_version(
        self, workflow_id: int, spec: dict[str, Any], actor: str, **values: Any
    ) -> dict[str, Any]:
        with database_errors("save workflow"), self.engine.begin() as conn:
            current = conn.execute(
                select(workflows.c.version).where(workflows.c.id == workflow_id).with_for_update()
            ).scalar_one_or_none()
            if current is None:
                raise RecordNotFound(f"no workflow {workflow_id}")
            version = current + 1
            conn.execute(
                workflow_versions.insert().values(
                    workflow_id=workflow_id, version=version, spec=spec, created_by=actor
                )
            )
            conn.execute(
                update(workflows)
                .where(workflows.c.id == workflow_id)
                .values(version=version, updated_at=datetime.now(UTC), **values)
            )
        return self.get_workflow(workflow_id)

    def set_enabled(self, workflow_id: int, enabled: bool) -> dict[str, Any]:
        with database_errors("enable workflow"), self.engine.begin() as conn:
            found = conn.execute(
                update(workflows)
                .where(workflows.c.id == workflow_id)
                .values(enabled=enabled, updated_at=datetime.now(UTC))
                .returning(workflows.c.id)
            ).first()
        if found is None:
            raise RecordNotFound(f"no workflow {workflow_id}")
        return self.get_workflow(workflow_id)

    def versions(self, workflow_id: int) -> list[dict[str, Any]]:
        self.get_workflow(workflow_id)
        with database_errors("list workflow versions"), self.engine.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    select(workflow_versions)
                    .where(workflow_versions.c.workflow_id == workflow_id)
                    .order_by(workflow_versions.c.version.desc())
                ).mappings()
            ]

    def channel_names(self) -> set[str]:
        with database_errors("list channel names"), self.engine.connect() as conn:
            return set(conn.execute(select(channels.c.name)).scalars())

    def count_workflows(self) -> int:
        with database_errors("count workflows"), self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(workflows)).scalar_one())


def _channels_of(spec: dict[str, Any]) -> set[str]:
    return {str(s["channel"]) for s in spec.get("steps", []) if "channel" in s}
