"""Console users and their sessions (blocking calls): the people beside the API tokens.

A user is a ``principals`` row of ``kind = 'user'`` with the same roles and revocation as a
token, plus the argon2id digest of a password (argon2-cffi's ``PasswordHasher``, RFC 9106's
recommended parameters; a digest made with older parameters is upgraded at the next login).
Shared by ``synapseops users`` and the console's login.

A session is a ``console_sessions`` row: a random 256-bit id, of which only the SHA-256
digest is stored (the id itself lives in the user's signed cookie). It is refused once
expired, revoked (logout), or when its user is disabled or changed password, so any of
those ends every open console at its next request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from sinks.db import database_errors
from sinks.principals.tables import console_sessions, principals
from synapseops.errors import RecordConflict, RecordInvalid, RecordNotFound
from synapseops.principals import Principal, Role

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
# last_seen_at is written at most this often per session, not on every request.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)

_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs what a wrong password does.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

USER_COLUMNS = [
    principals.c.id,
    principals.c.name,
    principals.c.roles,
    principals.c.created_at,
    principals.c.created_by,
    principals.c.password_changed_at,
    principals.c.last_used_at,
    principals.c.revoked_at,
    principals.c.revoked_by,
]


def check_password(password: str) -> None:
    """:class:`RecordInvalid` unless the password is long enough to resist guessing."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise RecordInvalid(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise RecordInvalid(f"a password has at most {MAX_PASSWORD_CHARS} characters")


def _roles(roles: Iterable[Role | str]) -> list[str]:
    unique = sorted({Role(role).value for role in roles})
    if not unique:
        raise RecordInvalid("a user needs at least one role")
    return unique


def _live_user(name: str) -> Any:
    return (
        (principals.c.kind == "user")
        & (principals.c.name == name)
        & principals.c.revoked_at.is_(None)
    )


def create_user(
    engine: sqlalchemy.Engine,
    *,
    name: str,
    roles: Iterable[Role | str],
    password: str,
    created_by: str,
) -> dict[str, Any]:
    """The new user's row; :class:`RecordConflict` when a live user has ``name``."""
    check_password(password)
    values = {
        "kind": "user",
        "name": name,
        "roles": _roles(roles),
        "password_hash": _hasher.hash(password),
        "password_changed_at": func.now(),
        "created_by": created_by,
    }
    statement = sqlalchemy.insert(principals).values(values).returning(*USER_COLUMNS)
    try:
        with database_errors("create user"), engine.begin() as conn:
            return dict(conn.execute(statement).mappings().one())
    except Exception as exc:
        if isinstance(exc.__cause__, sa_exc.IntegrityError):
            raise RecordConflict(f"a live user named {name!r} already exists") from None
        raise


def list_users(
    engine: sqlalchemy.Engine, *, include_disabled: bool = False
) -> list[dict[str, Any]]:
    statement = select(*USER_COLUMNS).where(principals.c.kind == "user")
    if not include_disabled:
        statement = statement.where(principals.c.revoked_at.is_(None))
    with database_errors("list users"), engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement.order_by(principals.c.id)).mappings()]


def _end_sessions(conn: sqlalchemy.Connection, principal_id: int) -> None:
    conn.execute(
        sqlalchemy.update(console_sessions)
        .where(
            console_sessions.c.principal_id == principal_id,
            console_sessions.c.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )


def disable_user(engine: sqlalchemy.Engine, name: str, *, by: str) -> dict[str, Any]:
    """Disable the live user ``name`` and end its sessions at once (the row stays)."""
    statement = (
        sqlalchemy.update(principals)
        .where(_live_user(name))
        .values(revoked_at=func.now(), revoked_by=by)
        .returning(*USER_COLUMNS)
    )
    with database_errors("disable user"), engine.begin() as conn:
        row = conn.execute(statement).mappings().one_or_none()
        if row is None:
            raise RecordNotFound(f"no live user named {name!r}")
        _end_sessions(conn, int(row["id"]))
    return dict(row)


def set_password(engine: sqlalchemy.Engine, name: str, password: str) -> dict[str, Any]:
    """A new password for the live user ``name``; every session of it ends."""
    check_password(password)
    statement = (
        sqlalchemy.update(principals)
        .where(_live_user(name))
        .values(password_hash=_hasher.hash(password), password_changed_at=func.now())
        .returning(*USER_COLUMNS)
    )
    with database_errors("set password"), engine.begin() as conn:
        row = conn.execute(statement).mappings().one_or_none()
        if row is None:
            raise RecordNotFound(f"no live user named {name!r}")
        _end_sessions(conn, int(row["id"]))
    return dict(row)


def verify_password(engine: sqlalchemy.Engine, name: str, password: str) -> dict[str, Any] | None:
    """The live user whose password this is, else None (a wrong name costs a hash too)."""
    statement = select(principals.c.id, principals.c.password_hash).where(_live_user(name))
    with database_errors("verify password"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    stored = str(row["password_hash"]) if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(stored):
        upgrade = (
            sqlalchemy.update(principals)
            .where(principals.c.id == row["id"])
            .values(password_hash=_hasher.hash(password))
        )
        with database_errors("rehash password"), engine.begin() as conn:
            conn.execute(upgrade)
    return {"id": int(row["id"])}


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def start_session(
    engine: sqlalchemy.Engine, principal_id: int, *, ttl: timedelta, client: str | None = None
) -> str:
    """A new session of the user (a fresh id at every login); the clear id, for the cookie."""
    session_id = secrets.token_urlsafe(32)
    values = {
        "id_hash": _digest(session_id),
        "principal_id": principal_id,
        "expires_at": datetime.now(UTC) + ttl,
        "client": client,
    }
    touch = (
        sqlalchemy.update(principals)
        .where(principals.c.id == principal_id)
        .values(last_used_at=func.now())
    )
    with database_errors("start session"), engine.begin() as conn:
        conn.execute(sqlalchemy.insert(console_sessions).values(values))
        conn.execute(touch)
    return session_id


def end_session(engine: sqlalchemy.Engine, session_id: str) -> None:
    statement = (
        sqlalchemy.update(console_sessions)
        .where(console_sessions.c.id_hash == _digest(session_id))
        .values(revoked_at=func.now())
    )
    with database_errors("end session"), engine.begin() as conn:
        conn.execute(statement)


def session_principal(
    engine: sqlalchemy.Engine, session_id: str, *, now: datetime | None = None
) -> Principal | None:
    """The user of a live session, else None (expired, logged out, user disabled).

    Raises :class:`~synapseops.errors.DatabaseUnavailable` when the store cannot be read.
    """
    s, p = console_sessions.c, principals.c
    statement = (
        select(p.name, p.roles, s.last_seen_at, s.id_hash)
        .select_from(console_sessions.join(principals, p.id == s.principal_id))
        .where(
            s.id_hash == _digest(session_id),
            s.revoked_at.is_(None),
            s.expires_at > (now or datetime.now(UTC)),
            p.kind == "user",
            p.revoked_at.is_(None),
        )
    )
    with database_errors("read session"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        return None
    moment = now or datetime.now(UTC)
    if row["last_seen_at"] is None or moment - row["last_seen_at"] >= LAST_SEEN_RESOLUTION:
        seen = (
            sqlalchemy.update(console_sessions)
            .where(console_sessions.c.id_hash == row["id_hash"])
            .values(last_seen_at=moment)
        )
        with database_errors("session last seen"), engine.begin() as conn:
            conn.execute(seen)
    return Principal(
        kind="user", name=row["name"], roles=frozenset(Role(role) for role in row["roles"])
    )
