"""The answers' half of the error tree (drawn in :mod:`synapseops.errors`): errors that are
answers to a request or stop a process, never a record's failure on the road."""

from __future__ import annotations

from synapseops.errors.road import SynapseOpsError


class RecordError(SynapseOpsError):
    """A request about stored records cannot be done as asked; the API answers
    ``http_status`` with the message as ``detail`` (``api/main.py``, one handler)."""

    http_status = 400
    # Seconds after which the same request may succeed (answered as ``Retry-After``).
    retry_after_s: float | None = None


class RecordNotFound(RecordError):
    http_status = 404


class RecordConflict(RecordError):
    http_status = 409


class ReplayInProgress(RecordConflict):
    """A replay with this ``Idempotency-Key`` is running; ``retry_after_s``: when its lease
    goes stale if it stops renewing it (then a repeat takes it over)."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ReplayLeaseLost(RecordConflict):
    """Another request took this replay over (its lease went stale); this one stops."""


class RecordInvalid(RecordError):
    http_status = 422


class EmptyFilter(RecordInvalid, ValueError):
    """A replay or discard with no criterion at all; pass ``allow_all=True`` to mean it."""


class ReplayKeyReused(RecordInvalid, ValueError):
    """The ``Idempotency-Key`` was first used with another filter."""


class CredentialInvalid(RecordInvalid, ValueError):
    """A secret that breaks ``check_secret`` (the message never quotes the secret)."""


class OutboundConfigInvalid(RecordInvalid, ValueError):
    """A URL or a static header of a connector/endpoint config breaks the SSRF guard's rules."""


class ApprovalLinkInvalid(RecordInvalid):
    pass


class IngressRejected(SynapseOpsError):
    """An inbound request refused before anything was published: the HTTP ``http_status``,
    an ``error`` code, the ingress metric's ``outcome`` (``counted=True``: already counted,
    as ``api.publish.publish_event`` does for Kafka being unavailable) and the ``reason``."""

    http_status = 400
    error = "rejected"
    outcome: str | None = "invalid"

    def __init__(
        self,
        reason: str,
        *,
        http_status: int | None = None,
        error: str | None = None,
        outcome: str | None = None,
        counted: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        if http_status is not None:
            self.http_status = http_status
        if error is not None:
            self.error = error
        if outcome is not None:
            self.outcome = outcome
        if counted:
            self.outcome = None


class SignatureInvalid(IngressRejected):
    """A signature or token missing, malformed, stale or wrong (``reason`` says which)."""

    http_status = 401
    error = "invalid_signature"
    outcome = "unauthorized"


class BodyTooLarge(IngressRejected):
    """A request body over ``SYNAPSEOPS_API_MAX_BODY_BYTES`` (``api/body_limit.py`` raises it
    as an ``HTTPException`` too, since FastAPI's own body parsing lets only those through)."""

    http_status = 413
    error = "body_too_large"
    outcome = "too_large"


class IngressOverloaded(IngressRejected):
    """The API already holds as many webhooks, or as many bytes not yet acknowledged by
    Kafka, as it may (``api/overload.py``): refused with 503 and ``Retry-After`` instead of
    growing its memory; nothing was published."""

    http_status = 503
    error = "overloaded"
    outcome = "overloaded"


class LoginRequired(SynapseOpsError):
    """A console page asked without a live session (none, expired, revoked, user disabled);
    the console answers a redirect to its login page, which returns to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(f"log in to see {next_path}")
        self.next_path = next_path


class ConfigurationError(SynapseOpsError):
    """The process cannot start as configured."""


class BusinessRejection(SynapseOpsError):
    """The outside system refused on purpose; recorded as an outcome, never retried."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class FinanceRefused(BusinessRejection):
    """Finance said no to this settlement on purpose (402 account frozen, limits, ...)."""

    def __init__(self, reason: str, *, status: int, body: str) -> None:
        super().__init__(reason, code=str(status))
        self.status = status
        self.body = body
