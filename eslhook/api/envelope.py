"""Crossbar's envelope: request bodies in, ``{"data": ..., "status": ...}`` out.

Every response, errors included, is JSON in Kazoo's envelope so Monster UI
and scripts written for Crossbar read it unchanged.  Request bodies are
``{"data": {...}}``; what cannot be read gets a 400/408/413/415 naming the
problem, never a 500: nesting deeper than ``MAX_JSON_DEPTH``, a lone surrogate
(``"\\ud800"``: no UTF-8 spells it, so it could be neither stored nor echoed)
and numbers out of a float's range are refused when the body is decoded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import falcon

from .. import __version__

log = logging.getLogger(__name__)

# Content types read as JSON.  Crossbar also tries JSON for curl's default
# (form-urlencoded) and for no content type: Kazoo's own examples send -d
# without -H "Content-Type: application/json".
_JSON_TYPES = frozenset({"application/json", "application/x-json"})
_CURL_DEFAULT = "application/x-www-form-urlencoded"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# a hook is two levels deep (data, custom_data); Python's own limit (~1000)
# would be a RecursionError, in the decoder or in whatever walks the value next
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")   # json.loads pairs the valid ones
# the only way a surrogate gets into decoded text (raw ones are not UTF-8)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CONTAINERS = (dict, list)


class ApiError(Exception):
    """An error response: HTTP status, Crossbar message and ``data``."""

    def __init__(self, status: int, message: str, data: dict | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data if data is not None else {"message": message}
        self.headers = headers or {}


def validation_error(errors: dict) -> ApiError:
    """400 with Kazoo's per-field errors: ``{field: {kind: {"message": ...}}}``."""
    return ApiError(400, "validation error", errors)


def revision_of(data: Any) -> str:
    """A digest of what is returned: the hook's revision for If-Match."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _common(req: falcon.Request) -> dict:
    context = req.context
    return {"request_id": context.get("request_id", ""), "timestamp": _timestamp(),
            "version": __version__, "auth_token": context.get("auth_token", "")}


def send(req: falcon.Request, resp: falcon.Response, data: Any, *, status: int = 200,
         revision: str | None = None, extra: dict | None = None) -> None:
    """A success response; ``revision`` (a single hook's) also goes out as ETag.
    ``extra``: more envelope keys (a page's ``start_key``, ``next_start_key``)."""
    body = {"data": data, "status": "success",
            "revision": revision or revision_of(data), **_common(req)}
    if isinstance(data, list):
        body["page_size"] = len(data)
    body.update(extra or {})
    if revision:
        resp.set_header("ETag", '"%s"' % revision)
    _write(resp, status, body)


def _write(resp: falcon.Response, status: int, body: dict) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body, ensure_ascii=False)


def error_body(req: falcon.Request, status: int, message: str, data: dict) -> dict:
    return {"data": data, "status": "error", "error": str(status), "message": message,
            **_common(req)}


def handle_api_error(req, resp, error: ApiError, params) -> None:
    for name, value in error.headers.items():
        resp.set_header(name, value)
    _write(resp, error.status, error_body(req, error.status, error.message, error.data))


def handle_unexpected(req, resp, error: Exception, params) -> None:
    if isinstance(error, falcon.HTTPError):  # falcon's own: 404, 405, bad headers...
        raise error
    log.error("request %s %s failed (request_id %s)", req.method, printable(req.path),
              req.context.get("request_id"), exc_info=error)
    _write(resp, 500, error_body(req, 500, "internal server error",
                                 {"message": "unexpected error; see the eslhook log"}))


def serialize_http_error(req, resp, error: falcon.HTTPError) -> None:
    """falcon's errors (unknown path, wrong method, bad header) in the envelope."""
    status = error.status_code
    data: dict[str, Any]
    if status == 404:
        message, data = "not found", {"message": "no resource at %s" % req.path}
    elif status == 405:
        allowed = dict(error.headers or {}).get("Allow", "")
        message = "method not allowed"
        data = {"message": "%s is not allowed here; allowed: %s" % (req.method, allowed),
                "allowed": [m.strip() for m in allowed.split(",") if m.strip()]}
    else:
        message = (error.title or "error").lower()
        data = {"message": error.description or error.title or "error"}
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(error_body(req, status, message, data), ensure_ascii=False)


class RequestIdMiddleware:
    """Crossbar's request_id: the client's X-Request-ID if sane, else a new one."""

    def process_request(self, req, resp):
        given = req.get_header("X-Request-ID") or ""
        req.context.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        req.context.auth_token = ""

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Request-ID", req.context.get("request_id", ""))


# -- request bodies -----------------------------------------------------------

def request_json(req: falcon.Request, max_bytes: int) -> dict:
    """The parsed request body (cached: auth may read ``auth_token`` from it first)."""
    cached = req.context.get("body")
    if cached is None:
        try:
            cached = _read_json(req, max_bytes)
        except ApiError as error:
            cached = error
        req.context.body = cached
    if isinstance(cached, ApiError):
        raise cached
    return cached


def request_data(req: falcon.Request, max_bytes: int) -> dict:
    """The ``data`` object of a ``{"data": {...}}`` body."""
    body = request_json(req, max_bytes)
    data = body.get("data")
    if not isinstance(data, dict):
        what = "is missing" if "data" not in body else "must be a JSON object"
        raise ApiError(400, "invalid request envelope", {"data": {
            "required" if "data" not in body else "type": {
                "message": 'the request body must be {"data": {...}}; "data" %s' % what}}})
    return data


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "request entity too large", {"body": {"maxLength": {
        "message": "the request body must not be more than %d bytes" % max_bytes,
        "target": max_bytes}}})


def _media_type(req: falcon.Request) -> str:
    return (req.content_type or "").split(";", 1)[0].strip().lower()


def _read_json(req: falcon.Request, max_bytes: int) -> dict:
    length = req.content_length
    if length is not None and length > max_bytes:
        raise _too_large(max_bytes)
    media = _media_type(req)
    is_json = media in _JSON_TYPES or media.endswith("+json")
    if media and not is_json and media != _CURL_DEFAULT:
        raise _unsupported(media)
    raw = _read_body(req, max_bytes, length)
    if not raw.strip():
        raise ApiError(400, "invalid request envelope", {"data": {"required": {
            "message": 'the request body is empty; send {"data": {...}}'}}})
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep("json") from None
    except (UnicodeDecodeError, ValueError) as exc:
        if media == _CURL_DEFAULT:
            raise _unsupported(media) from None
        raise ApiError(400, "malformed JSON", {"json": {"parse": {
            "message": "the request body is not valid JSON: %s" % exc}}}) from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid request envelope", {"data": {"type": {
            "message": 'the request body must be a JSON object: {"data": {...}}'}}})
    # the cheap scans first: the walk that names the field costs ~1 µs a value
    if _SURROGATE_ESCAPE.search(text) or _deeper_than(body, MAX_JSON_DEPTH):
        _check_values(body)
    return body


def _read_body(req: falcon.Request, max_bytes: int, length: int | None) -> bytes:
    # no Content-Length (chunked): falcon's bounded_stream would read nothing;
    # gevent's input ends at the last chunk, and we stop one byte past the limit
    stream = req.bounded_stream if length is not None else req.stream
    try:
        raw = stream.read(max_bytes + 1)
    except TimeoutError:   # the body stopped coming (server.py's stalled-read bound)
        raise ApiError(408, "request timeout", {"body": {"timeout": {
            "message": "the request body stopped arriving before its end"}}}) from None
    except (OSError, ValueError) as exc:   # a broken chunked encoding, a reset
        raise ApiError(400, "unreadable body", {"body": {"read": {
            "message": "the request body could not be read: %s" % (
                str(exc) or type(exc).__name__)}}}) from None
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    return raw


def _deeper_than(body: dict, limit: int) -> bool:
    """Nesting past ``limit``, walking the containers only (iterative)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack += [(child, depth + 1) for child in children if type(child) in _CONTAINERS]
    return False


def _check_values(body: dict) -> None:
    """400 for what json.loads accepts but nothing after it can handle: nesting
    past MAX_JSON_DEPTH, lone surrogates in a key or string.  Iterative, so
    depth costs no stack."""
    stack: list[tuple[Any, tuple, int]] = [(body, (), 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise _surrogate(path, value)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(_field_name(path))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and _SURROGATE.search(key):
                raise _surrogate(path + (key,), key)
            stack.append((item, path + (key,), depth + 1))


def _field_name(path: tuple) -> str:
    """Kazoo names fields inside ``data`` by their own path ("custom_data.crm")."""
    if path[:1] == ("data",) and len(path) > 1:
        path = path[1:]
    return printable(".".join(str(p) for p in path) or "json")


def printable(text: str) -> str:
    """Lone surrogates spelled \\udXXX: safe to encode, log and echo."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate(path: tuple, value: str) -> ApiError:
    return ApiError(400, "validation error", {_field_name(path): {"format": {
        "message": "Value is not valid Unicode: it holds a lone UTF-16 surrogate "
                   "(%s); send the character itself or a \\u pair" % ", ".join(
                       sorted({printable(c) for c in _SURROGATE.findall(value)})),
        "value": printable(value)}}})


def _too_deep(field: str) -> ApiError:
    return ApiError(400, "validation error", {field: {"maxDepth": {
        "message": "JSON nested deeper than %d levels" % MAX_JSON_DEPTH,
        "target": MAX_JSON_DEPTH}}})


def _unsupported(media: str) -> ApiError:
    return ApiError(415, "unsupported media type", {"content_type": {"enum": {
        "message": "send the body as Content-Type: application/json",
        "target": ["application/json"], "value": media}}})


def _no_constant(name: str):
    raise ValueError("%s is not JSON" % name)


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):   # 1e400: it would go out as Infinity, which is not JSON
        raise ValueError("number %s is out of range" % text[:40])
    return number
