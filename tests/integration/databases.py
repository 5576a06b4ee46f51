"""A database of a test's own on the server of the session's ``database_url``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import sqlalchemy

from sinks.migrate import upgrade


@contextmanager
def fresh_database(database_url: str, prefix: str, *, migrated: bool = True) -> Iterator[str]:
    """Create ``<prefix>_<random>`` (migrated to head unless told not to), drop it afterwards."""
    name = f"{prefix}_{uuid4().hex[:10]}"
    server = sqlalchemy.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = sqlalchemy.make_url(database_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        if migrated:
            upgrade(rendered)
        yield rendered
    finally:
        with server.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
