"""Console sessions: the signed cookie, the CSRF token, and the principal they stand for.

The cookie ``synapseops_session`` holds a session id signed with itsdangerous (HMAC-SHA256,
timestamped: a cookie older than the session lifetime is refused before any database read).
The id finds a ``console_sessions`` row (:mod:`sinks.principals.users`), which is the truth: logout,
disabling the user or a new password end it. Cookie flags: ``HttpOnly``, ``SameSite=Lax``
(a link from a Slack message to ``/dead-letters/42`` still arrives logged in), ``Secure``
outside dev, ``Max-Age`` the session lifetime; a login always makes a new id.

CSRF: the synchronizer token of a session is ``HMAC(key, "csrf" + session id)``: the pages
carry it (``<meta name="csrf-token">``, hidden form fields) and every request that is not a
read and rides on the cookie must send it back in ``X-CSRF-Token`` (fetch) or the form field
``csrf_token`` (the console's own login/logout forms); otherwise 403 with the reason. The
login form, before any session exists, is a double submit: a signed random cookie and the
same value in the form. API tokens (``Authorization: Bearer``) need no CSRF token: a browser
never adds that header by itself.

The signing key: ``SYNAPSEOPS_CONSOLE_SESSION_SECRET``, or derived from the credentials key
(``SYNAPSEOPS_CREDENTIALS_KEY``; in dev the data folder's key file) so no public default
exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

import sqlalchemy
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.types import Scope

from api.auth import Refused
from sinks.principals.users import session_principal
from synapseops.errors import ConfigurationError, DatabaseUnavailable
from synapseops.logging import get_logger
from synapseops.principals import Principal
from synapseops.settings import Settings

log = get_logger(__name__)

SESSION_COOKIE = "synapseops_session"
LOGIN_CSRF_COOKIE = "synapseops_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_KEY_LABEL = b"synapseops console session v1"


def signing_key(settings: Settings) -> bytes:
    """The console's key: its own setting, else an HMAC of the credentials key (a KDF step:
    the credentials key itself never signs anything)."""
    configured = settings.console.session_secret
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value().encode()
    from sinks.integration.credentials import dev_key

    source = settings.credentials_key.get_secret_value() if settings.credentials_key else ""
    keys = [part.strip() for part in source.split(",") if part.strip()]
    if keys:
        primary = keys[0].encode()
    elif settings.env == "dev":
        primary = dev_key(settings.data_dir)
    else:
        raise ConfigurationError(
            f"SYNAPSEOPS_ENV={settings.env} needs SYNAPSEOPS_CONSOLE_SESSION_SECRET or "
            "SYNAPSEOPS_CREDENTIALS_KEY to sign console sessions"
        )
    return hmac.new(primary, _KEY_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class CookiePolicy:
    secure: bool
    max_age_s: int

    @classmethod
    def of(cls, settings: Settings) -> CookiePolicy:
        secure = settings.console.secure_cookies
        return cls(
            secure=settings.env != "dev" if secure is None else secure,
            max_age_s=int(settings.console.session_hours * 3600),
        )


class SessionCodec:
    """Signs session ids into cookie values and derives their CSRF tokens (pure).

    ``key`` may be a function: the key is then made at first use, so an app built without
    one (a test of something else, outside dev) starts, and only a login needs it.
    """

    def __init__(self, key: bytes | Callable[[], bytes], max_age_s: int) -> None:
        self._make_key = key if callable(key) else (lambda: key)
        self.max_age_s = max_age_s

    @cached_property
    def _key(self) -> bytes:
        return self._make_key()

    @cached_property
    def _sessions(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._key, salt="synapseops.console.session")

    @cached_property
    def _login(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._key, salt="synapseops.console.login-csrf")

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.max_age_s)

    def cookie_value(self, session_id: str) -> str:
        return self._sessions.dumps(session_id)

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a cookie we signed within the lifetime, else None."""
        if not cookie:
            return None
        try:
            value = self._sessions.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        return str(value) if isinstance(value, str) else None

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self._key, b"csrf" + session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session_id: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(session_id), str(presented))

    # ---- the login form's double submit ------------------------------------------------

    def new_login_csrf(self) -> tuple[str, str]:
        """(cookie value, form value) of a fresh login form."""
        nonce = secrets.token_urlsafe(24)
        return self._login.dumps(nonce), nonce

    def login_csrf_ok(self, cookie: str | None, presented: str | None) -> bool:
        if not cookie or not presented:
            return False
        try:
            nonce = self._login.loads(cookie, max_age=3600)
        except BadSignature:
            return False
        return isinstance(nonce, str) and hmac.compare_digest(nonce, presented)


def cookie_of(scope: Scope, name: str) -> str | None:
    """One cookie of a raw ASGI scope (the middleware runs before any Request exists)."""
    for header, value in scope.get("headers", ()):
        if header != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, found = part.strip().partition("=")
            if key == name:
                return str(found)
    return None


def header_of(scope: Scope, name: bytes) -> str | None:
    for header, value in scope.get("headers", ()):
        if header == name:
            return str(value.decode("latin-1"))
    return None


class SessionAuth:
    """The console session as another way to be a principal of ``/api/v1``.

    :meth:`__call__` is what :class:`api.auth.PrincipalMiddleware` asks when a request has
    no ``Authorization`` header: None (no session cookie: the usual 401), a principal, or
    :class:`~api.auth.Refused` (401 session over, 403 CSRF token missing or wrong, 503).
    """

    def __init__(self, codec: SessionCodec, engine: Callable[[], sqlalchemy.Engine | None]) -> None:
        self.codec = codec
        self.engine = engine

    async def principal(self, session_id: str) -> Principal | None:
        engine = self.engine()
        if engine is None:
            return None
        try:
            return await asyncio.to_thread(session_principal, engine, session_id)
        except DatabaseUnavailable as exc:
            log.warning("sessions store unavailable", extra={"error": type(exc).__name__})
            raise Refused(503, "the principals store is unavailable; try again") from exc

    async def __call__(self, scope: Scope) -> Principal | None:
        cookie = cookie_of(scope, SESSION_COOKIE)
        if cookie is None:
            return None
        session_id = self.codec.session_id(cookie)
        if session_id is None:
            raise Refused(401, "the console session is invalid or expired; log in again")
        if scope["method"] not in SAFE_METHODS and not self.codec.csrf_ok(
            session_id, header_of(scope, CSRF_HEADER.encode())
        ):
            raise Refused(
                403,
                "CSRF token missing or wrong: a console session must send its X-CSRF-Token "
                "header on every request that changes something",
            )
        principal = await self.principal(session_id)
        if principal is None:
            raise Refused(401, "the console session has ended (logged out, expired or the "
                          "user was disabled); log in again")  # fmt: skip
        return principal
