"""Secrets at rest, for every service: Fernet over ``SYNAPSEOPS_CREDENTIALS_KEY``.

The key is ``SYNAPSEOPS_CREDENTIALS_KEY`` (a Fernet key; several comma-separated during a
rotation: the first encrypts, all decrypt). In dev without one, a key is generated once into
``<data_dir>/credentials.key`` (mode 0600) and reused; outside dev a missing key is a
:class:`ConfigurationError`. Moved here from ``sinks/integration/credentials.py`` (which
re-exports it) so the CRM service's platform credentials use the same key and rotation.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from synapseops.errors import ConfigurationError, CredentialUnreadable
from synapseops.logging import get_logger
from synapseops.settings import Settings

log = get_logger(__name__)

KEY_FILE = "credentials.key"


class CredentialCipher:
    """Fernet over one or more keys (the first encrypts; every key decrypts)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigurationError("no credentials key")
        # The first (encrypting) key: what other secrets are derived from (never used to sign).
        self.primary_key = keys[0]
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError) as exc:
            # The message of cryptography's error does not echo the key.
            raise ConfigurationError(
                f"SYNAPSEOPS_CREDENTIALS_KEY is not a Fernet key: {exc}"
            ) from exc

    def encrypt(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode("utf-8"))

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(ciphertext)).decode("utf-8")
        except InvalidToken as exc:
            raise CredentialUnreadable(
                "a stored credential does not decrypt with SYNAPSEOPS_CREDENTIALS_KEY "
                "(the key changed?)"
            ) from exc

    def rotate(self, ciphertext: bytes) -> bytes:
        """Re-encrypt under the first key (after a key rotation)."""
        try:
            return self._fernet.rotate(bytes(ciphertext))
        except InvalidToken as exc:
            raise CredentialUnreadable("a stored credential does not decrypt") from exc


_ciphers: dict[tuple[str, str], CredentialCipher] = {}


def cipher_for(settings: Settings) -> CredentialCipher:
    """The process's cipher for ``settings`` (built once per key source)."""
    configured = settings.credentials_key
    source = configured.get_secret_value() if configured is not None else ""
    cache_key = (source, str(settings.data_dir))
    cipher = _ciphers.get(cache_key)
    if cipher is None:
        if source:
            keys = [part.strip().encode() for part in source.split(",") if part.strip()]
        elif settings.env == "dev":
            keys = [dev_key(settings.data_dir)]
        else:
            raise ConfigurationError(
                f"SYNAPSEOPS_ENV={settings.env} needs SYNAPSEOPS_CREDENTIALS_KEY (a Fernet key)"
            )
        cipher = _ciphers[cache_key] = CredentialCipher(keys)
    return cipher


def dev_key(data_dir: Path) -> bytes:
    """The dev key under ``data_dir``: read it, or create it once (0600, never overwritten)."""
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigurationError(f"cannot read the dev credentials key {path}: {exc}") from exc
    key = Fernet.generate_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting together must end with one key, not two.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot create the dev credentials key {path}: {exc}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    log.warning(
        "no SYNAPSEOPS_CREDENTIALS_KEY: generated a dev credentials key",
        extra={"path": str(path)},
    )
    return key
