"""API writes change only the entry they touch: comments, key order, quoting
and every other hook of hooks.yaml stay byte for byte (conf/hooks.yaml, the
commented sample, is the fixture)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eslhook.accounts import AccountDirectory
from eslhook.api import ApiContext, ApiServer, create_app
from eslhook.config import AccountConfig, ApiConfig, parse_hooks
from eslhook.delivery.notices import disable_change
from eslhook.hooks.layout import Layout, layout_of
from eslhook.hooks.model import Hook
from eslhook.hooks.store import HookStore
from test_api_support import Api, assert_success as _assert_success

SAMPLE = Path(__file__).resolve().parent.parent / "conf" / "hooks.yaml"
ACME = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
GLOBEX = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
FIRST, SECOND, THIRD = ("6d1f0c8e2b7a4e3f9c0d1e2f3a4b5c6d", "2b7e9c4d1a6f4b3e8d5c0a9f7e6d5c4b",
                        "8c4d2e6f0a1b4c7d9e3f5a2b6c8d0e1f")
ADMIN = "admin-token-rt"
ACCOUNTS = AccountDirectory([AccountConfig(id=ACME), AccountConfig(id=GLOBEX)])


@pytest.fixture
def sample_api(tmp_path):
    path = tmp_path / "hooks.yaml"
    shutil.copyfile(SAMPLE, path)
    store = HookStore(path, ACCOUNTS)
    store.load()
    config = ApiConfig(host="127.0.0.1", port=0, admin_tokens=(ADMIN,))
    context = ApiContext(store, ACCOUNTS, config)
    server = ApiServer(create_app(context), "127.0.0.1", 0)
    server.start()
    api = Api(server.url(), path, store, server, context)
    yield api
    api.close()


def assert_success(reply, status: int = 200) -> dict:
    return _assert_success(reply, status, token=ADMIN)


def entry_lines(text: str, hook_id: str) -> list[str]:
    """The lines of one entry: from its "- id:" line to the line before the next."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  - id: " + hook_id))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("  - ")),
               len(lines))
    return lines[start:end]


def test_api_create_patch_delete_change_only_the_touched_entries_of_the_sample(sample_api):
    original = SAMPLE.read_text()
    created = assert_success(sample_api.call(
        "PUT", "/v2/accounts/%s/webhooks" % ACME, token=ADMIN,
        json={"data": {"name": "CRM", "uri": "http://127.0.0.1:9000/crm",
                       "hook": "channel_answer", "retries": 4}}), 201)["data"]
    assert_success(sample_api.call("PATCH", "/v2/accounts/%s/webhooks/%s" % (ACME, SECOND),
                                   token=ADMIN, json={"data": {"name": "Renamed"}}))
    assert_success(sample_api.call("DELETE", "/v2/accounts/%s/webhooks/%s" % (GLOBEX, THIRD),
                                   token=ADMIN))
    third = "".join(entry_lines(original, THIRD))
    expected = (original.replace("\n" + third, "")      # its blank line before goes too
                .replace("    name: All events of Acme and its sub-accounts, as JSON\n",
                         "    name: Renamed\n")
                + "\n  - id: %s\n    account_id: %s\n    name: CRM\n"
                  "    uri: http://127.0.0.1:9000/crm\n    hook: channel_answer\n"
                  "    retries: 4\n" % (created["id"], ACME))
    assert sample_api.path.read_text() == expected
    # the first entry, with every comment, is untouched byte for byte
    assert entry_lines(expected, FIRST) == entry_lines(original, FIRST)
    # GET still shows the defaults the file does not hold
    got = assert_success(sample_api.call("GET", "/v2/accounts/%s/webhooks/%s"
                                         % (ACME, created["id"]), token=ADMIN))["data"]
    assert got["http_verb"] == "post" and got["enabled"] is True
    assert HookStore(sample_api.path, ACCOUNTS).load() == sample_api.store.hooks


def test_a_patch_keeps_the_comments_of_the_entry_it_edits(sample_api):
    original = SAMPLE.read_text()
    assert_success(sample_api.call("PATCH", "/v2/accounts/%s/webhooks/%s" % (ACME, FIRST),
                                   token=ADMIN, json={"data": {"retries": 5,
                                                               "custom_data": {"a": "yes"}}}))
    text = sample_api.path.read_text()
    assert text == original.replace(
        "    retries: 3                  # retries after",
        "    retries: 5                  # retries after").replace(
        "      source: eslhook\n", "      a: 'yes'\n")
    # "yes" is quoted so the file reads it back as the string it is
    assert sample_api.store.hooks[0].custom_data == {"a": "yes"}
    assert HookStore(sample_api.path, ACCOUNTS).load()[0].custom_data == {"a": "yes"}


def test_auto_disable_writes_only_the_disabled_hooks_keys(tmp_path):
    path = tmp_path / "hooks.yaml"
    shutil.copyfile(SAMPLE, path)
    store = HookStore(path, ACCOUNTS)
    store.load()
    assert store.update(disable_change(FIRST, "410 Gone")) is not None   # what Bridge does
    assert path.read_text() == SAMPLE.read_text().replace(
        "    enabled: true               # false:", "    enabled: false              # false:"
    ).replace("      source: eslhook\n", "      source: eslhook\n    disable_reason: 410 Gone\n")


# -- any sequence of writes: the file holds exactly the hooks, the rest untouched

def _hook(n: int) -> Hook:
    return Hook(id="%032x" % (n + 1), account_id=ACME, name="hook %d" % n,
                uri="http://127.0.0.1:9/%d" % n, hook="all")


_ops = st.lists(st.tuples(st.sampled_from(["create", "patch", "delete"]),
                          st.integers(0, 50), st.sampled_from(["x", "yes", "1:20", "a: b"])),
                min_size=1, max_size=12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_any_write_sequence_keeps_the_file_equal_to_the_hooks_and_others_untouched(
        tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("rt") / "hooks.yaml"
    shutil.copyfile(SAMPLE, path)
    store = HookStore(path, ACCOUNTS, settle_seconds=0.001)
    store.load()
    created = 0
    for op, n, value in ops:
        before_text, hooks = path.read_text(), store.hooks
        if op == "create" or not hooks:
            new, touched = hooks + [_hook(created)], None
            created += 1
        else:
            index = n % len(hooks)
            touched = hooks[index].id
            if op == "delete":
                new = hooks[:index] + hooks[index + 1:]
            else:
                changed = Hook(**{**hooks[index].to_dict(), "name": value,
                                  "custom_data": {"k": value}})
                new = hooks[:index] + [changed] + hooks[index + 1:]
        store.write(new)
        text = path.read_text()
        assert parse_hooks(text, ACCOUNTS, str(path)) == new == store.hooks
        before, after = _entries(before_text), _entries(text)
        for hook in hooks:      # every hook not touched keeps its lines
            if hook.id != touched:
                assert before[hook.id] == after[hook.id]


def _entries(text: str) -> dict[str, str]:
    """Each hook's lines, by id."""
    layout = layout_of(text, yaml.compose(text, Loader=yaml.CSafeLoader))
    assert isinstance(layout, Layout)
    return {yaml.load(e, Loader=yaml.CSafeLoader)[0]["id"]: e for e in layout.entries}


def test_a_flow_style_file_is_edited_keeping_its_comments(tmp_path):
    path = tmp_path / "hooks.yaml"
    path.write_text("# flow style, by hand\nwebhooks: [{id: %s, account_id: %s, name: a,\n"
                    "  uri: 'http://127.0.0.1:9/a', hook: all}]   # one hook\n" % (FIRST, ACME))
    store = HookStore(path, ACCOUNTS)
    store.load()
    added = Hook(id=SECOND, account_id=ACME, name="b", uri="http://127.0.0.1:9/b",
                 hook="all", custom_data={"on": "yes"})
    store.update(lambda hooks: (hooks + [added], None))
    text = path.read_text()
    assert text.startswith("# flow style, by hand\n") and "# one hook" in text
    assert parse_hooks(text, ACCOUNTS, str(path)) == store.hooks
    assert [h.name for h in store.hooks] == ["a", "b"] and store.hooks[1] == added
