"""A real HTTP receiver for tests: gevent WSGI on 127.0.0.1, port picked free.

Records every request and answers as scripted::

    from receiver import Reply, receiver      # `receiver` is a pytest fixture

    def test_x(receiver):
        receiver.script(Reply(500), Reply(200))       # then the default reply
        ... deliver to receiver.url("/hook") ...
        first, second = receiver.wait_for(2, timeout=5)
        assert second.form["call_id"] == ["abc"]

A responder function can replace the script: ``receiver.responder = fn`` where
``fn(request: ReceivedRequest) -> Reply``.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs

import pytest
from gevent.event import Event
from gevent.pywsgi import WSGIHandler, WSGIServer

_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
                401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 410: "Gone",
                429: "Too Many Requests", 500: "Internal Server Error",
                502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0                 # seconds before the status line (a hanging receiver)
    trickle_interval: float = 0.0      # > 0: send the body one byte at a time, this far apart

    @classmethod
    def retry_after(cls, status: int, seconds: int) -> "Reply":
        return cls(status, headers=(("Retry-After", str(seconds)),))


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query_string: str
    query: dict[str, list[str]]        # parse_qs of the query string
    headers: dict[str, str]            # lower-case names
    body: bytes
    form: dict[str, list[str]] | None  # parsed application/x-www-form-urlencoded body
    json: Any                          # parsed application/json body (None otherwise)
    arrived: float                     # time.monotonic() when the request was read
    parse_error: str | None = None     # why form/json could not be parsed

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _NoDelayHandler(WSGIHandler):
    """pywsgi answers a keep-alive request in two writes; without TCP_NODELAY the second
    waits for the client's delayed ACK (~40 ms), which would make every test slow."""

    def handle(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle()


class Receiver:
    def __init__(self, host: str = "127.0.0.1", *, certfile: str | None = None,
                 keyfile: str | None = None, client_ca: str | None = None):
        self.requests: list[ReceivedRequest] = []
        self.default_reply = Reply()
        self.responder: Callable[[ReceivedRequest], Reply] | None = None
        self._script: list[Reply] = []
        self.active = 0                 # requests being answered right now
        self.max_active = 0             # the most answered at once (proves parallel senders)
        self._arrival = Event()
        self._stopping = Event()
        ssl_args = ({"ssl_context": _server_tls_context(certfile, keyfile, client_ca)}
                    if certfile else {})
        self._server = WSGIServer((host, 0), self._app, log=None, error_log=None,
                                  handler_class=_NoDelayHandler, **ssl_args)
        self._server.start()
        self.scheme = "https" if certfile else "http"
        self.host = host
        self.port = self._server.server_port

    def url(self, path: str = "/") -> str:
        return "%s://%s:%d%s" % (self.scheme, self.host, self.port, path)

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then ``default_reply``."""
        self._script.extend(replies)

    def wait_for(self, count: int, timeout: float) -> list[ReceivedRequest]:
        """The first ``count`` requests; raises TimeoutError if they do not arrive in time."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("expected %d requests within %gs, %d arrived"
                                   % (count, timeout, len(self.requests)))
            self._arrival.clear()
            if len(self.requests) < count:
                self._arrival.wait(min(left, 0.5))
        return self.requests[:count]

    def stop(self) -> None:
        self._stopping.set()           # wakes handlers sleeping in a scripted delay
        self._server.stop(timeout=1)

    def _next_reply(self, request: ReceivedRequest) -> Reply:
        if self.responder is not None:
            return self.responder(request)
        if self._script:
            return self._script.pop(0)
        return self.default_reply

    def _app(self, environ, start_response):
        request = _record(environ)
        self.requests.append(request)
        self._arrival.set()
        reply = self._next_reply(request)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if reply.delay and self._stopping.wait(reply.delay):
                return []
        finally:
            self.active -= 1
        headers = [("Content-Length", str(len(reply.body)))] if not reply.trickle_interval else []
        start_response("%d %s" % (reply.status, _STATUS_TEXT.get(reply.status, "Status")),
                       headers + list(reply.headers))
        if reply.trickle_interval:
            return self._trickle(reply)
        return [reply.body]

    def _trickle(self, reply: Reply) -> Iterator[bytes]:
        for index in range(len(reply.body)):
            if self._stopping.wait(reply.trickle_interval):
                return
            yield reply.body[index:index + 1]


def _server_tls_context(certfile: str, keyfile: str | None,
                        client_ca: str | None) -> ssl.SSLContext:
    """``client_ca``: require a client certificate it signed (an mTLS receiver)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


def _record(environ) -> ReceivedRequest:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
    headers = {key[5:].replace("_", "-").lower(): value
               for key, value in environ.items() if key.startswith("HTTP_")}
    content_type = environ.get("CONTENT_TYPE") or ""
    if content_type:
        headers["content-type"] = content_type
    if "CONTENT_LENGTH" in environ and environ["CONTENT_LENGTH"]:
        headers["content-length"] = environ["CONTENT_LENGTH"]
    form, parsed_json, parse_error = _parse_body(content_type, body)
    query_string = environ.get("QUERY_STRING", "")
    return ReceivedRequest(
        method=environ["REQUEST_METHOD"], path=environ.get("PATH_INFO", ""),
        query_string=query_string, query=parse_qs(query_string, keep_blank_values=True),
        headers=headers, body=body, form=form, json=parsed_json, arrived=time.monotonic(),
        parse_error=parse_error)


def _parse_body(content_type: str, body: bytes):
    """(form, json, error): a body that does not parse is recorded, not raised."""
    media_type = content_type.split(";")[0].strip().lower()
    try:
        if media_type == "application/x-www-form-urlencoded":
            text = body.decode("ascii")     # a urlencoded body is plain ASCII
            return parse_qs(text, keep_blank_values=True, strict_parsing=bool(text)), None, None
        if media_type == "application/json":
            return None, json.loads(body.decode("utf-8")), None
    except ValueError as exc:
        return None, None, "%s: %s" % (media_type, exc)
    return None, None, None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["Receiver", "ReceivedRequest", "Reply", "receiver"]
