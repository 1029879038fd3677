"""HookStore.update, the API's read-modify-write, against a file changed under it."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from eslhook.accounts import AccountDirectory
from eslhook.hooks.model import Hook
from eslhook.hooks.store import HooksFileChanged, HookStore
from test_api_support import ACCOUNTS, PARENT


def hook(n: int, name: str = "") -> Hook:
    return Hook(id="%032x" % n, account_id=PARENT, name=name or "h%d" % n,
                uri="http://127.0.0.1:9/%d" % n, hook="all")


@pytest.fixture
def store(tmp_path):
    store = HookStore(tmp_path / "hooks.yaml", AccountDirectory(ACCOUNTS))
    store.load()
    store.write([hook(1)])
    return store


def names(store) -> list[str]:
    return [h["name"] for h in yaml.safe_load(store.path.read_text())["webhooks"]]


def test_an_edit_landing_between_read_and_write_is_kept(store):
    calls = []

    def change(hooks):
        calls.append([h.name for h in hooks])
        if len(calls) == 1:   # a hand edit after our read, before our rename
            store.path.write_text(store.path.read_text().replace("name: h1", "name: by hand"))
        return hooks + [hook(2)], "done"

    assert store.update(change) == "done"
    assert calls == [["h1"], ["by hand"]]     # applied again, to the edited file
    assert names(store) == ["by hand", "h2"]
    assert [h.name for h in store.hooks] == ["by hand", "h2"]


def test_a_file_that_never_holds_still_is_reported(store):
    def change(hooks):
        store.path.write_text(store.path.read_text() + "\n")   # changes on every try
        return [dataclasses.replace(hooks[0], name="api")], None

    with pytest.raises(HooksFileChanged):
        store.update(change)
    assert names(store) == ["h1"]


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
