"""Reporters' drafts: saved, loaded and deleted under the browser-held key (docs/security.md
"Drafts"). The key is an argument of each call and is never stored, logged or sent on."""

from __future__ import annotations

from typing import Any

from confide.context import Context
from confide.drafts import BrowserKey, DraftUnreadable, open_sealed, seal
from confide.sql import drafts as sql


def idle_seconds(ctx: Context) -> int:
    return ctx.settings.draft_idle_minutes * 60


async def save(ctx: Context, browser: BrowserKey, payload: dict[str, Any]) -> None:
    """Write the draft; it now expires after the idle timeout from now."""
    blob = seal(browser, payload)
    async with ctx.pool.acquire() as conn:
        await sql.upsert(conn, browser.row_id, blob, idle_seconds(ctx))


async def load(ctx: Context, browser: BrowserKey) -> dict[str, Any] | None:
    """The draft, or None when it is missing, expired (then deleted) or does not open."""
    async with ctx.pool.acquire() as conn:
        blob = await sql.live_ciphertext(conn, browser.row_id)
    if blob is None:
        return None
    try:
        return open_sealed(browser, blob)
    except DraftUnreadable:
        return None


async def delete(ctx: Context, browser: BrowserKey) -> bool:
    async with ctx.pool.acquire() as conn:
        return await sql.delete(conn, browser.row_id)
