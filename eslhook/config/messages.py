"""The shipped JSON Schemas, and what their errors say to a person.

One walker, ``findings(error)``, turns a jsonschema error into one ``Finding``
per offending key (a ``required`` error names every missing key, an
``additionalProperties`` one every unknown key, with the allowed keys for a
"did you mean").  Two renderers read the same findings:

- ``file_message``: the text of a config/hooks file issue
  ("must be between 0 and 10 (got 99)"), never echoing a secret;
- ``kazoo_detail``: Crossbar's field error detail
  (``{"message": "Value must be at most 10", "target": 10, "value": 99}``),
  used by ``eslhook/api/validation.py``.
"""

from __future__ import annotations

import difflib
import json
import uuid
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Iterable, Iterator

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

KeyPath = tuple  # of str keys and int indexes, as jsonschema's absolute_path
SECRET_KEYS = frozenset({"password", "auth_tokens", "api_keys", "admin_tokens", "secret",
                         "previous_secret", "custom_request_headers",
                         "dsn"})     # a dsn may hold a password


def _schema_resources() -> dict[str, dict]:
    folder = resources.files("eslhook") / "schemas"
    return {entry.name: json.loads(entry.read_text("utf-8"))
            for entry in folder.iterdir() if entry.name.endswith(".schema.json")}


@cache
def _registry() -> tuple[Registry, dict[str, dict]]:
    schemas = _schema_resources()
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values())
    return registry, schemas


def schema_document(name: str) -> dict:
    """``eslhook/schemas/<name>.schema.json`` as loaded, shared: copy before changing."""
    return _registry()[1]["%s.schema.json" % name]


@cache
def schema_validator(name: str) -> Draft202012Validator:
    """Validator for ``eslhook/schemas/<name>.schema.json`` (config, webhook, hooks)."""
    registry, schemas = _registry()
    return Draft202012Validator(schemas["%s.schema.json" % name], registry=registry)


@cache
def fragment_validator(name: str, pointer: str) -> Draft202012Validator:
    """Validator for one part of a shipped schema, e.g. ("config", "/$defs/switch")."""
    registry, schemas = _registry()
    schema = schemas["%s.schema.json" % name]
    return Draft202012Validator({"$ref": "%s#%s" % (schema["$id"], pointer)},
                                registry=registry)


def format_path(parts: Iterable[str | int]) -> str:
    """("switches", 0, "port") -> "switches[0].port"."""
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass(frozen=True)
class Finding:
    """One problem at one key, as a schema error states it."""
    path: KeyPath
    kind: str              # the failed keyword: required, maximum, type, ...
    expected: Any          # the keyword's value in the schema
    value: Any             # the offending value (for required/additionalProperties: the key)
    schema: dict           # the (sub)schema holding the keyword
    text: str = ""         # jsonschema's own message, for keywords without a renderer


def findings(errors: Iterable) -> Iterator[Finding]:
    """One Finding per offending key of each jsonschema error."""
    missing: set[KeyPath] = set()
    for error in errors:
        path = tuple(error.absolute_path)
        kind, expected, value, schema = (error.validator, error.validator_value,
                                         error.instance, error.schema)
        if kind == "required":
            # jsonschema raises one error per missing key, each holding the whole list
            new = [path + (key,) for key in expected
                   if key not in value and path + (key,) not in missing]
            missing.update(new)
            yield from (Finding(p, kind, expected, p[-1], schema) for p in new)
        elif kind == "additionalProperties":
            allowed = schema.get("properties", {})
            yield from (Finding(path + (key,), kind, sorted(allowed), key, schema)
                        for key in value if key not in allowed)
        else:
            yield Finding(path, kind, expected, value, schema, error.message)


def closest(key: Any, allowed: list[str]) -> str | None:
    """The allowed key a typo most likely meant, if any is close."""
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    return close[0] if close else None


# -- files: "switches[0].port: must be between 1 and 65535 (got 70000)" ----------

_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "object": "a mapping", "array": "a list",
               "null": "null (empty)"}


def _type_word(value) -> str:
    for kind, word in ((bool, "true/false"), (int, "an integer"), (float, "a number"),
                       (str, "a string"), (dict, "a mapping"), (list, "a list"),
                       (date, "a date")):
        if isinstance(value, kind):
            return word
    return "empty (null)" if value is None else type(value).__name__


def is_secret(path: KeyPath) -> bool:
    return any(part in SECRET_KEYS for part in path)


def _has_userinfo(path: KeyPath, value) -> bool:
    """A hook uri with user:password@ is not quoted either."""
    return bool(path) and path[-1] == "uri" and isinstance(value, str) and "@" in value


def _shown(path: KeyPath, value) -> str:
    """The offending value for a message, unless it may be a secret."""
    if is_secret(path) or isinstance(value, (dict, list)) or _has_userinfo(path, value):
        return ""
    return " (got %r)" % (value,)


def _bounds(schema: dict) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if None not in (low, high):
        return "must be between %s and %s" % (low, high)
    return "must be at least %s" % low if high is None else "must be at most %s" % high


def _type_message(f: Finding) -> str:
    words = " or ".join(_TYPE_WORDS.get(t, str(t)) for t in
                        (f.expected if isinstance(f.expected, list) else [f.expected]))
    # YAML reads 123, 1.5, yes, no, on, off... as numbers and booleans
    quote = ("; put it in quotes" if f.expected == "string"
             and isinstance(f.value, (int, float, bool, date)) else "")
    return "must be %s, not %s%s%s" % (words, _type_word(f.value), _shown(f.path, f.value),
                                       quote)


def _unknown_key(key, allowed: list[str]) -> str:
    close = closest(key, allowed)
    if close:
        return "unknown key %r: did you mean %r?" % (key, close)
    return "unknown key %r; allowed keys: %s" % (key, ", ".join(allowed))


def _missing_key(key: str) -> str:
    if key == "id":
        return "required key is missing; add a unique id, for example  id: %s" % (
            uuid.uuid4().hex)
    return "required key is missing"


def file_message(f: Finding) -> str:
    """What a config or hooks file issue says about ``f``."""
    shown = _shown(f.path, f.value)
    if f.kind == "additionalProperties":
        return _unknown_key(f.value, f.expected)
    if f.kind == "required":
        return _missing_key(f.value)
    if f.kind == "type":
        return _type_message(f)
    if f.kind == "enum":
        return "must be one of: %s%s" % (
            ", ".join("null" if v is None else str(v) for v in f.expected), shown)
    if f.kind in ("minimum", "maximum"):
        return _bounds(f.schema) + shown
    if f.kind == "exclusiveMinimum":
        return "must be greater than %s%s" % (f.expected, shown)
    if f.kind == "minLength":
        return ("must not be empty" if f.expected == 1
                else "must be at least %d characters" % f.expected)
    if f.kind == "minItems":
        return "must list at least %d item%s" % (f.expected, "s" * (f.expected != 1))
    if f.kind == "pattern":
        return f.schema.get("x-error", "must match %s" % f.expected) + shown
    # jsonschema's own message quotes the value: not for secrets
    return "fails the %r check" % f.kind if is_secret(f.path) else f.text


# -- the REST API: {"retries": {"maximum": {"message": ..., "target": 10, "value": 99}}} --

def kazoo_field(f: Finding) -> str:
    return ".".join(str(p) for p in f.path)


def _unknown_field(key: str, allowed: list[str]) -> str:
    close = closest(key, allowed)
    if close:
        return "Field is not allowed: did you mean %r?" % close
    return "Field is not allowed; allowed fields: %s" % ", ".join(allowed)


_KAZOO_MESSAGES = {
    "maximum": lambda f: "Value must be at most %s" % f.expected,
    "minimum": lambda f: "Value must be at least %s" % f.expected,
    "type": lambda f: "Value did not match type(s): %s" % ", ".join(
        f.expected if isinstance(f.expected, list) else [f.expected]),
    "enum": lambda f: "Value not found in enumerated list of values",
    "minLength": lambda f: "String must be at least %d characters" % f.expected,
    "pattern": lambda f: "Value %s" % f.schema.get(
        "x-error", "Failed to match pattern %s" % f.expected),
}


def kazoo_detail(f: Finding) -> dict:
    """Crossbar's detail for ``f`` (message, and target/value where Kazoo gives them)."""
    if f.kind == "required":
        return {"message": "Field is required but missing"}
    if f.kind == "additionalProperties":
        return {"message": _unknown_field(f.value, f.expected)}
    render = _KAZOO_MESSAGES.get(f.kind)
    if render is None:
        return {"message": f.text}
    return {"message": render(f), "target": f.expected, "value": f.value}
