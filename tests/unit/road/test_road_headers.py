"""The road's failure history: headers in, headers out, other headers untouched."""

from __future__ import annotations

from dataclasses import fields

from streams.road import headers as rh
from streams.road.headers import FailureHistory, truncate_head, truncate_tail
from synapseops.errors import TargetUnavailable

OTHER = [
    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("synapseops-event-id", b"evt_1"),
    ("x-binary", b"\xff\x00\xfe"),
    ("synapseops-event-id", b"evt_repeat"),
]


def _failed_once() -> FailureHistory:
    return FailureHistory.from_headers(OTHER).after_failure(
        topic="in",
        partition=3,
        offset=41,
        timestamp_ms=1_700_000_000_000,
        pipeline="p",
        kind="retryable",
        error=TargetUnavailable("erp said 503"),
        trace="Traceback ...",
        now_ms=1_700_000_001_000,
        not_before_ms=1_700_000_011_000,
        retries=1,
    )


def test_every_field_has_a_header_and_every_header_a_field() -> None:
    names = {f.name for f in fields(FailureHistory)} - {"other"}
    assert len(rh.road_header_names()) == len(names) == 16
    assert all(name.startswith("synapseops-") for name in rh.road_header_names())


def test_clean_record_keeps_its_headers_exactly() -> None:
    history = FailureHistory.from_headers(OTHER)
    assert history == FailureHistory(other=tuple(OTHER))
    assert history.to_headers() == OTHER
    assert not history.has_failed


def test_round_trip_of_a_full_history() -> None:
    history = _failed_once().for_replay("rpl_1")
    assert FailureHistory.from_headers(history.to_headers()) == history
    written = dict(history.to_headers())
    assert written[rh.ATTEMPT] == b"1"
    assert written[rh.ORIGINAL_OFFSET] == b"41"
    assert written[rh.REPLAY_ID] == b"rpl_1"
    assert history.to_headers()[: len(OTHER)] == OTHER


def test_original_coordinates_and_first_failure_are_kept_forever() -> None:
    first = _failed_once()
    second = first.after_failure(
        topic="p.retry.10s",
        partition=0,
        offset=7,
        timestamp_ms=1,
        pipeline="p",
        kind="fatal",
        error=ValueError("boom"),
        trace="t",
        now_ms=1_700_000_020_000,
        not_before_ms=None,
        retries=1,
    )
    assert (second.original_topic, second.original_partition, second.original_offset) == (
        "in",
        3,
        41,
    )
    assert second.original_timestamp_ms == 1_700_000_000_000
    assert second.first_failed_at_ms == 1_700_000_001_000
    assert second.last_failed_at_ms == 1_700_000_020_000
    assert second.attempt == 2
    assert second.error_class == "ValueError"
    assert second.error_kind == "fatal"
    assert second.not_before_ms is None


def test_replay_restarts_the_tiers_but_never_the_attempts() -> None:
    replayed = _failed_once().for_replay("rpl_a").for_replay("rpl_b")
    assert replayed.attempt == 1
    assert replayed.retries == 0
    assert replayed.replay_count == 2
    assert replayed.replay_id == "rpl_b"
    assert replayed.not_before_ms is None


def test_error_text_is_truncated_in_utf8_bytes() -> None:
    long_message = "é" * 5000
    history = _failed_once()
    history = history.after_failure(
        topic="in",
        partition=0,
        offset=0,
        timestamp_ms=None,
        pipeline="p",
        kind="retryable",
        error=RuntimeError(long_message),
        trace="frame\n" * 2000 + "the innermost frame",
        now_ms=2,
        not_before_ms=3,
        retries=2,
    )
    written = dict(history.to_headers())
    assert len(written[rh.ERROR_MESSAGE]) <= rh.MAX_MESSAGE_BYTES
    assert written[rh.ERROR_MESSAGE].decode("utf-8").startswith("éé")
    assert len(written[rh.ERROR_TRACE]) <= rh.MAX_TRACE_BYTES
    assert written[rh.ERROR_TRACE].decode("utf-8").endswith("the innermost frame")
    assert truncate_head("short", 10) == "short"
    assert truncate_tail("abcdef", 5) == "…ef"
    assert truncate_head("abcdef", 5) == "ab…"


def test_malformed_road_headers_read_as_unset() -> None:
    history = FailureHistory.from_headers(
        [(rh.ATTEMPT, b"two"), (rh.NOT_BEFORE, b"\xff"), (rh.PIPELINE, None), ("a", None)]
    )
    assert history.attempt == 0
    assert history.not_before_ms is None
    assert history.pipeline is None
    assert history.other == (("a", b""),)
