"""Crossbar's list filters, for the webhooks listing: ``filter_<key>=<value>`` (the
Kazoo PHP SDK and PyKazoo send them) and ``filter_not_<key>=<value>``.

``<key>`` is a field of the hook as GET shows it, dotted for a nested one
(``filter_custom_data.crm=x``); a value matches when its text is the query's
(booleans as ``true`` / ``false``, numbers in decimal, as Kazoo compares them).
A key no hook has matches nothing (and ``filter_not_`` of it everything), so a
misspelt filter lists nothing rather than every hook: a script acting on the
result never acts on the wrong hook.  Several filters must all match.  Secrets
are not in the view, so no filter can probe them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

FILTER, FILTER_NOT = "filter_", "filter_not_"
_MISSING = object()


def _field(view: Mapping[str, Any], dotted: str) -> Any:
    value: Any = view
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _text(value: Any) -> str | None:
    if value is _MISSING or value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def listing_filter(params: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate on a hook's view for the query's filters (every view when none)."""
    wanted: list[tuple[str, str, bool]] = []     # (dotted key, value, must equal)
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        if name.startswith(FILTER_NOT):
            wanted += [(name[len(FILTER_NOT):], str(v), False) for v in values]
        elif name.startswith(FILTER):
            wanted += [(name[len(FILTER):], str(v), True) for v in values]

    def matches(view: Mapping[str, Any]) -> bool:
        return all((_text(_field(view, key)) == value) == equal
                   for key, value, equal in wanted)
    return matches
