"""Crossbar's pagination, shared by the attempt log and the webhooks listing.

``?page_size=`` (default 50, as Kazoo's lists; 1..1000) and ``?start_key=`` in
the query; the envelope says ``page_size`` (how many came back), ``start_key``
(this page again) and, unless this is the last page, ``next_start_key``.
Where a listing allows it, ``?paginate=false`` returns everything.
"""

from __future__ import annotations

from typing import Callable

import falcon

from .envelope import validation_error
from .validation import add_error

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_request(req: falcon.Request, key_ok: Callable[[str], object], *,
                 allow_all: bool = False) -> tuple[int | None, str | None]:
    """(page_size, start_key) from the query, or a 400 naming each bad one;
    page_size None: ``paginate=false`` (only with ``allow_all``)."""
    errors: dict = {}
    page_size: int | None = _page_size(req.get_param("page_size"), errors)
    start_key = req.get_param("start_key")
    if start_key is not None and not key_ok(start_key):
        add_error(errors, "start_key", "invalid",
                  "Value is not a key this API returned: pass a response's next_start_key",
                  value=start_key)
    paginate = req.get_param("paginate")
    if allow_all and paginate is not None:
        if paginate.lower() not in ("true", "false"):
            add_error(errors, "paginate", "type", "Value must be true or false",
                      target="boolean", value=paginate)
        elif paginate.lower() == "false":
            page_size = None
    if errors:
        raise validation_error(errors)
    return page_size, start_key


def _page_size(text: str | None, errors: dict) -> int:
    if text is None:
        return DEFAULT_PAGE_SIZE
    if not text.isascii() or not text.isdigit():
        add_error(errors, "page_size", "type", "Value must be an integer",
                  target="integer", value=text)
        return DEFAULT_PAGE_SIZE
    # int() of a 5,000-digit text is itself a ValueError: bound it first
    huge = len(text.lstrip("0")) > 6
    page_size = MAX_PAGE_SIZE + 1 if huge else int(text)
    if page_size < 1:
        add_error(errors, "page_size", "minimum", "Value must be at least 1",
                  target=1, value=page_size)
    elif page_size > MAX_PAGE_SIZE:
        add_error(errors, "page_size", "maximum", "Value must be at most %d"
                  % MAX_PAGE_SIZE, target=MAX_PAGE_SIZE,
                  value=text if huge else page_size)
    return page_size


def page_envelope(first_key: str | None, next_start_key: str | None) -> dict:
    """The envelope keys of a page whose first row has ``first_key``."""
    extra = {}
    if first_key is not None:
        extra["start_key"] = first_key
    if next_start_key is not None:
        extra["next_start_key"] = next_start_key
    return extra
