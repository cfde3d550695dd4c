"""Which webhook targets the dispatcher may reach (SSRF defence).

A target is allowed when its scheme is https (or http, with ``PLACEWATCH_NOTIFY_ALLOW_HTTP``)
and every address its host resolves to is public: loopback, private (RFC 1918, fc00::/7),
link-local (169.254/16 with the cloud metadata address, fe80::/10), shared (CGNAT, 100.64/10),
unspecified, multicast, reserved and other addresses that are not globally reachable are refused,
also when written as IPv4-mapped, NAT64 or 6to4 IPv6 -- unless inside a network of
``PLACEWATCH_NOTIFY_ALLOWED_NETWORKS``.

Two checks use this policy. ``placewatch teams apply`` checks the scheme and a host written as
an address (or named ``localhost``) without resolving DNS: names resolve differently where the
dispatcher runs, and the check that matters is the next one. The dispatcher's connections go
through :class:`GuardedBackend`: it resolves the host, refuses the connection unless every address
is allowed, and connects to an address it checked. So a name that answers a public address to
a check and a private one to the connection (DNS rebinding) cannot get past it; the Host header
and TLS server name stay the URL's host, as httpcore takes them from the URL, not the socket.

Stdlib ``ipaddress`` only: its ``is_global`` in Python 3.11 misses IPv4-mapped, NAT64 and
multicast addresses, which are handled here explicitly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpcore
import httpx

if TYPE_CHECKING:
    from placewatch.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = ipaddress.IPv4Address("169.254.169.254")


class TargetRefused(Exception):
    """A webhook URL the policy does not allow; the message says why."""


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = None
        form = ""
        if address.ipv4_mapped is not None:
            embedded, form = address.ipv4_mapped, "IPv4-mapped"
        elif address in _NAT64:
            embedded, form = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
        elif address.sixtofour is not None:
            embedded, form = address.sixtofour, "6to4"
        elif address.teredo is not None:
            return "a Teredo address"
        if embedded is not None:
            inner = address_problem(embedded)
            return f"{form} {embedded}: {inner}" if inner else None
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address == _METADATA:
        return "the cloud metadata address (link-local)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private (or special-purpose) address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if not address.is_global:
        return "not a globally reachable address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host is written as, if it is one: also the short and octal/hex IPv4 forms
    (``127.1``, ``0x7f.0.0.1``, ``2130706433``) that resolvers accept. No DNS."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_localhost(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761: always loopback


@dataclass(frozen=True)
class TargetPolicy:
    """Secure by default: https only, public addresses only."""

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetPolicy:
        return cls(settings.notify_allow_http, tuple(settings.notify_allowed_networks))

    @classmethod
    def local(cls) -> TargetPolicy:
        """http to loopback allowed: tests, benchmarks and the demo's local receiver."""
        return cls(True, (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")))

    def _allowed_by_network(self, address: IPAddress) -> bool:
        forms: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        return any(a in net for a in forms for net in self.allowed_networks)

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why the dispatcher must not connect to ``address`` (None: it may)."""
        problem = address_problem(address)
        if problem is None or self._allowed_by_network(address):
            return None
        return f"{address} is {problem} (not in PLACEWATCH_NOTIFY_ALLOWED_NETWORKS)"

    def url_refusal(self, url: str | httpx.URL, *, localhost: bool = True) -> str | None:
        """Why ``url`` is refused without resolving its host: the scheme, or a host that is
        written as an address (or, with ``localhost``, is named so) the policy refuses. None:
        not refused yet (the dispatcher still checks the addresses a name resolves to). Raises
        httpx.InvalidURL for a URL httpx cannot use."""
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        if parsed.scheme == "http":
            if not self.allow_http:
                return "http is not allowed, use https (or set PLACEWATCH_NOTIFY_ALLOW_HTTP=true)"
        elif parsed.scheme != "https":
            return f"scheme {parsed.scheme!r} is not allowed, use https"
        host = parsed.host
        if not host:
            return "the URL has no host"
        address = literal_address(host)
        if address is None and localhost and _is_localhost(host):
            address = ipaddress.IPv4Address("127.0.0.1")
        if address is not None:
            refusal = self.address_refusal(address)
            if refusal is not None:
                return f"host {host}: {refusal}"
        return None

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, all of them allowed, else TargetRefused."""
        literal = literal_address(host)
        if literal is not None:
            found: Iterable[IPAddress] = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except socket.gaierror as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            # The scope of a link-local IPv6 address (fe80::1%eth0) is not part of it.
            found = dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos)
        addresses = list(found)
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            refusal = self.address_refusal(address)
            if refusal is not None:
                where = "" if literal is not None else f"{host} resolves to "
                raise TargetRefused(f"{where}{refusal}")
        return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows, and to the very address it checked."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self.policy.resolve(host, port), timeout)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(policy: TargetPolicy, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through :class:`GuardedBackend`.

    httpx does not take a network backend, so the transport's httpcore pool is replaced by one
    built with the same settings and ours (checked: an httpx that builds its transport some
    other way fails here, not silently unguarded). A client given a transport uses no proxy
    from the environment: a proxy would connect on our behalf to addresses never checked.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("httpx.AsyncHTTPTransport changed: cannot guard webhook targets")
    transport._pool = httpcore.AsyncConnectionPool(
        # The transport's own verifying context (built with trust_env=False, as the client).
        ssl_context=transport._pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(policy),
    )
    return transport
