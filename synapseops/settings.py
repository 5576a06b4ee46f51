"""Typed settings, read once from the environment (prefix ``SYNAPSEOPS_``) and a ``.env`` file.

Each concern is its own section with its own prefix, so the environment names others rely on
(docs/ARCHITECTURE.md) fall out of the field names: ``SYNAPSEOPS_KAFKA_BOOTSTRAP`` is
``kafka.bootstrap``, ``SYNAPSEOPS_DATABASE_URL`` is ``database.url``, ``SYNAPSEOPS_API_TOKEN``
is ``api.token``, ``SYNAPSEOPS_RETRY_TIERS`` is ``retry.tiers``,
``SYNAPSEOPS_STRIPE_WEBHOOK_SECRET`` is ``stripe.webhook_secret``, ``SYNAPSEOPS_INGRESS_SOURCES``
is ``ingress.sources``.

Build one :class:`Settings` at the edge of a process (``Settings()``), call
:meth:`Settings.require_safe_secrets`, and pass it down. Nothing reads the environment later.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from synapseops.errors import ConfigurationError
from synapseops.redaction import remember_secret_fields

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The token a fresh checkout runs with. It is public (it is in this file), so anything but
# dev mode refuses to start with it.
DEFAULT_DEV_API_TOKEN = "dev-token-change-me"
# The Stripe webhook secret the demo signs with; public too, so only dev mode accepts it.
DEFAULT_DEV_STRIPE_SECRET = "whsec_synapseops_dev_demo"
# The token the demo's generic sources send; public, so dropped outside dev mode.
DEFAULT_DEV_SOURCE_TOKEN = "dev-source-token-change-me"
DEV_GENERIC_SOURCES = ("github", "otel", "shopify", "stripe")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``"10s"`` → 10.0, ``"250ms"`` → 0.25, ``"5m"`` → 300.0 (bare numbers are seconds)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 500ms, 10s, 5m, 1h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _section(prefix: str) -> SettingsConfigDict:
    # The root's .env first, then the working directory's (later files win).
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=(PROJECT_ROOT / ".env", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )


class KafkaSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_KAFKA_")

    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "synapseops"
    # How long a dead worker holds its partitions before the group moves them (kill -9, a
    # lost host). Short, so a crashed worker's records are picked up within seconds.
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 1.0
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
    model_config = _section("SYNAPSEOPS_DATABASE_")

    # None means: the local cluster the project's script creates under the data folder.
    url: SecretStr | None = None
    local_port: int = 55432
    local_name: str = "synapseops"
    local_user: str = "synapseops"
    # False only for throwaway local clusters (the test session's): fsync off.
    local_durable: bool = True
    pool_size: int = 5


class ApiSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_API_")

    token: SecretStr = SecretStr(DEFAULT_DEV_API_TOKEN)
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_048_576

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RetrySettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_RETRY_")

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


def split_secrets(secret: SecretStr | None) -> list[str]:
    """``a,b`` → ``["a", "b"]``: several secrets are accepted while one is being rotated."""
    if secret is None:
        return []
    return [part.strip() for part in secret.get_secret_value().split(",") if part.strip()]


def _without(secret: SecretStr | None, public: str) -> SecretStr | None:
    """``secret`` without the public value among its comma-separated parts (None if empty)."""
    kept = [part for part in split_secrets(secret) if part != public]
    return SecretStr(",".join(kept)) if kept else None


class StripeSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_STRIPE_")

    # Several comma-separated secrets are accepted while a secret is being rotated. The
    # default is the demo's public one, dropped outside dev mode (see Settings).
    webhook_secret: SecretStr | None = SecretStr(DEFAULT_DEV_STRIPE_SECRET)
    tolerance_s: int = 300

    @property
    def secrets(self) -> list[str]:
        return split_secrets(self.webhook_secret)


class SourceAuth(BaseModel):
    """How one generic source (``/webhooks/events/{source}``) proves a request is its own.

    - ``token``: the request carries the secret, ``Authorization: Bearer <secret>`` or the raw
      value of ``header``; the whole request is the holder's, so its id headers count;
    - ``hmac_hex``: ``header`` (default ``X-Signature-256``) holds the hex HMAC-SHA256 of the
      body (``sha256=`` prefix allowed, GitHub's shape); only the body is signed;
    - ``standard_webhooks``: ``webhook-id``/``-timestamp``/``-signature``, id signed too.
    """

    model_config = ConfigDict(extra="forbid")

    scheme: Literal["token", "hmac_hex", "standard_webhooks"]
    # Several comma-separated while one is being rotated.
    secret: SecretStr
    header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,100}$")

    @property
    def secrets(self) -> list[str]:
        return split_secrets(self.secret)


def _dev_sources() -> dict[str, SourceAuth]:
    token = SourceAuth(scheme="token", secret=SecretStr(DEFAULT_DEV_SOURCE_TOKEN))
    return {source: token for source in DEV_GENERIC_SOURCES}


class IngressSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_INGRESS_")

    # The allow-list of generic sources and each one's secret, as JSON, e.g.
    # SYNAPSEOPS_INGRESS_SOURCES='{"github": {"scheme": "hmac_hex", "secret": "...",
    # "header": "X-Hub-Signature-256"}}'. A source not listed is refused (404). The default
    # is the demo's sources with a public token: dropped outside dev mode (see Settings).
    sources: dict[str, SourceAuth] = Field(default_factory=_dev_sources)


class SandboxSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_SANDBOX_")

    host: str = "127.0.0.1"
    port: int = 8100
    smtp_port: int = 8125

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class PaymentSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_PAYMENTS_")

    # The finance system's ledger API (the sandbox's by default).
    finance_url: str = "http://127.0.0.1:8100/finance"
    finance_timeout_s: float = 5.0
    # Charges at or above these amounts (minor units, per ISO currency) wait for approval,
    # e.g. SYNAPSEOPS_PAYMENTS_APPROVAL_THRESHOLDS='{"USD": 1000000, "EUR": 1000000}'.
    approval_thresholds: dict[str, int] = Field(
        default_factory=lambda: {"USD": 1_000_000, "EUR": 1_000_000, "GBP": 1_000_000}
    )


class SchemaRegistrySettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_SCHEMA_REGISTRY_")

    # A Confluent-compatible registry; unset means the schemas in schemas/avro (ids derived
    # from each schema's fingerprint, so every process agrees without a server).
    url: str | None = None
    timeout_s: float = 5.0


class HttpSettings(BaseSettings):
    """Outbound calls to connectors (``sinks/http_guard.py`` has the rules)."""

    model_config = _section("SYNAPSEOPS_HTTP_")

    # Internal addresses a connector may reach: comma-separated host names, IPs or CIDRs,
    # each optionally with :port. Unset: the sandbox's host:port in dev and test, none in prod.
    allowed_hosts: str | None = None
    # Bodies of target answers are read up to this many bytes, never more.
    max_response_bytes: int = Field(default=1_048_576, ge=1024)


class DemoSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_DEMO_")

    # `synapseops traffic` serves its own counters here (and the stack checks its health).
    traffic_host: str = "127.0.0.1"
    traffic_port: int = 8400


class WorkerSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_WORKER_")

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

    model_config = _section("SYNAPSEOPS_ROAD_")

    batch_size: int = Field(default=500, ge=1, le=10_000)
    batch_within_ms: float = Field(default=5.0, gt=0, le=10_000)


class SupervisionSettings(BaseSettings):
    """How the worker restarts a background task that died (streams/supervision.py)."""

    model_config = _section("SYNAPSEOPS_SUPERVISION_")

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

    model_config = _section("SYNAPSEOPS_REPLAY_")

    lease_s: float = Field(default=30.0, gt=0)
    heartbeat_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _renewed_within_the_lease(self) -> ReplaySettings:
        if self.heartbeat_s * 2 > self.lease_s:
            raise ValueError("SYNAPSEOPS_REPLAY_HEARTBEAT_S must be at most half the lease")
        return self


class ObservabilitySettings(BaseSettings):
    """Caches of the probes that would otherwise cost a broker or database round trip each."""

    model_config = _section("SYNAPSEOPS_OBSERVABILITY_")

    # The API's /health answer (a Kafka metadata call and a database ping) is reused this long.
    health_cache_s: float = Field(default=3.0, ge=0)
    # The dead-letter gauges (a GROUP BY over dead_letters) are reused this long per scrape.
    dead_letter_gauges_cache_s: float = Field(default=5.0, ge=0)
    # Consumer groups whose lag the API's /metrics reads from the broker (synapseops/
    # kafka_lag.py): comma-separated ids, each with its `<id>.*` groups; empty: the worker's.
    lag_groups: str = ""
    lag_cache_s: float = Field(default=5.0, ge=0)


class ConsoleSettings(BaseSettings):
    """The web console's sessions (api/console). Unset ``session_secret``: derived from the
    credentials key (dev: the data folder's), so no public default exists."""

    model_config = _section("SYNAPSEOPS_CONSOLE_")

    session_secret: SecretStr | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # None: Secure cookies everywhere but dev (a dev stack is served over plain http).
    secure_cookies: bool | None = None


class Settings(BaseSettings):
    model_config = _section("SYNAPSEOPS_")

    env: Literal["dev", "test", "prod"] = "dev"
    data_dir: Path = PROJECT_ROOT / ".data"
    log_level: str = "INFO"
    # Fernet key for stored credentials; dev derives one from the data folder (see secrets.py).
    credentials_key: SecretStr | None = None

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    stripe: StripeSettings = Field(default_factory=StripeSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    payments: PaymentSettings = Field(default_factory=PaymentSettings)
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    supervision: SupervisionSettings = Field(default_factory=SupervisionSettings)
    road: RoadSettings = Field(default_factory=RoadSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @property
    def database_url(self) -> str:
        if self.database.url is not None:
            return self.database.url.get_secret_value()
        db = self.database
        return f"postgresql+psycopg2://{db.local_user}@127.0.0.1:{db.local_port}/{db.local_name}"

    @property
    def uses_local_database(self) -> bool:
        return self.database.url is None

    @property
    def outbound_allowed_hosts(self) -> str:
        """The SSRF guard's allow-list: the setting, else the sandbox alone in dev and test."""
        if self.http.allowed_hosts is not None:
            return self.http.allowed_hosts
        return f"{self.sandbox.host}:{self.sandbox.port}" if self.env != "prod" else ""

    @model_validator(mode="after")
    def _secrets_are_scrubbed(self) -> Settings:
        # Every secret a process is configured with is hidden from its logs, Runs and dead
        # letters from the moment its settings exist (synapseops.redaction).
        remember_secret_fields(self)
        return self

    @model_validator(mode="after")
    def _no_public_secrets_outside_dev(self) -> Settings:
        """Outside dev, the public demo secrets are dropped wherever they appear, also as one
        of several comma-separated ones. Dropped, not refused: a deployment without Stripe
        must still start (its webhook answers 503 not_configured), and a generic source left
        without a secret is no longer allowed (404)."""
        if self.env == "dev":
            return self
        stripe = _without(self.stripe.webhook_secret, DEFAULT_DEV_STRIPE_SECRET)
        self.stripe = self.stripe.model_copy(update={"webhook_secret": stripe})
        sources: dict[str, SourceAuth] = {}
        for name, auth in self.ingress.sources.items():
            kept = _without(auth.secret, DEFAULT_DEV_SOURCE_TOKEN)
            if kept is not None:
                sources[name] = auth.model_copy(update={"secret": kept})
        self.ingress = self.ingress.model_copy(update={"sources": sources})
        return self

    @model_validator(mode="after")
    def _kafka_durability(self) -> Settings:
        # dev and test run on one local broker; prod is a real cluster: survive one broker.
        rf_default, isr_default = (1, 1) if self.env in ("dev", "test") else (3, 2)
        kafka = self.kafka
        rf = kafka.replication_factor or rf_default
        isr = kafka.min_insync_replicas or min(isr_default, rf)
        if isr > rf:
            raise ValueError(
                f"SYNAPSEOPS_KAFKA_MIN_INSYNC_REPLICAS={isr} exceeds "
                f"SYNAPSEOPS_KAFKA_REPLICATION_FACTOR={rf}: no write could ever succeed"
            )
        if (rf, isr) != (kafka.replication_factor, kafka.min_insync_replicas):
            self.kafka = kafka.model_copy(
                update={"replication_factor": rf, "min_insync_replicas": isr}
            )
        return self

    @property
    def topic_replication(self) -> tuple[int, int]:
        """``(replication factor, min.insync.replicas)`` of every topic this deployment owns."""
        return self.kafka.replication_factor or 1, self.kafka.min_insync_replicas or 1

    def require_safe_secrets(self) -> None:
        """Refuse to run outside dev with a secret anybody can read in this repository."""
        if self.env == "dev":
            return
        if self.api.token.get_secret_value() == DEFAULT_DEV_API_TOKEN:
            raise ConfigurationError(
                f"SYNAPSEOPS_ENV={self.env} but SYNAPSEOPS_API_TOKEN is the public default; "
                "set a token of your own"
            )
        if self.credentials_key is None:
            raise ConfigurationError(
                f"SYNAPSEOPS_ENV={self.env} needs SYNAPSEOPS_CREDENTIALS_KEY (a Fernet key)"
            )
