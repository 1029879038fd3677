"""YAML documents with line numbers, and the issues found in them.

``read_document(path)`` / ``parse_yaml(text, file)`` give the parsed data
plus the line of every key and list item, so an issue can name
``file:line: key.path: message``.  Duplicate keys (YAML would silently keep
the last) are issues too; alias bombs and absurd nesting are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from .messages import KeyPath, file_message, findings, format_path, schema_validator

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_VALUES = 1_000_000   # ~10x a 10,000-hook file; stops alias bombs (&a [*b, *b, ...])


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    path: str          # e.g. "switches[0].port"; "" for the whole document
    message: str
    line: int | None = None   # 1-based line in the file, when YAML told us

    def __str__(self) -> str:
        where = self.file if self.line is None else "%s:%d" % (self.file, self.line)
        if self.path:
            where = "%s: %s" % (where, self.path)
        return "%s: %s" % (where, self.message)


class ConfigError(Exception):
    """A config or hooks file is invalid; ``issues`` lists every problem."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def sorted_issues(issues: Iterable[ConfigIssue]) -> list[ConfigIssue]:
    """File order: by line, then key path."""
    return sorted(issues, key=lambda i: (i.line or 0, i.path))


@dataclass(frozen=True)
class Document:
    """Parsed YAML plus the line of every key and list item, by path."""
    file: str
    data: Any
    lines: dict
    issues: tuple = ()     # found while parsing (duplicate keys)
    node: Any = None       # PyYAML's composed node: where each hook's text lies

    def issue(self, path: KeyPath, message: str) -> ConfigIssue:
        return ConfigIssue(self.file, format_path(path), message, self._line(path))

    def _line(self, path: KeyPath) -> int | None:
        path = tuple(path)
        while path not in self.lines and path:  # a missing key: its parent's line
            path = path[:-1]
        return self.lines.get(path)

    def schema_issues(self, name: str) -> list[ConfigIssue]:
        """The data checked against ``schemas/<name>.schema.json``."""
        errors = schema_validator(name).iter_errors(self.data)
        return [self.issue(f.path, file_message(f)) for f in findings(errors)]


def schema_issues(name: str, data: Any, file: str) -> list[ConfigIssue]:
    """Check ``data`` against a shipped schema (e.g. a REST request body)."""
    return Document(file, data, {}).schema_issues(name)


def read_document(path: Path) -> Document:
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(file, "", "file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, "", "cannot read: %s" % exc.strerror)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(file, "", "not UTF-8 text", line)]) from None
    return parse_yaml(text, file)


def parse_yaml(text: str, file: str) -> Document:
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError([ConfigIssue(file, "", "YAML syntax error: %s" % what,
                                       mark.line + 1 if mark else None)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, "", "YAML error: %s" % exc)]) from None
    finally:
        loader.dispose()
    lines: dict = {}
    duplicates: list[ConfigIssue] = []
    try:
        if node is not None:
            _collect_lines(node, (), node.start_mark.line + 1, lines, duplicates, file)
    except (RecursionError, _TooBig):  # nested or aliased far beyond any config
        raise ConfigError([ConfigIssue(file, "", "document too large or nested too "
                                       "deeply (%d values seen)" % len(lines))]) from None
    # duplicate keys: YAML would silently keep the last one, a lost edit
    return Document(file, data, lines, tuple(duplicates), node)


class _TooBig(Exception):
    pass


def _collect_lines(node, path, line, lines, duplicates, file) -> None:
    lines[path] = line
    if len(lines) > _MAX_VALUES:
        raise _TooBig()
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = _scalar_key(key_node)
            key_line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(ConfigIssue(
                    file, format_path(path + (key,)),
                    "duplicate key (first on line %d); YAML keeps only this last one"
                    % seen[key], key_line))
            seen.setdefault(key, key_line)  # later lines win below: that value is kept
            _collect_lines(value_node, path + (key,), key_line, lines, duplicates, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, path + (index,), item.start_mark.line + 1,
                           lines, duplicates, file)


def _scalar_key(key_node):
    """The key as the constructed mapping holds it (``1:`` is the int 1)."""
    if not isinstance(key_node, yaml.ScalarNode):
        return repr(key_node.value)
    if key_node.tag == "tag:yaml.org,2002:str":
        return key_node.value
    try:  # rare: int, bool or null keys
        return yaml.load(key_node.value, Loader=_YamlLoader)
    except yaml.YAMLError:
        return key_node.value
