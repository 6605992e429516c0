"""Where the agent may connect on a tenant's behalf, and the HTTP sessions that hold to it.

A tenant's key names URLs (``health_url``, ``webhook_url``) that the agent then
calls from inside its own network, so without rules a key is a way to reach the
cloud metadata service or the agent's neighbours. The rules, first match wins,
applied to the address actually connected to:

1. ``OUTBOUND_ALLOW`` (CIDR list): allowed, for every tenant.
2. Link-local and cloud-metadata addresses (``BUILTIN_DENY``) and ``OUTBOUND_DENY``:
   refused, for every tenant.
3. Addresses that are not globally routable (loopback, private ranges, unique
   local IPv6, shared address space, ``0.0.0.0/8``...): the default tenant may
   connect; another tenant only to networks its config entry lists
   (``tenants: {team-a: {outbound_allow: [10.0.0.0/8]}}``).
4. Any other (public) address: allowed.

An IPv6 address that carries an IPv4 one (``::ffff:a.b.c.d``, ``::a.b.c.d``,
NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged as both. The rules run in
the connectors' socket factory, on the address about to be connected (after DNS,
for every address tried), so a name that resolves to a refused address later
(DNS rebinding) gains nothing; redirects are never followed. Registration also
refuses a URL whose host is a refused address literal, in any spelling.

Each distinct policy gets its own aiohttp session, so a pooled connection or a
cached DNS answer never crosses from one tenant's rules to another's.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
from pydantic import AnyHttpUrl

from selfheal.types import DEFAULT_TENANT

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BUILTIN_DENY = (
    "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OCI and OpenStack metadata
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "168.63.129.16/32",  # Azure host (WireServer)
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_HEADERS = {"User-Agent": "selfheal/0.1", "Accept": "application/json"}
_CACHE_LIMIT = 10_000
_REFUSED = "refused by the outbound policy"


def parse_networks(values: Iterable[str], *, what: str = "") -> tuple[IPNetwork, ...]:
    """CIDR networks (a bare address is a /32 or /128); a clear error names the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            where = f"{what}: " if what else ""
            raise ValueError(
                f"{where}{value!r} is not a network; write CIDR like 10.0.0.0/8 or fd00::/8"
            ) from None
    return tuple(networks)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 spelling routes to, if it has one."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class AddressPolicy:
    """The rules for tenants with the same allowances; verdicts are cached per address
    (the probe path is hot)."""

    __slots__ = ("_allow", "_cache", "_deny", "_local", "_local_allow")

    def __init__(
        self,
        *,
        allow: tuple[IPNetwork, ...],
        deny: tuple[IPNetwork, ...],
        local: bool,
        local_allow: tuple[IPNetwork, ...] = (),
    ) -> None:
        self._allow, self._deny = allow, deny
        self._local, self._local_allow = local, local_allow
        self._cache: dict[str, str | None] = {}

    def refusal(self, host: str) -> str | None:
        """Why connecting to the address ``host`` is refused, or None if it is allowed."""
        verdict = self._cache.get(host, "")
        if verdict != "":
            return verdict
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return f"{host!r} is not an IP address"
        candidates = [address]
        if (inner := _embedded_ipv4(address)) is not None:
            candidates.insert(0, inner)  # where the traffic really goes: its reason first
        verdict = next(filter(None, map(self._judge, candidates)), None)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[host] = verdict
        return verdict

    def _judge(self, address: IPAddress) -> str | None:
        if any(address in net for net in self._allow):
            return None
        if any(address in net for net in self._deny):
            return f"{address} is a link-local, cloud metadata or denied address (OUTBOUND_DENY)"
        if address.is_global or self._local:
            return None
        if any(address in net for net in self._local_allow):
            return None
        return (
            f"{address} is a loopback or private address this tenant may not reach "
            f"(an operator can allow its network in the config file: "
            f"tenants: {{TENANT: {{outbound_allow: [CIDR]}}}})"
        )

    def socket_factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """aiohttp's socket factory: refuse before a socket to a refused address exists."""
        family, type_, proto, _, sockaddr = addr_info
        reason = self.refusal(str(sockaddr[0]))
        if reason is not None:
            raise PermissionError(errno.EACCES, f"{_REFUSED}: {reason}")
        return socket.socket(family=family, type=type_, proto=proto)


class OutboundPolicies:
    """The policy of every tenant, from settings and the config file's ``tenants``."""

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        tenant_allow: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self._allow = parse_networks(allow, what="OUTBOUND_ALLOW")
        self._deny = parse_networks(BUILTIN_DENY, what="built-in") + parse_networks(
            deny, what="OUTBOUND_DENY"
        )
        self._tenant_allow = {
            tenant: parse_networks(networks, what=f"tenants.{tenant}.outbound_allow")
            for tenant, networks in (tenant_allow or {}).items()
        }
        # tenants with the same allowances share one policy, hence one session
        self._shared: dict[tuple[Any, ...], AddressPolicy] = {}

    def policy(self, tenant_id: str) -> AddressPolicy:
        """The rules that apply to a tenant's services."""
        local = tenant_id == DEFAULT_TENANT
        local_allow = () if local else self._tenant_allow.get(tenant_id, ())
        key = (local, local_allow)
        found = self._shared.get(key)
        if found is None:
            found = self._shared[key] = AddressPolicy(
                allow=self._allow, deny=self._deny, local=local, local_allow=local_allow
            )
        return found

    def describe(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's rules as the API shows them."""
        local = tenant_id == DEFAULT_TENANT
        return {
            "tenant_id": tenant_id,
            "allow": [str(net) for net in self._allow],
            "deny": [str(net) for net in self._deny],
            "all_private_networks": local,
            "private_networks": (
                [] if local else [str(net) for net in self._tenant_allow.get(tenant_id, ())]
            ),
        }

    def url_refusal(self, tenant_id: str, url: str) -> str | None:
        """Why a URL whose host is an address literal (any spelling) is refused, or None.

        Host names are judged when they are connected to, after DNS.
        """
        try:
            # the WHATWG reading: hex, octal, decimal and fullwidth spellings become dotted
            host = (AnyHttpUrl(url).host or "").strip("[]")
        except ValueError:
            host = urlsplit(url).hostname or ""  # e.g. a zone id, which WHATWG refuses
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        return self.policy(tenant_id).refusal(host)


class OutboundSessions:
    """One aiohttp session per distinct policy, created on first use inside the loop."""

    def __init__(
        self,
        policies: OutboundPolicies,
        *,
        max_connections: int = 1000,
        resolver: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        self._policies = policies
        self._max_connections = max_connections
        self._resolver = resolver  # None: the system's; tests hand in their own DNS
        self._by_tenant: dict[str, aiohttp.ClientSession] = {}
        self._by_policy: dict[int, aiohttp.ClientSession] = {}

    def for_tenant(self, tenant_id: str) -> aiohttp.ClientSession:
        """The session whose connections obey the tenant's policy."""
        session = self._by_tenant.get(tenant_id)
        if session is None:
            policy = self._policies.policy(tenant_id)
            session = self._by_policy.get(id(policy))
            if session is None:
                session = self._by_policy[id(policy)] = make_session(
                    policy, max_connections=self._max_connections, resolver=self._resolver
                )
            self._by_tenant[tenant_id] = session
        return session

    async def close(self) -> None:
        """Close every session and its pooled connections."""
        for session in self._by_policy.values():
            await session.close()
        self._by_policy.clear()
        self._by_tenant.clear()


def make_session(
    policy: AddressPolicy,
    *,
    max_connections: int = 1000,
    resolver: aiohttp.abc.AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """Pooled keep-alive connections that obey ``policy``; no cookies, no env proxies."""
    connector = aiohttp.TCPConnector(
        resolver=resolver,
        limit=max_connections,
        limit_per_host=0,
        ttl_dns_cache=300,
        enable_cleanup_closed=True,
        socket_factory=policy.socket_factory,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers=_HEADERS,
        trust_env=False,
        auto_decompress=True,
    )


def refused_by_policy(exc: BaseException) -> str | None:
    """The policy's reason if a connection error is an outbound refusal."""
    os_error = getattr(exc, "os_error", None)
    text = str(getattr(os_error, "strerror", None) or "")
    # every address of a name refused: happy eyeballs joins the reasons into one message
    start = text.find(_REFUSED)
    if start < 0:
        return None
    return text[start:].split(", [Errno", 1)[0]
