"""Who may do what: roles, principals and the API token format (pure, no I/O).

A :class:`Principal` is whoever a request acts for. Today it is an API token (``kind="token"``:
the bootstrap ``SYNAPSEOPS_API_TOKEN`` or a named token from ``synapseops tokens create``);
the web console adds people (``kind="user"``, password + cookie session) with the same roles,
so nothing that checks a role needs to know which kind it holds.

Roles::

    admin      everything below, plus connectors, endpoints, credentials, mappings, flows, tokens
    operator   viewer + replay and discard dead letters, re-run integration runs
    approver   viewer + approve / reject large payments
    viewer     reads

A token reads ``sot_<id>_<secret>``: ``id`` (12 hex digits) is public and finds the row, the
secret (32 random bytes, URL-safe base64) is stored only as its SHA-256 digest.

Why SHA-256 and not argon2/bcrypt: those are slow on purpose so that a stolen digest of a
*low-entropy* password costs years to guess. A token's secret is 256 random bits; no amount
of guessing reaches it, so a slow hash buys nothing and would cost ~50 ms of CPU on *every*
API call (and hand anyone with a syntactically valid token a cheap way to burn CPU). A plain
digest compared in constant time is what GitHub, Stripe and PyPI do for their tokens; the
console's user passwords are another matter and get argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

TOKEN_PREFIX = "sot"
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.@-]{0,62}$"
BOOTSTRAP_NAME = "bootstrap"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(role.value for role in Role)
PrincipalKind = Literal["token", "user"]

# What holding a role lets a principal act as; admin holds every role.
_IMPLIED: dict[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.APPROVER: frozenset({Role.APPROVER, Role.VIEWER}),
    Role.ADMIN: frozenset(Role),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``actor`` is what audit trails record (``token:ci-deploy``)."""

    kind: PrincipalKind
    name: str
    roles: frozenset[Role]
    token_id: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"

    def may(self, role: Role) -> bool:
        return any(role in _IMPLIED[held] for held in self.roles)


def bootstrap_principal() -> Principal:
    """The holder of ``SYNAPSEOPS_API_TOKEN``: an admin that needs no row in the database."""
    return Principal(kind="token", name=BOOTSTRAP_NAME, roles=frozenset({Role.ADMIN}))


@dataclass(frozen=True)
class MintedToken:
    token_id: str
    secret_hash: bytes
    token: str  # the clear token: shown once to whoever created it, never stored


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def mint_token() -> MintedToken:
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return MintedToken(token_id, digest(secret), f"{TOKEN_PREFIX}_{token_id}_{secret}")


def parse_token(presented: str) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed token, else None (never raises)."""
    match = _TOKEN.match(presented)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored: bytes) -> bool:
    return hmac.compare_digest(digest(secret), stored)


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality of two configured secrets; an empty one matches nothing."""
    if not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())
