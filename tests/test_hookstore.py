"""HookStore with real files: startup load, live reload of hand edits, writes."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import gevent
import pytest

from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig, ConfigError
from eslhook.hooks.model import Hook
from eslhook.hooks.store import HookStore
from helpers import wait_until

ACME = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
OTHER = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
ACCOUNTS = AccountDirectory([AccountConfig(id=ACME), AccountConfig(id=OTHER)])
FAST_POLL = 0.1
STORE_LOG = "eslhook.hooks.store"


def hook_entry(n: int, account_id: str = ACME, event: str = "channel_create",
               extra: str = "") -> str:
    return (f"  - id: ab{n:030x}\n    account_id: {account_id}\n    name: hook {n}\n"
            f"    uri: http://127.0.0.1:9000/{n}\n    hook: {event}\n{extra}")


def hooks_text(*entries: str) -> str:
    return "# edited by hand\nwebhooks:\n" + "".join(entries)


def call(account_id: str = ACME, event: str = "channel_create") -> dict:
    return {"account_id": account_id, "hook_event": event, "is_internal_leg": False}


def matched_names(store: HookStore, payload: dict | None = None) -> list[str]:
    return [h.name for h in store.index.match(payload or call())]




def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == STORE_LOG]


@pytest.fixture
def hooks_file(tmp_path) -> Path:
    path = tmp_path / "hooks.yaml"
    path.write_text(hooks_text(hook_entry(1)))
    return path


@pytest.fixture
def store(hooks_file):
    store = HookStore(hooks_file, ACCOUNTS)
    yield store
    store.stop()


def test_load_reads_the_file_and_builds_the_index(store):
    hooks = store.load()
    assert [h.name for h in hooks] == ["hook 1"] == [h.name for h in store.hooks]
    assert matched_names(store) == ["hook 1"]
    assert store.generation == 1


def test_load_creates_a_missing_file_empty(tmp_path):
    path = tmp_path / "state" / "hooks.yaml"
    store = HookStore(path, ACCOUNTS)
    assert store.load() == []
    assert path.read_text().startswith("# eslhook webhooks. This file is managed by eslhook")
    assert store.index.match(call()) == ()
    # the created file is a hooks file like any other: an edit to it is picked up
    path.write_text(hooks_text(hook_entry(7)))
    assert store.poll() is True
    assert matched_names(store) == ["hook 7"]


def test_load_of_a_bad_file_raises_with_every_issue(hooks_file, store):
    hooks_file.write_text(hooks_text(hook_entry(1, extra="    retries: 99\n"),
                                     hook_entry(2, account_id="f" * 32)))
    with pytest.raises(ConfigError) as caught:
        store.load()
    assert [(i.file, i.path) for i in caught.value.issues] == [
        (str(hooks_file), "webhooks[0].retries"), (str(hooks_file), "webhooks[1].account_id")]
    assert store.hooks == [] and store.generation == 0  # nothing was put in force


def test_a_good_edit_takes_effect_for_the_next_event(hooks_file, store, caplog):
    caplog.set_level(logging.INFO, logger=STORE_LOG)
    store.load()
    store.start_watching(interval=FAST_POLL)
    hooks_file.write_text(hooks_text(hook_entry(1), hook_entry(2, event="all")))
    assert wait_until(lambda: store.generation == 2)
    assert matched_names(store) == ["hook 1", "hook 2"]
    assert matched_names(store, call(event="channel_destroy")) == ["hook 2"]
    assert "hooks reloaded: 2 hooks (2 enabled) from %s" % hooks_file in messages(caplog)


def test_a_bad_edit_keeps_the_last_good_hooks_until_it_is_fixed(hooks_file, store, caplog):
    caplog.set_level(logging.INFO, logger=STORE_LOG)
    store.load()
    store.start_watching(interval=FAST_POLL)

    hooks_file.write_text(hooks_text(hook_entry(1, extra="    retires: 3\n"),
                                     hook_entry(2, extra="    uri: ftp://x\n")))
    assert wait_until(lambda: any("rejected" in m for m in messages(caplog)))
    gevent.sleep(5 * FAST_POLL)  # several more polls of the same bad file
    logged = messages(caplog)
    assert [m for m in logged if "rejected" in m] == [
        "hooks file %s rejected (3 problems); keeping the 1 hook in force" % hooks_file]
    assert any(("%s:8: webhooks[0].retires: unknown key 'retires': did you mean 'retries'?"
                % hooks_file) in m for m in logged)
    assert any(":14: webhooks[1].uri: duplicate key (first on line 12)" in m for m in logged)
    assert any(":14: webhooks[1].uri: must be an http:// or https:// URL" in m for m in logged)
    assert matched_names(store) == ["hook 1"] and store.generation == 1

    hooks_file.write_text(hooks_text(hook_entry(1, extra="    retries: 3\n"), hook_entry(22)))
    assert wait_until(lambda: store.generation == 2)
    assert matched_names(store) == ["hook 1", "hook 22"]
    assert store.hooks[0].retries == 3


def test_hand_edits_are_picked_up_within_about_two_seconds_by_default(hooks_file, store):
    store.load()
    store.start_watching()  # the production interval, 1 s
    hooks_file.write_text(hooks_text(hook_entry(3, account_id=OTHER)))
    started = time.monotonic()
    assert wait_until(lambda: store.generation == 2, timeout=5.0)
    print("default-interval edit picked up after %.2f s" % (time.monotonic() - started))
    assert matched_names(store, call(OTHER)) == ["hook 3"]
    assert store.index.match(call(ACME)) == ()


def test_an_editor_save_by_rename_is_picked_up(hooks_file, store):
    store.load()
    store.start_watching(interval=FAST_POLL)
    swap = hooks_file.with_name(".hooks.yaml.swp")
    swap.write_text(hooks_text(hook_entry(1), hook_entry(4)))
    os.replace(swap, hooks_file)  # new inode
    assert wait_until(lambda: store.generation == 2)
    assert matched_names(store) == ["hook 1", "hook 4"]


def test_a_deleted_file_keeps_the_hooks_and_its_return_is_picked_up(hooks_file, store, caplog):
    caplog.set_level(logging.INFO, logger=STORE_LOG)
    store.load()
    store.start_watching(interval=FAST_POLL)
    hooks_file.unlink()
    assert wait_until(lambda: any("%s: file not found" % hooks_file in m
                                  for m in messages(caplog)))
    assert matched_names(store) == ["hook 1"]
    hooks_file.write_text(hooks_text(hook_entry(5)))
    assert wait_until(lambda: store.generation == 2)
    assert matched_names(store) == ["hook 5"]


def test_an_emptied_file_means_no_hooks_only_once_it_stays_empty(hooks_file):
    # a truncate-then-write hand edit shows an empty file first: not "no hooks"
    store = HookStore(hooks_file, ACCOUNTS, empty_settle_seconds=0.3)
    store.load()
    hooks_file.write_text("")
    assert store.poll() is False
    assert matched_names(store) == ["hook 1"]
    gevent.sleep(0.35)
    assert store.poll() is True
    assert store.hooks == [] and store.index.match(call()) == ()


def test_stopped_watching_ignores_edits(hooks_file, store):
    store.load()
    store.start_watching(interval=FAST_POLL)
    store.stop()
    hooks_file.write_text(hooks_text(hook_entry(1), hook_entry(6)))
    gevent.sleep(5 * FAST_POLL)
    assert store.generation == 1 and matched_names(store) == ["hook 1"]
    assert store.poll() is True  # the change is still there to be read


def test_write_replaces_the_file_and_the_hooks_in_force(hooks_file, store):
    store.load()
    store.start_watching(interval=FAST_POLL)
    new = Hook(id="ab%030x" % 8, account_id=OTHER, name="written", uri="http://127.0.0.1:9000/w",
               hook="all", custom_data={"source": "api"})
    store.write(store.hooks + [new])
    assert store.generation == 2
    assert matched_names(store, call(OTHER)) == ["written"]
    gevent.sleep(5 * FAST_POLL)
    assert store.generation == 2  # the watcher does not reload our own write
    text = hooks_file.read_text()
    assert text.startswith("# edited by hand\n")    # the file's own comment stays
    assert HookStore(hooks_file, ACCOUNTS).load() == store.hooks
    assert sorted(p.name for p in hooks_file.parent.iterdir()) == ["hooks.yaml"]


def test_an_invalid_write_changes_nothing(hooks_file, store):
    store.load()
    before = hooks_file.read_bytes()
    stray = Hook(id="ab%030x" % 9, account_id="e" * 32, name="n", uri="http://127.0.0.1/",
                 hook="all")
    with pytest.raises(ConfigError) as caught:
        store.write(store.hooks + [stray])
    assert [i.path for i in caught.value.issues] == ["webhooks[1].account_id"]
    assert hooks_file.read_bytes() == before
    assert store.generation == 1 and matched_names(store) == ["hook 1"]


def test_the_hub_keeps_running_while_a_big_file_is_parsed(tmp_path):
    path = tmp_path / "hooks.yaml"
    path.write_text(hooks_text(*(hook_entry(n, event="all") for n in range(3000))))
    ticks = []

    def ticker():
        for _ in range(10_000):  # bounded; killed when the load is done
            ticks.append(time.monotonic())
            gevent.sleep(0.001)

    ticking = gevent.spawn(ticker)
    try:
        gevent.sleep(0)
        started = len(ticks)
        hooks = HookStore(path, ACCOUNTS).load()
        during = len(ticks) - started
    finally:
        ticking.kill()
    assert len(hooks) == 3000
    assert during > 0  # other greenlets ran while the file was read and validated
