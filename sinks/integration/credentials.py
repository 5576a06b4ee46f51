"""Credentials at rest: Fernet ciphertext in, auth headers out, clear text nowhere else.

The key is ``SYNAPSEOPS_CREDENTIALS_KEY`` (a Fernet key; several comma-separated during a
rotation: the first encrypts, all decrypt). In dev without one, a key is generated once into
``<data_dir>/credentials.key`` (mode 0600) and reused; outside dev a missing key is a
:class:`ConfigurationError` (the settings refuse to start too).

A decrypted secret lives only in a :class:`Credential` (``SecretStr``: it prints as
``**********``) and in the headers :func:`auth_headers` builds for one request. Every secret
opened or stored here is remembered by :mod:`synapseops.redaction`, so the process hides it
from every Run, dead letter and log line; stored request headers go through
:func:`synapseops.redaction.scrub_headers`.

:func:`check_secret` is the rule a secret obeys before it is stored (the API answers 422):
at least :data:`~synapseops.redaction.MIN_SECRET_CHARS` characters (a shorter one cannot be
told apart from ordinary text, so it could not be kept out of logs), no control or line-break
character (it would break, or inject, the header it travels in), and for the kinds that travel
as header text (``bearer``, ``api_key``) printable ASCII without surrounding spaces.
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy import RowMapping

from synapseops.errors import ConfigurationError
from synapseops.logging import get_logger
from synapseops.redaction import HIDDEN, MIN_SECRET_CHARS, remember

# re-exported: the placeholder the API shows for every secret, and the shared cipher
__all__ = ["HIDDEN", "KEY_FILE", "CredentialCipher", "_ciphers", "cipher_for", "dev_key"]
from sinks.cipher import KEY_FILE, CredentialCipher, _ciphers, cipher_for, dev_key
from synapseops.errors import CredentialInvalid
from synapseops.settings import Settings

log = get_logger(__name__)

HEADER_TEXT_KINDS = frozenset({"bearer", "api_key"})
# Control characters, and the Unicode line and paragraph separators some parsers split on.
_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def check_secret(kind: str, secret: str, *, username: str | None = None) -> None:
    """Raise :class:`CredentialInvalid` unless ``secret`` (for basic: the password) and
    ``username`` may be stored and sent."""
    for label, value in (("secret", secret), ("username", username or "")):
        if any(unicodedata.category(char) in _BREAKING_CATEGORIES for char in value):
            raise CredentialInvalid(f"the {label} holds a control or line-break character")
    if len(secret) < MIN_SECRET_CHARS:
        raise CredentialInvalid(
            f"the secret is shorter than {MIN_SECRET_CHARS} characters (too short to be kept "
            "out of logs and Runs)"
        )
    if kind in HEADER_TEXT_KINDS:
        if any(not 0x20 <= ord(char) <= 0x7E for char in secret):
            raise CredentialInvalid(f"a {kind} secret travels as header text: printable ASCII only")
        if secret != secret.strip():
            raise CredentialInvalid(f"a {kind} secret cannot start or end with a space")
    if kind == "basic" and username is not None and ":" in username:
        raise CredentialInvalid("a basic auth username cannot contain ':'")


def remember_credential(kind: str, secret: str) -> None:
    """Teach the scrubber a credential's clear text (for basic ``user:pass``, the password
    alone too; the base64 of the header is derived by the scrubber)."""
    remember(secret)
    if kind == "basic" and ":" in secret:
        remember(secret.split(":", 1)[1])


@dataclass(frozen=True)
class Credential:
    """A credential opened for one use. ``secret`` is the clear text (basic: ``user:pass``)."""

    id: int
    name: str
    kind: str
    secret: SecretStr
    header_name: str | None = None


def encrypt(settings: Settings, secret: str) -> bytes:
    return cipher_for(settings).encrypt(secret)


def decrypt(settings: Settings, ciphertext: bytes) -> str:
    return cipher_for(settings).decrypt(ciphertext)


def open_credential(settings: Settings, row: Mapping[str, Any] | RowMapping) -> Credential:
    """A ``credentials`` row (id, name, kind, ciphertext, header_name) opened for use."""
    secret = decrypt(settings, row["ciphertext"])
    remember_credential(str(row["kind"]), secret)
    return Credential(
        id=int(row["id"]),
        name=str(row["name"]),
        kind=str(row["kind"]),
        secret=SecretStr(secret),
        header_name=row.get("header_name"),
    )


def auth_headers(credential: Credential) -> dict[str, str]:
    """The headers that authenticate one outbound request with ``credential``."""
    secret = credential.secret.get_secret_value()
    if credential.kind == "api_key":
        if not credential.header_name:
            raise ConfigurationError(f"api_key credential {credential.name!r} has no header_name")
        return {credential.header_name: secret}
    if credential.kind == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    if credential.kind == "basic":
        token = base64.b64encode(secret.encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    raise ConfigurationError(
        f"credential {credential.name!r} of kind {credential.kind!r} does not authenticate requests"
    )
