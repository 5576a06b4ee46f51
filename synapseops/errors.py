"""The one error tree of the platform: what the road, the API and the CLI read.

::

    SynapseOpsError
    ├── RetryableError            → next retry tier (then the dead letter after the last one)
    │   ├── TargetUnavailable     connection refused / reset, 5xx from a target
    │   ├── TargetTimeout         the target did not answer in time
    │   ├── RateLimited           429; ``retry_after`` (seconds) is honoured by the tier
    │   ├── KafkaUnavailable      the broker did not take a record durably
    │   ├── DatabaseUnavailable   PostgreSQL down, failover, serialisation conflict
    │   └── SinkUnavailable       any other sink that will likely work later
    ├── FatalError                → dead-letter topic at once; retrying cannot help
    │   ├── Undecodable           bytes that are not what the topic carries
    │   ├── SchemaInvalid         decodes, but breaks the schema / pydantic model
    │   ├── UnknownKind           a message kind no handler of the pipeline takes
    │   ├── TargetRejected        3xx (never followed) or 4xx (other than 408/429) from a target
    │   ├── TargetForbidden       the SSRF guard refused the target's address (not allow-listed)
    │   ├── ResponseTooLarge      a target's 2xx body exceeded SYNAPSEOPS_HTTP_MAX_RESPONSE_BYTES
    │   ├── KafkaRejected         the broker refused a record for good (too large, unknown
    │   │                         topic or partition, invalid record); ``code`` says which
    │   ├── CredentialUnreadable  a stored credential does not open with the configured key(s)
    │   ├── MappingSpecInvalid    a mapping's rules do not compile; ``problems``, one per line
    │   ├── MappingFailed         a payload broke mapping rules; ``errors``, one per failed rule
    │   ├── TemplateFailed        a notification template failed to render (the same trigger
    │                             fails the same way)
    │   ├── ChannelUnknown        a workflow step names a notification channel that does not
    │                             exist or is disabled
    │   └── PayloadUntransformable  a data source's payload its TransformationLogic cannot
    │                             turn into canonical events; ``logic`` names the module
    ├── RecordError               → the API answers 404 / 409 / 422 (one handler, api/main.py)
    │   ├── RecordNotFound        404: no row with that id or name
    │   ├── RecordConflict        409: a unique name taken, a row still referenced
    │   │   ├── ReplayInProgress  a replay with this Idempotency-Key runs; ``retry_after_s``
    │   │   └── ReplayLeaseLost   another request took this replay over; this one stops
    │   └── RecordInvalid         422: a request that breaks a rule of the domain
    │       ├── EmptyFilter       a replay or discard with no criterion at all
    │       ├── ReplayKeyReused   an Idempotency-Key first used with another filter
    │       ├── CredentialInvalid a secret that cannot be stored and sent (never quoted)
    │       ├── OutboundConfigInvalid  a connector URL, path or static header the guard refuses
    │       └── ApprovalLinkInvalid  an approve/reject link forged, altered or expired
    ├── IngressRejected           an inbound HTTP request refused before anything is published;
    │   │                         ``http_status``, ``error`` (a code), ``outcome`` (the ingress
    │   │                         metric's label, None when already counted), ``reason``
    │   ├── SignatureInvalid      401: a signature or token missing, malformed, stale or wrong
    │   ├── BodyTooLarge          413: over SYNAPSEOPS_API_MAX_BODY_BYTES
    │   └── IngressOverloaded     503: the API holds all it may (SYNAPSEOPS_INGRESS_MAX_*)
    ├── LoginRequired             a console page without a live session: 303 to /login
    │                             (401 for a live fragment); ``next_path``, where to return
    ├── ConfigurationError        the process cannot start; never reaches a record
    └── BusinessRejection         the outside world said "no" on purpose: an outcome, recorded
        └── FinanceRefused        finance refused a settlement (402, limits); ``status``, ``body``

``BusinessRejection`` is not a failure of the platform: the road records it as an outcome and
never retries it. ``RecordError``, ``IngressRejected`` and ``LoginRequired`` never reach the
road: they are answers to a request. Some leaves are ``ValueError`` too, because pydantic
validators turn a ``ValueError`` into a 422 (a secret checked inside a request model, say).

Third-party exceptions (httpx, psycopg2, confluent-kafka) are wrapped at the boundary where
they happen (``raise TargetTimeout(...) from exc``) and never travel further up. Exceptions
that never leave the module raising them are control flow, not errors of the platform: the
mapping engine's ``Failed``/``TransformFailed``, the SSRF guard's ``AddressRefused``, and the
``ValueError``\\ s of the mapping's path and money parsers, which only pydantic validators see
(they become a ``MappingSpecInvalid`` or a 422).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class SynapseOpsError(Exception):
    """Base of every error this platform raises on purpose."""


class RetryableError(SynapseOpsError):
    """Trying again later may succeed."""

    retry_after: float | None = None


class TargetUnavailable(RetryableError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class TargetTimeout(RetryableError):
    pass


class RateLimited(RetryableError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KafkaUnavailable(RetryableError):
    pass


class DatabaseUnavailable(RetryableError):
    pass


class SinkUnavailable(RetryableError):
    pass


class FatalError(SynapseOpsError):
    """Retrying cannot help: the record goes to the dead-letter topic at once."""


class Undecodable(FatalError):
    pass


class SchemaInvalid(FatalError):
    pass


class UnknownKind(FatalError):
    pass


class TargetRejected(FatalError):
    def __init__(
        self, message: str, *, status: int, body: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class TargetForbidden(FatalError):
    pass


class ResponseTooLarge(FatalError):
    pass


class KafkaRejected(FatalError):
    """The broker (or the client, before sending) refused this record and always will.

    ``code`` is librdkafka's error name (``MSG_SIZE_TOO_LARGE``, ``UNKNOWN_TOPIC_OR_PART``,
    ...). Only :class:`KafkaUnavailable` is worth trying again.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def too_large(self) -> bool:
        return self.code in ("MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE")


class CredentialUnreadable(FatalError):
    """The ciphertext does not open with the configured key(s): the key changed or was lost.

    Fatal for a record (retrying cannot help); after the right key is configured, replay.
    """


class MappingSpecInvalid(FatalError):
    """The rule JSON cannot be compiled; ``problems`` has one message per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class RuleFailure(Protocol):
    """What :class:`MappingFailed` needs of one failed rule (``streams.mapping.RuleError``)."""

    @property
    def message(self) -> str: ...


class MappingFailed(FatalError):
    """A payload broke one or more rules (raised by ``MappingResult.raise_for_errors``);
    ``errors`` are the mapping's :class:`~streams.mapping.RuleError`\\ s, one per failed rule."""

    def __init__(self, errors: Sequence[RuleFailure]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = list(errors)


class TemplateFailed(FatalError):
    pass


class ChannelUnknown(FatalError):
    pass


class PayloadUntransformable(FatalError):
    """A payload a data source's TransformationLogic cannot turn into canonical events."""

    def __init__(self, message: str, *, logic: str = "") -> None:
        super().__init__(message)
        self.logic = logic


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


def classify(exc: BaseException) -> str:
    """``"retryable"``, ``"fatal"`` or ``"rejected"`` — the road's three ways out.

    Anything this platform did not anticipate is fatal: an unknown bug retried three times
    is still a bug, and the dead letter keeps the record and its trace for a person.
    """
    if isinstance(exc, BusinessRejection):
        return "rejected"
    if isinstance(exc, RetryableError | TimeoutError | ConnectionError):
        return "retryable"
    return "fatal"
