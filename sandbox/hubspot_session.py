"""Who is calling the HubSpot shape, and HubSpot's rate limits on them.

Every request needs ``Authorization: Bearer <token>`` (401 ``INVALID_AUTHENTICATION``; a
revoked token → 401 ``EXPIRED_AUTHENTICATION``). Each app (the app id behind its token, see
:mod:`sandbox.identity`) may make ``max_requests`` per rolling ``interval_ms`` and ``daily``
per day; every answer says where it stands in ``X-HubSpot-RateLimit-Max``, ``-Remaining``,
``-Interval-Milliseconds``, ``-Daily``, ``-Daily-Remaining``. Past the limit → 429 with
HubSpot's body (``errorType: RATE_LIMIT``, ``policyName: TEN_SECONDLY_ROLLING`` or
``DAILY``) and ``Retry-After`` (seconds until a slot frees; HubSpot itself may omit it, so a
client should also read the interval headers). Search requests also count against 5 per
second per account (``SECONDLY``) and carry no rate-limit headers, as on HubSpot.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from sandbox.crm import CrmStore
from sandbox.gate import Refusal, add_response_headers
from sandbox.identity import HUBSPOT_PORTAL_ID, Actor

DAY_S = 86_400


def store(request: Request) -> CrmStore:
    records: CrmStore = request.app.state.sandbox.hubspot
    return records


def error(status: int, category: str, message: str, **extra: Any) -> JSONResponse:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return JSONResponse(body, status_code=status)


def _rate_limited(message: str, policy: str, retry_after: str, group: str) -> Refusal:
    body = {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "groupName": group,
    }
    return Refusal(JSONResponse(body, status_code=429, headers={"Retry-After": retry_after}))


def open_session(request: Request, search: bool = False, metered: bool = True) -> Actor:
    """The actor behind the token, within the rate limits; raises :class:`Refusal` otherwise.

    ``metered=False`` for the sandbox's own feeds: they stand for webhooks HubSpot pushes,
    which use no API quota.
    """
    state = request.app.state.sandbox
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        message = (
            "Authentication credentials not found. This API supports OAuth 2.0 authentication "
            "and you can find more details at "
            "https://developers.hubspot.com/docs/methods/auth/oauth-overview"
        )
        raise Refusal(error(401, "INVALID_AUTHENTICATION", message))
    actor: Actor | None = state.hubspot_identities.authenticate(token.strip())
    if actor is None:
        message = "The OAuth token used to make this call expired or was revoked."
        raise Refusal(error(401, "EXPIRED_AUTHENTICATION", message))
    limits = state.limits.settings.hubspot
    if not limits.enabled or not metered:
        return actor
    app = f"{actor.app_id}:{HUBSPOT_PORTAL_ID}"
    if search:
        verdict = state.limits.rolling(
            f"hubspot-search:{HUBSPOT_PORTAL_ID}", limits.search_per_second, 1.0
        )
        if not verdict.allowed:
            message = "You have reached your secondly limit."
            raise _rate_limited(message, "SECONDLY", verdict.retry_after_header, f"search:{app}")
    window = state.limits.rolling(f"hubspot:{app}", limits.max_requests, limits.interval_ms / 1000)
    daily = state.limits.fixed(f"hubspot-daily:{app}", limits.daily, DAY_S, count=window.allowed)
    if not search:
        add_response_headers(
            request,
            {
                "X-HubSpot-RateLimit-Daily": str(limits.daily),
                "X-HubSpot-RateLimit-Daily-Remaining": str(daily.remaining),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(limits.interval_ms),
                "X-HubSpot-RateLimit-Max": str(limits.max_requests),
                "X-HubSpot-RateLimit-Remaining": str(window.remaining),
            },
        )
    if not window.allowed:
        message = "You have reached your ten_secondly_rolling limit."
        group = f"publicapi:app-api-ten-secondly:{app}"
        raise _rate_limited(message, "TEN_SECONDLY_ROLLING", window.retry_after_header, group)
    if not daily.allowed:
        group = f"publicapi:app-api-daily:{app}"
        message = "You have reached your daily limit."
        raise _rate_limited(message, "DAILY", daily.retry_after_header, group)
    return actor
