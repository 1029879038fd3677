"""``GET /v{1,2}/accounts/{A}/events/stream``: the account's channel events as
Server-Sent Events, as they are mapped (the bridge's ``EventTap``, eslhook/live.py).

EventSource cannot set headers, so the token may come as ``auth_token`` in the
query, as Crossbar allows; the API server keeps no access log, so it is never
written anywhere.  The stream sends ``event: channel`` with the tail's view of each
payload, ``event: dropped`` when this subscriber's queue overflowed (the total so
far), a ``:`` comment every heartbeat so proxies keep the connection, and
``event: end`` when eslhook stops.  Over ``TapLimits.max_streams``: 503.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator

import falcon

from ..live import EventTap, Subscription
from .context import ApiContext
from .envelope import ApiError

RECONNECT_MILLISECONDS = 3000     # EventSource's wait before it reconnects


def sse_frame(event: str, data: object) -> bytes:
    """One Server-Sent Event (``data`` as one line of JSON)."""
    return ("event: %s\ndata: %s\n\n" % (event, json.dumps(data, ensure_ascii=False))
            ).encode("utf-8")


def sse_frames(subscription: Subscription, heartbeat: float) -> Generator[bytes, None, None]:
    """The stream's chunks, until the subscription is closed."""
    reported = 0
    yield b"retry: %d\n: connected\n\n" % RECONNECT_MILLISECONDS
    while True:
        batch = subscription.wait(heartbeat)
        if batch is None:
            yield sse_frame("end", {"reason": "eslhook is stopping"})
            return
        frames = [sse_frame("channel", view) for view in batch.events]
        if batch.dropped != reported:
            reported = batch.dropped
            frames.append(sse_frame("dropped", {"dropped": reported}))
        yield b"".join(frames) or b": heartbeat\n\n"


class SseBody:
    """The WSGI body: the server calls ``close`` when the stream ends, the client
    goes away (a write fails) or the request is killed, even if never iterated."""

    def __init__(self, tap: EventTap, subscription: Subscription):
        self._tap, self._subscription = tap, subscription
        self._frames = sse_frames(subscription, tap.limits.heartbeat_seconds)

    def __iter__(self) -> Iterator[bytes]:
        return self._frames

    def close(self) -> None:
        self._frames.close()
        self._tap.unsubscribe(self._subscription)


class EventStream:
    def __init__(self, context: ApiContext):
        self.context = context

    def on_get(self, req: falcon.Request, resp: falcon.Response, account_id: str) -> None:
        self.context.authorize(req, account_id)
        tap = self.context.tap
        if tap is None:
            raise ApiError(503, "no bridge", {"message": "this API runs without the bridge: "
                                                          "there are no events to stream"})
        subscription = tap.subscribe(account_id)
        if subscription is None:
            raise ApiError(503, "too many streams", {"message": (
                "%d event streams are open (the most eslhook serves at once)"
                % tap.limits.max_streams)}, headers={"Retry-After": "10"})
        resp.content_type = "text/event-stream; charset=utf-8"
        resp.set_header("X-Accel-Buffering", "no")    # nginx: pass each event on at once
        # no request follows a stream on its connection: closing it when the stream
        # ends keeps a stopping server from waiting for an idle keep-alive connection
        resp.set_header("Connection", "close")
        resp.stream = SseBody(tap, subscription)
