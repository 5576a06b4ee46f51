"""Typed settings, read once from the environment (prefix ``SYNAPSEOPS_``) and a ``.env`` file.

Each concern is its own section with its own prefix, so the environment names others rely on
(docs/ARCHITECTURE.md) fall out of the field names: ``SYNAPSEOPS_KAFKA_BOOTSTRAP`` is
``kafka.bootstrap``, ``SYNAPSEOPS_DATABASE_URL`` is ``database.url``, ``SYNAPSEOPS_API_TOKEN``
is ``api.token``, ``SYNAPSEOPS_RETRY_TIERS`` is ``retry.tiers``,
``SYNAPSEOPS_STRIPE_WEBHOOK_SECRET`` is ``stripe.webhook_secret``.

Build one :class:`Settings` at the edge of a process (``Settings()``), call
:meth:`Settings.require_safe_secrets`, and pass it down. Nothing reads the environment later.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from synapseops.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The token a fresh checkout runs with. It is public (it is in this file), so anything but
# dev mode refuses to start with it.
DEFAULT_DEV_API_TOKEN = "dev-token-change-me"
# The Stripe webhook secret the demo signs with; public too, so only dev mode accepts it.
DEFAULT_DEV_STRIPE_SECRET = "whsec_synapseops_dev_demo"

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


class StripeSettings(BaseSettings):
    model_config = _section("SYNAPSEOPS_STRIPE_")

    # Several comma-separated secrets are accepted while a secret is being rotated. The
    # default is the demo's public one, dropped outside dev mode (see Settings).
    webhook_secret: SecretStr | None = SecretStr(DEFAULT_DEV_STRIPE_SECRET)
    tolerance_s: int = 300

    @property
    def secrets(self) -> list[str]:
        if self.webhook_secret is None:
            return []
        raw = self.webhook_secret.get_secret_value()
        return [part.strip() for part in raw.split(",") if part.strip()]


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

    @property
    def database_url(self) -> str:
        if self.database.url is not None:
            return self.database.url.get_secret_value()
        db = self.database
        return f"postgresql+psycopg2://{db.local_user}@127.0.0.1:{db.local_port}/{db.local_name}"

    @property
    def uses_local_database(self) -> bool:
        return self.database.url is None

    @model_validator(mode="after")
    def _no_public_stripe_secret_outside_dev(self) -> Settings:
        secret = self.stripe.webhook_secret
        if self.env != "dev" and secret and secret.get_secret_value() == DEFAULT_DEV_STRIPE_SECRET:
            # Unset, not refused: a deployment without Stripe must still start; its webhook
            # then answers 503 not_configured.
            self.stripe = self.stripe.model_copy(update={"webhook_secret": None})
        return self

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
