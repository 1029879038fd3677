"""``GET /metrics`` and ``GET /healthz`` on the API listener (no token).

Both read one status snapshot per request (the context's ``status`` port,
eslhook/ports.py); the documents are pure functions of it, built by
``eslhook.metrics`` and ``eslhook.health``.  Neither carries a secret (a test
greps for them), and a load balancer or Prometheus must reach them without a
token, as with most exporters: keep ``api.listen`` on a management network.
"""

from __future__ import annotations

import json
import time

import falcon

from .. import health, metrics
from ..ports import StatusSnapshot
from .context import ApiContext
from .envelope import ApiError


def _status(context: ApiContext) -> StatusSnapshot:
    if context.status is None:
        raise ApiError(503, "no bridge", {"message": "this API runs without the bridge: "
                                                      "there is nothing to report"})
    return context.status()


class Metrics:
    def __init__(self, context: ApiContext):
        self.context = context

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type, resp.data = metrics.render(_status(self.context),
                                                      req.get_header("Accept"))


class Health:
    def __init__(self, context: ApiContext):
        self.context = context

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status, body = health.health(_status(self.context), time.time())
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = falcon.MEDIA_JSON
        resp.set_header("Cache-Control", "no-store")
        resp.data = json.dumps(body).encode()


def install(app: falcon.App, context: ApiContext) -> None:
    app.add_route("/metrics", Metrics(context))
    app.add_route("/healthz", Health(context))
