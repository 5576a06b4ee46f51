"""The SSRF guard's pure parts: which addresses are internal, the allow-list, write checks."""

from __future__ import annotations

import ipaddress

import pytest

from sinks.http_guard import OutboundPolicy, check_outbound_config, is_internal, parse_allow_entry
from synapseops.errors import OutboundConfigInvalid
from synapseops.settings import HttpSettings, SandboxSettings, Settings


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # AWS/GCP/Azure metadata
        "100.100.100.200",  # Alibaba metadata (carrier-grade NAT range)
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:db8::1",
    ],
)
def test_internal_addresses_are_refused_by_default(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert is_internal(ip)
    assert not OutboundPolicy().allows("target.example", ip, 443)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert OutboundPolicy().allows("target.example", ipaddress.ip_address(address), 443)


def test_allow_list_entries_by_address_network_name_and_port() -> None:
    policy = OutboundPolicy.parse("127.0.0.1:8100, 10.0.0.0/8, sandbox, [fd00::1]:8443")
    local = ipaddress.ip_address("127.0.0.1")
    assert policy.allows("127.0.0.1", local, 8100)
    assert not policy.allows("127.0.0.1", local, 8000)  # the API itself: not listed
    assert policy.allows("anything", ipaddress.ip_address("10.9.9.9"), 1)
    assert policy.allows("sandbox", ipaddress.ip_address("172.18.0.5"), 8100)
    assert policy.allows("SANDBOX.", ipaddress.ip_address("172.18.0.5"), 8100)
    assert not policy.allows("other", ipaddress.ip_address("172.18.0.5"), 8100)
    assert policy.allows("x", ipaddress.ip_address("fd00::1"), 8443)
    assert not policy.allows("x", ipaddress.ip_address("fd00::1"), 443)
    with pytest.raises(ValueError):
        parse_allow_entry("http://x/y")


def test_the_default_allow_list_is_the_sandbox_in_dev_and_nothing_in_prod() -> None:
    sandbox = SandboxSettings(host="127.0.0.1", port=8100)
    unset = HttpSettings(allowed_hosts=None)
    dev = Settings(env="dev", sandbox=sandbox, http=unset)
    assert dev.outbound_allowed_hosts == "127.0.0.1:8100"
    prod = Settings(env="prod", sandbox=sandbox, http=unset)
    assert prod.outbound_allowed_hosts == ""
    listed = Settings(env="prod", http=HttpSettings(allowed_hosts="erp.internal:443"))
    assert listed.outbound_allowed_hosts == "erp.internal:443"


@pytest.mark.parametrize(
    "base_url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_x",
        "ftp://x.example/",
        "http://",
        "https://user:pw@erp.example",
        "http://erp.example:99999/",
        "http://erp example/",
        "erp.example/orders",
        # schemathesis found it: urlsplit takes the host, IDNA (and so every call) refuses it
        "http://\U000d5925\u00a8\U00032de8\u00b2\u576fti^/",
    ],
)
def test_urls_other_than_plain_http_are_refused_on_write(base_url: str) -> None:
    with pytest.raises(OutboundConfigInvalid):
        check_outbound_config(base_url=base_url)


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "connection",
        "Keep-Alive",
        "Transfer-Encoding",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Authorization",
        "proxy-connection",
        "Content-Length",
    ],
)
def test_host_and_hop_by_hop_static_headers_are_refused(name: str) -> None:
    with pytest.raises(OutboundConfigInvalid):
        check_outbound_config(config={"headers": {name: "x"}})


def test_static_headers_and_paths_are_checked() -> None:
    check_outbound_config(
        base_url="https://erp.example/api", path="/orders", config={"headers": {"X-Tenant": "7"}}
    )
    for config in (
        {"headers": {"X-A": "a\r\nHost: evil"}},
        {"headers": ["X-A"]},
        {"headers": {"X-A": {"nested": 1}}},
    ):
        with pytest.raises(OutboundConfigInvalid):
            check_outbound_config(config=config)
    for path in ("http://169.254.169.254/latest", "//evil.example/x", "/a b"):
        with pytest.raises(OutboundConfigInvalid):
            check_outbound_config(path=path)
