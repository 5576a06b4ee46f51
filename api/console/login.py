"""``/login`` and ``/logout``: a console user's session begins and ends here.

Login checks the form's CSRF double submit, then the password (:func:`sinks.principals.users.
verify_password`, argon2id), then starts a *new* session (a fresh id at every login, so a
session id planted before login is worth nothing) and sets its signed cookie. A wrong name or
password answers the same 401 page with the same text. Failed logins per name are slowed
down in this process (``FAILURE_DELAY_S`` per recent failure, at most ``MAX_DELAY_S``).
Logout (POST with the session's CSRF token) revokes the session row and clears the cookie.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.console.render import PagesDep
from api.console.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CookiePolicy,
    SessionAuth,
)
from api.deps import EngineDep, SettingsDep
from sinks.principals.users import end_session, start_session, verify_password
from synapseops.logging import get_logger

router = APIRouter(include_in_schema=False)
log = get_logger(__name__)

FAILURE_DELAY_S = 0.5
MAX_DELAY_S = 5.0
FAILURE_WINDOW_S = 300.0
_failures: dict[str, list[float]] = {}


def _safe_next(target: str | None) -> str:
    """Only a path of this site: ``//evil.example`` or ``https://...`` become ``/``."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _sessions(request: Request) -> SessionAuth:
    sessions: SessionAuth = request.app.state.console_sessions
    return sessions


def _login_page(
    request: Request, pages: PagesDep, next_path: str, error: str | None, code: int
) -> HTMLResponse:
    codec = _sessions(request).codec
    cookie, field = codec.new_login_csrf()
    response = pages.render(
        request, "login.html", None, next_path=next_path, error=error, csrf_field=field
    )
    response.status_code = code
    policy = CookiePolicy.of(request.app.state.settings)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, cookie, max_age=3600, httponly=True, samesite="strict",
        secure=policy.secure, path="/login",
    )  # fmt: skip
    return response


@router.get("/login")
def login_form(request: Request, pages: PagesDep, next: str | None = None) -> HTMLResponse:
    return _login_page(request, pages, _safe_next(next), None, status.HTTP_200_OK)


def _delay(name: str) -> float:
    now = time.monotonic()
    recent = [t for t in _failures.get(name, []) if now - t < FAILURE_WINDOW_S]
    _failures[name] = recent
    return min(MAX_DELAY_S, FAILURE_DELAY_S * len(recent))


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (the stdlib reads it; the body is capped by the app's limit)."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items() if values}


@router.post("/login")
async def login(
    request: Request, pages: PagesDep, engine: EngineDep, settings: SettingsDep
) -> Response:
    form = await _form(request)
    username, password = form.get("username", "")[:200], form.get("password", "")[:1024]
    csrf_token = form.get("csrf_token", "")
    target = _safe_next(form.get("next"))
    codec = _sessions(request).codec
    if not codec.login_csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_page(
            request, pages, target,
            "The form expired or was not sent by this page (CSRF check). Try again.",
            status.HTTP_403_FORBIDDEN,
        )  # fmt: skip
    name = username.strip().lower()
    await asyncio.sleep(_delay(name))
    user = await asyncio.to_thread(verify_password, engine, name, password)
    if user is None:
        _failures.setdefault(name, []).append(time.monotonic())
        log.info("console login refused", extra={"user": name})
        return _login_page(
            request, pages, target, "Wrong user name or password.", status.HTTP_401_UNAUTHORIZED
        )
    _failures.pop(name, None)
    earlier = codec.session_id(request.cookies.get(SESSION_COOKIE))
    if earlier is not None:
        # A new login ends the session this browser held: one live session per login.
        await asyncio.to_thread(end_session, engine, earlier)
    policy = CookiePolicy.of(settings)
    client = request.client.host if request.client else None
    session_id = await asyncio.to_thread(
        start_session, engine, user["id"], ttl=codec.ttl, client=client
    )
    log.info("console login", extra={"user": name})
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE, codec.cookie_value(session_id), max_age=policy.max_age_s,
        httponly=True, samesite="lax", secure=policy.secure, path="/",
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, engine: EngineDep) -> Response:
    csrf_token = (await _form(request)).get("csrf_token", "")
    codec = _sessions(request).codec
    session_id = codec.session_id(request.cookies.get(SESSION_COOKIE))
    if session_id is not None:
        if not codec.csrf_ok(session_id, csrf_token):
            return HTMLResponse(
                "CSRF token missing or wrong: log out from the console's own button.",
                status.HTTP_403_FORBIDDEN,
            )
        await asyncio.to_thread(end_session, engine, session_id)
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
