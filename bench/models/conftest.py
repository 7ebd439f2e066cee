"""Skip these files where pydantic or msgspec is not installed (msgspec is no project dependency)."""

from __future__ import annotations

import importlib.util

collect_ignore = (
    [] if all(importlib.util.find_spec(m) for m in ("pydantic", "msgspec")) else ["test_models.py"]
)
