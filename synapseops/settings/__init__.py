"""Typed settings, read once from the environment (prefix ``SYNAPSEOPS_``) and a ``.env`` file.

Each concern is its own section with its own prefix, so the environment names others rely on
(docs/ARCHITECTURE.md) fall out of the field names: ``SYNAPSEOPS_KAFKA_BOOTSTRAP`` is
``kafka.bootstrap``, ``SYNAPSEOPS_DATABASE_URL`` is ``database.url``, ``SYNAPSEOPS_API_TOKEN``
is ``api.token``, ``SYNAPSEOPS_RETRY_TIERS`` is ``retry.tiers``,
``SYNAPSEOPS_STRIPE_WEBHOOK_SECRET`` is ``stripe.webhook_secret``, ``SYNAPSEOPS_INGRESS_SOURCES``
is ``ingress.sources``.

Build one :class:`Settings` at the edge of a process (``Settings()``), call
:meth:`Settings.require_safe_secrets`, and pass it down. Nothing reads the environment later.

The sections live in :mod:`synapseops.settings.platform` (the platform's own concerns) and
:mod:`synapseops.settings.edges` (the outside systems, the demo, the console); every name is
importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from synapseops.errors import ConfigurationError
from synapseops.redaction import remember_secret_fields
from synapseops.settings.aggregation import AggregationSettings, LoaderSettings
from synapseops.settings.base import (
    DEFAULT_DEV_API_TOKEN,
    DEFAULT_DEV_SOURCE_TOKEN,
    DEFAULT_DEV_STRIPE_SECRET,
    DEV_GENERIC_SOURCES,
    PROJECT_ROOT,
    parse_duration,
    section,
    split_secrets,
    without,
)
from synapseops.settings.crm import CrmSettings
from synapseops.settings.edges import (
    ConsoleSettings,
    DemoSettings,
    IngressSettings,
    NotificationSettings,
    PaymentSettings,
    SandboxSettings,
    SourceAuth,
    StripeSettings,
)
from synapseops.settings.platform import (
    ApiSettings,
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    ObservabilitySettings,
    ReplaySettings,
    RetrySettings,
    RoadSettings,
    SchemaRegistrySettings,
    SupervisionSettings,
    WorkerSettings,
)

__all__ = [
    "AggregationSettings",
    "ApiSettings",
    "ConsoleSettings",
    "DEFAULT_DEV_API_TOKEN",
    "DEFAULT_DEV_SOURCE_TOKEN",
    "DEFAULT_DEV_STRIPE_SECRET",
    "DEV_GENERIC_SOURCES",
    "DatabaseSettings",
    "DemoSettings",
    "HttpSettings",
    "IngressSettings",
    "KafkaSettings",
    "NotificationSettings",
    "CrmSettings",
    "LoaderSettings",
    "ObservabilitySettings",
    "PROJECT_ROOT",
    "PaymentSettings",
    "ReplaySettings",
    "RetrySettings",
    "RoadSettings",
    "SandboxSettings",
    "SchemaRegistrySettings",
    "Settings",
    "SourceAuth",
    "StripeSettings",
    "SupervisionSettings",
    "WorkerSettings",
    "parse_duration",
    "section",
    "split_secrets",
    "without",
]


class Settings(BaseSettings):
    model_config = section("SYNAPSEOPS_")

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
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    loader: LoaderSettings = Field(default_factory=LoaderSettings)
    aggregation: AggregationSettings = Field(default_factory=AggregationSettings)
    crm: CrmSettings = Field(default_factory=CrmSettings)

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

    @property
    def slack_api_url(self) -> str:
        """Slack's Web API base: the setting, else the sandbox's Slack."""
        if self.notifications.slack_api_url is not None:
            return self.notifications.slack_api_url.rstrip("/")
        return f"http://{self.sandbox.host}:{self.sandbox.port}/slack/api"

    @property
    def public_api_url(self) -> str:
        """Where people reach the API and the console (links in notifications)."""
        if self.notifications.public_url is not None:
            return self.notifications.public_url.rstrip("/")
        return f"http://{self.api.host}:{self.api.port}"

    @property
    def finance_url(self) -> str:
        """The finance ledger's API: the setting, else the sandbox's ledger."""
        if self.payments.finance_url is not None:
            return self.payments.finance_url
        return f"http://{self.sandbox.host}:{self.sandbox.port}/finance"

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
        stripe = without(self.stripe.webhook_secret, DEFAULT_DEV_STRIPE_SECRET)
        self.stripe = self.stripe.model_copy(update={"webhook_secret": stripe})
        sources: dict[str, SourceAuth] = {}
        for name, auth in self.ingress.sources.items():
            kept = without(auth.secret, DEFAULT_DEV_SOURCE_TOKEN)
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
