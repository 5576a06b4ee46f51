"""Channel secrets (bot tokens, webhook URLs, SMTP passwords) encrypted at rest with Fernet.

The keys are ``SYNAPSEOPS_CREDENTIALS_KEY`` (``new,old``: the first encrypts, all decrypt), the
same as every stored credential; in dev without it, the data folder's ``credentials.key`` (the
dev key every service shares, created once, 0600). The clear text is only ever handed to a
sender; it is never logged, returned by the API or put in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from synapseops.errors import ConfigurationError, CredentialUnreadable
from synapseops.redaction import remember
from synapseops.settings import Settings

DEV_KEY_FILE = "credentials.key"


def _keys(settings: Settings) -> list[bytes]:
    if settings.credentials_key is not None:
        text = settings.credentials_key.get_secret_value()
        return [part.strip().encode() for part in text.split(",") if part.strip()]
    if settings.env != "dev":
        raise ConfigurationError(f"SYNAPSEOPS_ENV={settings.env} needs SYNAPSEOPS_CREDENTIALS_KEY")
    path = settings.data_dir / DEV_KEY_FILE
    try:
        return [path.read_bytes().strip()]
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return [path.read_bytes().strip()]
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return [key]


class SecretBox:
    def __init__(self, settings: Settings) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key) for key in _keys(settings)])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"SYNAPSEOPS_CREDENTIALS_KEY is not a Fernet key: {exc}"
            ) from exc

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes | None) -> SecretStr | None:
        if sealed is None:
            return None
        try:
            clear = self._fernet.decrypt(bytes(sealed)).decode()
        except InvalidToken as exc:
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
    primary = _keys(settings)[0]
    return hmac.new(primary, _LINK_LABEL, hashlib.sha256).hexdigest()
