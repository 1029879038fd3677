"""gevent's WSGI server with the limits a listener facing clients needs.

pywsgi alone waits forever for a request head and keeps idle keep-alive
connections for good, so 300 silent connections filled its pool and took the
API and /healthz down.  Here:

- a connection must deliver each request head within ``header_timeout``
  (from the accept, or from the first byte of a keep-alive request), else it
  is closed: a slowloris dribbling a byte a second is cut all the same;
- a keep-alive connection with no new request for ``idle_timeout`` is closed;
- while a request runs, one socket read or write stalled ``header_timeout``
  ends it (a body that stops coming, a client that stops reading);
- ``stop`` closes connections waiting between requests at once and lets the
  running requests finish;
- a client (``limits.client_key``) with ``per_client`` connections open has
  its next one closed at once, unread, so no single address can take the
  ``max_connections`` slots others need.

Accepted sockets get TCP_NODELAY: pywsgi sends a response's head and body in
two writes, and Nagle held the body back for the client's delayed ACK, 40 ms
on every keep-alive request.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

import gevent
import greenlet
from gevent.pywsgi import WSGIHandler, WSGIServer

from .limits import ConnectionCounts, SummaryLog, client_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_connections: int = 1000
    per_client: int = 64
    log_interval: float = 60.0


def client_of(address) -> str:
    """The limits' key of an accepted connection's peer address."""
    return client_key(address[0] if isinstance(address, tuple) else None)


# pywsgi's own answer to a request it cannot parse (its _BAD_REQUEST_RESPONSE)
BAD_REQUEST_RESPONSE = (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                        b"Content-length: 0\r\n\r\n")


class _HeadTimeout(gevent.Timeout):
    """The request head did not arrive in time (ours, not any other Timeout)."""


class GuardedHandler(WSGIHandler):
    server: "GuardedServer"
    _served = 0

    def handle_one_request(self):
        limits = self.server.limits
        self.socket.settimeout(None)   # the waits below are bounded by Timeouts
        self.server.waiting.add(gevent.getcurrent())   # no request running: stop may close it
        self._head_timer = _HeadTimeout(limits.header_timeout)
        try:
            if self._served and not self._next_request_begins(limits.idle_timeout):
                return None
            self._served += 1
            self._head_timer.start()
            return super().handle_one_request()
        except _HeadTimeout as timeout:
            if timeout is not self._head_timer:
                raise
            return None    # the connection is closed by handle()
        finally:
            self._head_timer.close()
            self.server.waiting.discard(gevent.getcurrent())

    def _next_request_begins(self, idle_timeout: float) -> bool:
        """A keep-alive connection: wait up to idle_timeout for the next request's
        first byte (it may already be buffered: a pipelined request)."""
        try:
            return bool(gevent.with_timeout(idle_timeout, self.rfile.peek, 1,
                                            timeout_value=b""))
        except OSError:
            return False

    def get_environ(self):
        # the head is in: the application's time is not the head's
        self._head_timer.close()
        self.server.waiting.discard(gevent.getcurrent())
        self.socket.settimeout(self.server.limits.header_timeout)
        return super().get_environ()

    def _handle_client_error(self, ex):
        """A request pywsgi cannot parse: 400, counted in a summary line instead
        of one error line (and sometimes a traceback) per request."""
        self.server.malformed.count(client_of(self.client_address))
        return ("400", BAD_REQUEST_RESPONSE)

    def handle_error(self, t, v, tb):
        if isinstance(v, TimeoutError):   # a stalled read or write while responding
            self.close_connection = True
            return
        super().handle_error(t, v, tb)


class GuardedServer(WSGIServer):
    handler_class = GuardedHandler

    def __init__(self, listener, application, limits: ServerLimits, **kwargs):
        super().__init__(listener, application, **kwargs)
        self.limits = limits
        self.connections = ConnectionCounts(limits.per_client)
        self.waiting: set[greenlet.greenlet] = set()   # connections between requests
        self.refused = SummaryLog("API connections refused over api.max_connections_per_client"
                                  " (%d)" % limits.per_client, limits.log_interval, log)
        self.malformed = SummaryLog("malformed HTTP requests refused with 400",
                                    limits.log_interval, log, logging.INFO)

    def do_handle(self, sock, address):
        client = client_of(address)
        if not self.connections.admit(client):
            self.refused.count(client)
            sock.close()          # unread: refusing costs one accept and one close
            return
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().do_handle(sock, address)

    def do_close(self, sock, address):
        try:
            super().do_close(sock, address)
        finally:
            self.connections.release(client_of(address))

    def stop(self, timeout=None):
        """Stop accepting, close the connections waiting for a request at once
        (an idle keep-alive one would hold the stop for ``timeout``), let the
        requests running finish within ``timeout``."""
        self.close()
        gevent.killall(list(self.waiting), block=False)
        super().stop(timeout)

    def close(self):
        super().close()
        self.refused.close()
        self.malformed.close()

