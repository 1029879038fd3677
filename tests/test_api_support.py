"""A real API server for the API tests: HookStore on a tmp file, ApiServer on a free port."""

from __future__ import annotations

import hashlib
from pathlib import Path

import requests
import yaml

from eslhook.accounts import AccountDirectory
from eslhook.api import ApiContext, ApiServer, create_app
from eslhook.api.app import server_limits
from eslhook.config import AccountConfig, ApiConfig, DeliveryConfig
from eslhook.hooks.store import HookStore
from eslhook.supervise import Deadline

PARENT = "a0000000000000000000000000000001"
CHILD = "a0000000000000000000000000000002"      # sub-account of PARENT
OTHER = "b0000000000000000000000000000001"
UNKNOWN = "c0000000000000000000000000000001"
TOKENS = {"parent": "parent-token-1", "child": "child-token-2", "other": "other-token-3",
          "admin": "admin-token-4"}
ACCOUNTS = (
    AccountConfig(id=PARENT, name="Parent", auth_tokens=(TOKENS["parent"],)),
    AccountConfig(id=CHILD, name="Child", parent_id=PARENT, auth_tokens=(TOKENS["child"],)),
    # stored hashed: the config need not hold the secret
    AccountConfig(id=OTHER, name="Other", auth_tokens=(
        "sha256:" + hashlib.sha256(TOKENS["other"].encode()).hexdigest(),)),
)
NEW_HOOK = {"name": "New Calls", "uri": "http://127.0.0.1:9/calls/new.php",
            "http_verb": "post", "hook": "channel_create", "retries": 3}


class Api:
    """requests against the running server, with a default token."""

    def __init__(self, url: str, path: Path, store: HookStore, server: ApiServer,
                 context: ApiContext):
        self.url, self.path, self.store, self.server = url, path, store, server
        self.context = context
        self.session = requests.Session()

    def call(self, method: str, path: str, token: str | None = "parent", **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers.setdefault("X-Auth-Token", TOKENS.get(token, token))
        return self.session.request(method, self.url + path, headers=headers,
                                    timeout=10, **kwargs)

    def create(self, account: str = PARENT, token: str = "parent", **fields) -> dict:
        reply = self.call("PUT", "/v2/accounts/%s/webhooks" % account, token=token,
                          json={"data": {**NEW_HOOK, **fields}})
        assert reply.status_code == 201, reply.text
        return reply.json()["data"]

    def close(self) -> None:
        self.session.close()   # else the server waits for the idle keep-alive connection
        self.server.stop(timeout=1)
        self.store.stop(Deadline.after(1))

    def file_hooks(self) -> list[dict]:
        return (yaml.safe_load(self.path.read_text()) or {}).get("webhooks") or []

    def write_file(self, hooks: list[dict]) -> None:
        """A hand edit, then the store's look at it (its watcher's, within a second)."""
        self.path.write_text(yaml.safe_dump({"webhooks": hooks}, sort_keys=False))
        self.store.poll()


# These tests' hooks point at loopback: as an operator may, it is opened to tenants
LOOPBACK_FOR_TENANTS = DeliveryConfig(tenant_allowed_networks=("127.0.0.0/8", "::1/128"))


def start_api(tmp_path: Path, *, network: DeliveryConfig = LOOPBACK_FOR_TENANTS,
              **api_options) -> Api:
    accounts = AccountDirectory(ACCOUNTS)
    path = tmp_path / "hooks.yaml"
    store = HookStore(path, accounts)
    store.load()
    config = ApiConfig(host="127.0.0.1", port=0, admin_tokens=(TOKENS["admin"],),
                       **api_options)
    context = ApiContext(store, accounts, config, network=network)
    server = ApiServer(create_app(context), "127.0.0.1", 0, limits=server_limits(config))
    server.start()
    return Api(server.url(), path, store, server, context)


def assert_success(reply, status: int = 200, token: str | None = "parent") -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["status"] == "success"
    assert body["request_id"] and body["revision"] and body["timestamp"].endswith("Z")
    assert body["auth_token"] == (TOKENS.get(token, token) if token else "")
    assert reply.headers["X-Request-ID"] == body["request_id"]
    return body


def assert_error(reply, status: int, message: str | None = None) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["status"] == "error" and body["error"] == str(status)
    assert isinstance(body["data"], dict) and body["message"] and body["timestamp"]
    if message is not None:
        assert body["message"] == message
    return body
