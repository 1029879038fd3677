"""The REST API: Kazoo Crossbar's ``webhooks`` resource, served in-process.

``create_app(ApiContext(...))`` builds the falcon app; ``ApiServer`` serves
it with gevent's WSGI server; ``Bridge`` starts one when ``api.listen`` is set.
"""

from .app import ApiServer, create_app, versioned_route
from .context import ApiContext
from .envelope import ApiError, send

__all__ = ["ApiContext", "ApiError", "ApiServer", "create_app", "send", "versioned_route"]
