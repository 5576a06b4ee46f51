"""Programmatic Alembic: bring a database to the newest schema from any working directory.

The script location is resolved from this package, not from the cwd or ``alembic.ini``, so
``upgrade(url)`` works from tests, the CLI and an installed wheel alike. The ``alembic.ini``
at the repository root points at the same folder for people who run ``alembic`` by hand.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.exc import OperationalError

from synapseops.errors import DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Every module that declares tables (a new service adds its ``sinks/<service>/tables.py``).
# Named, not imported: this shared module knows no service by import.
TABLE_MODULES: tuple[str, ...] = (
    "sinks.event_log.tables",
    "sinks.dead_letters.tables",
    "sinks.payments.tables",
    "sinks.integration.tables",
    "sinks.principals.tables",
    "sinks.aggregation.tables",
    "sinks.crm.tables",
)


def declared_metadata() -> MetaData:
    """The product's ``MetaData`` with every table of :data:`TABLE_MODULES` on it."""
    from sinks.db import metadata

    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would read a '%' in a password as a placeholder.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision``; a no-op when the schema is already there."""
    try:
        command.upgrade(alembic_config(database_url), revision)
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot migrate the database: {exc.orig}") from exc


def current(database_url: str) -> str | None:
    """The revision the database is at (``None`` for a database never migrated)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot read the schema revision: {exc.orig}") from exc
    finally:
        engine.dispose()
