"""The one error tree the reliability road reads.

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
    │   └── KafkaRejected         the broker refused a record for good (too large, unknown
    │                             topic or partition, invalid record); ``code`` says which
    └── ConfigurationError        the process cannot start; never reaches a record

``BusinessRejection`` is not an error of the platform: a service raises it when the outside
world said "no" on purpose (finance refused a settlement). The road records it as an outcome.

Third-party exceptions (httpx, psycopg2, confluent-kafka) are wrapped at the boundary where
they happen (``raise TargetTimeout(...) from exc``) and never travel further up.
"""

from __future__ import annotations

from collections.abc import Mapping


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


class ConfigurationError(SynapseOpsError):
    """The process cannot start as configured."""


class BusinessRejection(SynapseOpsError):
    """The outside system refused on purpose; recorded as an outcome, never retried."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


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
