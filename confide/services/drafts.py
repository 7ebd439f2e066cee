"""Reporters' drafts: saved, loaded and deleted under the browser-held key (docs/security.md
"Drafts"). The key is an argument of each call and is never stored, logged or sent on.

After submission the draft holds the confirmation instead of the answers, and for
``CODE_SHOWN_FOR_S`` at most, the code (CONTRACTS §2's one exception), so a reload shows the same
code. The code is kept apart from the rest so that the database can wipe it on time without
opening anything.
"""

from __future__ import annotations

from typing import Any

from confide.context import Context
from confide.drafts import BrowserKey, DraftUnreadable, open_sealed, seal
from confide.sql import drafts as sql

# Shown for 9 minutes: the purge (every minute) then wipes the ciphertext within the 10 that
# CONTRACTS §2 allows.
CODE_SHOWN_FOR_S = 9 * 60
CODE_COLUMN = "code_ciphertext"


def idle_seconds(ctx: Context) -> int:
    return ctx.settings.draft_idle_minutes * 60


async def save(ctx: Context, browser: BrowserKey, payload: dict[str, Any]) -> None:
    """Write the draft; it now expires after the idle timeout from now. A code it holds is kept
    (with its own expiry): ``payload["code"]`` is never written here."""
    payload = {k: v for k, v in payload.items() if k != "code"}
    blob = seal(browser, payload)
    async with ctx.pool.acquire() as conn:
        await sql.upsert(conn, browser.row_id, blob, idle_seconds(ctx))


async def save_confirmation(
    ctx: Context, browser: BrowserKey, payload: dict[str, Any], code: str
) -> None:
    """The confirmation after submission, with the code shown on it for CODE_SHOWN_FOR_S."""
    blob = seal(browser, payload)
    sealed_code = seal(browser, {"code": code}, CODE_COLUMN)
    async with ctx.pool.acquire() as conn:
        await sql.upsert_with_code(
            conn, browser.row_id, blob, idle_seconds(ctx), sealed_code, CODE_SHOWN_FOR_S
        )


async def load(ctx: Context, browser: BrowserKey) -> dict[str, Any] | None:
    """The draft, or None when it is missing, expired (then deleted) or does not open. While
    its code is live it is ``["code"]``."""
    async with ctx.pool.acquire() as conn:
        sealed = await sql.live(conn, browser.row_id)
    if sealed is None:
        return None
    try:
        payload = open_sealed(browser, sealed.ciphertext)
        if sealed.code_ciphertext is not None:
            payload["code"] = open_sealed(browser, sealed.code_ciphertext, CODE_COLUMN)["code"]
    except DraftUnreadable:
        return None
    return payload


async def forget_code(ctx: Context, browser: BrowserKey) -> None:
    async with ctx.pool.acquire() as conn:
        await sql.forget_code(conn, browser.row_id)


async def delete(ctx: Context, browser: BrowserKey) -> bool:
    async with ctx.pool.acquire() as conn:
        return await sql.delete(conn, browser.row_id)
