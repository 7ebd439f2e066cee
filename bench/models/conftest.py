"""Skip these files where pydantic and msgspec are not installed (they are not dependencies yet)."""

from __future__ import annotations

import importlib.util

collect_ignore = (
    [] if all(importlib.util.find_spec(m) for m in ("pydantic", "msgspec")) else ["test_models.py"]
)
