"""The road's half of the error tree (drawn in :mod:`synapseops.errors`): the base, what is
retried (``RetryableError``) and what goes to the dead letter at once (``FatalError``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
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


class SendHeld(RateLimited):
    """A notification send the platform refused *for now* (429, the channel's rate gate).

    Not an attempt: the run that asked waits until ``until`` and sends then, off the retry
    tiers, so a long rate limit delays messages without spending their tries. Only a hold past
    ``SYNAPSEOPS_NOTIFICATIONS_MAX_HOLD_S`` is a plain :class:`RateLimited` again.
    """

    def __init__(self, message: str, *, until: datetime, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.until = until


class KafkaUnavailable(RetryableError):
    pass


class DatabaseUnavailable(RetryableError):
    pass


class SinkUnavailable(RetryableError):
    pass


class RecordBusy(RetryableError):
    """Another handler is syncing the same record right now (its lock is held)."""


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
