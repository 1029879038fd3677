"""The hook repository contract (eslhook/hooks/repository.py), run against every
backend in ``store_backends.HOOK_BACKENDS``: written against the interface only."""

from __future__ import annotations

from dataclasses import replace

import gevent
import pytest
from helpers import wait_until
from store_backends import ACME, HOOK_BACKENDS, OTHER, backend_fixture, numbered_hook

from eslhook.config import ConfigError
from eslhook.hooks.repository import HooksConflict
from eslhook.supervise import Deadline


backend = backend_fixture(HOOK_BACKENDS)


def loaded(backend):
    repository = backend.open()
    repository.load()
    return repository


def append(*hooks):
    return lambda current: (current + list(hooks), None)


def call(account_id: str = ACME) -> dict:
    return {"account_id": account_id, "hook_event": "channel_create", "is_internal_leg": False}


def test_fresh_storage_loads_as_no_hooks_and_stays_so_when_reopened(backend):
    repository = backend.open()
    before = repository.generation
    assert repository.load() == [] and repository.hooks == []
    assert repository.generation > before
    assert loaded(backend).hooks == []
    assert repository.location and "password" not in repository.location


def test_updates_keep_order_and_survive_reopening(backend):
    repository = loaded(backend)
    repository.update(append(numbered_hook(1), numbered_hook(2)))
    repository.update(append(numbered_hook(3, account_id=OTHER)))
    renamed = numbered_hook(2, name="renamed")
    repository.update(lambda hooks: ([hooks[0], renamed, hooks[2]], None))
    expected = [numbered_hook(1), renamed, numbered_hook(3, account_id=OTHER)]
    assert repository.hooks == expected
    assert loaded(backend).hooks == expected
    repository.update(lambda hooks: ([h for h in hooks if h.id != renamed.id], None))
    assert loaded(backend).hooks == [expected[0], expected[2]]


def test_the_index_and_generation_follow_every_change(backend):
    repository = loaded(backend)
    generation = repository.generation
    repository.update(append(numbered_hook(1), numbered_hook(2, account_id=OTHER)))
    assert repository.generation > generation
    assert [h.name for h in repository.index.match(call(ACME))] == ["hook 1"]
    assert [h.name for h in repository.index.match(call(OTHER))] == ["hook 2"]
    generation = repository.generation
    repository.update(lambda hooks: ([replace(hooks[0], enabled=False), hooks[1]], None))
    assert repository.generation > generation
    assert list(repository.index.match(call(ACME))) == []


def test_a_change_that_writes_nothing_returns_its_result_and_changes_nothing(backend):
    repository = loaded(backend)
    repository.update(append(numbered_hook(1)))
    generation = repository.generation
    seen = repository.update(lambda hooks: (None, [h.id for h in hooks]))
    assert seen == [numbered_hook(1).id]
    assert repository.generation == generation
    assert loaded(backend).hooks == [numbered_hook(1)]


def test_a_change_that_raises_writes_nothing(backend):
    repository = loaded(backend)
    repository.update(append(numbered_hook(1)))

    def broken(hooks):
        raise LookupError("the caller's own error")

    with pytest.raises(LookupError):
        repository.update(broken)
    assert repository.hooks == [numbered_hook(1)]
    assert loaded(backend).hooks == [numbered_hook(1)]


def test_hooks_that_do_not_validate_raise_config_error_and_write_nothing(backend):
    repository = loaded(backend)
    repository.update(append(numbered_hook(1)))
    stranger = numbered_hook(2, account_id="f" * 32)           # no such account
    twin = numbered_hook(3, name="twin", id=numbered_hook(1).id)   # a duplicate id
    for bad in (stranger, twin):
        with pytest.raises(ConfigError) as raised:
            repository.update(append(bad))
        assert raised.value.issues
    assert repository.hooks == [numbered_hook(1)]
    assert loaded(backend).hooks == [numbered_hook(1)]


def test_a_writer_that_missed_another_writers_change_gets_a_conflict_then_retries(backend):
    first, second = loaded(backend), loaded(backend)
    first.update(append(numbered_hook(1)))
    with pytest.raises(HooksConflict) as raised:
        second.update(append(numbered_hook(2)), refuse_if_edited=True)
    assert raised.value.reason == "changed"
    assert second.hooks == [numbered_hook(1)]        # the other change is in force now
    assert loaded(backend).hooks == [numbered_hook(1)]
    second.update(append(numbered_hook(2)), refuse_if_edited=True)
    assert loaded(backend).hooks == [numbered_hook(1), numbered_hook(2)]


def test_the_services_own_writes_apply_on_top_of_another_writers_change(backend):
    first, second = loaded(backend), loaded(backend)
    first.update(append(numbered_hook(1)))
    second.update(append(numbered_hook(2)))          # e.g. auto-disable: no client to retry
    assert second.hooks == [numbered_hook(1), numbered_hook(2)]
    assert loaded(backend).hooks == [numbered_hook(1), numbered_hook(2)]


def test_concurrent_greenlets_updating_lose_no_change(backend):
    repository = loaded(backend)

    def add(n):
        gevent.sleep(0.001 * (n % 3))
        repository.update(append(numbered_hook(n)), refuse_if_edited=True)

    workers = [gevent.spawn(add, n) for n in range(1, 13)]
    gevent.joinall(workers, timeout=30, raise_error=True)
    assert all(worker.successful() for worker in workers)
    assert sorted(h.id for h in repository.hooks) == [numbered_hook(n).id for n in range(1, 13)]
    assert loaded(backend).hooks == repository.hooks


def test_a_watching_repository_puts_another_writers_change_in_force(backend):
    watcher, writer = loaded(backend), loaded(backend)
    watcher.start_watching(interval=0.05)
    generation = watcher.generation
    writer.update(append(numbered_hook(1)))
    assert wait_until(lambda: watcher.hooks == [numbered_hook(1)], timeout=5)
    assert watcher.generation > generation
    assert [h.name for h in watcher.index.match(call())] == ["hook 1"]
    watcher.stop(Deadline.after(1))
    writer.update(append(numbered_hook(2)))
    gevent.sleep(0.2)
    assert watcher.hooks == [numbered_hook(1)]      # stopped: no longer follows
