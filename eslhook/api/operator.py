"""``GET /metrics`` and ``GET /healthz`` on the API listener (no token).

The documents themselves are built by ``eslhook.metrics`` and
``eslhook.health``; these resources only serve them.  Neither carries a
secret (a test greps for them), and a load balancer or Prometheus must reach
them without a token, as with most exporters: keep ``api.listen`` on a
management network.
"""

from __future__ import annotations

import json

import falcon

from .. import health, metrics
from .context import ApiContext
from .envelope import ApiError


def _running_bridge(context: ApiContext):
    if context.bridge is None:
        raise ApiError(503, "no bridge", {"message": "this API runs without the bridge: "
                                                      "there is nothing to report"})
    return context.bridge


class Metrics:
    def __init__(self, context: ApiContext):
        self.context = context

    def on_get(self, req, resp):
        resp.content_type, resp.data = metrics.render_metrics(
            _running_bridge(self.context), req.get_header("Accept"))


class Health:
    def __init__(self, context: ApiContext):
        self.context = context

    def on_get(self, req, resp):
        status, body = health.health(_running_bridge(self.context))
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = falcon.MEDIA_JSON
        resp.set_header("Cache-Control", "no-store")
        resp.data = json.dumps(body).encode()


def install(app: falcon.App, context: ApiContext) -> None:
    app.add_route("/metrics", Metrics(context))
    app.add_route("/healthz", Health(context))
