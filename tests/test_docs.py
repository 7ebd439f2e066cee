"""The docs keep up with the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("confide", "webapp", "workers", "schedules")


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__init__.py":
                continue
            found.append(path.relative_to(ROOT).as_posix())
    return found


def test_architecture_lists_every_module_with_a_line() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `([^`]+\.py)`: \S", section, flags=re.MULTILINE))
    missing = [m for m in _modules() if m not in listed]
    assert not missing, f"docs/architecture.md, ## Modules, lacks: {missing}"
    gone = sorted(m for m in listed if not (ROOT / m).exists())
    assert not gone, f"docs/architecture.md lists modules that no longer exist: {gone}"
