"""The SSRF guard of outbound calls to connectors: which URLs, headers and addresses may be used.

On write (the connectors and endpoints API, :func:`check_outbound_config`): URLs are ``http`` or
``https`` with a host and without ``user:password@`` (secrets belong in a credential);
static headers name neither ``Host`` nor a hop-by-hop header and hold no control character;
an endpoint path is a path, never a URL of its own.

At call time (:class:`GuardedTransport`): the host is resolved and every address it resolves
to is checked *on the connection itself* — the transport connects to the very address it
checked, so a DNS answer that changes between check and connect (rebinding) cannot steer a
call inward. TLS still verifies, and SNI still names, the original host; ``Host`` stays the
URL's. Refused unless allow-listed: loopback, private (RFC 1918), carrier-grade NAT,
link-local (cloud metadata at 169.254.169.254 included), unique-local IPv6 (``fd00:ec2::254``
included), multicast, unspecified, reserved and documentation ranges; IPv4 mapped into IPv6,
6to4 and NAT64 addresses are judged by the IPv4 address inside them.

The allow-list (``SYNAPSEOPS_HTTP_ALLOWED_HOSTS``): comma-separated host names, IP addresses
or CIDR networks, each optionally with ``:port`` (IPv6 in brackets: ``[fd00::1]:8443``). A
host-name entry allows that name whatever it resolves to (an operator's own service name,
e.g. ``sandbox`` in Docker Compose). Dev and test default to the sandbox's address only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from synapseops.errors import OutboundConfigInvalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Python's is_global misses a few of these (multicast, NAT64), so the list is explicit.
_REFUSED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Headers a static endpoint config may not set: Host picks the virtual host (a way around
# the guard), the hop-by-hop ones belong to the connection, not the message.
FORBIDDEN_STATIC_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
    }
)


class AddressRefused(Exception):
    """The guard refused every address of a host; :mod:`sinks.http` maps it to the tree."""


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_internal(address: IPAddress) -> bool:
    """Whether ``address`` is anything but a public unicast address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return is_internal(inner)
    if isinstance(address, ipaddress.IPv6Address) and address.teredo is not None:
        return True
    return any(address in net for net in _REFUSED if net.version == address.version)


@dataclass(frozen=True)
class AllowEntry:
    network: IPNetwork | None
    host: str | None
    port: int | None

    def allows(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address in self.network
        return self.host == host.lower().rstrip(".")


def parse_allow_entry(text: str) -> AllowEntry:
    """``10.0.0.0/8``, ``127.0.0.1:8100``, ``[::1]:8443``, ``sandbox``, ``erp.internal:443``."""
    entry = text.strip()
    host, port = entry, None
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else None
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
        port = int(port_text)
    try:
        return AllowEntry(ipaddress.ip_network(host, strict=False), None, port)
    except ValueError:
        pass
    if not host or "/" in host:
        raise ValueError(f"not a host, address or network: {text!r}")
    return AllowEntry(None, host.lower().rstrip("."), port)


@dataclass(frozen=True)
class OutboundPolicy:
    """Public addresses always; internal ones only when an allow-list entry matches."""

    allowed: tuple[AllowEntry, ...] = ()

    @classmethod
    def parse(cls, allowed_hosts: str) -> OutboundPolicy:
        return cls(tuple(parse_allow_entry(p) for p in allowed_hosts.split(",") if p.strip()))

    def allows(self, host: str, address: IPAddress, port: int) -> bool:
        if any(entry.allows(host, address, port) for entry in self.allowed):
            return True
        return not is_internal(address)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and connects to the checked address (never resolves twice)."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None):
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
        allowed = [a for a in addresses if self._policy.allows(host, a, port)]
        if not allowed:
            shown = ", ".join(str(a) for a in addresses)
            raise AddressRefused(
                f"{host}:{port} resolves to {shown}: not a public address and not in "
                "SYNAPSEOPS_HTTP_ALLOWED_HOSTS"
            )
        last: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are not outbound targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over a :class:`GuardedBackend`, never through a proxy.

    httpx takes no network backend, so the connection pool it built is replaced by an
    equivalent one over the guard (httpx is pinned below 0.29, where ``_pool`` is the pool).
    """

    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(policy),
        )


# ---- on write ------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL with a host and no userinfo."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise OutboundConfigInvalid(f"base_url is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise OutboundConfigInvalid("base_url must be an http:// or https:// URL")
    if not parts.hostname:
        raise OutboundConfigInvalid("base_url has no host")
    if parts.username is not None or parts.password is not None:
        raise OutboundConfigInvalid(
            "base_url must not carry user:password@; put the secret in a credential"
        )
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise OutboundConfigInvalid("base_url holds a space or a control character")
    try:
        # What is stored must be callable: a host IDNA refuses (a code point no domain may
        # hold) passes urlsplit and would fail every call later, as a 500.
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise OutboundConfigInvalid(f"base_url is not a URL that can be called: {exc}") from None
    return url


def check_path(path: str) -> str:
    """An endpoint path: relative to the connector's URL, never a URL (or ``//host``) itself."""
    if "://" in path or path.startswith("//") or path.startswith("\\"):
        raise OutboundConfigInvalid("path must be a path (e.g. /orders), not a URL")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in path):
        raise OutboundConfigInvalid("path holds a space or a control character")
    return path


def is_forbidden_header(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in FORBIDDEN_STATIC_HEADERS or lowered.startswith("proxy-")


def check_static_headers(headers: Any) -> None:
    """``config.headers``: an object of header name → text, none of them forbidden."""
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise OutboundConfigInvalid("config.headers must be an object of header name → value")
    for name, value in headers.items():
        if is_forbidden_header(str(name)):
            raise OutboundConfigInvalid(
                f"config.headers may not set {name!r} (Host and hop-by-hop headers are the "
                "connection's)"
            )
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise OutboundConfigInvalid(f"config.headers.{name}: the value must be text")
        if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in str(name) + str(value)):
            raise OutboundConfigInvalid(f"config.headers.{name}: holds a control character")


def check_outbound_config(
    *,
    base_url: str | None = None,
    path: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Every rule of the guard that can be checked on write (raises OutboundConfigInvalid)."""
    if base_url is not None:
        check_url(base_url)
    if path is not None:
        check_path(path)
    if config is not None:
        check_static_headers(config.get("headers"))
