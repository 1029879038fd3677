"""The falcon app and its server: gevent's WSGI server in the eslhook process.

Routes are added by *installers*, ``install(app, context)``, listed in
``ROUTE_INSTALLERS``; another resource (``/metrics``, ``/healthz``,
``/v2/accounts/{account_id}/webhooks/attempts``...) is one more installer,
here or passed to ``create_app(..., extra=[...])``.  ``versioned_route``
mounts a path under both ``/v1`` and ``/v2``, as Crossbar does.  Errors
raised anywhere (``ApiError``, falcon's 404/405, a bug) leave in the
Crossbar envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import falcon
import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

from . import attempts, catalog, operator
from .context import ApiContext
from .envelope import (ApiError, RequestIdMiddleware, handle_api_error, handle_unexpected,
                       serialize_http_error)
from .webhooks import AccountWebhook, AccountWebhooks, DescendantWebhooks

log = logging.getLogger(__name__)

API_VERSIONS = ("v1", "v2")
Installer = Callable[[falcon.App, ApiContext], None]


def versioned_route(app: falcon.App, path: str, resource, **kwargs) -> None:
    """Mount ``path`` (e.g. "/accounts/{account_id}/webhooks") as /v1/... and /v2/..."""
    for version in API_VERSIONS:
        app.add_route("/%s%s" % (version, path), resource, **kwargs)


def install_webhooks(app: falcon.App, context: ApiContext) -> None:
    versioned_route(app, "/accounts/{account_id}/webhooks", AccountWebhooks(context))
    versioned_route(app, "/accounts/{account_id}/descendants/webhooks",
                    DescendantWebhooks(context))
    versioned_route(app, "/accounts/{account_id}/webhooks/{hook_id}", AccountWebhook(context))


def install_attempts(app: falcon.App, context: ApiContext) -> None:
    """The attempt log and replay (eslhook/api/attempts.py)."""
    log_resource = attempts.Attempts(context)
    versioned_route(app, "/accounts/{account_id}/webhooks/attempts", log_resource)
    versioned_route(app, "/accounts/{account_id}/webhooks/{hook_id}/attempts", log_resource,
                    suffix="hook")
    versioned_route(app, "/accounts/{account_id}/webhooks/{hook_id}/replay",
                    attempts.Replay(context))


def install_catalog(app: falcon.App, context: ApiContext) -> None:
    samples = gevent.get_hub().threadpool.apply(catalog.bundled_capture)
    samples = catalog.sample_payloads(samples)
    versioned_route(app, "/webhooks", catalog.HookTypes())
    versioned_route(app, "/webhooks/samples", catalog.Samples(samples))
    versioned_route(app, "/webhooks/samples/{sample_id}", catalog.Sample(samples))
    app.add_route("/openapi.json", catalog.OpenApi(catalog.openapi_document()))


ROUTE_INSTALLERS: tuple[Installer, ...] = (install_webhooks, install_attempts, install_catalog,
                                           operator.install)


def create_app(context: ApiContext, extra: Iterable[Installer] = ()) -> falcon.App:
    app = falcon.App(middleware=[
        RequestIdMiddleware(),
        # Monster UI is a browser app on another origin; tokens travel in a
        # header, never a cookie, so any origin may call
        falcon.CORSMiddleware(allow_origins="*",
                              expose_headers=["X-Request-ID", "ETag", "Location"]),
    ])
    app.req_options.auto_parse_qs_csv = False
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(ApiError, handle_api_error)
    app.set_error_serializer(serialize_http_error)
    for install in (*ROUTE_INSTALLERS, *extra):
        install(app, context)
    return app


def _log_crash(greenlet) -> None:
    log.error("API request greenlet died: %r", greenlet.exception, exc_info=greenlet.exc_info)


class _LoggedPool(Pool):
    def spawn(self, *args, **kwargs):
        greenlet = super().spawn(*args, **kwargs)
        greenlet.link_exception(_log_crash)
        return greenlet


class ApiServer:
    """Serves a WSGI app on host:port (port 0: a free one, see ``port``)."""

    def __init__(self, app, host: str, port: int, *, max_connections: int = 256):
        self._pool = _LoggedPool(max_connections)
        # log=None: no access log, whose query strings may carry auth_token
        self._server = WSGIServer((host, port), app, spawn=self._pool, log=None,
                                  error_log=logging.getLogger(__name__ + ".wsgi"))

    @classmethod
    def for_bridge(cls, bridge, extra: Iterable[Installer] = ()) -> "ApiServer":
        context = ApiContext.for_bridge(bridge)
        return cls(create_app(context, extra), bridge.config.api.host, bridge.config.api.port)

    @property
    def host(self) -> str:
        return self._server.server_host

    @property
    def port(self) -> int:
        return self._server.server_port

    def url(self, path: str = "") -> str:
        host = self.host
        return "http://%s:%d%s" % ("[%s]" % host if ":" in host else host, self.port, path)

    def start(self) -> None:
        self._server.start()
        log.info("REST API listening on %s", self.url())

    def stop(self, timeout: float = 2.0) -> None:
        self._server.stop(timeout=timeout)
