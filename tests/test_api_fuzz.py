"""Fuzzing the REST API: nothing a client sends gives a 5xx.

- schemathesis (its CLI, as a subprocess) against a running eslhook's
  /openapi.json: every operation, with its not_a_server_error and
  response_schema_conformance checks, so the document must be true too;
- hypothesis, in process, for what the schema does not describe: bodies of
  any JSON (lone surrogates, any nesting) and any bytes.

Both target only the API on 127.0.0.1; bounded in examples and time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_api_delivery import ACCOUNTS, API, TOKENS
from test_api_support import NEW_HOOK, PARENT, start_api
from world import World

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SEED = int(os.environ.get("ESLHOOK_FUZZ_SEED", "1"))   # CI is reproducible; vary it by hand
EXAMPLES = 20        # per operation and phase: ~1,100 cases, ~10 s here


def schemathesis_config(path: Path, hook_id: str) -> Path:
    """Real ids, else nearly every case is a 404 for an unknown account."""
    path.write_text('[parameters]\n"path.account_id" = "%s"\n"path.hook_id" = "%s"\n'
                    % (PARENT, hook_id))
    return path


@pytest.mark.timeout(120)
@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed")
def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(tmp_path):
    # throttling off: generated bodies carry random auth_tokens, and 429s would
    # hide the operations behind them
    world = World(tmp_path, accounts=ACCOUNTS,
                  extra={"api": {**API, "auth_failure_burst": 1_000_000}})
    world.start()
    try:
        url = world.bridge.api.url()
        assert url.startswith("http://127.0.0.1:")
        created = requests.put(url + "/v2/accounts/%s/webhooks" % PARENT, timeout=5,
                               headers={"X-Auth-Token": TOKENS["admin"]},
                               json={"data": NEW_HOOK})
        assert created.status_code == 201
        config = schemathesis_config(tmp_path / "schemathesis.toml", created.json()["data"]["id"])
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        run = subprocess.run(
            [str(SCHEMATHESIS), "--config-file", str(config), "run", url + "/openapi.json",
             "--url", url, "-H", "X-Auth-Token: " + TOKENS["admin"],
             "--checks", "not_a_server_error,response_schema_conformance",
             "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
             "--request-timeout", "10",
             # /v1 = /v2; an event stream never ends (tests/test_api_console.py reads it)
             "--exclude-path-regex", "^/v1/|/events/stream$",
             "--no-color"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100)
    finally:
        world.close()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) >= 500, \
        run.stdout[-3000:]
    print("schemathesis: %s cases" % cases.group(1))


# -- bodies the schema does not describe ---------------------------------------

SURROGATES = st.characters(categories=["Cs"])
TEXT = st.text(st.characters() | SURROGATES, max_size=8)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12)
HOOK_FIELDS = st.fixed_dictionaries({}, optional={
    "name": TEXT | JSON_VALUES, "uri": st.just("http://127.0.0.1:9/x") | TEXT,
    "hook": st.sampled_from(["all", "channel_create"]) | TEXT,
    "custom_data": st.dictionaries(TEXT, TEXT | JSON_VALUES, max_size=3),
    "retries": st.integers() | st.floats(), "secret": st.just("generate") | TEXT})


def deep(depth: int) -> str:
    return '{"data": {"custom_data": %s}}' % ("[" * depth + "]" * depth)


BODIES = st.one_of(
    HOOK_FIELDS.map(lambda data: json.dumps({"data": data})),       # ensure_ascii: \ud800
    JSON_VALUES.map(lambda value: json.dumps({"data": value, "auth_token": value})),
    st.integers(1, 20_000).map(deep),
    st.binary(max_size=64))


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory):
    api = start_api(tmp_path_factory.mktemp("fuzz"), auth_failure_burst=1_000_000)
    yield api, api.create()["id"]
    api.close()


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["PUT", "POST", "PATCH"]), body=BODIES,
       token=st.sampled_from(["parent", None]))
def test_no_body_gives_a_server_error(fuzz_api, method, body, token):
    api, hook_id = fuzz_api
    path = "/v2/accounts/%s/webhooks" % PARENT + ("" if method == "PUT" else "/" + hook_id)
    data = body.encode("utf-8") if isinstance(body, str) else body
    reply = api.call(method, path, token=token, data=data,
                     headers={"Content-Type": "application/json"})
    assert reply.status_code < 500, reply.text
    assert reply.json()["status"] in ("success", "error")
