"""SQL for re-encryption under the primary key: batches of (id, ciphertext) per sealed column."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class Sealed:
    id: UUID | int
    sealed: bytes


# (table, id column, sealed column): every place that holds ciphertext. Fixed names only.
SEALED = (
    ("threads", "id", "description"),
    ("threads", "id", "occurred"),
    ("threads", "id", "location"),
    ("threads", "id", "contact"),
    ("threads", "id", "receipt_salt"),
    ("threads", "id", "earlier_reference"),
    ("threads", "id", "earlier_details"),
    ("messages", "id", "body"),
    ("messages", "id", "receipt_salt"),
    ("notes", "id", "body"),
    ("outbox", "id", "recipient"),
    ("staff_totp", "staff_id", "secret"),
)
# The id column's type where it is not a uuid (fixed names only, like SEALED).
ID_TYPES = {"staff_totp": "integer"}


async def batch_not_under(
    conn: Connection,
    table: str,
    id_col: str,
    column: str,
    prefix: bytes,
    after: UUID | int | None,
    limit: int,
) -> list[Sealed]:
    """Rows whose ciphertext is not under the key ``prefix``, in id order after ``after``."""
    assert (table, id_col, column) in SEALED
    id_type = ID_TYPES.get(table, "uuid")
    rows = await conn.fetch(
        f"""SELECT {id_col} AS id, {column} AS sealed FROM {table}
            WHERE {column} IS NOT NULL AND substring({column} FROM 1 FOR $1) <> $2
              AND ($3::{id_type} IS NULL OR {id_col} > $3)
            ORDER BY {id_col} LIMIT $4""",
        len(prefix),
        prefix,
        after,
        limit,
    )
    return [Sealed(**r) for r in rows]


async def replace(
    conn: Connection,
    table: str,
    id_col: str,
    column: str,
    row_id: UUID | int,
    old: bytes,
    new: bytes,
) -> bool:
    """Compare-and-set, so a concurrent writer is never overwritten."""
    assert (table, id_col, column) in SEALED
    done = await conn.fetchval(
        f"UPDATE {table} SET {column} = $3 WHERE {id_col} = $1 AND {column} = $2 RETURNING true",
        row_id,
        old,
        new,
    )
    return bool(done)
