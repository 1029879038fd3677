"""What ``EslConnection.connect`` says to a peer that is not an event socket.

A wrong port (an HTTP server, a SIP proxy's TLS port) must fail at once with
a reason naming the likely mistake, not after the whole greeting timeout.
"""

from __future__ import annotations

import gevent
import pytest
from gevent.server import StreamServer

from eslhook.source.esl import AuthenticationError, EslConnection, NotConnectedError

GREETING_TIMEOUT = 30.0     # far longer than the test may take: a wait would show


def connect_error(server, expected: type[NotConnectedError]) -> NotConnectedError:
    """What connecting to ``server`` raises, bounded well below the greeting timeout."""
    try:
        conn = EslConnection("127.0.0.1", server.address[1], "ClueCon",
                             timeout=GREETING_TIMEOUT)
        with gevent.Timeout(5, AssertionError("connect waited for the greeting timeout")):
            with pytest.raises(expected) as info:
                conn.connect()
    finally:
        server.stop(timeout=1)
    assert conn.closed.is_set() and not conn.connected
    return info.value


def serve(greeting: bytes, hold_seconds: float):
    def handle(sock, _address):
        sock.sendall(greeting)
        gevent.sleep(hold_seconds)
        sock.close()
    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    return server


@pytest.mark.parametrize("greeting,hold,reason", [
    # HTTP's "\r\n\r\n" never ends an ESL frame head: bytes, then EOF
    (b"HTTP/1.0 400 Bad Request\r\n\r\n", 0.2, "bytes that are not an ESL frame"),
    # an ESL-shaped frame that is not the greeting: refused as soon as read,
    # although the peer holds the connection open
    (b"Content-Type: text/plain\n\n", 60.0, "did not ask for auth"),
    (b"Content-Type: text/event-plain\nContent-Length: 0\n\n", 60.0, "did not ask for auth"),
])
def test_a_peer_that_is_not_an_event_socket_fails_fast_saying_so(greeting, hold, reason):
    error = connect_error(serve(greeting, hold), NotConnectedError)
    assert not isinstance(error, AuthenticationError)
    assert reason in str(error) and "not an event socket?" in str(error)


def test_a_peer_that_closes_before_the_greeting_fails_fast():
    error = connect_error(serve(b"", 0.0), NotConnectedError)
    assert "closed the connection before auth: connection closed by the switch" in str(error)


def test_a_rude_rejection_is_an_authentication_error_naming_the_reason():
    body = b"Access Denied, go away.\n"
    server = serve(b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n%s"
                   % (len(body), body), 60.0)
    assert "Access Denied, go away." in str(connect_error(server, AuthenticationError))
