"""SQL for re-encryption under the primary key (batches of (id, ciphertext) per sealed column),
for the migration of threads to data keys, and for retired keyring keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
    ("threads", "id", "retention_extension_reason"),
    ("messages", "id", "body"),
    ("messages", "id", "receipt_salt"),
    ("notes", "id", "body"),
    # A file's key (and SHA-256), its kept name and a release's reason: under the thread key,
    # or the keyring's on a thread made before thread keys (ThreadKey.seal falls back).
    ("attachments", "id", "file_key"),
    ("attachments", "id", "name"),
    ("attachments", "id", "release_reason"),
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
    """Rows whose ciphertext is sealed by the keyring but not under the key ``prefix``, in id
    order after ``after``. Values under a thread's data key (format 0x02) are left alone: their
    key's wrap is what rotation changes."""
    assert (table, id_col, column) in SEALED
    id_type = ID_TYPES.get(table, "uuid")
    # Two statements, not "($3 IS NULL OR id > $3)": the prepared statement's generic plan
    # cannot start the primary key's index at $3 through that OR, and fell back to a (parallel)
    # sequential scan and a sort of the whole table for every batch, O(n^2) over a rotation
    # (the erasure bench's rotation at 1,000,000 threads did not finish in 15 minutes).
    after_clause = "" if after is None else f"AND {id_col} > $4::{id_type}"
    rows = await conn.fetch(
        f"""SELECT {id_col} AS id, {column} AS sealed FROM {table}
            WHERE {column} IS NOT NULL AND get_byte({column}, 0) = 1
              AND substring({column} FROM 1 FOR $1) <> $2 {after_clause}
            ORDER BY {id_col} LIMIT $3""",
        len(prefix),
        prefix,
        limit,
        *(() if after is None else (after,)),
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


async def count_by_key(conn: Connection, table: str, column: str) -> dict[str, int]:
    """How many values of one sealed column each keyring key seals (one scan of the column;
    values under a thread's data key, format 0x02, are not the keyring's)."""
    assert any(t == table and c == column for t, _, c in SEALED)
    rows = await conn.fetch(
        f"""SELECT convert_from(substring({column} FROM 3 FOR get_byte({column}, 1)), 'SQL_ASCII')
                   AS key_id, count(*) AS n
            FROM {table} WHERE {column} IS NOT NULL AND get_byte({column}, 0) = 1
            GROUP BY 1"""
    )
    return {r["key_id"]: r["n"] for r in rows}


@dataclass(frozen=True, slots=True)
class LegacyThread:
    """A thread without a data key yet: its keyring-sealed columns (THREAD_COLUMNS order)."""

    id: UUID
    category_slug: str
    status: str
    erasure_due_at: datetime | None
    last_activity_at: datetime
    held: bool
    sealed: dict[str, bytes | None]


THREAD_COLUMNS = tuple(c for t, _, c in SEALED if t == "threads")


async def lock_legacy_thread(conn: Connection, thread_id: UUID) -> LegacyThread | None:
    """The thread, locked, if it still has no data key (else None: done already)."""
    columns = ", ".join(THREAD_COLUMNS)
    row = await conn.fetchrow(
        f"""SELECT id, category_slug, status, erasure_due_at, last_activity_at,
                   legal_hold_at IS NOT NULL AS held, {columns}
            FROM threads WHERE id = $1 AND data_key IS NULL FOR UPDATE""",
        thread_id,
    )
    if row is None:
        return None
    return LegacyThread(
        row["id"],
        row["category_slug"],
        row["status"],
        row["erasure_due_at"],
        row["last_activity_at"],
        row["held"],
        {c: row[c] for c in THREAD_COLUMNS},
    )


async def thread_rows(
    conn: Connection, thread_id: UUID
) -> tuple[list[tuple[UUID, bytes, bytes | None]], list[tuple[UUID, bytes]]]:
    """A thread's messages (id, body, receipt salt) and notes (id, body), sealed."""
    messages = await conn.fetch(
        "SELECT id, body, receipt_salt FROM messages WHERE thread_id = $1", thread_id
    )
    notes = await conn.fetch("SELECT id, body FROM notes WHERE thread_id = $1", thread_id)
    return (
        [(r["id"], r["body"], r["receipt_salt"]) for r in messages],
        [(r["id"], r["body"]) for r in notes],
    )


ATTACHMENT_COLUMNS = tuple(c for t, _, c in SEALED if t == "attachments")


async def lock_thread_attachments(
    conn: Connection, thread_id: UUID
) -> list[tuple[UUID, dict[str, bytes | None]]]:
    """A thread's files (id, sealed columns in ATTACHMENT_COLUMNS order), locked until the
    transaction ends: a manager's release waits, then seals under the key it then finds."""
    columns = ", ".join(ATTACHMENT_COLUMNS)
    rows = await conn.fetch(
        f"""SELECT id, {columns} FROM attachments WHERE thread_id = $1 ORDER BY id FOR UPDATE""",
        thread_id,
    )
    return [(r["id"], {c: r[c] for c in ATTACHMENT_COLUMNS}) for r in rows]


async def adopt_data_key(
    conn: Connection,
    thread_id: UUID,
    wrap: tuple[bytes, str, str | None],
    columns: dict[str, bytes | None],
    messages: list[tuple[UUID, bytes, bytes | None]],
    notes: list[tuple[UUID, bytes]],
    files: list[tuple[UUID, dict[str, bytes | None]]],
) -> None:
    """Store a thread's content re-sealed under its new data key, and the key's wrap."""
    sets = ", ".join(f"{c} = ${i + 5}" for i, c in enumerate(THREAD_COLUMNS))
    await conn.execute(
        f"""UPDATE threads SET data_key = $2, data_key_id = $3, data_key_quarter = $4, {sets}
            WHERE id = $1""",
        thread_id,
        *wrap,
        *(columns[c] for c in THREAD_COLUMNS),
    )
    if messages:
        await conn.execute(
            """UPDATE messages m SET body = n.body, receipt_salt = n.salt
               FROM unnest($1::uuid[], $2::bytea[], $3::bytea[]) AS n(id, body, salt)
               WHERE m.id = n.id""",
            [m[0] for m in messages],
            [m[1] for m in messages],
            [m[2] for m in messages],
        )
    if notes:
        await conn.execute(
            """UPDATE notes o SET body = n.body
               FROM unnest($1::uuid[], $2::bytea[]) AS n(id, body) WHERE o.id = n.id""",
            [n[0] for n in notes],
            [n[1] for n in notes],
        )
    if files:
        await conn.execute(
            """UPDATE attachments a SET file_key = n.file_key, name = n.name,
                                        release_reason = n.release_reason
               FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[])
                    AS n(id, file_key, name, release_reason)
               WHERE a.id = n.id""",
            [f[0] for f in files],
            [f[1]["file_key"] for f in files],
            [f[1]["name"] for f in files],
            [f[1]["release_reason"] for f in files],
        )


async def retire(conn: Connection, key_id: str) -> None:
    await conn.execute(
        "INSERT INTO retired_keys (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", key_id
    )


async def retired(conn: Connection) -> set[str]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM retired_keys")}
