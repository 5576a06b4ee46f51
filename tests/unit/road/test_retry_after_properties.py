"""``Retry-After`` from any target: parsed (delta-seconds, HTTP dates) or ignored, never a crash,
and never more than the road's cap once it reaches a tier decision."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hypothesis import example, given
from hypothesis import strategies as st

from sinks.http import classify_response, retry_after_seconds
from streams.road.tiers import capped_retry_after
from synapseops.errors import RateLimited, TargetUnavailable

NOW = 1_700_000_000.0
CAP = 3600.0


@given(st.integers(min_value=0, max_value=10**30))
def test_delta_seconds_are_read_as_seconds(seconds: int) -> None:
    assert retry_after_seconds(str(seconds), now=NOW) == float(seconds)
    assert retry_after_seconds(f"  {seconds}\t", now=NOW) == float(seconds)


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)))
def test_http_dates_are_seconds_from_now_never_negative(moment: datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    expected = max(0.0, moment.timestamp() - NOW)
    assert retry_after_seconds(format_datetime(moment, usegmt=True), now=NOW) == expected
    # "-0000" (zone unknown) is read as GMT too, not as the host's local time.
    unknown_zone = format_datetime(moment.replace(tzinfo=None))
    assert retry_after_seconds(unknown_zone, now=NOW) == expected


@given(st.integers(min_value=1, max_value=10**9))
def test_negative_and_fractional_numbers_are_not_delta_seconds(seconds: int) -> None:
    assert retry_after_seconds(f"-{seconds}", now=NOW) is None
    assert retry_after_seconds(f"{seconds}.5", now=NOW) is None


@example("²")  # a digit to str.isdigit, not to float(): used to raise ValueError
@example("٣")  # an Arabic-Indic digit is not an RFC 9110 DIGIT
@example("9" * 400)  # huge: infinity, which the road's cap turns into the cap
@example("Wed, 21 Oct 2999 07:28:00 GMT")
@given(st.text(max_size=60))
def test_any_header_value_parses_to_nothing_or_a_wait_the_road_caps(value: str) -> None:
    seconds = retry_after_seconds(value, now=NOW)
    assert seconds is None or (seconds >= 0 and not math.isnan(seconds))
    honoured = capped_retry_after(seconds, CAP)
    assert honoured is None or 0 < honoured <= CAP


@given(st.text(max_size=40), st.sampled_from([429, 503]))
def test_a_target_answer_with_any_retry_after_is_retryable(value: str, status: int) -> None:
    try:
        classify_response("erp", status, {"retry-after": value}, b"slow down")
    except (RateLimited, TargetUnavailable) as exc:
        assert exc.retry_after is None or exc.retry_after >= 0
    else:  # pragma: no cover - a 429/503 always raises
        raise AssertionError("no error raised")


def test_a_date_in_the_past_means_now() -> None:
    past = format_datetime(datetime.fromtimestamp(NOW, UTC) - timedelta(days=3), usegmt=True)
    assert retry_after_seconds(past, now=NOW) == 0.0
    assert capped_retry_after(0.0, CAP) is None
