"""Console logins over uvicorn against a fresh database: sessions in signed cookies are another
way to be a principal of ``/api/v1`` — same roles, CSRF on every change, revocable.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy
from cryptography.fernet import Fernet
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from sinks.principals.users import create_user
from synapseops.settings import ApiSettings, ConsoleSettings, DatabaseSettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.worker_process import CLI

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def console_db(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_console") as url:
        engine = sqlalchemy.create_engine(url)
        for role in ("viewer", "operator", "approver", "admin"):
            create_user(engine, name=role, roles=[role], password=PASSWORD, created_by="test")
        engine.dispose()
        yield url


def app_settings(settings: Settings, url: str, **console: Any) -> Settings:
    return settings.model_copy(
        update={
            "env": "test",
            "database": DatabaseSettings(url=SecretStr(url)),
            "api": ApiSettings(token=SecretStr(f"t-{uuid.uuid4().hex}")),
            "credentials_key": SecretStr(Fernet.generate_key().decode()),
            "console": ConsoleSettings(**console),
        }
    )


@pytest.fixture(scope="module")
def api(settings: Settings, kafka_bootstrap: str, console_db: str) -> Iterator[str]:
    with serving_in_thread(create_app(app_settings(settings, console_db))) as base:
        yield base


def login_form(client: httpx.Client) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None
    # The cookie is Secure outside dev; httpx keeps such a cookie off http, so hand it over.
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("synapseops_login_csrf=") and "secure" in cookie.lower()
    client.cookies.set("synapseops_login_csrf", cookie.split(";", 1)[0].split("=", 1)[1])
    return match.group(1)


def session_cookie(response: httpx.Response) -> str:
    header = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith("synapseops_session=")
    )
    return header.split(";", 1)[0].split("=", 1)[1]


def log_in(base: str, user: str, password: str = PASSWORD) -> tuple[httpx.Client, str, str]:
    """(a client holding the session, the cookie, the page's CSRF token)."""
    client = httpx.Client(base_url=base, timeout=20)
    token = login_form(client)
    answer = client.post(
        "/login", data={"username": user, "password": password, "csrf_token": token, "next": "/"}
    )
    assert answer.status_code == 303, answer.text
    cookie = session_cookie(answer)
    # Outside dev the cookie is Secure, so httpx would not send it over http: set it by hand.
    client.cookies.set("synapseops_session", cookie)
    home = client.get("/")
    assert home.status_code == 200, home.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', home.text)
    assert csrf is not None
    return client, cookie, csrf.group(1)


PREVIEW = {"rules": [{"target": "a", "const": 1}], "payload": {}}


def test_login_sets_a_hardened_session_cookie_that_is_a_principal_of_the_api(api: str) -> None:
    client = httpx.Client(base_url=api, timeout=20)
    token = login_form(client)
    answer = client.post(
        "/login",
        data={
            "username": "operator",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/dead-letters",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/dead-letters"
    flags = next(
        v
        for k, v in answer.headers.multi_items()
        if k == "set-cookie" and v.startswith("synapseops_session=")
    ).lower()
    for flag in ("httponly", "samesite=lax", "secure", "max-age=43200", "path=/"):
        assert flag in flags, flags
    cookie = session_cookie(answer)
    read = httpx.get(f"{api}/api/v1/overview", cookies={"synapseops_session": cookie})
    assert read.status_code == 200, read.text


def test_a_change_needs_the_sessions_csrf_token_and_the_role(api: str) -> None:
    client, _, csrf = log_in(api, "viewer")
    missing = client.post("/api/v1/mappings/preview", json=PREVIEW)
    assert missing.status_code == 403 and "CSRF" in missing.json()["detail"]
    wrong = client.post(
        "/api/v1/mappings/preview", json=PREVIEW, headers={"X-CSRF-Token": "0" * 64}
    )
    assert wrong.status_code == 403 and "CSRF" in wrong.json()["detail"]
    ok = client.post("/api/v1/mappings/preview", json=PREVIEW, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    replay = client.post(
        "/api/v1/dead-letters/replay",
        json={"ids": [1], "dry_run": True},
        headers={"X-CSRF-Token": csrf},
    )
    assert replay.status_code == 403
    assert replay.json()["detail"].endswith("needs role operator; user:viewer holds viewer")
    operator, _, token = log_in(api, "operator")
    allowed = operator.post(
        "/api/v1/dead-letters/replay",
        json={"ids": [1], "dry_run": True},
        headers={"X-CSRF-Token": token},
    )
    assert allowed.status_code == 200, allowed.text


def test_wrong_passwords_forged_forms_and_foreign_next_targets_are_refused(api: str) -> None:
    client = httpx.Client(base_url=api, timeout=20)
    token = login_form(client)
    wrong = client.post(
        "/login", data={"username": "admin", "password": "guess-guess-guess", "csrf_token": token}
    )
    unknown = client.post(
        "/login",
        data={"username": "nobody", "password": PASSWORD, "csrf_token": login_form(client)},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password." in wrong.text and "Wrong user name" in unknown.text
    assert "synapseops_session" not in wrong.headers.get("set-cookie", "")
    forged = httpx.post(
        f"{api}/login", data={"username": "admin", "password": PASSWORD, "csrf_token": "made-up"}
    )
    assert forged.status_code == 403 and "CSRF" in forged.text
    away = client.post(
        "/login",
        data={
            "username": "admin",
            "password": PASSWORD,
            "csrf_token": login_form(client),
            "next": "//evil.example/x",
        },
    )
    assert away.status_code == 303 and away.headers["location"] == "/"


def test_logout_a_second_login_disable_and_passwd_each_end_a_session(
    api: str, console_db: str
) -> None:
    engine = sqlalchemy.create_engine(console_db)
    name = f"ana-{uuid.uuid4().hex[:6]}"
    create_user(engine, name=name, roles=["operator"], password=PASSWORD, created_by="test")
    engine.dispose()

    def alive(cookie: str) -> int:
        return httpx.get(
            f"{api}/api/v1/overview", cookies={"synapseops_session": cookie}
        ).status_code

    client, first, csrf = log_in(api, name)
    refused = client.post("/logout", data={"csrf_token": "nope"})
    assert refused.status_code == 403 and alive(first) == 200
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert alive(first) == 401

    _, second, _ = log_in(api, name)
    again = httpx.Client(base_url=api, timeout=20, cookies={"synapseops_session": second})
    token = login_form(again)
    rotated = again.post(
        "/login", data={"username": name, "password": PASSWORD, "csrf_token": token}
    )
    third = session_cookie(rotated)
    assert third != second and alive(second) == 401 and alive(third) == 200

    env = {"SYNAPSEOPS_DATABASE_URL": console_db, "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [str(CLI), "users", "passwd", name, "--password-stdin"],
        env=env,
        check=True,
        input=b"another long password\n",
        capture_output=True,
    )
    assert alive(third) == 401
    _, fourth, _ = log_in(api, name, "another long password")
    subprocess.run([str(CLI), "users", "disable", name], env=env, check=True, capture_output=True)
    assert alive(fourth) == 401
    tampered = fourth[:-2] + ("AA" if not fourth.endswith("AA") else "BB")
    assert alive(tampered) == 401


def test_a_session_expires_after_its_lifetime(
    settings: Settings, kafka_bootstrap: str, console_db: str
) -> None:
    # Long enough for a login and one read on a loaded machine (one second was not, with the
    # whole suite on two busy cores), then waited out from the moment the login answered.
    lifetime_s = 6
    short = app_settings(settings, console_db, session_hours=lifetime_s / 3600)
    with serving_in_thread(create_app(short)) as base:
        _, cookie, _ = log_in(base, "viewer")
        logged_in = time.monotonic()
        assert (
            httpx.get(f"{base}/api/v1/overview", cookies={"synapseops_session": cookie}).status_code
            == 200
        )
        time.sleep(max(0.0, logged_in + lifetime_s + 0.5 - time.monotonic()))
        late = httpx.get(f"{base}/api/v1/overview", cookies={"synapseops_session": cookie})
        assert late.status_code == 401 and "log in again" in late.json()["detail"]
        page = httpx.get(f"{base}/", cookies={"synapseops_session": cookie})
        assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_users_cli_creates_lists_and_refuses_short_passwords(console_db: str) -> None:
    env = {"SYNAPSEOPS_DATABASE_URL": console_db, "PATH": "/usr/bin:/bin"}
    name = f"bo-{uuid.uuid4().hex[:6]}"
    short = subprocess.run(
        [str(CLI), "users", "create", name, "--role", "approver", "--password-stdin"],
        env=env,
        input=b"short\n",
        capture_output=True,
    )
    assert short.returncode == 1 and b"at least 10 characters" in short.stderr
    made = subprocess.run(
        [str(CLI), "users", "create", name, "--role", "approver", "--password-stdin"],
        env=env,
        input=b"long enough pass\n",
        capture_output=True,
    )
    assert made.returncode == 0, made.stderr
    listed = subprocess.run([str(CLI), "users", "list", "--json"], env=env, capture_output=True)
    rows = {row["name"]: row for row in __import__("json").loads(listed.stdout)}
    assert rows[name]["roles"] == ["approver"] and "password_hash" not in rows[name]
    twice = subprocess.run(
        [str(CLI), "users", "create", name, "--role", "viewer", "--password-stdin"],
        env=env,
        input=b"long enough pass\n",
        capture_output=True,
    )
    assert twice.returncode == 1 and b"already exists" in twice.stderr
