"""The fault book's decisions: exact by count, statistical by rate, latency on every request."""

from __future__ import annotations

import pytest

from sandbox.faults import Fault, FaultBook, FaultDecision, UnknownTarget

TARGETS = frozenset({"finance", "erp"})


def test_no_fault_passes_without_delay() -> None:
    book = FaultBook(TARGETS)
    decision = book.decide("finance", "/finance/v1/settlements")
    assert not decision.fails
    assert decision.latency_s == 0


def test_count_fails_exactly_the_next_n_then_stops() -> None:
    book = FaultBook(TARGETS)
    book.put(Fault(target="finance", count=3, status=500, error_rate=0.0))
    outcomes = [book.decide("finance", "/x").fail_status for _ in range(6)]
    assert outcomes == [500, 500, 500, None, None, None]
    (listed,) = book.list()
    assert (listed["remaining"], listed["injected"], listed["passed"]) == (0, 3, 3)


def test_count_zero_never_fails_but_latency_still_applies() -> None:
    book = FaultBook(TARGETS)
    book.put(Fault(target="erp", count=0, error_rate=1.0, latency_ms=250))
    decision = book.decide("erp", "/erp/api/orders")
    assert not decision.fails
    assert decision.latency_s == pytest.approx(0.25)


def test_faults_are_per_target() -> None:
    book = FaultBook(TARGETS)
    book.put(Fault(target="finance", count=1))
    assert not book.decide("erp", "/erp/api/orders").fails
    assert book.decide("finance", "/finance/v1/settlements").fails


def test_error_rate_is_roughly_the_share_of_failures_and_seed_repeats_it() -> None:
    def run() -> list[bool]:
        book = FaultBook(TARGETS)
        book.put(Fault(target="finance", error_rate=0.3, seed=7))
        return [book.decide("finance", "/x").fails for _ in range(2000)]

    first = run()
    assert 0.25 < sum(first) / len(first) < 0.35
    assert run() == first


def test_error_rate_one_always_fails_and_zero_never() -> None:
    book = FaultBook(TARGETS)
    book.put(Fault(target="finance", error_rate=1.0, status=503))
    assert all(book.decide("finance", "/x").fails for _ in range(50))
    book.put(Fault(target="finance", error_rate=0.0, latency_ms=10))
    assert not any(book.decide("finance", "/x").fails for _ in range(50))


def test_path_prefix_limits_the_fault() -> None:
    book = FaultBook(TARGETS)
    book.put(Fault(target="finance", count=5, path_prefix="/finance/v1/settlements"))
    assert not book.decide("finance", "/finance/v1/other").fails
    assert book.decide("finance", "/finance/v1/settlements").fails


def test_retry_after_only_on_429_and_503_rounded_up() -> None:
    assert FaultDecision(fail_status=429, retry_after_s=1.2).headers() == {"Retry-After": "2"}
    assert FaultDecision(fail_status=503, retry_after_s=3).headers() == {"Retry-After": "3"}
    assert FaultDecision(fail_status=500, retry_after_s=3).headers() == {}
    assert FaultDecision(fail_status=429).headers() == {}


def test_clear_one_target_or_all() -> None:
    book = FaultBook(TARGETS)
    book.put(Fault(target="finance", count=1))
    book.put(Fault(target="erp", count=1))
    assert book.clear("erp") == 1
    assert [f["target"] for f in book.list()] == ["finance"]
    assert book.clear() == 1
    assert book.list() == []


def test_unknown_target_and_bad_values_are_refused() -> None:
    book = FaultBook(TARGETS)
    with pytest.raises(UnknownTarget):
        book.put(Fault(target="nowhere"))
    with pytest.raises(ValueError):
        Fault(target="finance", error_rate=1.5)
    with pytest.raises(ValueError):
        Fault(target="finance", status=200)
