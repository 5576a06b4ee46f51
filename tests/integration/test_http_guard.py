"""The SSRF guard, the redirect rule and the body cap on real HTTP connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from sinks.http import HttpTarget, TargetResponse
from sinks.http_guard import OutboundPolicy
from synapseops.errors import (
    ResponseTooLarge,
    TargetForbidden,
    TargetRejected,
    TargetTimeout,
    TargetUnavailable,
)
from tests.integration.echo_target import EchoTarget, echo_target

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def target() -> Iterator[EchoTarget]:
    with echo_target() as served:
        yield served


def _port(target: EchoTarget) -> int:
    return int(target.url.rsplit(":", 1)[1])


def call(
    base_url: str, path: str, policy: OutboundPolicy, *, cap: int = 1_048_576
) -> TargetResponse:
    async def go() -> TargetResponse:
        client = HttpTarget("erp", base_url, timeout_s=2.0, guard=policy, max_response_bytes=cap)
        try:
            return await client.request("POST", path, content=b"{}")
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_loopback_is_refused_unless_allow_listed(target: EchoTarget) -> None:
    before = len(target.received)
    for base in (target.url, target.url.replace("127.0.0.1", "localhost")):
        with pytest.raises(TargetForbidden, match="SYNAPSEOPS_HTTP_ALLOWED_HOSTS"):
            call(base, "/landing", OutboundPolicy())
    # Another port of the same address is not the allow-listed service.
    with pytest.raises(TargetForbidden):
        call(target.url, "/landing", OutboundPolicy.parse(f"127.0.0.1:{_port(target) + 1}"))
    assert len(target.received) == before  # nothing reached the server
    answer = call(target.url, "/landing", OutboundPolicy.parse(f"127.0.0.1:{_port(target)}"))
    assert answer.status == 200 and answer.json() == {"landed": True}


def test_metadata_addresses_are_refused_without_a_connection() -> None:
    for base in ("http://169.254.169.254", "http://[fd00:ec2::254]", "http://[::ffff:127.0.0.1]"):
        with pytest.raises(TargetForbidden):
            call(base, "/latest/meta-data/", OutboundPolicy())


def test_the_guard_connects_to_the_address_it_checked(
    target: EchoTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the first answer is public, every later one points inward. The guard
    resolves once per connection and dials the checked address, so nothing reaches us."""
    answers: list[str] = []
    real = asyncio.BaseEventLoop.getaddrinfo

    async def rebinding(self: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.example":
            return await real(self, host, port, *args, **kwargs)
        # The first answer is public (and unreachable from here): the call must go there.
        address = "8.8.8.8" if not answers else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", rebinding)
    before = len(target.received)
    with pytest.raises((TargetUnavailable, TargetTimeout)):
        call(f"http://rebind.example:{_port(target)}", "/landing", OutboundPolicy())
    # Resolved once, dialled where it was checked: the inward answer was never asked for.
    assert answers == ["8.8.8.8"] and len(target.received) == before


def test_a_redirect_is_rejected_and_never_followed(target: EchoTarget) -> None:
    policy = OutboundPolicy.parse("127.0.0.1")
    before = target.paths().count("/landing")
    with pytest.raises(TargetRejected) as caught:
        call(target.url, "/redirect", policy)
    assert caught.value.status == 302 and caught.value.headers["location"] == "/landing"
    assert target.paths().count("/landing") == before


@pytest.mark.parametrize("chunked", [0, 1])
def test_an_oversized_2xx_body_is_fatal_and_never_read_whole(
    target: EchoTarget, chunked: int
) -> None:
    policy = OutboundPolicy.parse("127.0.0.1")
    with pytest.raises(ResponseTooLarge, match="4096 bytes"):
        call(target.url, f"/big/{3 * 1024 * 1024}?chunked={chunked}", policy, cap=4096)
    exact = call(target.url, f"/big/4096?chunked={chunked}", policy, cap=4096)
    assert len(exact.body) == 4096


def test_an_error_body_is_cut_to_the_cap(target: EchoTarget) -> None:
    policy = OutboundPolicy.parse("127.0.0.1")
    with pytest.raises(TargetUnavailable) as caught:
        call(target.url, "/echo/503", policy, cap=1024)
    assert caught.value.status == 503 and len(caught.value.body) <= 2048
