"""SQLAlchemy Core table of the principals (who may call the API), matching migration ``0007``.

One row per principal, whatever its kind:

- ``kind = 'token'``: a named API token; ``token_id`` is the public part of the token that
  finds the row, ``secret_hash`` the SHA-256 digest of its secret (the clear token is shown
  once, at creation, and stored nowhere);
- ``kind = 'user'``: a person of the web console: ``password_hash`` is the argon2id digest
  of the password, and :data:`console_sessions` holds their logins (migration ``0010``).

A revoked principal stays (``revoked_at``) so audit trails keep naming it; its name may be
taken again by a new one (the uniqueness covers live rows only).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from sinks.db import metadata
from synapseops.principals import ROLES

KINDS = ("token", "user")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


principals = Table(
    "principals",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("roles", ARRAY(Text), nullable=False),
    Column("token_id", Text, nullable=True, unique=True),
    Column("secret_hash", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", Text, nullable=True),
    Column("password_hash", Text, nullable=True),
    Column("password_changed_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(f"kind IN ({_quoted(KINDS)})", name="ck_principals_kind"),
    CheckConstraint(
        f"cardinality(roles) > 0 AND roles <@ ARRAY[{_quoted(ROLES)}]::text[]",
        name="ck_principals_roles",
    ),
    CheckConstraint(
        "kind <> 'token' OR (token_id IS NOT NULL AND secret_hash IS NOT NULL)",
        name="ck_principals_token_secret",
    ),
    CheckConstraint(
        "kind <> 'user' OR password_hash IS NOT NULL", name="ck_principals_user_password"
    ),
    Index(
        "uq_principals_live_name",
        "kind",
        "name",
        unique=True,
        postgresql_where=text("revoked_at IS NULL"),
    ),
)

# One row per console login; the signed cookie carries the id, the row keeps its digest.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", LargeBinary, primary_key=True),
    Column(
        "principal_id",
        BigInteger,
        ForeignKey("principals.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("client", Text, nullable=True),
    Index("ix_console_sessions_principal", "principal_id"),
)
