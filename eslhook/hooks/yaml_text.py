"""The hooks.yaml backend's pure text side: a stable read's bytes to hooks and their
layout, and the new text of a write (only the changed entries spliced in).  These
run in gevent's threadpool (``hooks/store.py`` calls them): no gevent calls, no
logging of results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..accounts import AccountDirectory
from ..config import ConfigError, ConfigIssue
from .files import FileState
from .layout import Layout, layout_of, rewrite_document, spliced
from .model import Hook
from .yaml_file import parse_hooks_text, validate_changed_hooks


@dataclass(frozen=True)
class ParsedFile:
    """A stable read, parsed: its hooks and layout, or why it cannot be used."""
    hooks: list[Hook] = field(default_factory=list)
    layout: Layout | None = None
    text: str = ""
    error: ConfigError | None = None


def changed_positions(old: tuple[Hook, ...], new: list[Hook]) -> list[int]:
    """Indexes in ``new`` of the hooks that are new or differ from old's."""
    before = {hook.id: hook for hook in old}
    changed = []
    for index, hook in enumerate(new):
        was = before.get(hook.id)
        if was is not hook and was != hook:
            changed.append(index)
    return changed


def parse_state(state: FileState, accounts: AccountDirectory, path: Path) -> ParsedFile:
    """The hooks of a stable read (in a worker thread)."""
    if state.raw is None:
        return ParsedFile(error=ConfigError([ConfigIssue(str(path), "", state.error or
                                                         "file not found")]))
    try:
        text = state.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = state.raw[:exc.start].count(b"\n") + 1
        return ParsedFile(error=ConfigError([ConfigIssue(str(path), "", "not UTF-8 text",
                                                         line)]))
    try:
        hooks, node = parse_hooks_text(text, accounts, str(path))
    except ConfigError as error:
        return ParsedFile(error=error)
    layout = layout_of(text, node)
    return ParsedFile(hooks, layout, "" if layout else text)


def new_text(layout: Layout | None, known_text: str, old: tuple[Hook, ...], new: list[Hook],
             changed: list[int], accounts: AccountDirectory, path: Path
             ) -> tuple[str, Layout | None, int]:
    """Worker thread: validate what changed, then the file's new text, its layout,
    and how many entries lost their comments.  ``layout`` (else ``known_text``): the
    file as last read or written."""
    validate_changed_hooks(new, changed, accounts, str(path))
    result = spliced(layout, old, new) if layout is not None else None
    if result is not None:
        return result[0].text(), result[0], result[1]
    before = layout.text() if layout is not None else known_text
    text = rewrite_document(before, old, new)
    hooks, node = parse_hooks_text(text, accounts, str(path))
    if hooks != new:    # rewrite_document is the fallback: it must still be exact
        raise ConfigError([ConfigIssue(str(path), "", "internal error: the rewritten "
                                       "file does not hold the hooks meant")])
    return text, layout_of(text, node), 0
