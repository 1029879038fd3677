"""Config and hooks files: what loads, what defaults apply, and the error for
each kind of bad input (file, key path and line, all problems at once)."""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

import pytest

from eslhook import checkconfig
from eslhook.accounts import AccountDirectory
from eslhook.config import (
    AccountConfig,
    ApiConfig,
    ConfigError,
    DeliveryConfig,
    PayloadConfig,
    SwitchConfig,
    load_config,
    load_hooks,
    schema_issues,
    validate_hooks,
    write_hooks_file,
)
from eslhook.hooks.model import Hook

REPO = Path(__file__).resolve().parent.parent
ACME = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
SUB = "9a3e5d7c1b2f4e6a8c0d2e4f6a8b0c1d"
OTHER = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
HOOK_ID = "6d1f0c8e2b7a4e3f9c0d1e2f3a4b5c6d"

MINIMAL = "switches:\n  - name: fs1\n"
CONTRACT = f"""\
switches:
  - name: fs1
    host: 127.0.0.1
    port: 8021
    password: ClueCon
    format: json
  - name: fs2
    host: 127.0.0.2
    port: 8022
    password: s3cret
    format: plain
hooks_file: hooks.yaml
state_dir: ./state
accounts:
  - id: {ACME}
    name: Acme
    realms: [acme.example.com]
    parent_id: null
    auth_tokens: []
  - id: {SUB}
    name: Acme Sub
    realms: [sub.acme.example.com]
    parent_id: {ACME}
    auth_tokens: [tok-1]
account_variable: account_id
default_account_id: {ACME}
api:
  listen: 127.0.0.1:8000
delivery:
  timeout_seconds: 10
  max_in_flight: 200
payload:
  channel_variables: ["cc_*"]
"""
ACCOUNTS = AccountDirectory([AccountConfig(id=ACME), AccountConfig(id=SUB, parent_id=ACME)])


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def issues_of(load, *args) -> list:
    with pytest.raises(ConfigError) as caught:
        load(*args)
    assert caught.value.issues, "a ConfigError must list its issues"
    return caught.value.issues


def only_issue(load, *args):
    issues = issues_of(load, *args)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def hook_yaml(**fields) -> str:
    """One hooks.yaml entry; fields=None drops a key."""
    base = dict(id=HOOK_ID, account_id=ACME, name="New Calls",
                uri="http://127.0.0.1:9000/calls/new.php", hook="channel_create")
    base.update(fields)
    lines = ["webhooks:"]
    for n, (key, value) in enumerate((k, v) for k, v in base.items() if v is not None):
        lines.append(("  - " if n == 0 else "    ") + "%s: %s" % (key, value))
    return "\n".join(lines) + "\n"


# -- eslhook.yaml: what loads ----------------------------------------------------

def test_the_contract_example_loads_into_the_dataclasses(tmp_path):
    config = load_config(write(tmp_path, "eslhook.yaml", CONTRACT))
    assert config.path == tmp_path / "eslhook.yaml"
    assert config.switches == (
        SwitchConfig(name="fs1", host="127.0.0.1", port=8021, password="ClueCon", format="json"),
        SwitchConfig(name="fs2", host="127.0.0.2", port=8022, password="s3cret", format="plain"))
    assert config.hooks_file == tmp_path / "hooks.yaml"
    assert config.state_dir == tmp_path / "state"
    assert config.accounts == (
        AccountConfig(id=ACME, name="Acme", realms=("acme.example.com",)),
        AccountConfig(id=SUB, name="Acme Sub", realms=("sub.acme.example.com",),
                      parent_id=ACME, auth_tokens=("tok-1",)))
    assert config.default_account_id == ACME
    assert config.api == ApiConfig(host="127.0.0.1", port=8000)
    assert config.delivery == DeliveryConfig(timeout_seconds=10, max_in_flight=200)
    assert config.payload == PayloadConfig(channel_variables=("cc_*",))
    directory = AccountDirectory.from_config(config)
    assert directory.ancestors(SUB) == [ACME]
    assert directory.account_for_realm("ACME.example.com") == ACME


def test_payload_keys_and_the_reseller_flag_load(tmp_path):
    config = load_config(write(tmp_path, "eslhook.yaml", MINIMAL + textwrap.dedent(f"""\
        accounts:
          - id: {ACME}
            reseller: true
          - id: {SUB}
            parent_id: {ACME}
        payload:
          emergency_numbers: "9(11|33)"
          emergency_variable: is_emergency
          cluster_id: eu-1
        """)))
    assert config.payload == PayloadConfig(emergency_numbers="9(11|33)",
                                           emergency_variable="is_emergency", cluster_id="eu-1")
    assert [a.reseller for a in config.accounts] == [True, False]
    assert AccountDirectory.from_config(config).reseller_of(SUB) == ACME


def test_an_emergency_pattern_that_is_no_regex_is_one_issue(tmp_path):
    issue = only_issue(load_config, write(tmp_path, "c.yaml", MINIMAL
                                          + "payload:\n  emergency_numbers: '9(11'\n"))
    assert (issue.path, issue.line) == ("payload.emergency_numbers", 4)
    assert "not a regular expression" in issue.message
    with pytest.raises(ValueError, match="PayloadConfig.emergency_numbers"):
        PayloadConfig(emergency_numbers="9(11")


def test_defaults_fill_everything_but_the_switch_name(tmp_path):
    config = load_config(write(tmp_path, "eslhook.yaml", MINIMAL))
    assert config.switches == (SwitchConfig(name="fs1"),)
    switch = config.switches[0]
    assert (switch.host, switch.port, switch.password, switch.format) == (
        "127.0.0.1", 8021, "ClueCon", "json")
    assert config.hooks_file == tmp_path / "hooks.yaml"
    assert config.state_dir == tmp_path / "state"
    assert config.accounts == ()
    assert config.account_variable == "account_id"
    assert config.default_account_id is None
    assert config.api is None  # no api section: REST API off
    assert config.delivery == DeliveryConfig()
    assert config.payload == PayloadConfig()


def test_relative_paths_resolve_against_the_config_directory_not_the_cwd(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc" / "eslhook"
    conf_dir.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    write(conf_dir, "eslhook.yaml", MINIMAL + "hooks_file: data/hooks.yaml\n"
          "state_dir: ../../var/state\n")
    config = load_config(Path("..") / "etc" / "eslhook" / "eslhook.yaml")
    assert config.hooks_file == conf_dir / "data" / "hooks.yaml"
    assert config.state_dir == tmp_path / "var" / "state"
    assert config.path == conf_dir / "eslhook.yaml"


def test_absolute_paths_are_kept(tmp_path):
    target = tmp_path / "abs"
    config = load_config(write(tmp_path, "c.yaml", MINIMAL + f"hooks_file: {target}/h.yaml\n"
                               f"state_dir: {target}/st\n"))
    assert (config.hooks_file, config.state_dir) == (target / "h.yaml", target / "st")


@pytest.mark.parametrize("listen, host, port", [
    ("127.0.0.1:8000", "127.0.0.1", 8000),
    ("[::1]:8443", "::1", 8443),
    ("localhost:0", "localhost", 0),
])
def test_api_listen_is_split_into_host_and_port(tmp_path, listen, host, port):
    config = load_config(write(tmp_path, "c.yaml", MINIMAL + f"api:\n  listen: '{listen}'\n"))
    assert config.api == ApiConfig(host=host, port=port)


def test_empty_sections_mean_defaults(tmp_path):
    config = load_config(write(tmp_path, "c.yaml", MINIMAL + "accounts:\napi:\ndelivery:\n"
                               "payload:\n"))
    assert (config.accounts, config.api, config.delivery, config.payload) == (
        (), None, DeliveryConfig(), PayloadConfig())


# -- eslhook.yaml: each kind of bad input ------------------------------------------

BAD_CONFIGS = [
    # (name, yaml, path, line, message fragment)
    ("yaml syntax", "switches:\n  - name: [fs1\n  - port: 1\n", "", 3, "YAML syntax error"),
    ("tab indentation", "switches:\n\t- name: fs1\n", "", 2, "YAML syntax error"),
    ("wrong type", "switches:\n  - name: fs1\n    port: '8021'\n", "switches[0].port", 3,
     "must be an integer, not a string (got '8021')"),
    ("port range", "switches:\n  - name: fs1\n    port: 70000\n", "switches[0].port", 3,
     "must be between 1 and 65535"),
    ("unknown key with a suggestion", "switches:\n  - name: fs1\n    pasword: x\n",
     "switches[0].pasword", 3, "unknown key 'pasword': did you mean 'password'?"),
    ("unknown top-level key", MINIMAL + "hook_file: h.yaml\n", "hook_file", 3,
     "did you mean 'hooks_file'?"),
    ("unknown key, nothing close", MINIMAL + "colour: blue\n", "colour", 3,
     "allowed keys: account_variable, accounts, api"),
    ("bad enum", "switches:\n  - name: fs1\n    format: xml\n", "switches[0].format", 3,
     "must be one of: json, plain (got 'xml')"),
    ("missing switches", "state_dir: st\n", "switches", 1, "required key is missing"),
    ("no switches", "switches: []\n", "switches", 1, "must list at least 1 item"),
    ("missing switch name", "switches:\n  - host: 127.0.0.1\n", "switches[0].name", 2,
     "required key is missing"),
    ("duplicate switch name", "switches:\n  - name: fs1\n  - name: fs1\n",
     "switches[1].name", 3, "duplicate switch name 'fs1' (also switches[0])"),
    ("duplicate yaml key", "switches:\n  - name: fs1\n    port: 1\n    port: 2\n",
     "switches[0].port", 4, "duplicate key (first on line 3)"),
    ("account id not hex", MINIMAL + "accounts:\n  - id: ACME\n", "accounts[0].id", 4,
     "must be 32 lowercase hex digits"),
    ("account without id", MINIMAL + "accounts:\n  - name: Acme\n", "accounts[0].id", 4,
     "required key is missing; add a unique id"),
    ("duplicate account id", MINIMAL + f"accounts:\n  - id: {ACME}\n  - id: {ACME}\n",
     "accounts[1].id", 5, "duplicate account id"),
    ("unknown parent", MINIMAL + f"accounts:\n  - id: {ACME}\n    parent_id: {OTHER}\n",
     "accounts[0].parent_id", 5, f"unknown account '{OTHER}'; configured accounts: {ACME}"),
    ("own parent", MINIMAL + f"accounts:\n  - id: {ACME}\n    parent_id: {ACME}\n",
     "accounts[0].parent_id", 5, f"parent_id forms a cycle: {ACME} -> {ACME}"),
    ("parent cycle", MINIMAL + f"accounts:\n  - id: {ACME}\n    parent_id: {SUB}\n"
     f"  - id: {SUB}\n    parent_id: {ACME}\n", "accounts[0].parent_id", 5,
     f"parent_id forms a cycle: {ACME} -> {SUB} -> {ACME}"),
    ("realm of two accounts", MINIMAL + f"accounts:\n  - id: {ACME}\n    realms: [a.example]\n"
     f"  - id: {SUB}\n    realms: [b.example, A.EXAMPLE]\n", "accounts[1].realms[1]", 7,
     "realm 'A.EXAMPLE' is already listed at accounts[0].realms[0]"),
    ("realm not a list", MINIMAL + f"accounts:\n  - id: {ACME}\n    realms: a.example\n",
     "accounts[0].realms", 5, "must be a list, not a string"),
    ("unknown default account", MINIMAL + f"default_account_id: {ACME}\n",
     "default_account_id", 3, "unknown account; no accounts are configured"),
    ("api listen without port", MINIMAL + "api:\n  listen: 127.0.0.1\n", "api.listen", 4,
     "must be host:port"),
    ("api without listen", MINIMAL + "api: {}\n", "api.listen", 3,
     "required key is missing"),
    ("zero timeout", MINIMAL + "delivery:\n  timeout_seconds: 0\n", "delivery.timeout_seconds",
     4, "must be greater than 0"),
    ("document is a list", "- name: fs1\n", "", 1, "must be a mapping, not a list"),
    ("unquoted date", "switches:\n  - name: 2024-01-01\n", "switches[0].name", 2,
     "must be a string, not a date (got datetime.date(2024, 1, 1)); put it in quotes"),
    ("nested too deeply", "switches: " + "[" * 5000 + "]" * 5000 + "\n", "", 1,
     "YAML syntax error"),
    ("alias bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        "a%d: &a%d [%s]\n" % (i, i, ", ".join(["*a%d" % (i - 1)] * 10)) for i in range(1, 8)),
     "", None, "document too large or nested too deeply"),
]


@pytest.mark.parametrize("yaml_text, path, line, fragment",
                         [case[1:] for case in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_each_bad_config_is_one_issue_naming_file_key_and_line(tmp_path, yaml_text, path,
                                                                line, fragment):
    config_file = write(tmp_path, "eslhook.yaml", yaml_text)
    issue = only_issue(load_config, config_file)
    assert issue.file == str(config_file)
    assert (issue.path, issue.line) == (path, line)
    # "unknown account; no accounts..." fragments elide the quoted id
    assert all(part in issue.message for part in fragment.split("; ")), issue.message
    assert str(issue).startswith("%s:%d: " % (config_file, line) if line else str(config_file))


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    config_file = write(tmp_path, "eslhook.yaml", f"""\
        switches:
          - name: fs1
            port: eighty
          - name: fs1
            formt: json
        accounts:
          - id: {ACME}
            parent_id: {OTHER}
        api:
          listen: nowhere
        """)
    issues = issues_of(load_config, config_file)
    assert [(i.line, i.path) for i in issues] == [
        (3, "switches[0].port"), (4, "switches[1].name"), (5, "switches[1].formt"),
        (8, "accounts[0].parent_id"), (10, "api.listen")]
    assert "did you mean 'format'?" in issues[2].message


def test_a_password_of_the_wrong_type_is_not_echoed(tmp_path):
    issue = only_issue(load_config, write(tmp_path, "c.yaml", "switches:\n  - name: fs1\n"
                                          "    password: 918273645\n"))
    assert issue.path == "switches[0].password"
    assert "must be a string" in issue.message
    assert "918273645" not in str(issue)


def test_missing_unreadable_and_binary_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert str(only_issue(load_config, missing)) == "%s: file not found" % missing
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"switches:\n  - name: \xff\xfe\n")
    issue = only_issue(load_config, binary)
    assert (issue.line, issue.message) == (2, "not UTF-8 text")
    assert "cannot read" in only_issue(load_config, tmp_path).message  # a directory


def test_an_empty_config_file_only_lacks_switches(tmp_path):
    issue = only_issue(load_config, write(tmp_path, "c.yaml", "# nothing yet\n"))
    assert (issue.path, issue.message) == ("switches", "required key is missing")


# -- dataclasses built in code are checked by the same schema as the file --------------

@pytest.mark.parametrize("build, field", [
    (lambda: SwitchConfig(name="fs1", format="xml"), "SwitchConfig.format"),
    (lambda: SwitchConfig(name="fs1", port=-1), "SwitchConfig.port"),
    (lambda: DeliveryConfig(max_in_flight=0), "DeliveryConfig.max_in_flight"),
    (lambda: AccountConfig(id=ACME, realms="acme.example.com"), "AccountConfig.realms"),
    (lambda: Hook(id=HOOK_ID, account_id=ACME, name="n", uri="http://x", hook="hangup"),
     "Hook.hook"),
    (lambda: Hook(id=HOOK_ID, account_id=ACME, name="n", uri="http://x", hook="all",
                  retries=11), "Hook.retries"),
])
def test_dataclasses_reject_nonsense_naming_the_field(build, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        build()


# -- hooks.yaml -------------------------------------------------------------------------

def test_a_hook_gets_kazoo_defaults(tmp_path):
    [hook] = load_hooks(write(tmp_path, "hooks.yaml", hook_yaml()), ACCOUNTS)
    assert hook == Hook(id=HOOK_ID, account_id=ACME, name="New Calls",
                        uri="http://127.0.0.1:9000/calls/new.php", hook="channel_create")
    assert (hook.http_verb, hook.format, hook.retries, hook.enabled, hook.include_subaccounts,
            hook.include_internal_legs, dict(hook.custom_data), hook.disable_reason) == (
        "post", "form-data", 2, True, False, True, {}, None)


def test_the_contract_hook_loads_with_every_field(tmp_path):
    hooks_file = write(tmp_path, "hooks.yaml", f"""\
        webhooks:
          - id: {HOOK_ID}
            account_id: {ACME}
            name: New Calls
            uri: https://127.0.0.1:9000/calls/new.php?x=1
            http_verb: put
            format: json
            hook: all
            retries: 10
            enabled: false
            include_subaccounts: true
            include_internal_legs: false
            custom_data: {{source: eslhook, "n": "5"}}
            disable_reason: too many failures
        """)
    [hook] = load_hooks(hooks_file, ACCOUNTS)
    assert (hook.http_verb, hook.format, hook.hook, hook.retries, hook.enabled,
            hook.include_subaccounts, hook.include_internal_legs, hook.disable_reason) == (
        "put", "json", "all", 10, False, True, False, "too many failures")
    assert dict(hook.custom_data) == {"source": "eslhook", "n": "5"}
    with pytest.raises(TypeError):  # read-only: a hook in force cannot be changed
        hook.custom_data["source"] = "other"


BAD_HOOKS = [
    # (name, hooks.yaml, path, line, message fragment)
    ("yaml syntax", "webhooks:\n  - id: x\n   name: y\n", "", 3, "YAML syntax error"),
    ("typo retires", hook_yaml(retires=3), "webhooks[0].retires", 7,
     "unknown key 'retires': did you mean 'retries'?"),
    ("bad uri scheme", hook_yaml(uri="ftp://127.0.0.1/x"), "webhooks[0].uri", 5,
     "must be an http:// or https:// URL"),
    ("uri without host", hook_yaml(uri="http:///x"), "webhooks[0].uri", 5, "with a host"),
    ("uri with a space", hook_yaml(uri="'http://127.0.0.1/a b'"), "webhooks[0].uri", 5,
     "no spaces"),
    ("retries 99", hook_yaml(retries=99), "webhooks[0].retries", 7,
     "must be between 0 and 10 (got 99)"),
    ("retries -1", hook_yaml(retries=-1), "webhooks[0].retries", 7, "must be between 0 and 10"),
    ("retries a string", hook_yaml(retries="three"), "webhooks[0].retries", 7,
     "must be an integer, not a string"),
    ("missing name", hook_yaml(name=None), "webhooks[0].name", 2, "required key is missing"),
    ("missing uri", hook_yaml(uri=None), "webhooks[0].uri", 2, "required key is missing"),
    ("missing hook", hook_yaml(hook=None), "webhooks[0].hook", 2, "required key is missing"),
    ("missing account", hook_yaml(account_id=None), "webhooks[0].account_id", 2,
     "required key is missing"),
    ("unknown event", hook_yaml(hook="channel_hangup"), "webhooks[0].hook", 6,
     "must be one of: channel_create, channel_answer, channel_bridge, channel_destroy, "
     "webhook_disabled, all"),
    ("bad verb", hook_yaml(http_verb="delete"), "webhooks[0].http_verb", 7,
     "must be one of: get, post, put"),
    ("bad format", hook_yaml(format="xml"), "webhooks[0].format", 7,
     "must be one of: form-data, json"),
    ("enabled as a string", hook_yaml(enabled="'yes'"), "webhooks[0].enabled", 7,
     "must be true or false, not a string"),
    ("custom_data number", hook_yaml(custom_data="{n: 5}"), "webhooks[0].custom_data.n", 7,
     "must be a string, not an integer"),
    ("id not hex", hook_yaml(id="hook-1"), "webhooks[0].id", 2, "must be 32 lowercase hex"),
    ("all-digit id read as a number", hook_yaml(id="1" * 32), "webhooks[0].id", 2,
     "must be a string, not an integer (got %s); put it in quotes" % ("1" * 32)),
    ("unknown account", hook_yaml(account_id=OTHER), "webhooks[0].account_id", 3,
     f"unknown account '{OTHER}'; configured accounts: {ACME}, {SUB}"),
    ("hook is not a mapping", "webhooks:\n  - just a string\n", "webhooks[0]", 2,
     "must be a mapping, not a string"),
    ("webhooks misspelt", "webhook: []\n", "webhook", 1, "did you mean 'webhooks'?"),
]


@pytest.mark.parametrize("yaml_text, path, line, fragment",
                         [case[1:] for case in BAD_HOOKS], ids=[c[0] for c in BAD_HOOKS])
def test_each_bad_hook_is_one_issue_naming_file_key_and_line(tmp_path, yaml_text, path, line,
                                                              fragment):
    hooks_file = write(tmp_path, "hooks.yaml", yaml_text)
    issue = only_issue(load_hooks, hooks_file, ACCOUNTS)
    assert (issue.file, issue.path, issue.line) == (str(hooks_file), path, line)
    assert fragment in issue.message, issue.message


def test_a_hook_without_id_is_offered_a_fresh_one(tmp_path):
    hooks_file = write(tmp_path, "hooks.yaml", hook_yaml(id=None))
    issue = only_issue(load_hooks, hooks_file, ACCOUNTS)
    assert issue.path == "webhooks[0].id"
    suggested = re.search(r"id: ([0-9a-f]+)$", issue.message).group(1)
    assert len(suggested) == 32
    # pasting the suggestion in fixes the file
    write(tmp_path, "hooks.yaml", hook_yaml(id=suggested))
    assert [h.id for h in load_hooks(hooks_file, ACCOUNTS)] == [suggested]


def test_duplicate_hook_ids_name_both_entries(tmp_path):
    text = hook_yaml() + hook_yaml().replace("webhooks:\n", "")
    issue = only_issue(load_hooks, write(tmp_path, "hooks.yaml", text), ACCOUNTS)
    assert (issue.path, issue.line) == ("webhooks[1].id", 7)
    assert issue.message == "duplicate hook id '%s' (also webhooks[0])" % HOOK_ID


def test_a_missing_hooks_file_is_created_empty_with_a_header(tmp_path):
    hooks_file = tmp_path / "sub" / "hooks.yaml"
    assert load_hooks(hooks_file, ACCOUNTS) == []
    text = hooks_file.read_text()
    assert text.startswith("# eslhook webhooks. This file is managed by eslhook")
    assert "may also be edited by hand" in text
    assert load_hooks(hooks_file, ACCOUNTS) == []  # and it reads back as no hooks


@pytest.mark.parametrize("text", ["", "# only a comment\n", "webhooks:\n", "webhooks: []\n"])
def test_an_empty_hooks_file_means_no_hooks(tmp_path, text):
    assert load_hooks(write(tmp_path, "hooks.yaml", text), ACCOUNTS) == []


def test_written_hooks_read_back_equal_in_a_stable_key_order(tmp_path):
    hooks = [Hook(id=HOOK_ID, account_id=ACME, name="Ünïcode name", uri="http://127.0.0.1:9/a",
                  hook="all", custom_data={"k": "v: with colon", "multi": "line 1\n  line 2\n",
                                           "long": "word " * 40, "n": "123", "b": "yes"},
                  enabled=False, disable_reason="paused"),
             Hook(id="1" * 32, account_id=SUB, name="second", uri="https://127.0.0.1/b",
                  hook="channel_answer", http_verb="get", retries=0)]
    hooks_file = tmp_path / "hooks.yaml"
    write_hooks_file(hooks_file, hooks)
    assert load_hooks(hooks_file, ACCOUNTS) == hooks
    text = hooks_file.read_text()
    keys = re.findall(r"^(?:  - |    )(\w+):", text, re.M)
    assert keys[:6] == ["id", "account_id", "name", "uri", "hook", "http_verb"]
    assert "disable_reason" not in text.split("name: second")[1]  # unset: left out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hooks.yaml"]  # no temp file left


def test_hooks_built_in_code_are_validated_like_the_file():
    good = Hook(id=HOOK_ID, account_id=ACME, name="n", uri="http://127.0.0.1/x", hook="all")
    validate_hooks([good], ACCOUNTS)
    # one hook's rules (the schema, then the semantic layer) when it is built, worded
    # as for a hooks.yaml entry; several rules broken: all of them named
    with pytest.raises(ValueError, match=r"^Hook\.uri: must be an http:// or https:// URL"):
        Hook(id=HOOK_ID, account_id=OTHER, name="n", uri="gopher://x", hook="all")
    with pytest.raises(ValueError) as caught_code:
        Hook(id=HOOK_ID, account_id=ACME, name="n", uri="http://127.0.0.1/x", hook="all",
             retries=11, http_verb="patch", secret="whsec_c2hvcnQ=")
    assert [part.split(":")[0] for part in str(caught_code.value).split("; ")] == [
        "Hook.http_verb", "Hook.retries", "Hook.secret"]
    assert "c2hvcnQ" not in str(caught_code.value)        # a signing key is never echoed
    # what only the whole set can tell (ids unique, accounts known)
    other = Hook(id=HOOK_ID, account_id=OTHER, name="n", uri="http://127.0.0.1/y", hook="all")
    with pytest.raises(ConfigError) as caught:
        validate_hooks([good, other], ACCOUNTS, "api")
    assert [(i.file, i.path) for i in caught.value.issues] == [
        ("api", "webhooks[1].account_id"), ("api", "webhooks[1].id")]


def test_a_rest_request_body_can_be_checked_against_the_webhook_schema():
    # Kazoo's webhooks.json: a new hook needs name, uri and hook; id comes from the server
    assert schema_issues("webhook", {"name": "n", "uri": "http://h/x", "hook": "all"}, "body") == []
    issues = schema_issues("webhook", {"name": "n", "uri": "http://h/x", "retries": 3,
                                       "retires": 3}, "body")
    assert sorted((i.path, i.message.split(":")[0]) for i in issues) == [
        ("hook", "required key is missing"), ("retires", "unknown key 'retires'")]


# -- check-config ------------------------------------------------------------------------

def run_check(config_path, capsys) -> tuple[int, list[str]]:
    status = checkconfig.run(argparse.Namespace(config=str(config_path)))
    out = capsys.readouterr().out
    return status, out.splitlines()


def test_check_config_passes_the_shipped_samples(capsys):
    status, lines = run_check(REPO / "conf" / "eslhook.yaml", capsys)
    assert (status, lines) == (0, ["ok: 1 switch, 3 accounts, 3 hooks (2 enabled)"])


def test_the_shipped_samples_load_as_documented():
    config = load_config(REPO / "conf" / "eslhook.yaml")
    assert config.switches == (SwitchConfig(name="fs1", host="127.0.0.1", port=8021,
                                            password="ClueCon", format="json"),)
    assert config.hooks_file == REPO / "conf" / "hooks.yaml"
    hooks = load_hooks(config.hooks_file, AccountDirectory.from_config(config),
                       create_missing=False)
    assert all(h.uri.startswith("http://127.0.0.1:9000/") for h in hooks)


def test_check_config_counts_switches_accounts_and_enabled_hooks(tmp_path, capsys):
    config_file = write(tmp_path, "eslhook.yaml", CONTRACT)
    second = hook_yaml(id="2b" * 16, account_id=SUB, hook="all", enabled="false")
    write(tmp_path, "hooks.yaml", hook_yaml() + second.replace("webhooks:\n", ""))
    assert run_check(config_file, capsys) == (
        0, ["ok: 2 switches, 2 accounts, 2 hooks (1 enabled)"])


def test_check_config_lists_every_config_error_and_fails(tmp_path, capsys):
    config_file = write(tmp_path, "eslhook.yaml", "switches:\n  - name: fs1\n    port: x\n"
                        "colour: blue\n")
    status, lines = run_check(config_file, capsys)
    assert status == 1
    assert lines[0] == ("error: %s:3: switches[0].port: must be an integer, not a string (got 'x')"
                        % config_file)
    assert lines[1].startswith("error: %s:4: colour: unknown key 'colour'" % config_file)
    assert lines[2:] == ["2 problems found", "hooks file not checked: fix the configuration first"]


def test_check_config_reports_hooks_file_errors(tmp_path, capsys):
    config_file = write(tmp_path, "eslhook.yaml", CONTRACT)
    hooks_file = write(tmp_path, "hooks.yaml", hook_yaml(retries=99, account_id=OTHER))
    status, lines = run_check(config_file, capsys)
    assert status == 1
    assert lines[0].startswith("error: %s:3: webhooks[0].account_id: unknown account" % hooks_file)
    assert lines[1] == ("error: %s:7: webhooks[0].retries: must be between 0 and 10 (got 99)"
                        % hooks_file)
    assert lines[2] == "2 problems found"


def test_check_config_does_not_create_a_missing_hooks_file(tmp_path, capsys):
    config_file = write(tmp_path, "eslhook.yaml", MINIMAL)
    status, lines = run_check(config_file, capsys)
    assert status == 0
    assert lines == ["ok: 1 switch, 0 accounts, 0 hooks (0 enabled) (%s does not exist yet; "
                     "eslhook will create it empty)" % (tmp_path / "hooks.yaml")]
    assert not (tmp_path / "hooks.yaml").exists()


def test_check_config_on_a_missing_config_file(tmp_path, capsys):
    status, lines = run_check(tmp_path / "absent.yaml", capsys)
    assert status == 1
    assert lines[0] == "error: %s: file not found" % (tmp_path / "absent.yaml")


def test_check_config_parser_defaults_to_the_conf_sample():
    parser = argparse.ArgumentParser(prog="eslhook")
    checkconfig.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["check-config"])
    assert (args.config, args.func) == ("conf/eslhook.yaml", checkconfig.run)
    assert parser.parse_args(["check-config", "--config", "x.yaml"]).config == "x.yaml"


def test_a_hook_missing_two_keys_names_each_missing_key_once(tmp_path):
    # jsonschema reports one "required" error per missing key, each listing them all
    hooks_file = write(tmp_path, "hooks.yaml", hook_yaml(uri=None, hook=None))
    issues = issues_of(load_hooks, hooks_file, ACCOUNTS)
    assert [(i.path, i.message) for i in issues] == [
        ("webhooks[0].hook", "required key is missing"),
        ("webhooks[0].uri", "required key is missing")]
