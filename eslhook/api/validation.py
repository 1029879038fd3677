"""Request validation with Kazoo's error shape.

Errors are keyed by field, then by the failed check, as Crossbar reports
them: ``{"retries": {"maximum": {"message": "Value must be at most 10",
"target": 10, "value": 99}}}``.  The rules are the shipped
``schemas/webhook.schema.json`` (the same ones hooks.yaml is checked
against) plus the uri host check against ``api.blocked_networks``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ..config import schema_validator
from ..hooks.model import SECRET_FIELDS, secret_problem

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")   # 2852039166, 0xa9.0xfe.0xa9.0xfe, 169.254.1


def webhook_errors(data: dict, blocked_networks: Iterable[Network]) -> dict:
    """Every problem of a webhook document, Kazoo style; {} when valid."""
    errors: dict[str, dict] = {}
    for error in schema_validator("webhook").iter_errors(data):
        for field, kind, detail in _describe(error):
            errors.setdefault(field, {})[kind] = detail
    for name in SECRET_FIELDS:
        if name in errors:   # a signing key is never echoed, not even a wrong one
            for detail in errors[name].values():
                detail.pop("value", None)
        elif secret_problem(data.get(name)):   # what the schema's pattern lets through
            add_error(errors, name, "format", "Value %s" % secret_problem(data.get(name)))
    uri = data.get("uri")
    if isinstance(uri, str) and "uri" not in errors:
        network = blocked_network(uri, blocked_networks)
        if network is not None:
            errors["uri"] = {"blocked_network": {
                "message": "the uri's host is in a blocked network (%s, api.blocked_networks);"
                           " it cannot be the target of a webhook" % network,
                "target": str(network), "value": uri}}
    return errors


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


# -- uri hosts ----------------------------------------------------------------

def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(t, strict=False) for t in texts)


def host_address(uri: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a uri's host spells, in any form a resolver accepts."""
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.split("%", 1)[0]    # fe80::1%eth0
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.fullmatch(host):
            return None
        try:  # inet_aton takes the forms getaddrinfo takes: 2852039166, 0xa9.0xfe...
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def blocked_network(uri: str, networks: Iterable[Network]) -> Network | None:
    """The blocked network the uri's host is in, if its host is an IP address.

    Host names are not resolved here (validation must not depend on DNS).
    """
    address = host_address(uri)
    if address is None:
        return None
    for network in networks:
        if address.version == network.version and address in network:
            return network
    return None
