"""Channel secrets (bot tokens, webhook URLs, SMTP passwords) encrypted at rest with Fernet.

The keys are ``SYNAPSEOPS_CREDENTIALS_KEY`` (``new,old``: the first encrypts, all decrypt), the
same as every stored credential; in dev without it, the data folder's ``credentials.key`` (the
dev key every service shares, created once, 0600). The clear text is only ever handed to a
sender; it is never logged, returned by the API or put in an error.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

from sinks.cipher import cipher_for
from synapseops.errors import CredentialUnreadable
from synapseops.redaction import remember
from synapseops.settings import Settings


class SecretBox:
    """The channels' view of the platform's one cipher (:mod:`sinks.cipher`): same keys, same
    dev key file, same rotation (``synapseops credentials rotate-key``)."""

    def __init__(self, settings: Settings) -> None:
        self._cipher = cipher_for(settings)

    def seal(self, secret: str) -> bytes:
        return self._cipher.encrypt(secret)

    def open(self, sealed: bytes | None) -> SecretStr | None:
        if sealed is None:
            return None
        try:
            clear = self._cipher.decrypt(bytes(sealed))
        except CredentialUnreadable as exc:
            raise CredentialUnreadable(
                "a channel secret does not decrypt (the key changed?)"
            ) from exc
        remember(clear)
        return SecretStr(clear)


_LINK_LABEL = b"synapseops notification links v1"


def link_secret(settings: Settings) -> str:
    """The approve/reject links' signing key: its own setting, else an HMAC of the first
    credentials key (the credentials key itself never signs anything)."""
    configured = settings.notifications.link_secret
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    primary = cipher_for(settings).primary_key
    return hmac.new(primary, _LINK_LABEL, hashlib.sha256).hexdigest()
