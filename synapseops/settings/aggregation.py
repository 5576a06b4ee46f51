"""Settings of Data Aggregation: the warehouse loader (``SYNAPSEOPS_LOADER_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from synapseops.settings.base import section


class LoaderSettings(BaseSettings):
    """The warehouse loader (``synapseops loader``): its consumer group (more loaders in one
    group share the partitions), its batch (rows per COPY transaction at most) and where it
    serves ``/metrics`` and ``/health``."""

    model_config = section("SYNAPSEOPS_LOADER_")

    group_id: str = "synapseops-loader"
    # The topic loaded; empty: the canonical topic (topics/registry.py). Another topic of
    # canonical events (a replay, a test's own) is loaded the same way.
    topic: str = ""
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 8300
    # After a failed write the batch is read again after this long (doubling up to 30 s).
    retry_initial_s: float = Field(default=0.5, gt=0, le=60)


class AggregationSettings(BaseSettings):
    """Data Aggregation (``SYNAPSEOPS_AGGREGATION_*``): the market-data tick generator (a
    simulated feed onto ``market.ticks``; 0 ticks/s keeps it off), the bulk upload cap and how
    long the pipeline's de-duplication keys are kept."""

    model_config = section("SYNAPSEOPS_AGGREGATION_")

    ticks_per_s: float = Field(default=0.0, ge=0, le=10_000)
    ticks_symbols: str = "ACME,GLOBX,INITECH,UMBRL"
    ticks_venue: str = Field(default="XSIM", pattern=r"^[A-Z0-9]{1,8}$")
    # A bulk upload is streamed (never held in memory); this caps what one may send.
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024)
    # The pipeline's de-duplication keys (aggregation_seen) are kept this long, then deleted
    # every seen_prune_every_s (0 days: kept forever). A copy of an event older than this is
    # published again and absorbed by the warehouse's primary key.
    seen_retention_days: float = Field(default=30.0, ge=0)
    seen_prune_every_s: float = Field(default=3600.0, gt=0)

    @property
    def symbols(self) -> list[str]:
        return [part.strip() for part in self.ticks_symbols.split(",") if part.strip()]
