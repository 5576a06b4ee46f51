"""Who made a CRM change: the integration, another API client, a person, or an import.

Each CRM side knows its integration's tokens (``DEFAULT_*_TOKEN`` plus any added with ``PUT
/_sandbox/<platform>/identities``). A request with one of them acts as the **integration**:
Salesforce stamps its user on ``LastModifiedById`` and the change event's ``commitUser``, with
``changeOrigin`` ``com/salesforce/api/rest/60.0;client=synapseops`` (``Sforce-Call-Options:
client=<id>`` names another client, as on Salesforce); HubSpot's events say ``changeSource:
INTEGRATION`` with ``sourceId`` = the integration's app id. Any other bearer token is some
other API client (a user / app id derived from the token, so two tokens are two clients). A
**person** edits through the control plane only (``POST /_sandbox/<platform>/edits``): empty
``changeOrigin`` on Salesforce, ``CRM_UI`` with ``userId:<id>`` on HubSpot. Revoked tokens
answer 401.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Literal

from sandbox.crm_ids import salesforce_id

ActorKind = Literal["integration", "api", "human", "import"]

DEFAULT_SALESFORCE_TOKEN = "00D5e000000SYNAP!sandbox.integration"
DEFAULT_HUBSPOT_TOKEN = "pat-na1-5a9d6c1e-sandbox-integration"
DEFAULT_CLIENT_ID = "synapseops"
HUBSPOT_PORTAL_ID = 62515
HUBSPOT_APP_ID = 1160452
_HUBSPOT_HUMAN_USER = 2620022


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    user_id: str  # Salesforce User id (005…) or HubSpot user id
    name: str
    app_id: int | None = None  # HubSpot: the app behind an API token
    client: str | None = None  # Salesforce: the API client id (Sforce-Call-Options)

    def with_client(self, client: str | None) -> Actor:
        if client is None or client == self.client:
            return self
        return Actor(self.kind, self.user_id, self.name, self.app_id, client)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "user_id": self.user_id,
            "name": self.name,
            "app_id": self.app_id,
            "client": self.client,
        }


def _number(token: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big") % modulo


class Identities:
    """The integration, the people and the other API clients of one CRM side (thread-safe)."""

    def __init__(self, platform: Literal["salesforce", "hubspot"]) -> None:
        self.platform = platform
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._revoked: set[str] = set()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            default = (
                DEFAULT_SALESFORCE_TOKEN if self.platform == "salesforce" else DEFAULT_HUBSPOT_TOKEN
            )
            self._tokens = {default}
            self._revoked = set()

    @property
    def integration(self) -> Actor:
        if self.platform == "salesforce":
            user = salesforce_id("User", 1)
            return Actor("integration", user, "SynapseOps Integration", client=DEFAULT_CLIENT_ID)
        return Actor("integration", "0", "SynapseOps Integration", app_id=HUBSPOT_APP_ID)

    @property
    def human(self) -> Actor:
        if self.platform == "salesforce":
            return Actor("human", salesforce_id("User", 2), "Sandbox Admin")
        return Actor("human", str(_HUBSPOT_HUMAN_USER), "Sandbox Admin")

    @property
    def importer(self) -> Actor:
        if self.platform == "salesforce":
            return Actor("import", salesforce_id("User", 3), "Data Loader", client="DataLoader")
        return Actor("import", str(_HUBSPOT_HUMAN_USER), "Import")

    def update(self, add: list[str], revoke: list[str], restore: list[str]) -> None:
        with self._lock:
            self._tokens |= set(add)
            self._revoked |= set(revoke)
            self._revoked -= set(restore)

    def authenticate(self, token: str) -> Actor | None:
        """The actor behind a bearer token; None when the token is revoked."""
        with self._lock:
            if token in self._revoked:
                return None
            integration = token in self._tokens
        if integration:
            return self.integration
        if self.platform == "salesforce":
            return Actor("api", salesforce_id("User", 1000 + _number(token, 10**6)), "API User")
        return Actor("api", "0", "Private app", app_id=2_000_000 + _number(token, 10**6))

    def describe(self) -> dict[str, object]:
        with self._lock:
            tokens, revoked = sorted(self._tokens), sorted(self._revoked)
        described: dict[str, object] = {
            "integration_tokens": tokens,
            "revoked_tokens": revoked,
            "integration": self.integration.as_dict(),
            "human": self.human.as_dict(),
        }
        if self.platform == "hubspot":
            described["portal_id"] = HUBSPOT_PORTAL_ID
        return described
