"""The one place a SQLAlchemy engine is built for the product.

Every process builds one engine at its edge (``make_engine(settings)``) and passes it down.
``pool_pre_ping`` makes a connection that died under us (PostgreSQL restart, failover) get
replaced on checkout instead of failing the first statement of the next record.
"""

from __future__ import annotations

import sqlalchemy
from sqlalchemy import create_engine

from synapseops.settings import Settings


def make_engine(settings: Settings) -> sqlalchemy.Engine:
    return create_engine(
        settings.database_url,
        pool_pre_ping=True,
        pool_size=settings.database.pool_size,
        # A worker's executor threads plus the API's requests may briefly exceed the pool.
        max_overflow=settings.database.pool_size,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )
