"""The one error tree of the platform: what the road, the API and the CLI read.

Drawn here, defined in two halves: :mod:`~synapseops.errors.road` (the base, retryable and
fatal leaves: what the road decides on) and :mod:`~synapseops.errors.answers` (answers to a
request, a process that cannot start, business outcomes). Import from this package only.

::

    SynapseOpsError
    ├── RetryableError            → next retry tier (then the dead letter after the last one)
    │   ├── TargetUnavailable     connection refused / reset, 5xx from a target
    │   ├── TargetTimeout         the target did not answer in time
    │   ├── RateLimited           429; ``retry_after`` (seconds) is honoured by the tier
    │   │   └── SendHeld          a notification send refused for now (429, its channel's
    │   │                         rate gate): the run waits until ``until`` off the tiers
    │   ├── KafkaUnavailable      the broker did not take a record durably
    │   ├── DatabaseUnavailable   PostgreSQL down, failover, serialisation conflict
    │   ├── SinkUnavailable       any other sink that will likely work later
    │   └── RecordBusy            another handler syncs the same record right now (its lock)
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

from synapseops.errors.answers import (
    ApprovalLinkInvalid,
    BodyTooLarge,
    BusinessRejection,
    ConfigurationError,
    CredentialInvalid,
    EmptyFilter,
    FinanceRefused,
    IngressOverloaded,
    IngressRejected,
    LoginRequired,
    OutboundConfigInvalid,
    RecordConflict,
    RecordError,
    RecordInvalid,
    RecordNotFound,
    ReplayInProgress,
    ReplayKeyReused,
    ReplayLeaseLost,
    SignatureInvalid,
)
from synapseops.errors.road import (
    ChannelUnknown,
    CredentialUnreadable,
    DatabaseUnavailable,
    FatalError,
    KafkaRejected,
    KafkaUnavailable,
    MappingFailed,
    MappingSpecInvalid,
    PayloadUntransformable,
    RateLimited,
    RecordBusy,
    ResponseTooLarge,
    RetryableError,
    RuleFailure,
    SchemaInvalid,
    SendHeld,
    SinkUnavailable,
    SynapseOpsError,
    TargetForbidden,
    TargetRejected,
    TargetTimeout,
    TargetUnavailable,
    TemplateFailed,
    Undecodable,
    UnknownKind,
)

__all__ = [
    "classify",
    "ApprovalLinkInvalid",
    "BodyTooLarge",
    "BusinessRejection",
    "ChannelUnknown",
    "ConfigurationError",
    "CredentialInvalid",
    "CredentialUnreadable",
    "DatabaseUnavailable",
    "EmptyFilter",
    "FatalError",
    "FinanceRefused",
    "IngressOverloaded",
    "IngressRejected",
    "KafkaRejected",
    "KafkaUnavailable",
    "LoginRequired",
    "MappingFailed",
    "MappingSpecInvalid",
    "OutboundConfigInvalid",
    "PayloadUntransformable",
    "RateLimited",
    "SendHeld",
    "RecordConflict",
    "RecordError",
    "RecordInvalid",
    "RecordNotFound",
    "ReplayInProgress",
    "ReplayKeyReused",
    "ReplayLeaseLost",
    "ResponseTooLarge",
    "RetryableError",
    "RuleFailure",
    "SchemaInvalid",
    "SignatureInvalid",
    "RecordBusy",
    "SinkUnavailable",
    "SynapseOpsError",
    "TargetForbidden",
    "TargetRejected",
    "TargetTimeout",
    "TargetUnavailable",
    "TemplateFailed",
    "Undecodable",
    "UnknownKind",
]


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
