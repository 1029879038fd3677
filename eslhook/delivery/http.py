"""One delivery attempt over HTTP(S) with geventhttpclient.

``HttpSender.send(request)`` returns an ``Outcome`` and never raises for HTTP
or network failures.  One keep-alive pool per (scheme, host, port); a
semaphore per pool bounds concurrent requests to one host; ``gevent.Timeout``
bounds the whole attempt so a receiver that trickles bytes cannot hold it.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import time
from urllib.parse import urlsplit

import gevent
from gevent.lock import BoundedSemaphore
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

from eslhook.config import DeliveryConfig
from eslhook.delivery.policy import (
    BAD_RESPONSE_CODE, BODY_EXCERPT_BYTES, CONNECTION_ERROR, CONNECTION_REFUSED,
    INVALID_REQUEST, SUCCESS, TIMEOUT, Outcome, parse_retry_after)
from eslhook.delivery.request import HttpRequest

log = logging.getLogger(__name__)

# Read at most this much of a response body; beyond it the connection is
# dropped instead of kept alive (a receiver has no reason to send more).
MAX_BODY_READ_BYTES = 64 * 1024

PoolKey = tuple[str, str, int]


class _HostPool:
    """A keep-alive pool for one (scheme, host, port) and the semaphore bounding its use."""

    def __init__(self, key: PoolKey, client: HTTPClient, size: int):
        self.key = key
        self.client = client
        self.slots = BoundedSemaphore(size)


class HttpSender:
    def __init__(self, config: DeliveryConfig, *,
                 max_connections_per_host: int | None = None,
                 ca_file: str | None = None):
        if max_connections_per_host is None:
            max_connections_per_host = min(config.max_in_flight, config.max_connections_per_host)
        if max_connections_per_host < 1:
            raise ValueError("max_connections_per_host: must be >= 1, got %r"
                             % (max_connections_per_host,))
        self._config = config
        self._per_host = max_connections_per_host
        self._ca_file = ca_file          # extra CA bundle for https receivers
        self._pools: dict[PoolKey, _HostPool] = {}
        self._closed = False

    def send(self, request: HttpRequest) -> Outcome:
        started = time.monotonic()
        try:
            target = _split_target(request.url)
        except ValueError as exc:
            return Outcome(None, INVALID_REQUEST, error=str(exc))
        if self._closed:
            return Outcome(None, CONNECTION_ERROR, error="sender closed")
        pool = self._pool(target[0])
        deadline = gevent.Timeout(self._config.timeout_seconds)
        deadline.start()
        try:
            with pool.slots:
                outcome = _attempt(pool.client, request, target[1])
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            # Where the client was interrupted is unknown (it may hold a socket
            # it will never give back): start afresh for this host.
            self._replace_pool(pool)
            outcome = Outcome(None, TIMEOUT, error="no complete response within %gs"
                              % self._config.timeout_seconds)
        finally:
            deadline.close()
        return _with_duration(outcome, time.monotonic() - started)

    def close(self) -> None:
        self._closed = True
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.client.close()

    def _pool(self, key: PoolKey) -> _HostPool:
        pool = self._pools.get(key)
        if pool is None:
            pool = _HostPool(key, self._new_client(key), self._per_host)
            self._pools[key] = pool
        return pool

    def _replace_pool(self, pool: _HostPool) -> None:
        old = pool.client
        pool.client = self._new_client(pool.key)
        old.close()

    def _new_client(self, key: PoolKey) -> HTTPClient:
        scheme, host, port = key
        options = {}
        if scheme == "https":
            options["ssl"] = True
            if self._ca_file:
                options["ssl_options"] = {"ca_certs": self._ca_file}
        return HTTPClient(host, port, concurrency=self._per_host,
                          connection_timeout=self._config.connect_timeout_seconds,
                          network_timeout=self._config.timeout_seconds, **options)


def host_key(url: str) -> PoolKey | None:
    """(scheme, host, port) of a URL; None if it cannot be sent to."""
    try:
        return _split_target(url)[0]
    except ValueError:
        return None


def _split_target(url: str) -> tuple[PoolKey, str]:
    """((scheme, host, port), request-target) or ValueError naming what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("uri %r: scheme must be http or https" % url)
    host = parts.hostname
    if not host:
        raise ValueError("uri %r: no host" % url)
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError("uri %r: bad port" % url) from None
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return (scheme, host, port), target


def _attempt(client: HTTPClient, request: HttpRequest, target: str) -> Outcome:
    try:
        response = client.request(request.method, target, body=request.body,
                                  headers=dict(request.headers))
    except ssl.SSLError as exc:  # before ValueError: a failed certificate check is both
        return Outcome(None, CONNECTION_ERROR, error=_describe(exc))
    except ValueError as exc:    # bad method, target or header value (not latin-1): unsendable
        return Outcome(None, INVALID_REQUEST, error=str(exc))
    except (OSError, HTTPParseError, RuntimeError) as exc:
        return Outcome(None, _network_reason(exc), error=_describe(exc))
    try:
        status = response.status_code
        retry_after = parse_retry_after(_first(response.get("retry-after")), time.time())
        body = _read_body(response)
    except (OSError, HTTPParseError) as exc:
        return Outcome(None, _network_reason(exc), error=_describe(exc))
    finally:
        response.release()
    reason = SUCCESS if 200 <= status < 300 else BAD_RESPONSE_CODE
    return Outcome(status, reason, body, retry_after=retry_after)


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


def _with_duration(outcome: Outcome, seconds: float) -> Outcome:
    return Outcome(outcome.status, outcome.reason, outcome.body_excerpt, seconds,
                   outcome.retry_after, outcome.error)
