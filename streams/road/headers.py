"""The reliability road's Kafka headers, defined once, and the failure history they carry.

Every record on a retry tier or a dead-letter topic carries these headers; a replayed record
goes back to its pipeline's input with them, so its history survives the whole road. All
values are UTF-8 text; numbers are decimal, times are Unix epoch milliseconds (UTC).

==================================  ==========================================================
``synapseops-attempt``              failed tries so far; never reset, also not by a replay
                                    (1 on the first retry tier, 4 on the dead letter of a
                                    record that used three tiers)
``synapseops-retries``              retry-tier hops since the last replay; picks the next
                                    tier (a replay sets it back to 0)
``synapseops-original-topic``       where the record first failed (set on the first failure,
``synapseops-original-partition``   kept forever, also across replays)
``synapseops-original-offset``
``synapseops-original-timestamp``   the original record's Kafka timestamp (epoch ms)
``synapseops-pipeline``             the pipeline (processor) that failed it
``synapseops-error-kind``           ``retryable`` or ``fatal``
``synapseops-error-class``          the exception class, e.g. ``TargetUnavailable``
``synapseops-error-message``        ``str(exc)``, truncated to 1 KiB
``synapseops-error-trace``          the traceback's last 4 KiB (the innermost frames)
``synapseops-first-failed-at``      epoch ms of the first failure (kept forever)
``synapseops-last-failed-at``       epoch ms of the latest failure
``synapseops-not-before``           epoch ms before which a tier consumer must not retry it
``synapseops-replay-id``            the replay that last sent it back to its input
``synapseops-replay-count``         how many times it was replayed
==================================  ==========================================================

Every other header (``traceparent``, ``synapseops-event-id``, ...) travels untouched:
:class:`FailureHistory` keeps them in :attr:`FailureHistory.other`, in their order. The one the
router sets besides these is ``synapseops-message-kind`` (``synapseops/headers.py``): the kind
the record was handled as, so it is handled as that kind again wherever it waits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

ATTEMPT = "synapseops-attempt"
RETRIES = "synapseops-retries"
ORIGINAL_TOPIC = "synapseops-original-topic"
ORIGINAL_PARTITION = "synapseops-original-partition"
ORIGINAL_OFFSET = "synapseops-original-offset"
ORIGINAL_TIMESTAMP = "synapseops-original-timestamp"
PIPELINE = "synapseops-pipeline"
ERROR_KIND = "synapseops-error-kind"
ERROR_CLASS = "synapseops-error-class"
ERROR_MESSAGE = "synapseops-error-message"
ERROR_TRACE = "synapseops-error-trace"
FIRST_FAILED_AT = "synapseops-first-failed-at"
LAST_FAILED_AT = "synapseops-last-failed-at"
NOT_BEFORE = "synapseops-not-before"
REPLAY_ID = "synapseops-replay-id"
REPLAY_COUNT = "synapseops-replay-count"

MAX_MESSAGE_BYTES = 1024
MAX_TRACE_BYTES = 4096
_ELLIPSIS = "…"

HeaderList = list[tuple[str, bytes]]

# header name → FailureHistory field, in the order they are written.
_FIELD_OF: dict[str, str] = {
    ATTEMPT: "attempt",
    RETRIES: "retries",
    ORIGINAL_TOPIC: "original_topic",
    ORIGINAL_PARTITION: "original_partition",
    ORIGINAL_OFFSET: "original_offset",
    ORIGINAL_TIMESTAMP: "original_timestamp_ms",
    PIPELINE: "pipeline",
    ERROR_KIND: "error_kind",
    ERROR_CLASS: "error_class",
    ERROR_MESSAGE: "error_message",
    ERROR_TRACE: "error_trace",
    FIRST_FAILED_AT: "first_failed_at_ms",
    LAST_FAILED_AT: "last_failed_at_ms",
    NOT_BEFORE: "not_before_ms",
    REPLAY_ID: "replay_id",
    REPLAY_COUNT: "replay_count",
}
ROAD_HEADERS = frozenset(_FIELD_OF)
_COUNTERS = frozenset({"attempt", "retries", "replay_count"})
_INT_FIELDS = frozenset(
    {
        "attempt",
        "retries",
        "original_partition",
        "original_offset",
        "original_timestamp_ms",
        "first_failed_at_ms",
        "last_failed_at_ms",
        "not_before_ms",
        "replay_count",
    }
)


def truncate_head(text: str, max_bytes: int) -> str:
    """The start of ``text`` in at most ``max_bytes`` UTF-8 bytes (``…`` marks a cut)."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    budget = max_bytes - len(_ELLIPSIS.encode("utf-8"))
    return raw[:budget].decode("utf-8", "ignore") + _ELLIPSIS


def truncate_tail(text: str, max_bytes: int) -> str:
    """The end of ``text`` in at most ``max_bytes`` UTF-8 bytes: a traceback's last frames
    say where it failed, so that is the part worth keeping."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    budget = max_bytes - len(_ELLIPSIS.encode("utf-8"))
    return _ELLIPSIS + raw[len(raw) - budget :].decode("utf-8", "ignore")


def _parse_int(value: bytes) -> int | None:
    try:
        return int(value.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass(frozen=True)
class FailureHistory:
    """What the road knows about a record's failures, read from and written to its headers.

    ``None`` means "never set" (a record that never failed has only ``other`` headers).
    A malformed road header reads as unset rather than failing the record: the history is
    advisory, the record itself must keep moving.
    """

    attempt: int = 0
    retries: int = 0
    original_topic: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None
    original_timestamp_ms: int | None = None
    pipeline: str | None = None
    error_kind: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    error_trace: str | None = None
    first_failed_at_ms: int | None = None
    last_failed_at_ms: int | None = None
    not_before_ms: int | None = None
    replay_id: str | None = None
    replay_count: int = 0
    other: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]] | None) -> FailureHistory:
        values: dict[str, object] = {}
        other: list[tuple[str, bytes]] = []
        for name, value in headers or ():
            field_name = _FIELD_OF.get(name)
            if field_name is None:
                other.append((name, value if value is not None else b""))
                continue
            if value is None:
                continue
            if field_name in _INT_FIELDS:
                number = _parse_int(value)
                if number is not None:
                    values[field_name] = number
            else:
                values[field_name] = value.decode("utf-8", "replace")
        return cls(other=tuple(other), **values)  # type: ignore[arg-type]

    def to_headers(self) -> HeaderList:
        """Every non-road header first, untouched and in order, then the road's own."""
        result: HeaderList = list(self.other)
        for name, field_name in _FIELD_OF.items():
            value = getattr(self, field_name)
            # 0 is the default of the counters: leaving it out keeps a clean record clean.
            if value is None or (value == 0 and field_name in _COUNTERS):
                continue
            if field_name == "error_message":
                value = truncate_head(str(value), MAX_MESSAGE_BYTES)
            elif field_name == "error_trace":
                value = truncate_tail(str(value), MAX_TRACE_BYTES)
            result.append((name, str(value).encode("utf-8")))
        return result

    @property
    def has_failed(self) -> bool:
        return self.attempt > 0

    def after_failure(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int | None,
        pipeline: str,
        kind: str,
        error: BaseException,
        trace: str,
        now_ms: int,
        not_before_ms: int | None,
        retries: int,
    ) -> FailureHistory:
        """The history after one more failure of the record read at ``topic/partition/offset``.

        The original coordinates and first-failed-at are set by the first failure only;
        ``attempt`` always grows by one; ``retries`` is what the tier decision says.
        """
        first = not self.has_failed or self.original_topic is None
        return replace(
            self,
            attempt=self.attempt + 1,
            retries=retries,
            original_topic=topic if first else self.original_topic,
            original_partition=partition if first else self.original_partition,
            original_offset=offset if first else self.original_offset,
            original_timestamp_ms=timestamp_ms if first else self.original_timestamp_ms,
            first_failed_at_ms=(
                now_ms if first or self.first_failed_at_ms is None else self.first_failed_at_ms
            ),
            last_failed_at_ms=now_ms,
            pipeline=pipeline,
            error_kind=kind,
            error_class=type(error).__name__,
            error_message=truncate_head(str(error), MAX_MESSAGE_BYTES),
            error_trace=truncate_tail(trace, MAX_TRACE_BYTES),
            not_before_ms=not_before_ms,
        )

    def for_replay(self, replay_id: str) -> FailureHistory:
        """The history a replayed record carries back to its input: ``attempt`` and the
        original coordinates stay, the tier count starts over, the replay is counted."""
        return replace(
            self,
            retries=0,
            not_before_ms=None,
            replay_id=replay_id,
            replay_count=self.replay_count + 1,
        )


def road_header_names() -> tuple[str, ...]:
    """Every road header name, in the order :meth:`FailureHistory.to_headers` writes them."""
    return tuple(_FIELD_OF)
