"""Build the HTTP request for one webhook delivery (pure: no I/O).

Encoding follows Kazoo's webhooks (``webhooks_util:do_fire`` and
``kz_http_util:json_to_querystring``): the hook's ``custom_data`` is merged over
the payload; ``get`` sends the payload as a query string, ``post``/``put`` send
it url-encoded (``form-data``) or as JSON.  Nested objects become
``key[sub]=v``, lists ``key[]=v``, booleans ``true``/``false``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator, Mapping
from urllib.parse import quote_plus, urlsplit, urlunsplit

import orjson

from eslhook.hooks.model import Hook
from eslhook.netpolicy import OPERATOR

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class HttpRequest:
    method: str                       # "GET" | "POST" | "PUT"
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    network_policy: str = OPERATOR    # where it may connect (eslhook/netpolicy.py)


def merge_custom_data(hook: Hook, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Kazoo semantics: custom_data keys are added and win over the payload's.  Without
    custom_data the payload itself (not a copy) comes back."""
    if not hook.custom_data:
        return payload
    merged = dict(payload)
    merged.update(hook.custom_data)
    return merged


def build_request(hook: Hook, payload: Mapping[str, Any], *, user_agent: str) -> HttpRequest:
    """The request to deliver ``payload`` to ``hook``.

    Raises ``ValueError`` (naming the hook field or payload key) when the hook's
    verb/format is unknown or the payload holds a value that cannot be encoded.
    """
    data = merge_custom_data(hook, payload)
    headers = {
        "X-Hook-ID": _header_value("hook id", hook.id),
        "X-Account-ID": _header_value("hook account_id", hook.account_id),  # Kazoo: the hook's
        "User-Agent": _header_value("user_agent", user_agent),
    }
    verb = hook.http_verb
    if verb == "get":
        return HttpRequest("GET", append_query(hook.uri, encode_form(data)), headers,
                           network_policy=hook.network_policy)
    if verb not in ("post", "put"):
        raise ValueError("hook %s: http_verb: unknown verb %r" % (hook.id, verb))
    if hook.format == "form-data":
        body = encode_form(data).encode("ascii")
        headers["Content-Type"] = FORM_CONTENT_TYPE
    elif hook.format == "json":
        body = encode_json(data)
        headers["Content-Type"] = JSON_CONTENT_TYPE
    else:
        raise ValueError("hook %s: format: unknown body format %r" % (hook.id, hook.format))
    return HttpRequest(verb.upper(), hook.uri, headers, body, hook.network_policy)


def _header_value(what: str, value: str) -> str:
    """Header values go out as printable ASCII: no CR/LF smuggling, no mojibake."""
    if not value.isascii() or not value.isprintable():
        raise ValueError("%s %r cannot be sent in an HTTP header" % (what, value))
    return value


def append_query(uri: str, query: str) -> str:
    """``uri`` with ``query`` appended after any query it already has (fragment dropped:
    it is never sent over HTTP)."""
    parts = urlsplit(uri)
    if not query:
        return urlunsplit(parts._replace(fragment=""))
    existing = parts.query.rstrip("&")
    joined = existing + "&" + query if existing else query
    return urlunsplit(parts._replace(query=joined, fragment=""))


def encode_json(data: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON.  orjson does the common case.  What it refuses (a non-str
    key, an int beyond 64 bits, a lone surrogate, an unknown type) and any output with a
    ``null`` (orjson writes NaN and infinities as null, where we refuse them) goes
    through the standard library, which decides."""
    try:
        body = orjson.dumps(data)
        if b"null" not in body:
            return body
    except orjson.JSONEncodeError:
        pass
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:   # UnicodeEncodeError too: a lone surrogate
        raise ValueError("payload cannot be encoded as JSON: %s" % exc) from None


def encode_form(data: Mapping[str, Any]) -> str:
    """``application/x-www-form-urlencoded`` text, Kazoo style (see module doc)."""
    return "&".join("%s=%s" % (name, quote_plus(value, safe=""))
                    for name, value in _form_pairs(None, data))


def _form_pairs(prefix: str | None, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            part = quote_plus(str(key), safe="")
            yield from _form_pairs(part if prefix is None else "%s[%s]" % (prefix, part), sub)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _form_pairs("%s[]" % prefix, item)
    elif prefix is None:
        raise ValueError("payload must be an object, not %s" % type(value).__name__)
    else:
        yield prefix, _form_scalar(prefix, value)


def _form_scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError("payload key %s: cannot encode a %s" % (name, type(value).__name__))
