"""hooks.yaml I/O: read and validate the hooks file, write it whole.

Reading: ``schemas/hooks.schema.json`` (each hook against
``webhook.schema.json``) plus the hooks' semantic rules (unique ids, a uri
that parses, a known account), every problem at once with file, key path and
line (``eslhook/config/documents.py``).  Writing a whole file:
``write_hooks_file`` (atomic, 0600); the store's in-place edits that keep
comments are ``layout.py``'s.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..config.documents import (ConfigError, ConfigIssue, Document, parse_yaml, read_document,
                                sorted_issues)
from ..config.messages import format_path, schema_document
from ..config.semantics import Problems, duplicates, items, known_accounts
from ..netpolicy import uri_problem
from .files import write_atomically
from .layout import new_entry
from .model import Hook, semantic_problems

if TYPE_CHECKING:
    from ..accounts import AccountDirectory

HOOKS_FILE_HEADER = """\
# eslhook webhooks. This file is managed by eslhook (its REST API edits only the
# hooks it changes; comments stay) and may also be edited by hand: eslhook reloads
# it within a couple of seconds, and keeps the last good hooks if an edit is
# invalid (see the log, or run `eslhook check-config`). It holds signing secrets:
# keep it 0600. Keys: see conf/hooks.yaml in the eslhook sources.
"""


def load_hooks(path: str | os.PathLike, accounts: "AccountDirectory", *,
               create_missing: bool = True) -> list[Hook]:
    """Read and validate the hooks file; a missing one is created empty."""
    path = Path(path)
    if create_missing and not path.exists():
        write_hooks_file(path, [])
        return []
    return hooks_from_document(read_document(path), accounts)


def parse_hooks(text: str, accounts: "AccountDirectory", file: str) -> list[Hook]:
    """Validate hooks.yaml text (already read) and build the hooks."""
    return hooks_from_document(parse_yaml(text, file), accounts)


def parse_hooks_text(text: str, accounts: "AccountDirectory", file: str
                     ) -> tuple[list[Hook], Any]:
    """``parse_hooks``, also returning PyYAML's node of the document (None when
    empty): the store reads from it where each hook's lines are."""
    doc = parse_yaml(text, file)
    return hooks_from_document(doc, accounts), doc.node


def hooks_from_document(doc: Document, accounts: "AccountDirectory") -> list[Hook]:
    if doc.data is None and not doc.issues:  # an empty file: no hooks
        return []
    issues = list(doc.issues) + doc.schema_issues("hooks")
    if isinstance(doc.data, dict):
        issues += [doc.issue(p, m) for p, m in hooks_problems(doc.data, accounts)]
    if issues:
        raise ConfigError(sorted_issues(issues))
    # the schema and hooks_problems passed every entry: not checked a second time
    return [Hook.from_dict(item, validated=True) for item in doc.data.get("webhooks") or ()]


def validate_hooks(hooks: Iterable[Hook], accounts: "AccountDirectory",
                   file: str = "hooks") -> None:
    """Check hooks built in memory (e.g. by the REST API) as if loaded from a file."""
    data = {"webhooks": [hook.to_dict() for hook in hooks]}
    hooks_from_document(Document(file, data, {}), accounts)


def validate_changed_hooks(hooks: list[Hook], changed: Iterable[int],
                           accounts: "AccountDirectory", file: str = "hooks") -> None:
    """``validate_hooks`` for a write that changed only ``hooks[i]`` for i in
    ``changed``: those are checked in full, the rest only for duplicate ids
    (they were valid when loaded), so a write costs one hook's validation."""
    issues: list[ConfigIssue] = []
    for index in changed:
        try:
            validate_hooks([hooks[index]], accounts, file)
        except ConfigError as error:
            issues += [dataclasses.replace(issue, path=issue.path.replace(
                "webhooks[0]", "webhooks[%d]" % index, 1)) for issue in error.issues]
    if len({hook.id for hook in hooks}) != len(hooks):
        ids = {"webhooks": [{"id": hook.id} for hook in hooks]}
        issues += [ConfigIssue(file, format_path(p), m)
                   for p, m in duplicates(ids, "webhooks", "id", "hook id")]
    if issues:
        raise ConfigError(issues)


def hooks_problems(data: dict, accounts: "AccountDirectory") -> Problems:
    """The hooks file's semantic rules, past its schema."""
    yield from duplicates(data, "webhooks", "id", "hook id")
    for index, item in items(data, "webhooks"):
        problem = _uri_problem_past_schema(item.get("uri"))
        if problem:
            yield ("webhooks", index, "uri"), problem
        yield from (((("webhooks", index, name), problem))
                    for name, problem in _receiver_problems_past_schema(item))
        account_id = item.get("account_id")
        if isinstance(account_id, str) and account_id not in accounts:
            yield ("webhooks", index, "account_id"), "unknown account %r%s" % (
                account_id, known_accounts(accounts.accounts))


def _receiver_problems_past_schema(item: dict) -> list[tuple[str, str]]:
    """What ``model.semantic_problems`` finds that the schema cannot (a reserved or
    twice-named header, an Authorization beside a userinfo, a key without its cert, a
    rotation time that does not exist); the schema's own findings are not repeated."""
    try:
        hook = Hook.from_dict(item, validated=True)
        problems = semantic_problems(hook)
    except (TypeError, ValueError, AttributeError):   # the schema reports what is wrong
        return []
    return [(name, problem) for name, problem in problems if name in _PAST_SCHEMA_FIELDS]


_PAST_SCHEMA_FIELDS = ("custom_request_headers", "tls_client_key_file",
                       "previous_secret_expires")


def _uri_problem_past_schema(uri) -> str | None:
    """What is wrong with a uri the schema's pattern lets through (a NUL, port 99999...);
    None when the schema already reports it or it is fine."""
    pattern = schema_document("webhook")["properties"]["uri"]["pattern"]
    if not isinstance(uri, str) or not re.search(pattern, uri):
        return None
    return uri_problem(uri)


def hooks_yaml(hooks: Iterable[Hook]) -> str:
    """The hooks file text: header comment, then hooks in a stable key order.

    Laid out as people write it by hand: list items indented under
    ``webhooks:``, a blank line between hooks.
    """
    entries = [new_entry(hook, data=hook.to_dict()) for hook in hooks]
    body = "webhooks:\n" + "\n".join(entries) if entries else "webhooks: []\n"
    return HOOKS_FILE_HEADER + "\n" + body


def write_hooks_file(path: str | os.PathLike, hooks: Iterable[Hook]) -> str:
    """Replace the file atomically (temp file created 0600, fsync, rename).

    Returns the text written (the store keeps its digest to spot later hand edits).
    """
    text = hooks_yaml(hooks)
    write_atomically(Path(path), text)
    return text
