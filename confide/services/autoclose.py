"""Auto-close after silence (issue 16 item 3). A stub until the lifecycle-clocks branch lands:
its version of this file replaces this one."""

from __future__ import annotations

from datetime import datetime

from confide.context import Context


async def auto_close(ctx: Context, as_of: datetime, *, dry_run: bool) -> int:
    """Close the anonymous threads silent since the case worker's last message; how many."""
    return 0
