import pytest

from sinks.http import classify_response, retry_after_seconds
from synapseops import errors


def test_success_passes() -> None:
    classify_response("erp", 201, {}, b"{}")


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, errors.RateLimited, "retryable"),
        (500, errors.TargetUnavailable, "retryable"),
        (503, errors.TargetUnavailable, "retryable"),
        (408, errors.TargetUnavailable, "retryable"),
        (400, errors.TargetRejected, "fatal"),
        (404, errors.TargetRejected, "fatal"),
        (422, errors.TargetRejected, "fatal"),
    ],
)
def test_failures_map_to_the_error_tree(status: int, error: type, kind: str) -> None:
    with pytest.raises(error) as caught:
        classify_response("erp", status, {"retry-after": "7"}, b'{"error":"x"}')
    assert errors.classify(caught.value) == kind
    if status in (429, 503):
        assert caught.value.retry_after == 7.0


def test_rejection_keeps_status_and_body() -> None:
    with pytest.raises(errors.TargetRejected) as caught:
        classify_response("finance", 402, {}, b'{"error":"account_frozen"}')
    assert caught.value.status == 402
    assert "account_frozen" in caught.value.body


def test_retry_after_forms() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
