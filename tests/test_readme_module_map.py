"""README's module map names every module of the tree, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES_WITHOUT_ROW = {"eslhook/hooks/__init__.py", "eslhook/source/__init__.py"}  # empty


def mapped_modules() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("The module map: one row per module"):]
    table = table[:table.index("\n\n", table.index("| module |"))]
    names = set()
    for row in table.splitlines():
        if row.startswith("| `eslhook/"):
            first_cell = row.split("|")[1]
            names.update(re.findall(r"`(eslhook/[^`]+\.py)`", first_cell))
    return names


def test_every_module_has_a_row_and_every_row_a_module():
    tree = {str(p.relative_to(ROOT)) for p in (ROOT / "eslhook").rglob("*.py")}
    listed = mapped_modules()
    assert len(listed) > 50
    assert sorted(tree - listed - PACKAGES_WITHOUT_ROW) == [], "modules missing from README"
    assert sorted(listed - tree) == [], "README rows for modules that do not exist"
