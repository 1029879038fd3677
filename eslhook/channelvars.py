"""Which header names are channel variables matching a set of globs.

Globs are fnmatch-style and case-sensitive, matched against the variable
name without its ``variable_`` prefix.  ``find_channel_variables`` is the
fast one the mapping calls for every event; ``find_channel_variables_reference``
right after it is the obvious loop it must agree with (checked by
tests/test_hotpath_reference.py); docs/performance.md says what the fast one
bought.  Pure, no I/O.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

VARIABLE_PREFIX = "variable_"


def find_channel_variables(names: Iterable[str], globs: tuple[str, ...]) -> list[str]:
    """The names in ``names`` (header names, in event order; none holding a
    newline, as no header line does) of channel variables matching ``globs``."""
    return _finder(globs).find(names)


def find_channel_variables_reference(names: Iterable[str], globs: tuple[str, ...]) -> list[str]:
    """Reference of ``find_channel_variables``: fnmatch over every name."""
    return [name for name in names if name.startswith(VARIABLE_PREFIX)
            and any(fnmatch.fnmatchcase(name[len(VARIABLE_PREFIX):], g) for g in globs)]


def channel_variable_prefixes(globs: tuple[str, ...]) -> tuple[str, ...]:
    """Every name ``find_channel_variables`` can return starts with one of these."""
    return _finder(globs).prefixes


class _Finder(NamedTuple):
    find: Callable[[Iterable[str]], list[str]]
    prefixes: tuple[str, ...]     # every name ``find`` returns starts with one


@functools.lru_cache(maxsize=64)
def _finder(globs: tuple[str, ...]) -> _Finder:
    """Candidates are found by the globs' literal prefixes over the joined
    names, in C; the exact glob regex then confirms each one."""
    exact = re.compile(re.escape(VARIABLE_PREFIX) + "(?:%s)" % "|".join(
        fnmatch.translate(g) for g in globs)).match
    prefixes = _minimal(sorted({_literal_prefix(g) for g in globs}))
    if prefixes == [""]:
        # A glob starting with a wildcard: every variable is a candidate, and
        # one regex pass collects them cheaper than a loop of finds.
        every = re.compile("\n(%s[^\n]*)" % re.escape(VARIABLE_PREFIX)).findall

        def find_every(names: Iterable[str]) -> list[str]:
            return [n for n in every("\n" + "\n".join(names)) if exact(n)]
        return _Finder(find_every, (VARIABLE_PREFIX,))
    # A str.find per prefix, not a regex: sre would try its alternation at
    # every "\nvariable_".
    needles = ["\n" + VARIABLE_PREFIX + p for p in prefixes]

    def find(names: Iterable[str]) -> list[str]:
        text = "\n%s\n" % "\n".join(names)
        found = []
        for needle in needles:
            at = text.find(needle)
            while at >= 0:
                end = text.find("\n", at + 1)
                found.append((at, text[at + 1:end]))
                at = text.find(needle, end)
        if len(needles) > 1:
            found.sort()        # event order, as one scan would give
        return [name for _, name in found if exact(name)]
    return _Finder(find, tuple(needle[1:] for needle in needles))


def _literal_prefix(glob: str) -> str:
    """The part of a glob before its first wildcard."""
    cut = len(glob)
    for wildcard in "*?[":
        at = glob.find(wildcard)
        if 0 <= at < cut:
            cut = at
    return glob[:cut]


def _minimal(prefixes: list[str]) -> list[str]:
    """The prefixes no other one is a prefix of: each name matches at most one."""
    return [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]
