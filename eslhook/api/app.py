"""The falcon app and its server: gevent's WSGI server in the eslhook process.

Routes are added by *installers*, ``install(app, context)``, listed in
``ROUTE_INSTALLERS``; another resource (``/metrics``, ``/healthz``,
``/v2/accounts/{account_id}/webhooks/attempts``...) is one more installer,
here or passed to ``create_app(..., extra=[...])``.  ``versioned_route``
mounts a path under both ``/v1`` and ``/v2``, as Crossbar does.  Errors
raised anywhere (``ApiError``, falcon's 404/405, a bug) leave in the
Crossbar envelope.  Every response says ``X-Content-Type-Options: nosniff``,
and all but the public catalog ``Cache-Control: no-store`` (they echo the
token, and some carry a freshly generated secret).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable, Iterable
from typing import Any

import falcon
import gevent
from gevent.pool import Pool

from . import account_list, api_auth, attempts, catalog, console, operator, stream, support
from .context import ApiContext
from .envelope import (ApiError, RequestIdMiddleware, handle_api_error, handle_unexpected,
                       serialize_http_error)
from ..supervise import TASK, Deadline, Supervisor, deadline_of
from ..payload import ChannelPayload
from .server import GuardedServer, ServerLimits
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
    versioned_route(app, "/accounts/{account_id}/webhooks/{hook_id}/attempts/{attempt_id}"
                    "/resend", support.Resend(context))
    versioned_route(app, "/accounts/{account_id}/webhooks/{hook_id}/test",
                    support.Test(context, bundled_samples()))


def bundled_samples() -> dict[str, list[ChannelPayload]]:
    """The sample payloads of the bundled capture (mapped once per process)."""
    global _SAMPLES
    if _SAMPLES is None:
        capture = gevent.get_hub().threadpool.apply(catalog.bundled_capture)
        _SAMPLES = catalog.sample_payloads(capture)
    return _SAMPLES


_SAMPLES: dict[str, list[ChannelPayload]] | None = None


def install_catalog(app: falcon.App, context: ApiContext) -> None:
    samples = bundled_samples()
    versioned_route(app, "/webhooks", catalog.HookTypes())
    versioned_route(app, "/webhooks/samples", catalog.Samples(samples))
    versioned_route(app, "/webhooks/samples/{sample_id}", catalog.Sample(samples))
    app.add_route("/openapi.json", catalog.OpenApi(catalog.openapi_document()))


def install_api_auth(app: falcon.App, context: ApiContext) -> None:
    versioned_route(app, "/api_auth", api_auth.ApiAuth(context))


def install_console(app: falcon.App, context: ApiContext) -> None:
    """What the operator console (/ui/) needs besides the webhooks resource."""
    versioned_route(app, "/accounts", account_list.Accounts(context))
    versioned_route(app, "/accounts/{account_id}/events/stream", stream.EventStream(context))
    console.install(app, context)


ROUTE_INSTALLERS: tuple[Installer, ...] = (install_webhooks, install_attempts, install_catalog,
                                           install_api_auth, operator.install, install_console)


class SecurityHeadersMiddleware:
    """nosniff on every response; no-store on every one that may carry a token or
    a secret: all but the resources marked ``public_cacheable`` (the catalog,
    samples and OpenAPI document, which hold neither)."""

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Content-Type-Options", "nosniff")
        if not getattr(resource, "public_cacheable", False):
            resp.set_header("Cache-Control", "no-store")


def create_app(context: ApiContext, extra: Iterable[Installer] = ()) -> falcon.App:
    middleware: list[Any] = [
        RequestIdMiddleware(),
        SecurityHeadersMiddleware(),
        # Monster UI is a browser app on another origin; tokens travel in a
        # header, never a cookie, so any origin may call
        falcon.CORSMiddleware(allow_origins="*",
                              expose_headers=["X-Request-ID", "ETag", "Location", "Retry-After"]),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.auto_parse_qs_csv = False
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(ApiError, handle_api_error)
    app.set_error_serializer(serialize_http_error)
    for install in (*ROUTE_INSTALLERS, *extra):
        install(app, context)
    return app


class _SupervisedPool(Pool):
    """The server's connection pool: each connection's greenlet is a supervised task
    (a crash is logged and counted; pywsgi answers a failing request with a 500)."""

    def __init__(self, size: int):
        super().__init__(size)
        self.supervisor = Supervisor()      # the bridge's, once start() is given it

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> gevent.Greenlet:
        return self.supervisor.spawn_supervised(
            "API connection", func, *args, how=TASK, group=self, **kwargs).greenlet


class ApiServer:
    """Serves a WSGI app on host:port (port 0: a free one, see ``port``), with the
    connection limits of ``limits`` (eslhook/api/server.py)."""

    def __init__(self, app, host: str, port: int, *, limits: ServerLimits = ServerLimits()):
        self.limits = limits
        self._pool = _SupervisedPool(limits.max_connections)
        # log=None: no access log, whose query strings may carry auth_token
        self._server = GuardedServer((host, port), app, limits, spawn=self._pool, log=None,
                                     error_log=logging.getLogger(__name__ + ".wsgi"))

    @classmethod
    def for_context(cls, context: ApiContext, extra: Iterable[Installer] = ()) -> "ApiServer":
        """The API of ``context``, on ``context.config``'s address and limits."""
        config = context.config
        return cls(create_app(context, extra), config.host, config.port,
                   limits=server_limits(config))

    @property
    def host(self) -> str:
        host = self._server.server_host
        assert host is not None     # served on a (host, port)
        return host

    @property
    def port(self) -> int:
        port = self._server.server_port
        assert port is not None     # served on a (host, port)
        return port

    def open_connections(self, client: str | None = None) -> int:
        """Connections being served now (of one ``limits.client_key``, or all)."""
        return self._server.connections.open(client)

    def url(self, path: str = "") -> str:
        host = self.host
        return "http://%s:%d%s" % ("[%s]" % host if ":" in host else host, self.port, path)

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Listen.  No greenlet of its own: gevent accepts from a hub watcher, and
        each connection is a task of ``supervisor``."""
        self._pool.supervisor = supervisor or self._pool.supervisor
        ensure_open_files(self.limits.max_connections + FILE_HEADROOM)
        self._server.start()
        log.info("REST API listening on %s", self.url())

    def stop(self, deadline: Deadline | None = None, *, timeout: float | None = None) -> None:
        """Stop accepting; requests running may finish until ``deadline`` (or
        ``timeout`` seconds from now)."""
        left = deadline_of(deadline, 2.0 if timeout is None else timeout).left()
        self._server.stop(timeout=left)


def server_limits(config) -> ServerLimits:
    return ServerLimits(header_timeout=config.header_timeout_seconds,
                        idle_timeout=config.idle_timeout_seconds,
                        max_connections=config.max_connections,
                        per_client=config.max_connections_per_client,
                        log_interval=config.abuse_log_interval_seconds)


# descriptors besides API connections: switches, delivery pools, the spool
FILE_HEADROOM = 1024


def ensure_open_files(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards ``needed`` (up to the hard limit): at
    the usual 1024, api.max_connections would end in EMFILE, not in refusals."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        log.warning("open files limited to %d (hard limit); api.max_connections needs about "
                    "%d: raise LimitNOFILE", target, needed)
