"""The peers benchmark's output check: a run only counts when every record arrived exactly once,
byte-equal and under its own key — so the check must catch each way that fails."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.peers.orders import order_bytes, order_key
from bench.peers.verify import OutputCheck, Verdict, digest
from bench.peers.work import order_mapper

MAP = order_mapper()
RECORDS: list[tuple[bytes | None, bytes | None]] = [
    (order_key(n), MAP(order_bytes(n))) for n in range(5)
]
EXPECTED = {order_key(n): digest(MAP(order_bytes(n))) for n in range(5)}


def _verdict(records: list[tuple[bytes | None, bytes | None]]) -> Verdict:
    check = OutputCheck(EXPECTED)
    for key, value in records:
        check.add(key, value)
    return check.verdict()


def test_every_record_once_and_exact_is_ok_in_any_order() -> None:
    verdict = _verdict(list(reversed(RECORDS)))
    assert verdict.ok
    assert (verdict.expected, verdict.received) == (5, 5)


def test_a_missing_record_is_caught() -> None:
    verdict = _verdict(RECORDS[:-1])
    assert not verdict.ok
    assert (verdict.missing, verdict.doubled, verdict.altered) == (1, 0, 0)


def test_a_doubled_record_is_caught_even_when_the_count_is_right() -> None:
    # The last record is lost and the first one delivered twice: five records, not five orders.
    verdict = _verdict([RECORDS[0], *RECORDS[:-1]])
    assert verdict.received == verdict.expected
    assert not verdict.ok
    assert (verdict.missing, verdict.doubled) == (1, 1)


@pytest.mark.parametrize(
    "altered",
    [
        lambda value: value.replace(b'"total":"', b'"total":"1', 1),  # another amount
        lambda value: value + b" ",  # same JSON, other bytes
        lambda value: b"",
    ],
)
def test_an_altered_record_is_caught(altered: Callable[[bytes], bytes]) -> None:
    key, value = RECORDS[2]
    assert value is not None
    verdict = _verdict([*RECORDS[:2], (key, altered(value)), *RECORDS[3:]])
    assert not verdict.ok
    assert (verdict.altered, verdict.missing) == (1, 1)


def test_a_record_under_the_wrong_key_is_caught() -> None:
    swapped = [(RECORDS[1][0], RECORDS[0][1]), (RECORDS[0][0], RECORDS[1][1]), *RECORDS[2:]]
    assert _verdict(swapped).altered == 2
    unkeyed = _verdict([(None, RECORDS[0][1]), *RECORDS[1:]])
    assert (unkeyed.unexpected, unkeyed.missing) == (1, 1)


def test_orders_are_distinct_and_deterministic() -> None:
    assert order_bytes(7) == order_bytes(7)
    assert len({value for _, value in RECORDS}) == len(RECORDS)
    assert len(EXPECTED) == len(RECORDS)
