"""A hook's write-only values in the API: what a client sees of them, what a write
that sends the masks back means, and who may set the TLS file paths.

- ``custom_request_headers`` values and the password of a ``user:pass@`` uri are
  shown as ``MASK`` (``********``): the header names and the user stay visible.
- A POST/PATCH that sends a ``MASK`` back (a client that GETs, edits and sends the
  whole hook, as Monster UI does) keeps the stored value: the header's of the same
  name, the uri's password.  A ``MASK`` with nothing stored behind it (a create, a
  new header name, a uri that had no password) is a 400: it is not a password.
- ``tls_*_file`` name files on the eslhook machine: only an admin token (or
  hooks.yaml) may set or change them, an account token gets 403, or a tenant
  could make eslhook read any file it can.  An account token's write that sends
  the stored values back unchanged is fine.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..hooks.model import MASK, TLS_FILE_FIELDS, Hook, masked_uri
from ..netpolicy import parse_uri
from .auth import Principal
from .envelope import ApiError, validation_error


def masked_view(view: dict[str, Any]) -> dict[str, Any]:
    """A hook's view (``webhooks.full_view``) with its write-only values masked."""
    if "uri" in view:
        view["uri"] = masked_uri(view["uri"])
    if view.get("custom_request_headers"):
        view["custom_request_headers"] = {name: MASK for name in view["custom_request_headers"]}
    return view


def unmasked(new: Hook, old: Hook | None) -> Hook:
    """``new`` with every MASK it carries replaced by ``old``'s stored value; 400 when
    a MASK has no stored value behind it."""
    errors: dict = {}
    stored = dict(old.custom_request_headers) if old is not None else {}
    headers = dict(new.custom_request_headers)
    for name, value in headers.items():
        if value == MASK:
            if name in stored:
                headers[name] = stored[name]
            else:
                errors.setdefault("custom_request_headers", {})["masked"] = {"message": (
                    "header %s: %s stands for the stored value, and there is none: send "
                    "the value itself" % (name, MASK))}
    uri = new.uri
    parts = parse_uri(uri)        # build_hook validated it
    if parts.password == MASK:
        old_parts = parse_uri(old.uri) if old is not None else None
        if old_parts is None or old_parts.password is None:
            errors["uri"] = {"masked": {"message": (
                "the password %s stands for the stored one, and there is none: send the "
                "password itself" % MASK), "value": masked_uri(uri)}}
        else:
            uri = parts.with_password(old_parts.password)
    if errors:
        raise validation_error(errors)
    if uri == new.uri and headers == dict(new.custom_request_headers):
        return new
    return dataclasses.replace(new, uri=uri, custom_request_headers=headers)


def check_tls_writer(principal: Principal, data: dict, old: Hook | None) -> None:
    """403 when an account token sets or changes a ``tls_*_file``."""
    if principal.admin:
        return
    changed = [name for name in TLS_FILE_FIELDS if name in data
               and data[name] != (getattr(old, name) if old is not None else None)]
    if changed:
        raise ApiError(403, "forbidden", {name: {"forbidden": {"message": (
            "only an admin token (or hooks.yaml) may set a file path on the eslhook "
            "machine")}} for name in changed})
