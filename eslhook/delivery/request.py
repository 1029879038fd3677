"""Build the HTTP request for one webhook delivery (pure: no I/O).

Encoding follows Kazoo's webhooks (``webhooks_util:do_fire`` and
``kz_http_util:json_to_querystring``): the hook's ``custom_data`` is merged over
the payload; ``get`` sends the payload as a query string, ``post``/``put`` send
it url-encoded (``form-data``) or as JSON.  Nested objects become
``key[sub]=v``, lists ``key[]=v``, booleans ``true``/``false``.

What the hook adds to every request (``HookParts``, worked out once per hook
object, not per delivery): a userinfo in its uri becomes ``Authorization: Basic``
(percent-decoded, as HTTP clients do) and leaves the url; its
``custom_request_headers`` follow eslhook's own headers (they cannot name those:
``hooks.model.RESERVED_HEADERS``); its timeout and TLS files travel with the
request to the sender.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping
from urllib.parse import quote_plus, unquote_to_bytes, urlsplit, urlunsplit

import orjson

from eslhook.hooks.model import Hook
from eslhook.netpolicy import OPERATOR, parse_uri

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"


PARTS_CACHE_SIZE = 4096            # hooks whose HookParts are remembered


@dataclass(frozen=True)
class TlsFiles:
    """A hook's own TLS trust and client identity (PEM file paths); pools are per value."""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class HttpRequest:
    method: str                       # "GET" | "POST" | "PUT"
    url: str
    headers: Mapping[str, str] = field(repr=False)    # may hold credentials
    body: bytes = b""
    network_policy: str = OPERATOR    # where it may connect (eslhook/netpolicy.py)
    timeout_seconds: float | None = None   # None: the delivery config's
    tls: TlsFiles | None = None


@dataclass(frozen=True)
class HookParts:
    """What a hook contributes to each of its requests."""
    url: str                              # the uri without its userinfo
    headers: tuple[tuple[str, str], ...]  # Authorization from the userinfo, custom headers
    tls: TlsFiles | None


_parts: dict[int, tuple[Hook, HookParts]] = {}


def hook_parts(hook: Hook) -> HookParts:
    """``HookParts`` of ``hook``, remembered per hook object (a hook edit makes a new
    object)."""
    entry = _parts.get(id(hook))
    if entry is not None and entry[0] is hook:
        return entry[1]
    parts = _hook_parts(hook)
    if len(_parts) >= PARTS_CACHE_SIZE:
        _parts.clear()
    _parts[id(hook)] = (hook, parts)
    return parts


def _hook_parts(hook: Hook) -> HookParts:
    try:
        uri = parse_uri(hook.uri)
    except ValueError:      # the sender says what is wrong with it (an invalid request)
        return HookParts(hook.uri, tuple(hook.custom_request_headers.items()), None)
    headers = []
    if uri.username is not None:
        credentials = unquote_to_bytes(uri.username) + b":" + unquote_to_bytes(uri.password or "")
        headers.append(("Authorization", "Basic " + base64.b64encode(credentials).decode("ascii")))
    headers += hook.custom_request_headers.items()
    tls = None
    if hook.tls_ca_file or hook.tls_client_cert_file:
        tls = TlsFiles(hook.tls_ca_file, hook.tls_client_cert_file, hook.tls_client_key_file)
    return HookParts(uri.without_userinfo(), tuple(headers), tls)


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
    parts = hook_parts(hook)
    headers = {
        "X-Hook-ID": _header_value("hook id", hook.id),
        "X-Account-ID": _header_value("hook account_id", hook.account_id),  # Kazoo: the hook's
        "User-Agent": _header_value("user_agent", user_agent),
    }
    verb = hook.http_verb
    if verb == "get":
        headers.update(parts.headers)
        return HttpRequest("GET", append_query(parts.url, encode_form(data)), headers,
                           network_policy=hook.network_policy,
                           timeout_seconds=hook.timeout_seconds, tls=parts.tls)
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
    headers.update(parts.headers)
    return HttpRequest(verb.upper(), parts.url, headers, body, hook.network_policy,
                       hook.timeout_seconds, parts.tls)


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
