"""The principals store: create, list, find and revoke named API tokens (blocking calls).

Shared by the API (``/api/v1/tokens``, the authentication middleware) and the CLI
(``synapseops tokens``). The clear token leaves :func:`create_token` once and is never stored:
the row keeps the SHA-256 digest of its secret (:mod:`synapseops.principals` says why that is
enough for a 256-bit random secret). Rows are never deleted: revocation keeps the name in the
audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from sinks.db import database_errors
from sinks.principals.tables import principals
from synapseops.errors import RecordConflict, RecordNotFound
from synapseops.principals import (
    MintedToken,
    Principal,
    Role,
    mint_token,
    parse_token,
    secret_matches,
)

# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

PUBLIC_COLUMNS = [column for column in principals.c if column.name != "secret_hash"]


def _roles(roles: Iterable[Role | str]) -> list[str]:
    unique = sorted({Role(role).value for role in roles})
    if not unique:
        raise ValueError("a principal needs at least one role")
    return unique


def create_token(
    engine: sqlalchemy.Engine,
    *,
    name: str,
    roles: Iterable[Role | str],
    created_by: str,
    expires_at: datetime | None = None,
) -> tuple[dict[str, Any], MintedToken]:
    """The new row (without the digest) and the minted token; :class:`RecordConflict` when a
    live token already has ``name``."""
    minted = mint_token()
    values = {
        "kind": "token",
        "name": name,
        "roles": _roles(roles),
        "token_id": minted.token_id,
        "secret_hash": minted.secret_hash,
        "created_by": created_by,
        "expires_at": expires_at,
    }
    statement = sqlalchemy.insert(principals).values(values).returning(*PUBLIC_COLUMNS)
    try:
        with database_errors("create token"), engine.begin() as conn:
            row = dict(conn.execute(statement).mappings().one())
    except Exception as exc:
        if isinstance(exc.__cause__, sa_exc.IntegrityError):
            raise RecordConflict(f"a live token named {name!r} already exists") from None
        raise
    return row, minted


def list_tokens(
    engine: sqlalchemy.Engine, *, include_revoked: bool = False
) -> list[dict[str, Any]]:
    statement = select(*PUBLIC_COLUMNS).where(principals.c.kind == "token")
    if not include_revoked:
        statement = statement.where(principals.c.revoked_at.is_(None))
    with database_errors("list tokens"), engine.connect() as conn:
        rows = conn.execute(statement.order_by(principals.c.id)).mappings()
        return [dict(row) for row in rows]


def get_token(engine: sqlalchemy.Engine, token_id: str) -> dict[str, Any]:
    statement = select(*PUBLIC_COLUMNS).where(
        principals.c.kind == "token", principals.c.token_id == token_id
    )
    with database_errors("read token"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no token with id {token_id!r}")
    return dict(row)


def revoke_token(
    engine: sqlalchemy.Engine, token_id_or_name: str, *, by: str, by_name: bool = True
) -> dict[str, Any]:
    """Revoke the live token with this id (or, when no id matches and ``by_name``, this name);
    :class:`RecordNotFound` when there is none."""
    live = (principals.c.kind == "token") & principals.c.revoked_at.is_(None)
    columns = (principals.c.token_id, principals.c.name) if by_name else (principals.c.token_id,)
    with database_errors("revoke token"), engine.begin() as conn:
        for which in columns:
            statement = (
                sqlalchemy.update(principals)
                .where(live, which == token_id_or_name)
                .values(revoked_at=func.now(), revoked_by=by)
                .returning(*PUBLIC_COLUMNS)
            )
            row = conn.execute(statement).mappings().one_or_none()
            if row is not None:
                return dict(row)
    raise RecordNotFound(f"no live token with id or name {token_id_or_name!r}")


def authenticate_token(
    engine: sqlalchemy.Engine, presented: str, *, now: datetime | None = None
) -> Principal | None:
    """The principal of a live, unexpired named token whose secret matches, else None.

    Raises :class:`~synapseops.errors.DatabaseUnavailable` when the store cannot be read (the
    API answers 503: an outage is not a wrong token).
    """
    parsed = parse_token(presented)
    if parsed is None:
        return None
    token_id, secret = parsed
    statement = select(principals).where(
        principals.c.kind == "token", principals.c.token_id == token_id
    )
    with database_errors("authenticate token"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    moment = now or datetime.now(UTC)
    if row is None or row["revoked_at"] is not None:
        return None
    if not secret_matches(secret, bytes(row["secret_hash"])):
        return None
    if row["expires_at"] is not None and row["expires_at"] <= moment:
        return None
    last_used = row["last_used_at"]
    if last_used is None or moment - last_used >= LAST_USED_RESOLUTION:
        _touch(engine, token_id, moment)
    return Principal(
        kind="token",
        name=row["name"],
        roles=frozenset(Role(role) for role in row["roles"]),
        token_id=token_id,
    )


def _touch(engine: sqlalchemy.Engine, token_id: str, moment: datetime) -> None:
    statement = (
        sqlalchemy.update(principals)
        .where(principals.c.token_id == token_id)
        .values(last_used_at=moment)
    )
    with database_errors("token last used"), engine.begin() as conn:
        conn.execute(statement)
