"""``synapseops credentials rotate-key``, the real command on a real database.

Credentials stored under key A (and one under a key nobody configures any more); the
operator configures ``B,A`` and runs the command: a dry run writes nothing, the run leaves
every readable credential opening with B alone (and no longer with A), names the unreadable
one without printing any secret, exits 1 until it is dealt with, and a repeat is a no-op.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import insert, select

from sinks.crm.tables import crm_platforms
from sinks.integration import store
from sinks.integration.tables import credentials
from sinks.notifications.secrets import SecretBox
from sinks.notifications.tables import channels
from synapseops.errors import CredentialUnreadable
from synapseops.settings import DatabaseSettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.worker_process import CLI

pytestmark = pytest.mark.integration

A, B, LOST = (Fernet.generate_key().decode() for _ in range(3))
SECRETS = {f"cred-{n}": f"secret-value-{n}-{os.urandom(8).hex()}" for n in range(3)}


def settings_with(url: str, key: str) -> Settings:
    return Settings(database=DatabaseSettings(url=SecretStr(url)), credentials_key=SecretStr(key))


@pytest.fixture
def stored(database_url: str) -> Iterator[tuple[str, sqlalchemy.Engine, dict[str, int]]]:
    with fresh_database(database_url, "t_payments") as url:
        engine = sqlalchemy.create_engine(url)
        ids = {
            name: store.create_credential(
                engine, settings_with(url, A), name=name, kind="bearer", secret=secret
            )["id"]
            for name, secret in SECRETS.items()
        }
        ids["orphan"] = store.create_credential(
            engine, settings_with(url, LOST), name="orphan", kind="bearer", secret="x" * 24
        )["id"]
        yield url, engine, ids
        engine.dispose()


def rotate(url: str, key: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    env = {
        **os.environ,
        "SYNAPSEOPS_DATABASE_URL": url,
        "SYNAPSEOPS_CREDENTIALS_KEY": key,
        "SYNAPSEOPS_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [str(CLI), "credentials", "rotate-key", *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.returncode, json.loads(result.stdout), result.stdout + result.stderr


def ciphertexts(engine: sqlalchemy.Engine) -> dict[int, bytes]:
    with engine.connect() as conn:
        rows = conn.execute(select(credentials.c.id, credentials.c.ciphertext)).all()
    return {row.id: bytes(row.ciphertext) for row in rows}


def test_rotate_key_re_encrypts_under_the_new_key_and_names_what_it_cannot_open(
    stored: tuple[str, sqlalchemy.Engine, dict[str, int]],
) -> None:
    url, engine, ids = stored
    before = ciphertexts(engine)
    labels = {f"{ids[name]}:{name}" for name in SECRETS}
    orphan = f"{ids['orphan']}:orphan"

    code, dry, output = rotate(url, f"{B},{A}", "--dry-run")
    assert (code, set(dry["rotated"]), dry["unreadable"]) == (1, labels, [orphan])
    assert ciphertexts(engine) == before, "a dry run wrote"

    code, done, output = rotate(url, f"{B},{A}")
    assert (code, set(done["rotated"]), done["unreadable"]) == (1, labels, [orphan])
    assert done["old_keys_may_be_dropped"] is False
    assert not any(secret in output for secret in SECRETS.values())
    new_only, old_only = settings_with(url, B), settings_with(url, A)
    for name, secret in SECRETS.items():
        credential = store.load_credential(engine, new_only, ids[name])
        assert credential.secret.get_secret_value() == secret
        with pytest.raises(CredentialUnreadable):
            store.load_credential(engine, old_only, ids[name])
    assert ciphertexts(engine)[ids["orphan"]] == before[ids["orphan"]]

    # The lost key found again: with it configured too, the last one rotates and all is done.
    code, last, _ = rotate(url, f"{B},{A},{LOST}")
    assert (code, last["rotated"], set(last["already_current"])) == (0, [orphan], labels)
    assert last["old_keys_may_be_dropped"] is True
    code, again, _ = rotate(url, B)
    assert (code, again["rotated"], again["unreadable"]) == (0, [], [])


def test_rotate_key_without_a_configured_key_is_refused(
    stored: tuple[str, sqlalchemy.Engine, dict[str, int]],
) -> None:
    url, engine, _ = stored
    env = {**os.environ, "SYNAPSEOPS_DATABASE_URL": url}
    env.pop("SYNAPSEOPS_CREDENTIALS_KEY", None)
    result = subprocess.run(
        [str(CLI), "credentials", "rotate-key"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "SYNAPSEOPS_CREDENTIALS_KEY is not set" in result.stderr


def test_rotate_key_re_encrypts_every_service_s_secrets(
    stored: tuple[str, sqlalchemy.Engine, dict[str, int]],
) -> None:
    """CRM platform tokens and notification channel secrets are sealed with the same key: one
    rotation re-encrypts them too (before, it read only the integration's credentials)."""
    url, engine, ids = stored
    token, webhook = f"pat-{os.urandom(8).hex()}", f"https://hooks.example/{os.urandom(8).hex()}"
    old = SecretBox(settings_with(url, A))
    with engine.begin() as conn:
        platform = conn.execute(
            insert(crm_platforms)
            .values(
                name="hs",
                kind="hubspot",
                base_url="https://api.hubapi.example",
                own_origin="synapseops",
                credential_ciphertext=old.seal(token),
            )
            .returning(crm_platforms.c.id)
        ).scalar_one()
        channel = conn.execute(
            insert(channels)
            .values(name="ops", kind="slack_webhook", config={}, secret=old.seal(webhook))
            .returning(channels.c.id)
        ).scalar_one()
        conn.execute(insert(channels).values(name="mail", kind="email", config={}, secret=None))
    sealed = {f"crm_platforms:{platform}:hs", f"notification_channels:{channel}:ops"}
    labels = {f"{ids[name]}:{name}" for name in SECRETS} | sealed

    code, done, output = rotate(url, f"{B},{A},{LOST}")
    assert (code, set(done["rotated"]), done["unreadable"]) == (
        0,
        labels | {f"{ids['orphan']}:orphan"},
        [],
    )
    assert token not in output and webhook not in output
    new_only, old_only = SecretBox(settings_with(url, B)), SecretBox(settings_with(url, A))
    with engine.connect() as conn:
        platform_secret = conn.execute(select(crm_platforms.c.credential_ciphertext)).scalar_one()
        channel_secret = conn.execute(
            select(channels.c.secret).where(channels.c.id == channel)
        ).scalar_one()
    for ciphertext, clear in ((platform_secret, token), (channel_secret, webhook)):
        opened = new_only.open(ciphertext)
        assert opened is not None and opened.get_secret_value() == clear
        with pytest.raises(CredentialUnreadable):
            old_only.open(ciphertext)
