"""Request validation with Kazoo's error shape.

Errors are keyed by field, then by the failed check, as Crossbar reports
them: ``{"retries": {"maximum": {"message": "Value must be at most 10",
"target": 10, "value": 99}}}``.  The rules are the shipped
``schemas/webhook.schema.json`` (the same ones hooks.yaml is checked
against), the uri's shape (``netpolicy.parse_uri``: port, characters) and
its host, when written as an IP address, against the network policy that
will apply to the hook (``eslhook/netpolicy.py``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ..config import schema_validator
from ..hooks.model import SECRET_FIELDS, secret_problem
from ..netpolicy import NetworkPolicy, saved_uri_verdict, uri_problem

# Recorded by the server from the token, never taken from a client.
SERVER_SET_FIELDS = ("written_by",)


def webhook_errors(data: dict, policy: NetworkPolicy) -> dict:
    """Every problem of a webhook document, Kazoo style; {} when valid.  ``policy``:
    the network policy the hook will follow (tenant for an account token)."""
    errors: dict[str, dict] = {}
    for error in schema_validator("webhook").iter_errors(data):
        for field, kind, detail in _describe(error):
            errors.setdefault(field, {})[kind] = detail
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
    return errors


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


def add_error(errors: dict, field: str, kind: str, message: str, **detail: Any) -> None:
    errors.setdefault(field, {})[kind] = {"message": message, **detail}


def _field(path: Iterable) -> str:
    return ".".join(str(p) for p in path)


def _describe(error) -> list[tuple[str, str, dict]]:
    path = tuple(error.absolute_path)
    kind, expected, value, schema = (error.validator, error.validator_value,
                                     error.instance, error.schema)
    if kind == "required":
        return [(_field(path + (key,)), "required", {"message": "Field is required but missing"})
                for key in expected if key not in value]
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        return [(_field(path + (key,)), "additionalProperties",
                 {"message": _unknown_field(key, allowed)})
                for key in value if key not in allowed]
    field = _field(path)
    if kind == "maximum":
        return [(field, kind, {"message": "Value must be at most %s" % expected,
                               "target": expected, "value": value})]
    if kind == "minimum":
        return [(field, kind, {"message": "Value must be at least %s" % expected,
                               "target": expected, "value": value})]
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return [(field, kind, {"message": "Value did not match type(s): %s" % ", ".join(types),
                               "target": expected, "value": value})]
    if kind == "enum":
        return [(field, kind, {"message": "Value not found in enumerated list of values",
                               "target": expected, "value": value})]
    if kind == "minLength":
        return [(field, kind, {"message": "String must be at least %d characters" % expected,
                               "target": expected, "value": value})]
    if kind == "pattern":
        message = schema.get("x-error", "Failed to match pattern %s" % expected)
        return [(field, kind, {"message": "Value %s" % message, "target": expected,
                               "value": value})]
    return [(field, kind, {"message": error.message})]


def _unknown_field(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    if close:
        return "Field is not allowed: did you mean %r?" % close[0]
    return "Field is not allowed; allowed fields: %s" % ", ".join(allowed)
