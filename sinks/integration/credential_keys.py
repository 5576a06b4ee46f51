"""Re-encrypting every stored secret under the first credentials key (a key rotation).

Every service seals its secrets with the same key (:mod:`sinks.cipher`): the integration
credentials, the CRM platforms' tokens, the notification channels' secrets. Each such column is
a :class:`SealedColumn`; the command line (the composition root) hands the rotation all of
them, so one run re-encrypts every secret of the platform.

``SYNAPSEOPS_CREDENTIALS_KEY`` holds one or more Fernet keys (``new,old``): the first
encrypts, every one decrypts (:mod:`sinks.integration.credentials`). Rotating the key is therefore:

1. put the new key first, keep the old one after it, on every process, and restart them
   (every credential still opens: nothing stops);
2. :func:`rotate_credentials_key` (``synapseops credentials rotate-key``) re-encrypts each
   credential that is not under the first key yet;
3. once it reports none left under an old key and none unreadable, drop the old key.

Each credential is rewritten in its own transaction, and only if its ciphertext is still
the one that was read: a secret rotated through the API meanwhile (already under the first
key) is left as it is. The clear text never leaves this module (never logged or returned);
a credential no configured key opens is reported by id and name, and left untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select, update

from sinks.db import database_errors
from sinks.integration.tables import credentials
from synapseops.errors import ConfigurationError
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class SealedColumn:
    """A table's encrypted column, with the id and name that label a row in the report."""

    table: sqlalchemy.Table
    ciphertext: str
    id: str = "id"
    name: str = "name"


INTEGRATION_CREDENTIALS = SealedColumn(credentials, "ciphertext")


@dataclass
class KeyRotation:
    """What a rotation did (or, with ``dry_run``, would do)."""

    rotated: list[str] = field(default_factory=list)  # were under an older key
    current: list[str] = field(default_factory=list)  # already under the first key
    unreadable: list[str] = field(default_factory=list)  # no configured key opens them
    changed_meanwhile: list[str] = field(default_factory=list)  # rewritten by someone else

    @property
    def complete(self) -> bool:
        """Whether the old keys may now be dropped."""
        return not self.unreadable and not self.changed_meanwhile


def configured_keys(settings: Settings) -> list[Fernet]:
    """The Fernet keys of ``SYNAPSEOPS_CREDENTIALS_KEY``, first (encrypting) one first."""
    configured = settings.credentials_key
    parts = configured.get_secret_value().split(",") if configured is not None else []
    keys = [part.strip() for part in parts if part.strip()]
    if not keys:
        raise ConfigurationError(
            "SYNAPSEOPS_CREDENTIALS_KEY is not set: nothing to rotate to (put the new key "
            "first and the old one after it, comma-separated)"
        )
    try:
        return [Fernet(key) for key in keys]
    except (ValueError, TypeError) as exc:
        # cryptography's message does not echo the key.
        raise ConfigurationError(f"SYNAPSEOPS_CREDENTIALS_KEY is not a Fernet key: {exc}") from exc


def rotate_credentials_key(
    engine: sqlalchemy.Engine,
    settings: Settings,
    *,
    dry_run: bool = False,
    sealed: Sequence[SealedColumn] = (INTEGRATION_CREDENTIALS,),
) -> KeyRotation:
    """Re-encrypt every secret of ``sealed`` under the first configured key (the module doc);
    a row is labelled ``<table>:<id>:<name>`` (``<id>:<name>`` for the integration's)."""
    keys = configured_keys(settings)
    first, every = keys[0], MultiFernet(keys)
    report = KeyRotation()
    for column in sealed:
        _rotate_column(engine, column, first, every, report, dry_run=dry_run)
    log.info(
        "credentials key rotation",
        extra={
            "dry_run": dry_run,
            "rotated": len(report.rotated),
            "current": len(report.current),
            "unreadable": len(report.unreadable),
            "changed_meanwhile": len(report.changed_meanwhile),
        },
    )
    return report


def _rotate_column(
    engine: sqlalchemy.Engine,
    column: SealedColumn,
    first: Fernet,
    every: MultiFernet,
    report: KeyRotation,
    *,
    dry_run: bool,
) -> None:
    table = column.table
    row_id, name, sealed = table.c[column.id], table.c[column.name], table.c[column.ciphertext]
    prefix = "" if column == INTEGRATION_CREDENTIALS else f"{table.name}:"
    with database_errors(f"read {table.name}"), engine.connect() as conn:
        rows = conn.execute(
            select(row_id.label("id"), name.label("name"), sealed.label("ciphertext"))
            .where(sealed.is_not(None))
            .order_by(row_id)
        ).all()
    for row in rows:
        label = f"{prefix}{row.id}:{row.name}"
        ciphertext = bytes(row.ciphertext)
        try:
            first.decrypt(ciphertext)
            report.current.append(label)
            continue
        except InvalidToken:
            pass
        try:
            fresh = every.rotate(ciphertext)
        except InvalidToken:
            report.unreadable.append(label)
            log.error("credential opens with no configured key", extra={"credential": label})
            continue
        if dry_run:
            report.rotated.append(label)
            continue
        statement = (
            update(table).where(row_id == row.id, sealed == ciphertext).values({sealed: fresh})
        )
        with database_errors(f"re-encrypt {table.name}"), engine.begin() as conn:
            written = conn.execute(statement).rowcount
        (report.rotated if written else report.changed_meanwhile).append(label)
