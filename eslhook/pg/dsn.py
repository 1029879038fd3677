"""PostgreSQL connection strings: checked and shown without their password.

A DSN may carry a password (``postgresql://user:pw@host/db`` or
``password=...`` in its query); nothing eslhook logs or prints shows it: every
place that names the database uses ``redacted``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
_SECRET_QUERY_KEYS = {"password", "sslpassword"}
_KEYWORD_PASSWORD = re.compile(r"(?i)\b(password|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with ``dsn`` (never quoting it), or None."""
    if "://" not in dsn:
        return None if "=" in dsn else ("must be a postgresql:// URI or libpq "
                                        "key=value pairs")
    try:
        parts = urlsplit(dsn)
        parts.port      # raises on a bad port
    except ValueError:
        return "is not a valid URI"
    if parts.scheme not in SCHEMES:
        return "must start with postgresql:// (not %s://)" % parts.scheme[:20]
    return None


def redacted(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***`` (for logs, errors, check-config)."""
    if "://" not in dsn:
        return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + "=***", dsn)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<a malformed DSN>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = userinfo + "@" + host
    query = urlencode([(k, "***" if k in _SECRET_QUERY_KEYS else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="/*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
