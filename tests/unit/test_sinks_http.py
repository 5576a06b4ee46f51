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


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308, 300, 304])
def test_a_redirect_is_a_fatal_rejection_with_its_location(status: int) -> None:
    with pytest.raises(errors.TargetRejected) as caught:
        classify_response("erp", status, {"location": "https://elsewhere.example/orders"}, b"")
    assert errors.classify(caught.value) == "fatal"
    assert caught.value.status == status
    assert caught.value.headers["location"] == "https://elsewhere.example/orders"
    assert "https://elsewhere.example/orders" in str(caught.value)
    assert "not followed" in str(caught.value)


def test_an_echoed_secret_never_reaches_the_error() -> None:
    from synapseops.redaction import remember

    secret = "echoed-token-5f0c2b9e"
    remember(secret)
    body = f'{{"error": "bad token {secret}"}}'.encode()
    for status in (401, 503):
        with pytest.raises((errors.TargetRejected, errors.TargetUnavailable)) as caught:
            classify_response("erp", status, {"x-echo": secret}, body)
        error = caught.value
        assert secret not in str(error) and secret not in error.body
        assert secret not in str(error.headers)
