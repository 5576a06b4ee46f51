"""Credentials at rest and in answers: Fernet round trip, keys, auth headers, redaction."""

from __future__ import annotations

import base64
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from api.bodies import validation_detail
from api.routes.integration.credentials import CredentialCreate, CredentialPublic
from sinks.integration import credentials as creds
from sinks.integration.credentials import (
    HIDDEN,
    Credential,
    CredentialCipher,
    auth_headers,
    cipher_for,
    decrypt,
    encrypt,
)
from synapseops.errors import ConfigurationError, CredentialUnreadable
from synapseops.redaction import scrub_headers
from synapseops.settings import Settings

SECRET = "sk_live_do-not-leak-4f9a"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, **overrides)  # type: ignore[arg-type]


def test_round_trip_and_the_ciphertext_does_not_contain_the_secret(tmp_path: Path) -> None:
    settings = _settings(tmp_path, credentials_key=SecretStr(Fernet.generate_key().decode()))
    token = encrypt(settings, SECRET)
    assert SECRET.encode() not in token
    assert SECRET.encode() not in base64.urlsafe_b64decode(token)
    assert decrypt(settings, token) == SECRET
    # Fernet is randomised: the same secret twice gives two tokens (no equality leak).
    assert encrypt(settings, SECRET) != token


def test_dev_without_a_key_generates_one_file_at_0600_and_reuses_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    creds._ciphers.clear()
    settings = _settings(tmp_path, env="dev")
    with caplog.at_level(logging.WARNING, logger="sinks.integration.credentials"):
        token = encrypt(settings, SECRET)
    key_file = tmp_path / creds.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any("generated a dev credentials key" in r.getMessage() for r in caplog.records)
    key = key_file.read_bytes().strip()
    assert all(key.decode() not in r.getMessage() for r in caplog.records)
    creds._ciphers.clear()  # a new process: the same file, the same key
    assert decrypt(settings, token) == SECRET
    assert key_file.read_bytes().strip() == key


def test_outside_dev_a_missing_key_refuses(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SYNAPSEOPS_CREDENTIALS_KEY"):
        cipher_for(_settings(tmp_path, env="prod"))
    assert not (tmp_path / creds.KEY_FILE).exists()


def test_a_malformed_key_is_a_configuration_error_that_does_not_echo_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        CredentialCipher([b"not-a-fernet-key-but-secret"])
    assert "not-a-fernet-key-but-secret" not in str(caught.value)


def test_rotation_old_key_still_decrypts_new_key_encrypts(tmp_path: Path) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = CredentialCipher([old]).encrypt(SECRET)
    both = CredentialCipher([new, old])
    assert both.decrypt(token) == SECRET
    rotated = both.rotate(token)
    assert CredentialCipher([new]).decrypt(rotated) == SECRET
    with pytest.raises(CredentialUnreadable):
        CredentialCipher([Fernet.generate_key()]).decrypt(token)


def _credential(kind: str, secret: str, header_name: str | None = None) -> Credential:
    return Credential(id=1, name="c", kind=kind, secret=SecretStr(secret), header_name=header_name)


def test_auth_headers_per_kind() -> None:
    assert auth_headers(_credential("api_key", SECRET, "X-Api-Key")) == {"X-Api-Key": SECRET}
    assert auth_headers(_credential("bearer", SECRET)) == {"Authorization": f"Bearer {SECRET}"}
    basic = auth_headers(_credential("basic", "erp-user:pa:ss"))["Authorization"]
    assert basic == "Basic " + base64.b64encode(b"erp-user:pa:ss").decode()
    with pytest.raises(ConfigurationError):
        auth_headers(_credential("signing_secret", SECRET))
    with pytest.raises(ConfigurationError):
        auth_headers(_credential("api_key", SECRET))  # no header name


def test_an_opened_credential_prints_without_its_secret() -> None:
    credential = _credential("bearer", SECRET)
    assert SECRET not in repr(credential)
    assert SECRET not in str(credential)


def test_scrub_headers_hides_every_secret_bearing_value() -> None:
    headers = {
        "Authorization": f"Bearer {SECRET}",
        "X-Api-Key": SECRET,
        "X-Erp-Key": SECRET,
        "Idempotency-Key": "flow-1:evt-1",
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": "abc=",
        "X-Custom-Token": SECRET,
        "Cookie": "session=1",
    }
    redacted = scrub_headers(headers, also=("x-erp-key",))
    assert redacted == {
        "Authorization": HIDDEN,
        "X-Api-Key": HIDDEN,
        "X-Erp-Key": HIDDEN,
        "Idempotency-Key": "flow-1:evt-1",
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": HIDDEN,
        "X-Custom-Token": HIDDEN,
        "Cookie": HIDDEN,
    }
    assert SECRET not in str(redacted)
    assert headers["Authorization"].endswith(SECRET)  # the input is not changed


def test_the_public_model_never_carries_a_secret() -> None:
    row = {
        "id": 7,
        "name": "erp",
        "kind": "bearer",
        "ciphertext": b"gAAAA...",
        "secret": SECRET,  # even if a row had one, the answer shows the placeholder
        "header_name": None,
        "created_at": datetime.now(UTC),
        "rotated_at": None,
    }
    public = CredentialPublic.model_validate({k: v for k, v in row.items() if k != "secret"})
    dumped = public.model_dump_json()
    assert '"secret":"**hidden**"' in dumped
    assert "ciphertext" not in dumped and SECRET not in dumped


def test_a_rejected_credential_body_does_not_echo_the_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        CredentialCreate.model_validate({"name": "Bad Name", "kind": "nope", "secret": SECRET})
    detail = validation_detail(caught.value)
    assert {tuple(error["loc"]) for error in detail} >= {("name",), ("kind",)}
    assert SECRET not in str(detail)


def test_basic_credentials_store_user_and_password_together() -> None:
    body = CredentialCreate.model_validate(
        {"name": "erp", "kind": "basic", "secret": "pw-long-enough", "username": "svc"}
    )
    assert body.stored_secret() == "svc:pw-long-enough"
    with pytest.raises(ValidationError):
        CredentialCreate.model_validate(
            {"name": "erp", "kind": "basic", "secret": "pw-long-enough"}
        )
    with pytest.raises(ValidationError):
        CredentialCreate.model_validate(
            {"name": "k", "kind": "api_key", "secret": "pw-long-enough"}
        )


@pytest.mark.parametrize(
    ("kind", "secret", "username"),
    [
        ("bearer", "abc\r\nX-Injected: 1", None),
        ("bearer", "tok\x00en-123456", None),
        ("api_key", "key\nwith-newline", None),
        ("bearer", "tok-\u2028-separator", None),
        ("signing_secret", "shpss\x7fdelete-1234", None),
        ("basic", "password\r\n123", "svc"),
        ("basic", "good-password", "s\nvc"),
        ("bearer", "nön-ascii-token", None),
        ("bearer", " padded-token-1 ", None),
        ("bearer", "tiny-7c", None),
    ],
)
def test_secrets_that_would_break_or_leak_are_refused_without_echo(
    kind: str, secret: str, username: str | None
) -> None:
    body = {"name": "c", "kind": kind, "secret": secret, "username": username}
    if kind == "api_key":
        body["header_name"] = "X-Api-Key"
    with pytest.raises(ValidationError) as caught:
        CredentialCreate.model_validate({k: v for k, v in body.items() if v is not None})
    assert secret not in str(validation_detail(caught.value))


def test_header_safe_and_unicode_secrets_are_accepted() -> None:
    for kind, secret in (("bearer", "sk_live_0123456789"), ("signing_secret", "whsec_ünï-cödé")):
        CredentialCreate.model_validate({"name": "c", "kind": kind, "secret": secret})
    CredentialCreate.model_validate(
        {"name": "c", "kind": "basic", "secret": "pässwörd with spaces", "username": "svc"}
    )


def test_every_run_status_is_a_status_the_api_can_answer() -> None:
    from typing import get_args

    from api.routes.integration.runs import RunStatus
    from sinks.integration.tables import RUN_STATUSES

    assert set(get_args(RunStatus)) == set(RUN_STATUSES)
