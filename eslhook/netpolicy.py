"""Where a webhook may make eslhook connect: pure values and decisions, no I/O.

Two policies, both frozen and validated when built (``Policies.from_config``):

* the **operator** policy, for hooks in hooks.yaml and hooks written with an
  admin token: refuses ``delivery.blocked_networks`` (default link-local, the
  cloud metadata endpoints);
* the **tenant** policy, for hooks written with an account token: refuses the
  operator's networks, plus loopback, private (RFC 1918, ULA), CGNAT,
  link-local, multicast, unspecified, reserved and documentation ranges and
  every IPv6 form that carries an IPv4 address (mapped, compatible, NAT64,
  6to4, Teredo), except networks the operator lists in
  ``delivery.tenant_allowed_networks``.

``policy.allows(address)`` judges one address and returns a ``Verdict`` that
says why.  The delivery sender asks it about every address a host resolves
to, at every new connection, and connects only to an address it allowed; the
REST API asks it about hosts written as IP addresses when a hook is saved.
IPv4 carried inside an IPv6 address is judged as well as the IPv6 address
itself, so ``[::ffff:169.254.169.254]`` or ``[64:ff9b::a9fe:a9fe]`` cannot
reach what ``169.254.169.254`` may not.

``parse_uri`` is the one check of a hook uri's shape (scheme, host, port,
characters), shared by the API, hooks.yaml and the sender.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable
from urllib.parse import urlsplit

if TYPE_CHECKING:       # config.model imports this module
    from .config import DeliveryConfig

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

OPERATOR = "operator"
TENANT = "tenant"
DEFAULT_BLOCKED_NETWORKS = ("169.254.0.0/16", "fe80::/10")   # link-local: cloud metadata

# What a hook written with an account token may not reach unless allowed.  Order
# matters only for the label reported: the narrower range comes first.
TENANT_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (incl. broadcast)"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6"),
    ("::/96", "IPv4-compatible IPv6"),
    ("::ffff:0:0:0/96", "IPv4-translated IPv6"),
    ("64:ff9b::/96", "NAT64 (IPv4 embedded in IPv6)"),
    ("64:ff9b:1::/48", "local NAT64 (IPv4 embedded in IPv6)"),
    ("100::/64", "reserved (discard)"),
    ("2001::/32", "Teredo (IPv4 embedded in IPv6)"),
    ("2001:2::/48", "reserved (benchmarking)"),
    ("2001:10::/28", "reserved (ORCHID)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("2002::/16", "6to4 (IPv4 embedded in IPv6)"),
    ("3fff::/20", "reserved (documentation)"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)


@dataclass(frozen=True)
class Verdict:
    """Whether an address may be connected to, and why (for logs, errors, attempts)."""
    allowed: bool
    reason: str
    network: str | None = None      # the network that refused it

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Verdict(True, "allowed")


def _networks(texts: Iterable[str], what: str) -> tuple[Network, ...]:
    if isinstance(texts, str):
        raise ValueError("%s: must be a list of networks, not one string" % what)
    out = []
    for index, text in enumerate(texts):
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except (TypeError, ValueError):
            raise ValueError("%s[%d]: not a network such as 10.0.0.0/8 or fd00::/8 (got %r)"
                             % (what, index, text)) from None
    return tuple(out)


@dataclass(frozen=True)
class NetworkPolicy:
    """``blocked`` is refused outright; ``restricted`` (label per network) is refused
    unless an address is also in ``allowed``."""
    name: str
    blocked: tuple[Network, ...] = ()
    restricted: tuple[tuple[Network, str], ...] = ()
    allowed: tuple[Network, ...] = ()

    def __post_init__(self) -> None:
        for name in ("blocked", "allowed"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            for network in getattr(self, name):
                if not isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                    raise ValueError("NetworkPolicy.%s: %r is not a network" % (name, network))
        object.__setattr__(self, "restricted", tuple(self.restricted))

    def allows(self, address: Address) -> Verdict:
        """May a hook under this policy connect to ``address``?  The reason reads after
        "the address ...", e.g. "is in 127.0.0.0/8 (loopback), ..."."""
        verdict = self._judge(_unscoped(address))
        for carried in embedded_ipv4(address) if verdict.allowed else ():
            inner = self._judge(carried)
            if not inner.allowed:
                return Verdict(False, "carries the IPv4 address %s, which %s"
                               % (carried, inner.reason), inner.network)
        zone = getattr(address, "scope_id", None)
        if verdict.allowed and self.restricted and zone:
            return Verdict(False, "has a zone id (%%%s), which names one of eslhook's own "
                           "network interfaces" % zone)
        return verdict

    def _judge(self, address: Address) -> Verdict:
        for network in self.blocked:
            if address.version == network.version and address in network:
                return Verdict(False, "is in %s, which no hook may reach "
                               "(delivery.blocked_networks)" % network, str(network))
        for network, label in self.restricted:
            if address.version == network.version and address in network and not any(
                    address.version == a.version and address in a for a in self.allowed):
                return Verdict(False, "is in %s, %s, which a hook written with an account "
                               "token may not reach (delivery.tenant_allowed_networks can "
                               "open exceptions)" % (network, label), str(network))
        return ALLOWED


def _unscoped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(address.packed)
    return address


@dataclass(frozen=True)
class Policies:
    operator: NetworkPolicy
    tenant: NetworkPolicy

    @classmethod
    def build(cls, blocked_networks: Iterable[str] = DEFAULT_BLOCKED_NETWORKS,
              tenant_allowed_networks: Iterable[str] = ()) -> "Policies":
        """Both policies from the config's texts; ValueError naming a bad network."""
        blocked = _networks(blocked_networks, "delivery.blocked_networks")
        allowed = _networks(tenant_allowed_networks, "delivery.tenant_allowed_networks")
        restricted = tuple((ipaddress.ip_network(n), label) for n, label in TENANT_RANGES)
        return cls(NetworkPolicy(OPERATOR, blocked),
                   NetworkPolicy(TENANT, blocked, restricted, allowed))

    @classmethod
    def from_config(cls, config: DeliveryConfig) -> "Policies":
        """From a ``DeliveryConfig`` (its ``blocked_networks``, ``tenant_allowed_networks``)."""
        return cls.build(config.blocked_networks, config.tenant_allowed_networks)

    def named(self, name: str) -> NetworkPolicy:
        if name == TENANT:
            return self.tenant
        if name == OPERATOR:
            return self.operator
        raise ValueError("unknown network policy %r" % (name,))


DEFAULT_POLICIES = Policies.build()


def embedded_ipv4(address: Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries: mapped (::ffff:a.b.c.d), translated
    (::ffff:0:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d, and the local
    64:ff9b:1::/48 at the same place), 6to4 (2002:AABB:CCDD::) and Teredo (server and
    client)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return ()
    value = int(_unscoped(address))
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    high96 = value >> 32
    if high96 in (0xFFFF, 0xFFFF0000) or (high96 == 0 and value > 1):
        return (low32,)
    if high96 == 0x0064FF9B0000000000000000 or value >> 80 == 0x0064FF9B0001:
        return (low32,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    return ()


# -- hosts and uris ---------------------------------------------------------------

_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")   # 2852039166, 0xa9.0xfe.0xa9.0xfe, 169.254.1
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def literal_address(host: str) -> Address | None:
    """The IP address ``host`` spells in any form a resolver accepts (``2852039166``,
    ``0251.0376.0251.0376``, ``169.254.169.254.``, ``fe80::1%eth0``, ``[::1]``), or None
    for a name."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.endswith(".") and ":" not in host:
        host = host[:-1]
    if "%25" in host:       # RFC 6874 writes the zone's % as %25 in a uri
        host = host.replace("%25", "%", 1)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _NUMERIC_HOST.fullmatch(host) or not any(c.isdigit() for c in host):
        return None
    try:    # inet_aton takes the forms getaddrinfo takes
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


@dataclass(frozen=True)
class UriParts:
    scheme: str         # "http" | "https"
    host: str           # lowercased, without brackets
    port: int           # explicit or the scheme's default
    explicit_port: bool
    path: str           # request-target: path and query
    # userinfo as written (percent-encoded), Kazoo's http://user:pass@host/ form
    username: str | None = None
    password: str | None = None
    uri: str = ""       # the whole uri as given

    def with_password(self, password: str) -> str:
        """The uri with its userinfo's password replaced (e.g. masked)."""
        return self._with_userinfo("%s:%s@" % (self.username, password))

    def without_userinfo(self) -> str:
        """The uri as requests are made to it: the userinfo becomes a header."""
        return self._with_userinfo("")

    def _with_userinfo(self, userinfo: str) -> str:
        if self.username is None:
            return self.uri
        start = self.uri.index("//") + 2
        end = self.uri.index("@", start + len(self.username))
        if self.password is not None:
            end = start + len(self.username) + 1 + len(self.password)
        return self.uri[:start] + userinfo + self.uri[end + 1:]


def parse_uri(uri: str) -> UriParts:
    """A hook uri's parts, or ValueError saying what cannot be sent (no http(s), no
    host, a port outside 1..65535, control characters, NUL, spaces).  A userinfo
    (``user:password@``) is taken apart, never quoted in an error."""
    if not isinstance(uri, str):
        raise ValueError("must be a string")
    bad = _CONTROL.search(uri)
    if bad:     # urlsplit silently drops CR, LF and tab: check the text itself
        raise ValueError("must not contain %s (at character %d)"
                         % (_char_name(bad.group()), bad.start() + 1))
    try:
        parts = urlsplit(uri)
    except ValueError as exc:   # e.g. an unbalanced [
        raise ValueError("is not a valid URL: %s" % exc) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("must be http:// or https://")
    userinfo, at, hostport = parts.netloc.rpartition("@")
    username, colon, password = userinfo.partition(":")
    if at and not username:
        raise ValueError("the userinfo (user:password@) must name a user")
    host = parts.hostname or ""
    if not host:
        raise ValueError("must name a host")
    if "[" in hostport:
        if not _is_ipv6(host):
            raise ValueError("a bracketed host must be an IPv6 address (got [%s])" % host)
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError("host %r: only letters, digits, '-', '_' and '.' (IDNA-encode an "
                         "international name)" % host)
    after_host = hostport.rsplit("]", 1)[-1]
    port_text = after_host.partition(":")[2]
    if ":" in after_host and not (port_text.isascii() and port_text.isdigit()):
        raise ValueError("port must be a number 1..65535 (got %r)" % port_text)
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("port must be 1..65535 (got %d)" % port)
    default = 443 if scheme == "https" else 80
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return UriParts(scheme, host, port or default, port is not None, path,
                    username if at else None, password if colon else None, uri)


def uri_problem(uri: str) -> str | None:
    """What is wrong with a hook uri's shape, or None."""
    try:
        parse_uri(uri)
    except ValueError as exc:
        return str(exc)
    return None


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.replace("%25", "%", 1))
    except ValueError:
        return False
    return True


def _char_name(char: str) -> str:
    names = {"\x00": "NUL", "\r": "CR", "\n": "LF", "\t": "a tab", " ": "a space",
             "\x7f": "DEL"}
    return names.get(char, "control character %r" % char)


def saved_uri_verdict(uri: str, policy: NetworkPolicy) -> Verdict:
    """The check when a hook is saved: a host written as an IP address, in any
    spelling, must be allowed.  Names are judged when connecting, after
    resolution, at every new connection (what they resolve to may change).
    ValueError if the uri cannot be parsed at all (``parse_uri``)."""
    address = literal_address(parse_uri(uri).host)
    return ALLOWED if address is None else policy.allows(address)
