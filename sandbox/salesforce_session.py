"""Who is calling the Salesforce shape, and whether the org still has API requests left."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from sandbox.crm import CrmStore
from sandbox.gate import Refusal, add_response_headers
from sandbox.identity import Actor
from sandbox.salesforce_rules import FieldError, error_body

ORG_KEY = "salesforce:org"
DAY_S = 86_400


def store(request: Request) -> CrmStore:
    records: CrmStore = request.app.state.sandbox.salesforce
    return records


def _client_option(request: Request) -> str | None:
    """``Sforce-Call-Options: client=SampleCaseSensitiveToken/100`` → the client id."""
    for part in request.headers.get("sforce-call-options", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "client" and value.strip():
            return value.strip()
    return None


def open_session(request: Request, metered: bool = True) -> Actor:
    """The actor behind the bearer token; raises :class:`Refusal` with Salesforce's answer.

    ``metered=False``: the change feeds, which Salesforce counts as delivered events, not as
    API requests.
    """
    state = request.app.state.sandbox
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    actor = state.salesforce_identities.authenticate(token.strip()) if token.strip() else None
    if scheme.lower() != "bearer" or actor is None:
        error = FieldError("INVALID_SESSION_ID", "Session expired or invalid")
        raise Refusal(JSONResponse(error_body([error]), status_code=401))
    limits = state.limits.settings.salesforce
    if limits.enabled and metered:
        verdict = state.limits.fixed(ORG_KEY, limits.daily_requests, DAY_S)
        used = verdict.limit - verdict.remaining
        add_response_headers(request, {"Sforce-Limit-Info": f"api-usage={used}/{verdict.limit}"})
        if not verdict.allowed:
            error = FieldError("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            raise Refusal(JSONResponse(error_body([error]), status_code=403))
    authenticated: Actor = actor.with_client(_client_option(request))
    return authenticated
