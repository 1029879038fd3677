"""Event bodies in FreeSWITCH's two wire formats, and conversion between them.

Pure functions, no I/O.  An event is kept as an ordered list of
``(name, value)`` pairs plus an optional inner body, because real events
repeat headers (``Hangup-Cause`` twice) and order matters for byte-exact
output.

Rendering follows what FreeSWITCH 1.10 does:
- plain (``switch_event_serialize``): ``Name: url-encoded value`` lines, then
  either a blank line, or ``Content-Length: N``, a blank line and the raw
  inner body (no trailing blank line);
- json (``switch_event_serialize_json``): one compact object, every value a
  string, duplicate names repeated as duplicate keys, an inner body as
  ``Content-Length`` + ``_body`` keys at the end, non-ASCII left as UTF-8.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple
from urllib.parse import unquote

# SWITCH_URL_UNSAFE in switch_utils.h; bytes outside ' '..'~' are also
# encoded, and an existing %XX (upper-case hex) is kept as it is.
_ENCODE = re.compile(rb'%[0-9A-F]{2}|[^\x20-\x7e]|[\r\n #%&+:;<=>?@\[\\\]^`{|}"]')


class EventData(NamedTuple):
    headers: list[tuple[str, str]]
    body: str | None  # the inner body (BACKGROUND_JOB result), if any

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in reversed(self.headers):  # last one wins, as in framing
            if key == name:
                return value
        return default


def _encode_one(match: re.Match) -> bytes:
    found = match.group(0)
    return found if len(found) == 3 else b"%%%02X" % found[0]


def url_encode(value: str) -> str:
    """``switch_url_encode`` (no double encoding of an existing ``%XX``)."""
    raw = value.encode("utf-8", "surrogateescape")
    return _ENCODE.sub(_encode_one, raw).decode("ascii")


def parse_plain(body: bytes) -> EventData:
    """Decoded headers (in order, duplicates kept) of a plain event body."""
    head, sep, rest = body.partition(b"\n\n")
    headers: list[tuple[str, str]] = []
    inner: str | None = None
    for line in head.decode("utf-8", "replace").split("\n"):
        name, found, value = line.partition(": ")
        if not found:
            if line.endswith(":"):
                headers.append((line[:-1], ""))
            continue
        headers.append((name, unquote(value, errors="replace")))
    if sep:
        length = EventData(headers, None).get("Content-Length")
        if length is not None and length.isdigit():
            inner = rest[:int(length)].decode("utf-8", "replace")
            # The inner length is re-derived from the body when rendering.
            headers = [(k, v) for k, v in headers if k != "Content-Length"]
    return EventData(headers, inner)


def parse_json(body: bytes) -> EventData:
    """Headers (in order, duplicate keys kept) of a json event body."""
    try:
        pairs = json.loads(body.decode("utf-8", "replace"),
                           object_pairs_hook=lambda items: items)
    except ValueError as exc:
        raise ValueError("invalid event json: %s" % exc) from None
    if not isinstance(pairs, list):
        raise ValueError("event json is not an object")
    headers: list[tuple[str, str]] = []
    inner: str | None = None
    for name, value in pairs:
        text = value if isinstance(value, str) else json.dumps(value)
        if name == "_body":
            inner = text
        else:
            headers.append((name, text))
    if inner is not None:
        headers = [(k, v) for k, v in headers if k != "Content-Length"]
    return EventData(headers, inner)


def parse(body: bytes, fmt: str) -> EventData:
    if fmt == "plain":
        return parse_plain(body)
    if fmt == "json":
        return parse_json(body)
    raise ValueError("unknown event format %r (plain or json)" % fmt)


def render_plain(event: EventData) -> bytes:
    lines = ["%s: %s\n" % (name, url_encode(value)) for name, value in event.headers]
    out = "".join(lines).encode("ascii")
    if event.body is None:
        return out + b"\n"
    inner = event.body.encode("utf-8", "surrogateescape")
    return out + b"Content-Length: %d\n\n" % len(inner) + inner


def _json_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render_json(event: EventData) -> bytes:
    items = ["%s:%s" % (_json_str(k), _json_str(v)) for k, v in event.headers]
    if event.body is not None:
        length = len(event.body.encode("utf-8", "surrogateescape"))
        items.append('"Content-Length":"%d"' % length)
        items.append('"_body":%s' % _json_str(event.body))
    return ("{" + ",".join(items) + "}").encode("utf-8", "surrogateescape")


def _xml_text(text: str) -> str:
    # switch_xml_ampencode on element text
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#xD;"))


def render_xml(event: EventData) -> bytes:
    """``switch_event_xmlize`` + ``switch_xml_toxml``: values url-encoded
    as in plain, two spaces per level, the inner body as ``<body>``."""
    lines = ["<event>", "  <headers>"]
    lines += ["    <%s>%s</%s>" % (name, _xml_text(url_encode(value)), name)
              for name, value in event.headers]
    lines.append("  </headers>")
    if event.body:
        length = len(event.body.encode("utf-8", "surrogateescape"))
        lines.append("  <Content-Length>%d</Content-Length>" % length)
        lines.append("  <body>%s</body>" % _xml_text(event.body))
    lines.append("</event>")
    return "\n".join(lines).encode("utf-8", "surrogateescape")


_RENDERERS = {"plain": render_plain, "json": render_json, "xml": render_xml}


def render(event: EventData, fmt: str) -> bytes:
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError("unknown event format %r (plain, json or xml)" % fmt)
    return renderer(event)


def convert(body: bytes, src_fmt: str, dst_fmt: str) -> bytes:
    """An event body in another format (the same bytes when formats agree)."""
    if src_fmt == dst_fmt:
        return body
    return render(parse(body, src_fmt), dst_fmt)


def event_frame(body: bytes, fmt: str) -> bytes:
    """The whole frame, header order as mod_event_socket writes it."""
    return b"Content-Length: %d\nContent-Type: text/event-%s\n\n%s" % (
        len(body), fmt.encode("ascii"), body)
