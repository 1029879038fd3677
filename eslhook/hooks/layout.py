"""hooks.yaml as text: an API write changes only the entry it touches.

The file is kept as the text before the first hook (``head``, which ends with
the ``webhooks:`` line), each hook's lines (``entries``) and the text after
each (``gaps``: blank lines, comments; the last one is the tail).  A write
splices: a create appends one entry, a delete drops one, a change re-emits one
entry through ruamel.yaml's round trip, which keeps that entry's comments, key
order and quoting.  Every other byte is copied as it was, and a write costs one
entry's work however many hooks the file holds.

A file laid out otherwise (flow style, a ``-`` on a line of its own, mixed
indentation) has no ``Layout``: ``rewrite_document`` then edits the whole
document through ruamel.yaml, slower but still keeping comments.

Everything here is pure (text in, text out): the store runs it in a worker
thread.  ruamel.yaml reads and writes YAML 1.2, PyYAML (which loads the file)
1.1: every string written is quoted when YAML 1.1 would read it as something
else (``yes``, ``on``, ``1:20``), and each edited entry is read back with
PyYAML and must give exactly the hook meant.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, fields
from typing import Any, Sequence

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from .model import Hook

REQUIRED_FIELDS = ("id", "account_id", "name", "uri", "hook")
FIELD_ORDER = tuple(f.name for f in fields(Hook))
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Hook)
                             if f.name not in REQUIRED_FIELDS}
_DEFAULTS["custom_data"] = _DEFAULTS["custom_request_headers"] = {}
_MAPPINGS = ("custom_data", "custom_request_headers")
KEY_LINE = "webhooks:\n"
EMPTY_LINE = "webhooks: []\n"
_DASH = re.compile(r" *- +")
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


class EntryMismatch(Exception):
    """An edited entry would not read back as the hook meant."""


@dataclass(frozen=True)
class Layout:
    head: str                   # up to and including the "webhooks:" line
    entries: tuple[str, ...]
    gaps: tuple[str, ...]       # gaps[i] follows entries[i]; with no entries: (tail,)
    dash: int = 2               # column of each entry's "-"
    key: int = 4                # column of its keys
    key_start: int = 0          # where the "webhooks:" line starts in head

    def text(self) -> str:
        if not self.entries:
            return _line_end(self.head) + EMPTY_LINE + self.gaps[0]
        parts = [self.head]
        for entry, gap in zip(self.entries, self.gaps):
            parts += (entry, gap)
        return "".join(parts)

    def replaced(self, index: int, entry: str) -> "Layout":
        entries = list(self.entries)
        entries[index] = entry
        return self._with(entries, list(self.gaps))

    def appended(self, entry: str) -> "Layout":
        if not self.entries:
            head = _line_end(self.head)
            return Layout(head + KEY_LINE, (entry,), self.gaps, self.dash, self.key, len(head))
        entries, gaps = list(self.entries), list(self.gaps)
        entries[-1] = _line_end(entries[-1])
        separator = gaps[0] if len(gaps) > 1 and not gaps[0].strip() else "\n"
        gaps[-1:] = [separator, gaps[-1]]
        entries.append(entry)
        return self._with(entries, gaps)

    def deleted(self, index: int) -> "Layout":
        if len(self.entries) == 1:   # the key line goes; text() writes "webhooks: []"
            newline = self.head.find("\n", self.key_start) + 1 or len(self.head)
            head = self.head[:self.key_start] + self.head[newline:]
            return Layout(head, (), (self.gaps[0],), self.dash, self.key)
        entries, gaps, head = list(self.entries), list(self.gaps), self.head
        del entries[index]
        after = gaps.pop(index)
        if index == len(entries):          # the last entry: its gap was the tail
            before = gaps.pop()
            gaps.append((before if before.strip() else "") + after)
        elif after.strip():                # comments after it stay where they were
            if index == 0:
                head += after
            else:
                gaps[index - 1] += after
        return Layout(head, tuple(entries), tuple(gaps), self.dash, self.key, self.key_start)

    def _with(self, entries: list[str], gaps: list[str]) -> "Layout":
        return Layout(self.head, tuple(entries), tuple(gaps), self.dash, self.key,
                      self.key_start)


def _line_end(text: str) -> str:
    return text + "\n" if text and not text.endswith("\n") else text


# -- reading the layout of a file ---------------------------------------------

def layout_of(text: str, node: Any) -> Layout | None:
    """The layout of a valid hooks file (``node``: PyYAML's composed node), or
    None when it is not the usual block style."""
    if node is None:                       # empty, or comments only
        return Layout(text, (), ("",), key_start=len(text))
    if not isinstance(node, yaml.MappingNode) or node.flow_style:
        return None
    lines = text.splitlines(keepends=True)
    for key_node, value in node.value:
        if key_node.value == "webhooks":
            break
    else:
        return Layout(text, (), ("",), key_start=len(text))
    if key_node.start_mark.column != 0:
        return None
    key_line = key_node.start_mark.line
    if not isinstance(value, yaml.SequenceNode) or not value.value:   # null or []
        if isinstance(value, yaml.MappingNode):
            return None
        # an empty null ("webhooks:") has no text of its own: its mark may lie
        # lines further on, past comments that must stay
        end = key_line if isinstance(value, yaml.ScalarNode) and not value.value \
            else _last_line(value)
        return Layout("".join(lines[:key_line]), (), ("".join(lines[end + 1:]),),
                      key_start=len("".join(lines[:key_line])))
    if value.flow_style:
        return None
    return _block_layout(lines, key_line, value.value)


def _block_layout(lines: list[str], key_line: int, items: list) -> Layout | None:
    spans = []
    columns = set()
    previous_end = key_line
    for item in items:
        if not isinstance(item, yaml.MappingNode) or item.flow_style:
            return None
        start, column = item.start_mark.line, item.start_mark.column
        if start <= previous_end or not _DASH.fullmatch(lines[start][:column]):
            return None
        columns.add((lines[start].index("-"), column))
        previous_end = _last_line(item)
        spans.append((start, previous_end))
    if len(columns) != 1:
        return None
    (dash, key), = columns
    head = "".join(lines[:spans[0][0]])
    entries = tuple("".join(lines[s:e + 1]) for s, e in spans)
    next_starts = [s for s, _ in spans[1:]] + [len(lines)]
    gaps = tuple("".join(lines[e + 1:n]) for (_, e), n in zip(spans, next_starts))
    key_start = len("".join(lines[:key_line]))
    return Layout(head, entries, gaps, dash, key, key_start)


def _last_line(node) -> int:
    """The last line (0-based) holding any of the node's text."""
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style \
            and node.value:
        last = node.value[-1]
        return _last_line(last[1] if isinstance(node, yaml.MappingNode) else last)
    mark = node.end_mark
    return mark.line if mark.column > 0 else mark.line - 1


# -- entries ------------------------------------------------------------------

def stored_fields(hook: Hook) -> dict[str, Any]:
    """What a new entry holds: the required keys and every value that is not
    the default (GET fills those in; the file need not)."""
    out: dict[str, Any] = {}
    for name in FIELD_ORDER:
        value = _value(hook, name)
        if name in REQUIRED_FIELDS or value != _DEFAULTS[name]:
            out[name] = value
    return out


def _value(hook: Hook, name: str) -> Any:
    value = getattr(hook, name)
    if name in _MAPPINGS:
        return dict(value)
    return list(value) if isinstance(value, tuple) else value    # hook: [a, b]


def new_entry(hook: Hook, dash: int = 2, key: int = 4,
              data: dict[str, Any] | None = None) -> str:
    """The entry's text, ``-`` at column ``dash``, keys at ``key``; ``data``
    (default: ``stored_fields``) is what it holds."""
    block = yaml.dump(stored_fields(hook) if data is None else data, Dumper=_Dumper, sort_keys=False,
                      default_flow_style=False, allow_unicode=True, width=100)
    first = " " * dash + "-" + " " * max(1, key - dash - 1)
    # shifting every line of a block mapping alike keeps its structure
    return first + block.rstrip("\n").replace("\n", "\n" + " " * len(first)) + "\n"


def edited_entry(entry: str, old: Hook, new: Hook, dash: int, key: int) -> str:
    """``entry`` (old's text) changed into new's: only the keys whose value
    changed are touched.  EntryMismatch if a faithful edit is not possible."""
    round_trip = _round_trip(dash, key)
    try:
        document = round_trip.load(entry)
    except Exception as exc:   # an alias to an anchor elsewhere, say
        raise EntryMismatch(str(exc)) from None
    if _dump(round_trip, document) != entry:
        raise EntryMismatch("ruamel.yaml does not reproduce the entry as written")
    apply_changes(document[0], old, new)
    text = _dump(round_trip, document)
    _check_reads_back(text, new)
    return text


def _check_reads_back(text: str, hook: Hook) -> None:
    try:
        (data,) = yaml.load(text, Loader=_Loader)
        ok = Hook.from_dict(data) == hook
    except Exception:
        ok = False
    if not ok:
        raise EntryMismatch("the edited entry does not read back as the hook")


def apply_changes(entry: CommentedMap, old: Hook, new: Hook) -> None:
    """Edit the round-trip mapping in place: changed keys set where they stand,
    new ones in field order, ``None``/empty optional ones removed."""
    for name in FIELD_ORDER:
        before, after = _value(old, name), _value(new, name)
        if before == after:
            continue
        if after is None or (name in _MAPPINGS and not after):
            entry.pop(name, None)
        elif name in _MAPPINGS and isinstance(entry.get(name), CommentedMap):
            _edit_mapping(entry[name], after)
        elif name in entry:
            entry[name] = _scalar(after)
        elif name in REQUIRED_FIELDS or after != _DEFAULTS[name]:
            entry.insert(_position(entry, name), name, _scalar(after))


def _edit_mapping(mapping: CommentedMap, values: dict) -> None:
    for gone in [k for k in mapping if k not in values]:
        del mapping[gone]
    for name, value in values.items():
        if mapping.get(name) != value:
            mapping[_scalar(name)] = _scalar(value)


def _position(entry: CommentedMap, name: str) -> int:
    rank = FIELD_ORDER.index(name)
    for position, existing in enumerate(entry):
        if existing in FIELD_ORDER and FIELD_ORDER.index(existing) > rank:
            return position
    return len(entry)


def _scalar(value: Any) -> Any:
    """Quote a string YAML 1.1 (PyYAML) would read as a bool, number or date."""
    if isinstance(value, dict):
        return {_scalar(k): _scalar(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    if isinstance(value, str) and \
            _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG:
        return SingleQuotedScalarString(value)
    return value


def _round_trip(dash: int, key: int) -> YAML:
    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 4096               # never re-wrap a long line
    round_trip.indent(mapping=2, sequence=key, offset=dash)
    return round_trip


def _dump(round_trip: YAML, document: Any) -> str:
    out = io.StringIO()
    round_trip.dump(document, out)
    return out.getvalue()


# -- edits --------------------------------------------------------------------

def spliced(layout: Layout, old: Sequence[Hook], new: Sequence[Hook]
            ) -> tuple[Layout, int] | None:
    """The layout holding ``new`` where it held ``old``, and how many entries
    had to be written afresh (their comments lost: ruamel.yaml could not
    reproduce them); None when the change is not appends, deletes and edits
    in place (a reordering)."""
    if len(layout.entries) != len(old):
        return None
    new_ids = {hook.id for hook in new}
    kept = [hook for hook in old if hook.id in new_ids]
    if [h.id for h in new[:len(kept)]] != [h.id for h in kept]:
        return None
    for index in reversed(range(len(old))):
        if old[index].id not in new_ids:
            layout = layout.deleted(index)
    fresh = 0
    for index, (before, after) in enumerate(zip(kept, new)):
        if after is not before and after != before:
            try:
                entry = edited_entry(layout.entries[index], before, after,
                                     layout.dash, layout.key)
            except EntryMismatch:
                entry, fresh = new_entry(after, layout.dash, layout.key), fresh + 1
            layout = layout.replaced(index, entry)
    for hook in new[len(kept):]:
        layout = layout.appended(new_entry(hook, layout.dash, layout.key))
    return layout, fresh


def rewrite_document(text: str, old: Sequence[Hook], new: Sequence[Hook]) -> str:
    """The whole document edited through ruamel.yaml (layouts ``spliced`` cannot
    handle): untouched hooks and comments kept, though spacing may change."""
    round_trip = _round_trip(2, 4)
    document = round_trip.load(text) if text.strip() else None
    if not isinstance(document, CommentedMap):
        document = CommentedMap()
    items = document.get("webhooks")
    found = {item.get("id"): item for item in items or () if isinstance(item, CommentedMap)}
    before = {hook.id: hook for hook in old}
    entries = CommentedSeq()
    for hook in new:
        entry = found.get(hook.id)
        if entry is None or hook.id not in before:
            entry = CommentedMap((k, _scalar(v)) for k, v in stored_fields(hook).items())
        else:
            apply_changes(entry, before[hook.id], hook)
        entries.append(entry)
    if isinstance(items, CommentedSeq):
        items.clear()
        items.extend(entries)
        items.fa.set_block_style()
    else:
        document["webhooks"] = entries
    return _dump(round_trip, document)
