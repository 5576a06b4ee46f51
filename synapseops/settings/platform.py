"""Settings sections of the platform itself: Kafka, PostgreSQL, the API, the road (retry tiers,
batches), the worker and its supervision, replay, observability, schema registry, outbound HTTP."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from synapseops.settings.base import DEFAULT_DEV_API_TOKEN, parse_duration, section


class KafkaSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_KAFKA_")

    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "synapseops"
    # How long a dead worker holds its partitions before the group moves them (kill -9, a
    # lost host). Short, so a crashed worker's records are picked up within seconds: the
    # broker's floor (group.min.session.timeout.ms, 6 s unless the broker lowers it). Faust's
    # consumer heartbeats from a thread of its own, so a busy handler does not miss them.
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    # How often the worker's consumer refreshes topic metadata. A subscribed input deleted and
    # re-created (`topics apply` after a delete) is only seen, and assigned again, at the next
    # refresh: Faust's 5 min left a re-created triggers topic unread that long.
    metadata_max_age_s: float = Field(default=10.0, gt=0)
    # How long the broker may hold a worker's fetch when none of its partitions has new data.
    # aiokafka sends one fetch per broker at a time and leaves out the partitions whose fetched
    # records are still being handled; a fetch made of idle partitions only (a command topic,
    # a quiet input) is held this long while the busy partitions wait for it to come back.
    # Faust fixes it at 1,500 ms: paced traffic then arrived in 1.5 s waves (streams/app.py).
    fetch_max_wait_ms: int = Field(default=25, ge=1, le=10_000)
    # Only used when the project's own script runs the local broker.
    version: str = "4.1.1"
    controller_port: int = 9093
    heap: str = "768m"
    # Durability of the topics `topics apply` creates. Unset: 1 and 1 in dev and test (the
    # local and the test stack are one broker), 3 and 2 in prod (one broker may be lost
    # without losing an acks=all record or refusing writes). See Settings._kafka_durability.
    replication_factor: int | None = Field(default=None, ge=1)
    min_insync_replicas: int | None = Field(default=None, ge=1)

    @property
    def host(self) -> str:
        return self.bootstrap.split(",")[0].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bootstrap.split(",")[0].rsplit(":", 1)[1])


class DatabaseSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_DATABASE_")

    # None means: the local cluster the project's script creates under the data folder.
    url: SecretStr | None = None
    local_port: int = 15432
    local_name: str = "synapseops"
    local_user: str = "synapseops"
    # False only for throwaway local clusters (the test session's): fsync off.
    local_durable: bool = True
    pool_size: int = 5


class ApiSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_API_")

    token: SecretStr = SecretStr(DEFAULT_DEV_API_TOKEN)
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_048_576

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RetrySettings(BaseSettings):
    model_config = section("SYNAPSEOPS_RETRY_")

    tiers: str = "10s,60s,300s"
    jitter: float = 0.2
    # The longest a target's Retry-After may hold a record (longer answers are cut to this).
    # At most a day: the road's topics keep records two weeks (topics/registry.py).
    max_retry_after: str = "1h"

    @field_validator("max_retry_after")
    @classmethod
    def _cap_parses(cls, value: str) -> str:
        if not 0 < parse_duration(value) <= 24 * 3600:
            raise ValueError("SYNAPSEOPS_RETRY_MAX_RETRY_AFTER must be above 0 and at most 24h")
        return value

    @field_validator("tiers")
    @classmethod
    def _tiers_parse(cls, value: str) -> str:
        delays = [parse_duration(part) for part in value.split(",") if part.strip()]
        if not delays:
            raise ValueError("SYNAPSEOPS_RETRY_TIERS needs at least one delay")
        if len(set(delays)) != len(delays):
            raise ValueError("SYNAPSEOPS_RETRY_TIERS: each tier needs its own delay")
        return value

    @property
    def delays(self) -> tuple[float, ...]:
        return tuple(parse_duration(part) for part in self.tiers.split(",") if part.strip())

    @property
    def max_retry_after_s(self) -> float:
        return parse_duration(self.max_retry_after)


class SchemaRegistrySettings(BaseSettings):
    model_config = section("SYNAPSEOPS_SCHEMA_REGISTRY_")

    # A Confluent-compatible registry; unset means the schemas in schemas/avro (ids derived
    # from each schema's fingerprint, so every process agrees without a server).
    url: str | None = None
    timeout_s: float = 5.0


class HttpSettings(BaseSettings):
    """Outbound calls to connectors (``sinks/http_guard.py`` has the rules)."""

    model_config = section("SYNAPSEOPS_HTTP_")

    # Internal addresses a connector may reach: comma-separated host names, IPs or CIDRs,
    # each optionally with :port. Unset: the sandbox's host:port in dev and test, none in prod.
    allowed_hosts: str | None = None
    # Bodies of target answers are read up to this many bytes, never more.
    max_response_bytes: int = Field(default=1_048_576, ge=1024)


class WorkerSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_WORKER_")

    # Every process serves Prometheus metrics; the worker's (and its health) live here.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 8200
    group_id: str = "synapseops"
    # Comma-separated pipeline names this worker runs (empty: all). Dedicated worker pools,
    # e.g. payments apart from everything else, each with its own group id.
    pipelines: str = ""

    @property
    def pipeline_names(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.pipelines.split(",") if part.strip())


class RoadSettings(BaseSettings):
    """How a pipeline's agent takes its input (streams/bootstrap.py): per assigned partition,
    batches of up to ``batch_size`` records, or whatever came within ``batch_within_ms``."""

    model_config = section("SYNAPSEOPS_ROAD_")

    batch_size: int = Field(default=500, ge=1, le=10_000)
    batch_within_ms: float = Field(default=5.0, gt=0, le=10_000)
    # Per assigned partition: records fetched but not yet handled (streams/road/intake.py).
    # Above 80% of it the partition is paused, below 40% it is fetched again.
    buffer_records: int = Field(default=2000, ge=10, le=100_000)


class SupervisionSettings(BaseSettings):
    """How the worker restarts a background task that died (streams/supervision.py)."""

    model_config = section("SYNAPSEOPS_SUPERVISION_")

    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    # A task that ran this long before dying starts its backoff over from the initial delay.
    healthy_after_s: float = Field(default=60.0, gt=0)
    stop_grace_s: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _backoff_grows(self) -> SupervisionSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("SYNAPSEOPS_SUPERVISION_BACKOFF_MAX_S is below the initial backoff")
        return self


class ReplaySettings(BaseSettings):
    """The lease a running dead-letter replay holds on its Idempotency-Key
    (sinks/dead_letters/replay.py).

    The replay renews it every ``heartbeat_s``; a repeat of the request takes over a replay
    whose lease is older than ``lease_s`` (its process died). Six missed renewals: a GC
    pause or a database blip does not hand a live replay over, a killed one is taken over
    within half a minute.
    """

    model_config = section("SYNAPSEOPS_REPLAY_")

    lease_s: float = Field(default=30.0, gt=0)
    heartbeat_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _renewed_within_the_lease(self) -> ReplaySettings:
        if self.heartbeat_s * 2 > self.lease_s:
            raise ValueError("SYNAPSEOPS_REPLAY_HEARTBEAT_S must be at most half the lease")
        return self


class ObservabilitySettings(BaseSettings):
    """Caches of the probes that would otherwise cost a broker or database round trip each."""

    model_config = section("SYNAPSEOPS_OBSERVABILITY_")

    # The API's /health answer (a Kafka metadata call and a database ping) is reused this long.
    health_cache_s: float = Field(default=3.0, ge=0)
    # The dead-letter gauges (a GROUP BY over dead_letters) are reused this long per scrape.
    dead_letter_gauges_cache_s: float = Field(default=5.0, ge=0)
    # Consumer groups whose lag the API's /metrics reads from the broker (synapseops/
    # kafka_lag.py): comma-separated ids, each with its `<id>.*` groups; empty: the worker's.
    lag_groups: str = ""
    lag_cache_s: float = Field(default=5.0, ge=0)
