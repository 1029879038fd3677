"""Request validation with Kazoo's error shape.

Errors are keyed by field, then by the failed check, as Crossbar reports
them: ``{"retries": {"maximum": {"message": "Value must be at most 10",
"target": 10, "value": 99}}}``.  The rules are the shipped
``schemas/webhook.schema.json`` (the same ones hooks.yaml is checked
against), the uri's shape (``netpolicy.parse_uri``: port, characters) and
its host, when written as an IP address, against the network policy that
will apply to the hook (``eslhook/netpolicy.py``).  The schema errors are
worded by ``eslhook/config/messages.py``, the walker hooks.yaml's share.
"""

from __future__ import annotations

import re
from typing import Any

from ..config.messages import findings, kazoo_detail, kazoo_field, schema_validator
from ..hooks.model import SECRET_FIELDS, masked_uri, secret_problem
from ..netpolicy import NetworkPolicy, saved_uri_verdict, uri_problem

# Recorded by the server from the token, never taken from a client.
SERVER_SET_FIELDS = ("written_by",)


def webhook_errors(data: dict, policy: NetworkPolicy) -> dict:
    """Every problem of a webhook document, Kazoo style; {} when valid.  ``policy``:
    the network policy the hook will follow (tenant for an account token)."""
    errors: dict[str, dict] = {}
    for finding in findings(schema_validator("webhook").iter_errors(data)):
        errors.setdefault(kazoo_field(finding), {})[finding.kind] = kazoo_detail(finding)
    for name in SERVER_SET_FIELDS:
        if name in data:
            errors[name] = {"additionalProperties": {"message": (
                "Field is not allowed: eslhook records who wrote a hook from the token")}}
    for name in SECRET_FIELDS:
        if name in errors:   # a signing key is never echoed, not even a wrong one
            for detail in errors[name].values():
                detail.pop("value", None)
        elif secret_problem(data.get(name)):   # what the schema's pattern lets through
            add_error(errors, name, "format", "Value %s" % secret_problem(data.get(name)))
    uri = data.get("uri")
    if isinstance(uri, str) and "uri" not in errors:
        errors.update(_uri_errors(uri, policy))
    _hide_write_only_values(errors)
    return errors


def _hide_write_only_values(errors: dict) -> None:
    """A header value is never echoed, nor a uri's password (writeonly.py)."""
    for name, checks in errors.items():
        for detail in checks.values():
            if name.startswith("custom_request_headers"):
                detail.pop("value", None)
            elif name == "uri" and isinstance(detail.get("value"), str):
                detail["value"] = masked_uri(detail["value"])


def _uri_errors(uri: str, policy: NetworkPolicy) -> dict:
    problem = uri_problem(uri)
    if problem:
        return {"uri": {"format": {"message": "Value %s" % problem, "value": uri}}}
    verdict = saved_uri_verdict(uri, policy)
    if verdict.allowed:
        return {}
    return {"uri": {"blocked_network": {
        "message": "the uri's host %s; it cannot be the target of a webhook" % verdict.reason,
        "target": verdict.network, "value": uri}}}


_INTEGER = re.compile(r"-?[0-9]{1,9}")
_BOOLEANS = {"true": True, "false": False}


def kazoo_coerced(data: dict) -> dict:
    """A copy of ``data`` with the strings Kazoo's validator turns into the schema's
    type (kz_json_schema's fix_js_types): "2" for an integer field, "true" /
    "false" for a boolean one.  Monster UI sends its selects' values as strings."""
    schema: Any = schema_validator("webhook").schema
    properties: dict = schema["properties"]
    coerced = dict(data)
    for name, value in data.items():
        kind = properties.get(name, {}).get("type") if isinstance(value, str) else None
        if kind == "integer" and _INTEGER.fullmatch(value):
            coerced[name] = int(value)
        elif kind == "boolean" and value in _BOOLEANS:
            coerced[name] = _BOOLEANS[value]
    return coerced


def add_error(errors: dict, field: str, kind: str, message: str, **detail: Any) -> None:
    errors.setdefault(field, {})[kind] = {"message": message, **detail}
