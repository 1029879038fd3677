"""HookStore.update, the API's read-modify-write, against a file changed under it."""

from __future__ import annotations

import dataclasses

import gevent
import pytest
import yaml

from eslhook.accounts import AccountDirectory
from eslhook.delivery.notices import disable_change
from eslhook.hooks.model import Hook
from eslhook.hooks.store import HooksFileConflict, HookStore
from test_api_support import ACCOUNTS, PARENT


def hook(n: int, name: str = "") -> Hook:
    return Hook(id="%032x" % n, account_id=PARENT, name=name or "h%d" % n,
                uri="http://127.0.0.1:9/%d" % n, hook="all")


@pytest.fixture
def store(tmp_path):
    store = HookStore(tmp_path / "hooks.yaml", AccountDirectory(ACCOUNTS),
                      settle_seconds=0.01)
    store.load()
    store.write([hook(1)])
    yield store
    store.stop()


def names(store) -> list[str]:
    return [h["name"] for h in yaml.safe_load(store.path.read_text())["webhooks"]]


def test_an_edit_landing_between_read_and_write_wins_and_nothing_is_written(store):
    def change(hooks):   # a hand edit after our read, before our rename
        store.path.write_text(store.path.read_text().replace("name: h1", "name: by hand"))
        return hooks + [hook(2)], "done"

    with pytest.raises(HooksFileConflict) as caught:
        store.update(change, refuse_if_edited=True)     # as the REST API does
    assert caught.value.reason == "changed"
    assert names(store) == ["by hand"]
    # the edit is in force at once: a retry applies to it
    assert [h.name for h in store.hooks] == ["by hand"]
    assert store.update(lambda hooks: (hooks + [hook(2)], "again"),
                        refuse_if_edited=True) == "again"
    assert names(store) == ["by hand", "h2"]


def test_an_auto_disable_after_an_unread_hand_edit_applies_to_the_edit(store):
    # eslhook's own write has no client to retry: it goes onto the settled edit
    edited = store.path.read_text().replace("name: h1", "name: by hand")
    store.path.write_text(edited)
    assert store.update(disable_change(hook(1).id, "410 Gone")).name == "by hand"
    assert store.path.read_text() == edited.replace(
        "    hook: all\n", "    hook: all\n    enabled: false\n    disable_reason: 410 Gone\n")


def test_a_file_being_written_gets_no_write(store):
    before = store.path.read_text()

    def keep_writing():
        for n in range(60):   # bounded: ~0.6 s of appending, a slow writer
            with open(store.path, "a") as out:
                out.write("# %d\n" % n)
            gevent.sleep(0.01)

    writer = gevent.spawn(keep_writing)
    gevent.sleep(0.02)
    with pytest.raises(HooksFileConflict) as caught:
        store.update(lambda hooks: ([dataclasses.replace(hooks[0], name="api")], None))
    writer.join(timeout=5)
    assert caught.value.reason == "unstable"
    text = store.path.read_text()
    assert text.startswith(before) and text.endswith("# 59\n") and "name: api" not in text


def test_a_change_that_raises_writes_nothing(store):
    before = store.path.read_bytes()

    def change(hooks):
        raise LookupError("no such hook")

    with pytest.raises(LookupError):
        store.update(change)
    assert store.path.read_bytes() == before


def test_returning_none_reads_without_writing(store):
    before = store.path.stat().st_mtime_ns
    assert [h.name for h in store.update(lambda hooks: (None, hooks))] == ["h1"]
    assert store.path.stat().st_mtime_ns == before
