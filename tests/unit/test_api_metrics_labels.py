"""Invented connector names never become metric labels (unauthenticated URL segments)."""

from __future__ import annotations

import uuid

from api import metrics


def test_invented_connector_names_share_one_label_and_real_ones_keep_theirs() -> None:
    invented = [f"made-up-{uuid.uuid4().hex[:8]}" for _ in range(metrics.MAX_SOURCE_LABELS + 5)]
    assert {metrics.connector_label(name) for name in invented} == {metrics.UNKNOWN_CONNECTOR}
    # 105 invented names later, a real connector still gets its own label.
    real = f"shop-{uuid.uuid4().hex[:8]}"
    assert metrics.connector_label(real) == metrics.UNKNOWN_CONNECTOR  # not looked up yet
    assert metrics.confirm_connector(real) == real
    assert metrics.connector_label(real) == real
