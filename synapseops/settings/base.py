"""What every settings section shares: where the project is, the public dev secrets, durations
and comma-separated secrets, and how a section reads the environment."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

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


def section(prefix: str) -> SettingsConfigDict:
    """The environment a section with ``prefix`` reads (and the .env files)."""
    # The root's .env first, then the working directory's (later files win).
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=(PROJECT_ROOT / ".env", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )


def split_secrets(secret: SecretStr | None) -> list[str]:
    """``a,b`` → ``["a", "b"]``: several secrets are accepted while one is being rotated."""
    if secret is None:
        return []
    return [part.strip() for part in secret.get_secret_value().split(",") if part.strip()]


def without(secret: SecretStr | None, public: str) -> SecretStr | None:
    """``secret`` without the public value among its comma-separated parts (None if empty)."""
    kept = [part for part in split_secrets(secret) if part != public]
    return SecretStr(",".join(kept)) if kept else None
