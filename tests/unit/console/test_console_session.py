"""The console's cookie and CSRF machinery, without I/O: what is signed verifies, what is
touched does not, the principal middleware asks the session only when no token is sent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.auth import Refused
from api.console.login import _safe_next
from api.console.session import (
    CookiePolicy,
    SessionAuth,
    SessionCodec,
    cookie_of,
    signing_key,
)
from api.main import create_app
from synapseops.errors import ConfigurationError
from synapseops.principals import Principal, Role
from synapseops.settings import ConsoleSettings, Settings
from tests.unit.test_api_app import RecordingProducer
from tests.unit.test_api_auth import TOKEN, settings

CODEC = SessionCodec(b"k" * 32, 3600)


def test_a_signed_session_id_reads_back_and_a_touched_one_does_not() -> None:
    cookie = CODEC.cookie_value("session-1")
    assert CODEC.session_id(cookie) == "session-1"
    # A character inside the signature: the last one may carry only unused base64 bits, so
    # changing it can leave the signature's bytes as they were (this test failed so, rarely).
    at = len(cookie) - 5
    touched = cookie[:at] + ("A" if cookie[at] != "A" else "B") + cookie[at + 1 :]
    assert CODEC.session_id(touched) is None
    assert CODEC.session_id(SessionCodec(b"other" * 8, 3600).cookie_value("session-1")) is None
    assert CODEC.session_id("") is None and CODEC.session_id(None) is None


def test_csrf_tokens_belong_to_their_session() -> None:
    token = CODEC.csrf_token("s1")
    assert CODEC.csrf_ok("s1", token)
    assert not CODEC.csrf_ok("s2", token)
    assert not CODEC.csrf_ok("s1", None) and not CODEC.csrf_ok("s1", "")


def test_the_login_forms_double_submit_needs_both_halves() -> None:
    cookie, field = CODEC.new_login_csrf()
    assert CODEC.login_csrf_ok(cookie, field)
    assert not CODEC.login_csrf_ok(cookie, field + "x")
    assert not CODEC.login_csrf_ok(None, field)
    # A cookie not signed by us (planted from a sibling domain) is worth nothing.
    assert not CODEC.login_csrf_ok(field, field)


def test_the_key_is_derived_never_public_and_refused_outside_dev_without_a_secret(
    tmp_path: Any,
) -> None:
    dev = Settings(env="dev", data_dir=tmp_path)
    assert signing_key(dev) == signing_key(dev) and len(signing_key(dev)) == 32
    own = Settings(env="prod", console=ConsoleSettings(session_secret=SecretStr("s" * 40)))
    assert signing_key(own) == b"s" * 40
    with pytest.raises(ConfigurationError, match="SYNAPSEOPS_CONSOLE_SESSION_SECRET"):
        signing_key(Settings(env="prod", credentials_key=None, data_dir=tmp_path))
    assert CookiePolicy.of(dev).secure is False
    assert CookiePolicy.of(Settings(env="test", data_dir=tmp_path)).secure is True


@pytest.mark.parametrize(
    ("target", "safe"),
    [("/dead-letters/4?x=1", "/dead-letters/4?x=1"), ("//evil.example", "/"),
     ("https://evil.example/", "/"), ("javascript:alert(1)", "/"), (None, "/"), ("", "/")],
)  # fmt: skip
def test_login_goes_back_only_to_a_path_of_this_site(target: str | None, safe: str) -> None:
    assert _safe_next(target) == safe


def test_cookie_of_reads_one_cookie_of_a_raw_scope() -> None:
    scope = {"headers": [(b"cookie", b"a=1; synapseops_session=abc.def; b=2")]}
    assert cookie_of(scope, "synapseops_session") == "abc.def"
    assert cookie_of(scope, "missing") is None


def test_a_bearer_token_wins_over_a_session_and_a_session_alone_is_asked() -> None:
    asked: list[str] = []
    viewer = Principal(kind="user", name="ana", roles=frozenset({Role.VIEWER}))

    class FakeSessions(SessionAuth):
        async def __call__(self, scope: Any) -> Principal | None:
            asked.append(scope["path"])
            return viewer if cookie_of(scope, "synapseops_session") else None

    app: FastAPI = create_app(settings(), producer=RecordingProducer())  # type: ignore[arg-type]
    for middleware in app.user_middleware:
        if middleware.cls.__name__ == "PrincipalMiddleware":
            middleware.kwargs["sessions"] = FakeSessions(CODEC, lambda: None)
    with TestClient(app) as client:
        as_admin = client.post(
            "/api/v1/dead-letters/discard", json={}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert as_admin.status_code != 403 and asked == []
        client.cookies.set("synapseops_session", "x")
        as_viewer = client.post("/api/v1/dead-letters/discard", json={})
        assert as_viewer.status_code == 403
        assert "needs role operator; user:ana holds viewer" in as_viewer.json()["detail"]
        assert asked == ["/api/v1/dead-letters/discard"]


def test_a_session_without_its_csrf_header_is_refused_before_any_lookup() -> None:
    looked_up: list[str] = []

    class Counting(SessionAuth):
        async def principal(self, session_id: str) -> Principal | None:
            looked_up.append(session_id)
            return None

    auth = Counting(CODEC, lambda: None)
    cookie = CODEC.cookie_value("s1").encode()
    scope = {
        "method": "POST",
        "path": "/api/v1/x",
        "headers": [(b"cookie", b"synapseops_session=" + cookie)],
    }
    with pytest.raises(Refused) as refused:
        asyncio.run(auth(scope))
    assert refused.value.status_code == 403 and "CSRF" in refused.value.reason
    assert looked_up == []
    scope["method"] = "GET"
    with pytest.raises(Refused) as ended:
        asyncio.run(auth(scope))
    assert ended.value.status_code == 401 and looked_up == ["s1"]


@pytest.mark.parametrize("path", ["/login", "/health", "/api/v1/events", "/no-such-page"])
def test_every_answer_carries_its_server_time_pages_refusals_and_404s_alike(path: str) -> None:
    app = create_app(settings(), producer=RecordingProducer())
    with TestClient(app) as client:
        answer = client.get(path, follow_redirects=False)
    timing = answer.headers.get("server-timing", "")
    assert timing.startswith("app;dur="), (answer.status_code, dict(answer.headers))
    assert float(timing.removeprefix("app;dur=")) >= 0
