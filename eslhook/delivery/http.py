"""One delivery attempt over HTTP(S), on geventhttpclient's connection pools and
response parser.

``HttpSender.send(request, extra_headers)`` returns an ``Outcome`` and never
raises for HTTP or network failures.  One keep-alive pool per (scheme, host,
port), network policy and TLS identity (the hook's CA and client certificate),
bounded to ``max_connections_per_host`` connections; ``gevent.Timeout`` (the
hook's ``timeout_seconds``, else the config's) bounds the whole attempt so a
receiver that trickles bytes cannot hold it.

Why not ``HTTPClient.request``: it merges and validates every header through
its case-insensitive ``Headers`` type twice per request, which was the largest
part of a delivery's cost (scripts/bench_delivery.py).  Our requests are all
alike (a small header set, a bytes body, HTTP/1.1, no proxy, no 100-continue):
the request head is written here in one string and checked with one regex,
and the pooled socket is returned only after a complete response, so an
interrupted attempt can never leave half a response on a reused connection.

Where a request may connect is the hook's network policy (eslhook/netpolicy.py,
``HttpRequest.network_policy``).  Each new connection resolves the host once
(gevent's resolver; a host written as an IP address needs none), checks every
address it got, and connects only to those, by number: nothing resolves the
name again, so DNS rebinding cannot slip a second answer in.  The Host header,
TLS SNI and the certificate check keep the name.  A kept-alive connection was
checked when it was made, and pools are per policy, so an operator hook's
connection is never reused by a tenant's.  A refused attempt sends nothing and
is final (``REFUSED``); its ``body_excerpt`` says why.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Mapping, TypedDict

import gevent
import gevent.socket
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool
from geventhttpclient.response import HTTPParseError, HTTPSocketResponse

from eslhook.config import DeliveryConfig
from eslhook.delivery.policy import (
    BAD_RESPONSE_CODE, BODY_EXCERPT_BYTES, CONNECTION_ERROR, CONNECTION_REFUSED,
    INVALID_REQUEST, REFUSED, SUCCESS, TIMEOUT, Outcome, parse_retry_after)
from eslhook.delivery.request import HttpRequest, TlsFiles
from eslhook.hooks.model import TIMEOUT_RANGE, masked_uri
from eslhook.netpolicy import (
    OPERATOR, TENANT, Address, NetworkPolicy, Policies, literal_address, parse_uri)

log = logging.getLogger(__name__)

# Read at most this much of a response body; beyond it the connection is
# dropped instead of kept alive (a receiver has no reason to send more).
MAX_BODY_READ_BYTES = 64 * 1024
TARGET_CACHE_SIZE = 4096            # distinct hook URLs whose parse is remembered

PoolKey = tuple[str, str, int]
# getaddrinfo's signature: (host, port, family, type, proto) -> [(family, type, proto,
# canonname, sockaddr)]; tests pass their own (real DNS cannot run there)
Resolver = Callable[..., list]

# RFC 9110 field-name token and field-value characters (as geventhttpclient checks them),
# over the whole block of "name: value\r\n" lines at once.
_HEADER_LINES = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [\t\x20-\x7e\x80-\xff]*\r\n)*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_REQUEST_TARGET = re.compile(r"[^\x00-\x20\x7f]*")
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


@dataclass(frozen=True)
class Target:
    """Where a URL's requests go: its pool key, request-target and Host header."""
    key: PoolKey
    path: str
    host_header: str


class HttpSender:
    def __init__(self, config: DeliveryConfig, *,
                 max_connections_per_host: int | None = None,
                 ca_file: str | None = None, resolver: Resolver | None = None):
        if max_connections_per_host is None:
            max_connections_per_host = min(config.max_in_flight, config.max_connections_per_host)
        if max_connections_per_host < 1:
            raise ValueError("max_connections_per_host: must be >= 1, got %r"
                             % (max_connections_per_host,))
        self._config = config
        self._per_host = max_connections_per_host
        self._ca_file = ca_file          # extra CA bundle for https receivers
        policies = Policies.from_config(config)
        self._policies = {name: policies.named(name) for name in (TENANT, OPERATOR)}
        self._resolver = resolver or gevent.socket.getaddrinfo
        self._pools: dict[tuple[PoolKey, str, TlsFiles | None], ConnectionPool] = {}
        self._closed = False

    def send(self, request: HttpRequest,
             extra_headers: Mapping[str, str] | None = None) -> Outcome:
        """One attempt.  ``extra_headers`` (e.g. the signature) go after the request's."""
        started = time.monotonic()
        try:
            target = parse_target(request.url)
            head = _request_head(request, target, extra_headers)
        except ValueError as exc:
            return _outcome(started, None, INVALID_REQUEST, error=str(exc))
        if request.network_policy not in self._policies:
            return _outcome(started, None, INVALID_REQUEST, error="unknown network policy %r"
                            % (request.network_policy,))
        if self._closed:
            return _outcome(started, None, CONNECTION_ERROR, error="sender closed")
        timeout = request.timeout_seconds or self._config.timeout_seconds
        deadline = gevent.Timeout(timeout)
        deadline.start()
        try:
            try:
                pool = self._pool(target.key, request.network_policy, request.tls)
            except (OSError, ValueError) as exc:    # the hook's TLS files (SSLError too)
                return _outcome(started, None, INVALID_REQUEST, error=(
                    "the hook's TLS files cannot be used: %s" % _describe(exc)))
            return _exchange(pool, head + request.body, request.method, started)
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            return _outcome(started, None, TIMEOUT, error="no complete response within %gs"
                            % timeout)
        finally:
            deadline.close()

    def close(self) -> None:
        self._closed = True
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def _pool(self, key: PoolKey, policy: str, tls: TlsFiles | None) -> ConnectionPool:
        # per TLS identity too: one hook's connection never carries another's client cert
        pool_key = (key, policy, tls if key[0] == "https" else None)
        pool = self._pools.get(pool_key)
        if pool is None:
            pool = self._pools[pool_key] = self._new_pool(key, self._policies[policy], tls)
        return pool

    def _new_pool(self, key: PoolKey, policy: NetworkPolicy,
                  tls: TlsFiles | None) -> ConnectionPool:
        scheme, host, port = key
        # the socket timeout must not cut a hook's longer timeout_seconds short:
        # the gevent.Timeout in send() bounds every attempt
        network_timeout = max(self._config.timeout_seconds, TIMEOUT_RANGE[1])
        options: _PoolOptions = dict(
            size=self._per_host, connection_timeout=self._config.connect_timeout_seconds,
            network_timeout=network_timeout)
        pool: _TlsPool | _PlainPool
        if scheme == "https":
            pool = _TlsPool(host, port, host, port, ssl_options=self._ssl_options(tls),
                            **options)
        else:
            pool = _PlainPool(host, port, host, port, **options)
        pool.network_policy, pool.resolver = policy, self._resolver
        return pool

    def _ssl_options(self, tls: TlsFiles | None) -> dict | None:
        """A hook's CA bundle replaces the default trust; its client certificate is
        presented to receivers that ask (mTLS)."""
        ca_file = (tls.ca_file if tls else None) or self._ca_file
        options: dict = {"ca_certs": ca_file} if ca_file else {}
        if tls is not None and tls.cert_file:
            options.update(certfile=tls.cert_file, keyfile=tls.key_file)
        return options or None


class Refused(Exception):
    """The host's address is off limits for the hook: nothing was sent."""


class _CheckedConnect:
    """A pool whose new connections go only to addresses the hook's policy allows
    (geventhttpclient connects to what ``_resolve`` returns, in order)."""
    _connection_host: str
    _connection_port: int
    network_policy: NetworkPolicy
    resolver: Resolver

    def _resolve(self) -> list:
        return checked_addresses(self._connection_host, self._connection_port,
                                 self.network_policy, self.resolver)


def checked_addresses(host: str, port: int, policy: NetworkPolicy,
                      resolver: Resolver) -> list[tuple]:
    """getaddrinfo-style entries for ``host``, every one allowed by ``policy``, each
    with a numeric address; Refused if any address is not allowed (a name that also
    answers an internal address is not trusted with the public one)."""
    address = literal_address(host)
    if address is not None and not getattr(address, "scope_id", None):
        found = [address]           # an IP address: nothing to resolve
    else:
        infos = resolver(host.replace("%25", "%", 1), port, 0, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
        found = list(dict.fromkeys(_address_of(info[4]) for info in infos))
    if not found:
        raise OSError("%s: the resolver gave no address" % host)
    for candidate in found:
        verdict = policy.allows(candidate)
        if not verdict.allowed:
            subject = ("the host %s" % host if candidate == address
                       else "%s resolved to an address that" % host)
            raise Refused("eslhook sent nothing: %s %s" % (subject, verdict.reason))
    return [_address_info(candidate, port) for candidate in found]


def _address_of(sockaddr: tuple) -> Address:
    text = sockaddr[0]
    if len(sockaddr) >= 4 and sockaddr[3] and "%" not in text:
        text = "%s%%%d" % (text, sockaddr[3])
    return ipaddress.ip_address(text)


def _address_info(address: Address, port: int) -> tuple:
    if address.version == 4:
        return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                (str(address), port))
    scope = address.scope_id
    plain = ipaddress.IPv6Address(address.packed)
    return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
            (str(plain), port, 0, int(scope) if scope and scope.isdigit() else 0))


class _PoolOptions(TypedDict):
    """The ConnectionPool arguments both kinds of pool get (typed for **options)."""
    size: int
    connection_timeout: float
    network_timeout: float


class _TlsPool(_CheckedConnect, SSLConnectionPool):
    """TLS on a checked address; SNI and the certificate check use the uri's host."""


class _PlainPool(_CheckedConnect, ConnectionPool):
    """Checks an idle connection with one non-blocking peek.  geventhttpclient's check
    goes through gevent's select, which yields to the hub on every call: a full trip
    round the event loop for each request.  (TLS pools keep the library's check: a
    peek would see TLS records, not HTTP.)"""

    def _is_socket_alive(self, sock) -> bool:
        raw = getattr(sock, "_sock", None)     # gevent's socket wraps a non-blocking one
        if raw is None:
            return super()._is_socket_alive(sock)
        try:
            raw.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True         # nothing to read: idle, as a kept-alive connection must be
        except OSError:
            return False
        return False            # the receiver closed it (b"") or sent something unasked


def _exchange(pool: ConnectionPool, data: bytes, method: str, started: float) -> Outcome:
    """Send ``data`` on a pooled connection and read the response.  The connection goes
    back to the pool only after a complete keep-alive response; on anything else
    (an error, a timeout raised into here, an oversized body) it is closed."""
    try:
        sock = pool.get_socket()
    except Refused as exc:
        text = str(exc)
        return _outcome(started, None, REFUSED, text.encode("utf-8"), error=text)
    except ssl.SSLError as exc:  # before OSError: a failed certificate check is both
        return _outcome(started, None, CONNECTION_ERROR, error=_describe(exc))
    except (OSError, RuntimeError) as exc:
        return _outcome(started, None, _network_reason(exc), error=_describe(exc))
    reusable = False
    try:
        sock.sendall(data)
        response = HTTPSocketResponse(sock, method=method)
        status = response.status_code
        retry_after = parse_retry_after(_first(response.get("retry-after")), time.time())
        body = _read_body(response)
        reusable = response.message_complete and not response.should_close()
    except ssl.SSLError as exc:
        return _outcome(started, None, CONNECTION_ERROR, error=_describe(exc))
    except (OSError, HTTPParseError) as exc:
        return _outcome(started, None, _network_reason(exc), error=_describe(exc))
    finally:
        if reusable:
            pool.return_socket(sock)
        else:
            pool.release_socket(sock)       # closes it and frees its slot
    reason = SUCCESS if 200 <= status < 300 else BAD_RESPONSE_CODE
    return _outcome(started, status, reason, body, retry_after)


def _request_head(request: HttpRequest, target: Target,
                  extra_headers: Mapping[str, str] | None) -> bytes:
    """The request line and headers, latin-1 encoded; ValueError naming what cannot be
    sent (a header name or value with characters HTTP does not allow)."""
    lines = "".join(["%s: %s\r\n" % item for item in request.headers.items()])
    if extra_headers:
        lines += "".join(["%s: %s\r\n" % item for item in extra_headers.items()])
    if not _HEADER_LINES.fullmatch(lines):
        _raise_bad_header(request.headers, extra_headers)
    length = ("Content-Length: %d\r\n" % len(request.body)
              if request.body or request.method in _BODY_METHODS else "")
    head = "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n" % (
        request.method, target.path, target.host_header, lines, length)
    try:
        return head.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("request head: characters outside latin-1") from None


def _raise_bad_header(*header_sets) -> None:
    for headers in header_sets:
        for name, value in (headers or {}).items():
            if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
                raise ValueError("invalid header field name %r" % (name,))
            if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
                raise ValueError("invalid value for header field %r: %r" % (name, value))
    raise ValueError("invalid header block")


_targets: dict[str, Target | str] = {}


def parse_target(url: str) -> Target:
    """The ``Target`` of a hook URL, or ValueError naming what is wrong (remembered per
    URL: every delivery to a hook has the same one)."""
    target = _targets.get(url)
    if target is None:
        try:
            target = _parse_target(url)
        except ValueError as exc:
            target = str(exc)
        if len(_targets) >= TARGET_CACHE_SIZE:
            _targets.clear()
        _targets[url] = target
    if isinstance(target, str):
        raise ValueError(target)
    return target


def host_key(url: str) -> PoolKey | None:
    """(scheme, host, port) of a URL; None if it cannot be sent to."""
    try:
        return parse_target(url).key
    except ValueError:
        return None


def _parse_target(url: str) -> Target:
    try:
        parts = parse_uri(url)
    except ValueError as exc:
        raise ValueError("uri %r: %s" % (masked_uri(url), exc)) from None
    scheme, host, port, path = parts.scheme, parts.host, parts.port, parts.path
    if not _REQUEST_TARGET.fullmatch(path) or path.startswith("//"):
        raise ValueError("uri %r: the path cannot be sent as a request target" % url)
    host_header = "[%s]" % host if ":" in host else host
    if port != (443 if scheme == "https" else 80):
        host_header += ":%d" % port
    try:
        host_header.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("uri %r: the host must be ASCII (IDNA-encode it)" % url) from None
    return Target((scheme, host, port), path, host_header)


def _read_body(response) -> bytes:
    """The first BODY_EXCERPT_BYTES of the body; the rest is read (up to a cap) so the
    connection can be kept alive."""
    excerpt = bytearray()
    total = 0
    while total <= MAX_BODY_READ_BYTES:
        block = response.read(4096)
        if not block:
            break
        total += len(block)
        if len(excerpt) < BODY_EXCERPT_BYTES:
            excerpt += block[:BODY_EXCERPT_BYTES - len(excerpt)]
    return bytes(excerpt)


def _first(value: str | list[str] | None) -> str | None:
    """A header value; the first one when the header came more than once."""
    return value[0] if isinstance(value, list) else value


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return CONNECTION_REFUSED
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TIMEOUT
    return CONNECTION_ERROR


def _describe(exc: BaseException) -> str:
    kind = "tls" if isinstance(exc, ssl.SSLError) else type(exc).__name__
    return "%s: %s" % (kind, exc)


def _outcome(started: float, status: int | None, reason: str, body: bytes = b"",
             retry_after: float | None = None, error: str | None = None) -> Outcome:
    return Outcome(status, reason, body, time.monotonic() - started, retry_after, error)
