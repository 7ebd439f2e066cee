"""Rotating the encryption keys: put a new key first in CONFIDE_ENCRYPTION_KEYS, keep the old
ones after it, run ``confide keys rotate``, then drop the old keys once it reports 0 left."""

from __future__ import annotations

from confide.context import Context
from confide.sql import keys as sql_keys

BATCH = 500


def context_for(table: str, column: str, row_id: object) -> str:
    """The associated data each sealed column was written with."""
    if table == "threads":
        return f"threads.{column}:{row_id}"
    return f"{table}.{column}:{row_id}"


async def rotate(ctx: Context) -> dict[str, int]:
    """Re-encrypt every sealed value that is not under the primary key. Idempotent; resumable."""
    prefix = ctx.keyring.primary_prefix
    counts: dict[str, int] = {}
    for table, id_col, column in sql_keys.SEALED:
        done = 0
        after = None
        while True:
            async with ctx.pool.acquire() as conn:
                rows = await sql_keys.batch_not_under(
                    conn, table, id_col, column, prefix, after, BATCH
                )
                if not rows:
                    break
                async with conn.transaction():
                    for row in rows:
                        context = context_for(table, column, row.id)
                        plain = ctx.keyring.open(bytes(row.sealed), context)
                        if await sql_keys.replace(
                            conn,
                            table,
                            id_col,
                            column,
                            row.id,
                            row.sealed,
                            ctx.keyring.seal(plain, context),
                        ):
                            done += 1
                after = rows[-1].id
        counts[f"{table}.{column}"] = done
    return counts
