"""The webhooks listing, paginated the Crossbar way (as the attempt log)."""

from __future__ import annotations

import pytest

from test_api import HOOKS, api  # noqa: F401  (the fixture: a real API on a tmp file)
from test_api_support import PARENT, assert_error, assert_success


def hand_hooks(api, count: int) -> list[str]:
    ids = ["%032x" % (0xabc000 + n) for n in range(count)]
    api.write_file([{"id": hook_id, "account_id": PARENT, "name": "h%d" % n,
                     "uri": "http://127.0.0.1:9/%d" % n, "hook": "all"}
                    for n, hook_id in enumerate(ids)])
    return ids


def page(api, query: str = "") -> dict:
    return assert_success(api.call("GET", HOOKS % PARENT + query))


def test_the_listing_honours_page_size_and_start_key(api):
    ids = hand_hooks(api, 7)
    first = page(api, "?page_size=3")
    assert [h["id"] for h in first["data"]] == ids[:3]
    assert first["page_size"] == 3 and first["start_key"] == ids[0]
    assert first["next_start_key"] == ids[3]
    seen, body = [], first
    for _ in range(5):       # bounded: 7 hooks, 3 a page
        seen += [h["id"] for h in body["data"]]
        if "next_start_key" not in body:
            break
        body = page(api, "?page_size=3&start_key=%s" % body["next_start_key"])
    assert seen == ids and body["page_size"] == 1 and body["start_key"] == ids[6]


def test_the_listing_pages_fifty_by_default_and_paginate_false_gives_all(api):
    ids = hand_hooks(api, 60)
    default = page(api)
    assert default["page_size"] == 50 and default["next_start_key"] == ids[50]
    every = page(api, "?paginate=false")
    assert [h["id"] for h in every["data"]] == ids and "next_start_key" not in every


@pytest.mark.parametrize("query, field", [("?page_size=0", "page_size"),
                                          ("?page_size=1001", "page_size"),
                                          ("?page_size=x", "page_size"),
                                          ("?start_key=nothex", "start_key"),
                                          ("?start_key=" + "f" * 32, "start_key"),
                                          ("?paginate=maybe", "paginate")])
def test_a_bad_page_request_is_a_400_naming_the_field(api, query, field):
    hand_hooks(api, 2)
    body = assert_error(api.call("GET", HOOKS % PARENT + query), 400, "validation error")
    assert list(body["data"]) == [field]
