"""Settings sections of the edges: Stripe, the ingress sources, the sandbox, the finance ledger,
the demo and the web console."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings

from synapseops.settings.base import (
    DEFAULT_DEV_SOURCE_TOKEN,
    DEFAULT_DEV_STRIPE_SECRET,
    DEV_GENERIC_SOURCES,
    section,
    split_secrets,
)


class StripeSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_STRIPE_")

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


def dev_sources() -> dict[str, SourceAuth]:
    token = SourceAuth(scheme="token", secret=SecretStr(DEFAULT_DEV_SOURCE_TOKEN))
    return {source: token for source in DEV_GENERIC_SOURCES}


class IngressSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_INGRESS_")

    # The allow-list of generic sources and each one's secret, as JSON, e.g.
    # SYNAPSEOPS_INGRESS_SOURCES='{"github": {"scheme": "hmac_hex", "secret": "...",
    # "header": "X-Hub-Signature-256"}}'. A source not listed is refused (404). The default
    # is the demo's sources with a public token: dropped outside dev mode (see Settings).
    sources: dict[str, SourceAuth] = Field(default_factory=dev_sources)
    # Overload (api/overload.py): past either bound a webhook is answered 503 with Retry-After
    # and nothing is published, so an API process's memory stays bounded however hard senders
    # push. Webhook requests inside the ingress at once, per API process (each holds up to
    # SYNAPSEOPS_API_MAX_BODY_BYTES):
    max_in_flight: int = Field(default=256, ge=1)
    # Bytes the API's producer holds that Kafka has not acknowledged yet (librdkafka's own
    # queue would otherwise grow to 1 GiB while a broker is slow):
    max_pending_bytes: int = Field(default=64 * 1024 * 1024, ge=1)


class SandboxSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_SANDBOX_")

    host: str = "127.0.0.1"
    port: int = 8100
    smtp_port: int = 8125

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class PaymentSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_PAYMENTS_")

    # The finance system's ledger API; unset, the sandbox's (Settings.finance_url), so moving
    # the sandbox to another port moves the ledger the worker books on with it.
    finance_url: str | None = None
    finance_timeout_s: float = 5.0
    # The batches of a worker's partitions handed in meanwhile are settled together, in
    # waves of at most wave_events events, waves_in_flight at a time (streams/road/coalesce.py):
    # one decide, one finance request and one record per wave instead of one per partition.
    wave_events: int = Field(default=1000, ge=1, le=20_000)
    waves_in_flight: int = Field(default=2, ge=1, le=64)
    # Charges at or above these amounts (minor units, per ISO currency) wait for approval,
    # e.g. SYNAPSEOPS_PAYMENTS_APPROVAL_THRESHOLDS='{"USD": 1000000, "EUR": 1000000}'.
    approval_thresholds: dict[str, int] = Field(
        default_factory=lambda: {"USD": 1_000_000, "EUR": 1_000_000, "GBP": 1_000_000}
    )


class DemoSettings(BaseSettings):
    model_config = section("SYNAPSEOPS_DEMO_")

    # `synapseops traffic` serves its own counters here (and the stack checks its health).
    traffic_host: str = "127.0.0.1"
    traffic_port: int = 8400


class ConsoleSettings(BaseSettings):
    """The web console's sessions (api/console). Unset ``session_secret``: derived from the
    credentials key (dev: the data folder's), so no public default exists."""

    model_config = section("SYNAPSEOPS_CONSOLE_")

    session_secret: SecretStr | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # None: Secure cookies everywhere but dev (a dev stack is served over plain http).
    secure_cookies: bool | None = None


class NotificationSettings(BaseSettings):
    """The notification service (streams/notifications): its engine's clock, its links and the
    chat APIs it talks to. Unset ``slack_api_url``: the sandbox's; unset ``link_secret``: derived
    from the credentials key like the console's session secret."""

    model_config = section("SYNAPSEOPS_NOTIFICATIONS_")

    slack_api_url: str | None = None
    # Where approve/reject links and "open in the console" point; unset: the API's own address.
    public_url: str | None = None
    link_secret: SecretStr | None = None
    link_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # A run being advanced holds a lease this long; a worker killed mid-run gives it over then.
    lease_s: float = Field(default=20.0, gt=0)
    # How often the waker looks for due delays, expired approvals and closed digest windows.
    tick_s: float = Field(default=0.5, gt=0)
    # Longest a send waits in-process for its channel's rate limit; longer rides a retry tier.
    max_rate_wait_s: float = Field(default=5.0, ge=0)
    # A send refused with 429 (or by its gate) is held off the retry tiers, the run waiting
    # for Retry-After; only a send held longer than this since its first try rides the tiers.
    max_hold_s: float = Field(default=3600.0, gt=0)
    smtp_timeout_s: float = Field(default=10.0, gt=0)
