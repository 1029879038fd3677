"""``load_config(path)``: read ``eslhook.yaml``, validate it, build ``Config``.

Validation is the schema (``schemas/config.schema.json``) plus the semantic
layer (``semantics.config_problems``), both over the parsed document so
every problem is reported at once with its line; the dataclasses are then
built with ``trusted`` (nothing is checked a second time).
"""

from __future__ import annotations

import os
from pathlib import Path

from .documents import ConfigError, Document, read_document, sorted_issues
from .model import (AccountConfig, ApiConfig, Config, DeliveryConfig, PayloadConfig,
                    ReconcileConfig, StorageConfig, SwitchConfig, trusted)
from .semantics import config_problems, parse_listen


def load_config(path: str | os.PathLike) -> Config:
    """Read, validate and build the configuration; ConfigError lists every problem."""
    path = Path(path)
    doc = read_document(path)
    data = {} if doc.data is None else doc.data
    doc = Document(doc.file, data, doc.lines, doc.issues)
    issues = list(doc.issues) + doc.schema_issues("config")
    if isinstance(data, dict):
        issues += [doc.issue(p, m) for p, m in config_problems(data)]
    if issues:
        raise ConfigError(sorted_issues(issues))
    return _build_config(data, path)


def _resolve(base: Path, value: str) -> Path:
    return (base / Path(value).expanduser()).resolve()


def _section(data: dict, key: str) -> dict:
    return data.get(key) or {}    # absent and null (an empty section) alike


def _build_config(data: dict, path: Path) -> Config:
    base = path.resolve().parent
    api = data.get("api")
    return trusted(
        Config,
        path=path.resolve(),
        switches=tuple(trusted(SwitchConfig, **s) for s in data["switches"]),
        hooks_file=_resolve(base, data.get("hooks_file", "hooks.yaml")),
        state_dir=_resolve(base, data.get("state_dir", "state")),
        accounts=tuple(_build_account(a) for a in data.get("accounts") or ()),
        account_variable=data.get("account_variable", "account_id"),
        default_account_id=data.get("default_account_id"),
        api=_build_api(api) if api else None,
        delivery=_build_delivery(_section(data, "delivery"), api or {}),
        payload=_build_payload(_section(data, "payload")),
        reconcile=trusted(ReconcileConfig, **_section(data, "reconcile")),
        storage=trusted(StorageConfig, **_section(data, "storage")),
    )


_API_OPTIONS = ("max_body_bytes", "header_timeout_seconds", "idle_timeout_seconds",
                "max_connections", "max_connections_per_client", "auth_failure_burst",
                "auth_failures_per_minute", "abuse_log_interval_seconds")


def _build_api(data: dict) -> ApiConfig:
    host, port = parse_listen(data["listen"])
    options = {key: data[key] for key in _API_OPTIONS if key in data}
    if "admin_tokens" in data:
        options["admin_tokens"] = tuple(data["admin_tokens"])
    return trusted(ApiConfig, host=host, port=port, **options)


def _build_account(data: dict) -> AccountConfig:
    return trusted(AccountConfig, id=data["id"], name=data.get("name", ""),
                   realms=tuple(data.get("realms", ())),
                   parent_id=data.get("parent_id"),
                   reseller=data.get("reseller", False),
                   auth_tokens=tuple(data.get("auth_tokens", ())),
                   api_keys=tuple(data.get("api_keys", ())))


def _build_payload(data: dict) -> PayloadConfig:
    options = dict(data)
    options["channel_variables"] = tuple(data.get("channel_variables", ()))
    return trusted(PayloadConfig, **options)


def _build_delivery(data: dict, api: dict) -> DeliveryConfig:
    options = dict(data)
    if "retry_schedule_seconds" in data:
        options["retry_schedule_seconds"] = tuple(
            float(d) for d in data["retry_schedule_seconds"])
    if "blocked_networks" in api:    # its old place (load_config refuses both at once)
        options["blocked_networks"] = api["blocked_networks"]
    for key in ("blocked_networks", "tenant_allowed_networks"):
        if key in options:
            options[key] = tuple(options[key])
    return trusted(DeliveryConfig, **options)
