"""Idempotency-key semantics of the sandbox's finance system (Stripe / IETF draft)."""

from __future__ import annotations

import pytest

from sandbox.idempotency import (
    ClaimState,
    IdempotencyStore,
    StoredResponse,
    fingerprint,
)


def test_first_claim_starts_then_same_request_replays_the_stored_response() -> None:
    store = IdempotencyStore()
    fp = fingerprint("POST", "/finance/v1/settlements", {"amount": 100})
    assert store.begin("k1", fp).state is ClaimState.STARTED
    store.complete("k1", StoredResponse(201, {"reference": "fin_1"}))
    claim = store.begin("k1", fp)
    assert claim.state is ClaimState.REPLAY
    assert claim.response == StoredResponse(201, {"reference": "fin_1"})


def test_same_key_while_in_flight_is_a_conflict() -> None:
    store = IdempotencyStore()
    fp = fingerprint("POST", "/p", {"a": 1})
    store.begin("k", fp)
    assert store.begin("k", fp).state is ClaimState.IN_FLIGHT


def test_same_key_with_another_body_is_a_mismatch_in_flight_or_done() -> None:
    store = IdempotencyStore()
    store.begin("k", fingerprint("POST", "/p", {"a": 1}))
    other = fingerprint("POST", "/p", {"a": 2})
    assert store.begin("k", other).state is ClaimState.MISMATCH
    store.complete("k", StoredResponse(402, {"error": "account_frozen"}))
    assert store.begin("k", other).state is ClaimState.MISMATCH


def test_fingerprint_ignores_key_order_but_not_values_or_path() -> None:
    base = fingerprint("POST", "/p", {"a": 1, "b": {"c": 2, "d": 3}})
    assert base == fingerprint("post", "/p", {"b": {"d": 3, "c": 2}, "a": 1})
    assert base != fingerprint("POST", "/p", {"a": 1, "b": {"c": 2, "d": 4}})
    assert base != fingerprint("POST", "/q", {"a": 1, "b": {"c": 2, "d": 3}})


def test_release_frees_an_unfinished_key_but_not_a_completed_one() -> None:
    store = IdempotencyStore()
    fp = fingerprint("POST", "/p", {})
    store.begin("k", fp)
    store.release("k")
    assert store.begin("k", fingerprint("POST", "/p", {"new": True})).state is ClaimState.STARTED
    store.complete("k", StoredResponse(201, {}))
    store.release("k")
    assert len(store) == 1


def test_complete_without_claim_is_an_error() -> None:
    store = IdempotencyStore()
    with pytest.raises(KeyError):
        store.complete("never", StoredResponse(201, {}))
