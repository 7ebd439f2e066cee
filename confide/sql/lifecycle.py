"""SQL for the lifecycle: retention rules, inactivity closes, erasure warnings, erasure, and the
wraps of thread data keys. Set-based: each statement handles a batch of threads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection

from confide.sql import attachments as sql_attachments

# Erasable: closed, due, and not held. The same rule for the pass, its preview and `keys`.
ERASABLE = "t.status = 'closed' AND t.erasure_due_at <= $1 AND t.legal_hold_at IS NULL"
# Open (never closed, or reopened) and silent for longer than $2 (close_inactive_after) at $1.
INACTIVE = "t.status <> 'closed' AND t.last_activity_at + $2::text::interval <= $1"


@dataclass(frozen=True, slots=True)
class Due:
    id: UUID
    team_id: int


@dataclass(frozen=True, slots=True)
class Wrap:
    """A thread's wrapped data key and what decides its quarter."""

    id: UUID
    data_key: bytes | None
    data_key_id: str | None
    data_key_quarter: str | None
    category_slug: str
    status: str
    erasure_due_at: datetime | None
    last_activity_at: datetime
    held: bool


WRAP_COLUMNS = """t.id, t.data_key, t.data_key_id, t.data_key_quarter, t.category_slug, t.status,
    t.erasure_due_at, t.last_activity_at, t.legal_hold_at IS NOT NULL AS held"""


async def sync_rules(conn: Connection, default: str, by_category: dict[str, str]) -> None:
    """The organisation file's retention periods (interval literals): the default, and each
    category's own or the default (categories the file does not name keep the default too)."""
    await conn.execute("UPDATE lifecycle_rules SET retention = $1::text::interval", default)
    await conn.execute(
        """UPDATE categories c SET retention = coalesce(r.retention::interval, $3::text::interval)
           FROM categories c2
           LEFT JOIN unnest($1::text[], $2::text[]) AS r(slug, retention) ON r.slug = c2.slug
           WHERE c.slug = c2.slug""",
        list(by_category),
        list(by_category.values()),
        default,
    )


async def close_inactive(
    conn: Connection, as_of: datetime, inactive: str, limit: int
) -> list[UUID]:
    """Close up to ``limit`` threads silent for ``inactive`` at ``as_of``, closed at ``as_of``
    (the trigger of migrations/0023 sets their erasure date); their reply clocks stop and the
    closure is audited as the lifecycle's."""
    rows = await conn.fetch(
        f"""WITH due AS (
                SELECT t.id FROM threads t WHERE {INACTIVE}
                ORDER BY t.last_activity_at LIMIT $3 FOR UPDATE SKIP LOCKED
            ), closed AS (
                UPDATE threads t SET status = 'closed', closed_at = $1
                FROM due WHERE t.id = due.id RETURNING t.id
            ), stopped AS (
                DELETE FROM thread_clocks k USING closed WHERE k.thread_id = closed.id
            ), audited AS (
                INSERT INTO audit_log (staff_id, thread_id, action, detail)
                SELECT NULL, id, 'status', '{{"status": "closed", "by": "lifecycle"}}'
                FROM closed
            )
            SELECT id FROM closed""",
        as_of,
        inactive,
        limit,
    )
    return [r["id"] for r in rows]


async def count_inactive(conn: Connection, as_of: datetime, inactive: str) -> int:
    n: int = await conn.fetchval(
        f"SELECT count(*) FROM threads t WHERE {INACTIVE}", as_of, inactive
    )
    return n


async def warn(
    conn: Connection, as_of: datetime, warn_until: datetime, inactive: str, *, dry_run: bool
) -> int:
    """Mark the threads that enter their warning period: erasure due by ``warn_until`` (but not
    yet: those this pass erases), or (open ones) an inactivity close due by then. Each is
    counted once; held threads never."""
    condition = """t.erasure_warned_at IS NULL AND t.legal_hold_at IS NULL
        AND ((t.status = 'closed' AND t.erasure_due_at <= $2 AND t.erasure_due_at > $1)
             OR (t.status <> 'closed' AND t.last_activity_at + $3::text::interval <= $2))"""
    if dry_run:
        n: int = await conn.fetchval(
            f"SELECT count(*) FROM threads t WHERE {condition}",
            as_of,
            warn_until,
            inactive,
        )
        return n
    # An open thread that came back to life leaves its warning, to be warned again later.
    await conn.execute(
        """UPDATE threads t SET erasure_warned_at = NULL
           WHERE t.erasure_warned_at IS NOT NULL AND t.status <> 'closed'
             AND t.last_activity_at + $2::text::interval > $1""",
        warn_until,
        inactive,
    )
    done: str = await conn.execute(
        f"UPDATE threads t SET erasure_warned_at = $1 WHERE {condition}",
        as_of,
        warn_until,
        inactive,
    )
    return int(done.split()[-1])


async def claim_erasable(conn: Connection, as_of: datetime, limit: int) -> list[Due]:
    """Up to ``limit`` erasable threads, locked (others' passes skip them)."""
    rows = await conn.fetch(
        f"""SELECT t.id, t.team_id FROM threads t WHERE {ERASABLE}
            ORDER BY t.erasure_due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        as_of,
        limit,
    )
    return [Due(r["id"], r["team_id"]) for r in rows]


async def count_erasable(conn: Connection, as_of: datetime) -> int:
    n: int = await conn.fetchval(f"SELECT count(*) FROM threads t WHERE {ERASABLE}", as_of)
    return n


async def erase(
    conn: Connection,
    thread_ids: Sequence[UUID],
    erasure_ids: Sequence[str],
    team_ids: Sequence[int],
) -> int:
    """Erase the (locked) threads: their audit rows keep an erasure id instead of the thread,
    each erasure is logged and audited, then the thread rows go with everything that hangs off
    them (messages, notes, attachments, codes, sessions, clocks, reminders, outbox rows, links: ON DELETE
    CASCADE, by index). The wrapped data key is a column of the row: it goes with it."""
    await conn.execute(
        """WITH e AS (
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[])
                   AS e(thread_id, erasure_id, team_id)
           ), moved AS (
               UPDATE audit_log a SET erasure_id = e.erasure_id, thread_id = NULL
               FROM e WHERE a.thread_id = e.thread_id
           ), logged AS (
               INSERT INTO erasures (id, team_id, erased_at)
               SELECT erasure_id, team_id, now() FROM e
           )
           INSERT INTO audit_log (staff_id, thread_id, action, detail, erasure_id)
           SELECT NULL, NULL, 'erased', '{}', erasure_id FROM e""",
        list(thread_ids),
        list(erasure_ids),
        list(team_ids),
    )
    # Attached files: their chunks first (the attachment rows go with the threads).
    await sql_attachments.delete_thread_chunks(conn, thread_ids)
    done: str = await conn.execute(
        "DELETE FROM threads WHERE id = ANY($1::uuid[])", list(thread_ids)
    )
    return int(done.split()[-1])


# --- Wraps ---------------------------------------------------------------------------------


async def wrap_of(conn: Connection, thread_id: UUID, *, lock: bool = False) -> Wrap | None:
    for_update = "FOR UPDATE" if lock else ""
    row = await conn.fetchrow(
        f"SELECT {WRAP_COLUMNS} FROM threads t WHERE t.id = $1 {for_update}", thread_id
    )
    return None if row is None else Wrap(**row)


def _after(after: UUID | None) -> str:
    """Keyset paging from ``after`` ($2), or from the start. Two statements, not
    "($2 IS NULL OR t.id > $2)": a prepared statement's generic plan cannot start the primary
    key's index at $2 through that OR, and scanned and sorted the whole table for every batch
    (O(n^2) over a pass: rotation's rewrap of 1,000,000 threads took 91 s)."""
    return "" if after is None else "AND t.id > $2::uuid"


def _after_args(after: UUID | None) -> tuple[UUID, ...]:
    return () if after is None else (after,)


# Threads with a due date (closed, not held) whose key is wrapped for another quarter.
DRIFTED = """t.erasure_due_at IS NOT NULL AND t.data_key IS NOT NULL
    AND t.legal_hold_at IS NULL
    AND t.data_key_quarter IS DISTINCT FROM
        (extract(year FROM t.erasure_due_at AT TIME ZONE 'UTC')::int || 'q'
         || extract(quarter FROM t.erasure_due_at AT TIME ZONE 'UTC')::int)"""


async def any_drifted(conn: Connection) -> bool:
    """Whether any thread's key is wrapped for the wrong quarter: one sequential read of the
    table, stopping at the first. The id-ordered walk of :func:`drifted` goes through the
    primary key and reads every thread even when none has drifted (3 s of a 20 s pass at
    1,000,000 threads, bench/erasure.py; this read is a tenth of that). No index is added for
    it: ``threads`` is the table whose inserts the submission benchmark times."""
    return bool(await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM threads t WHERE {DRIFTED})"))


async def drifted(conn: Connection, after: UUID | None, limit: int) -> list[Wrap]:
    """Threads whose key is wrapped for another quarter than their erasure date's, such as
    those the auto-close or inactivity close just closed, in id order after ``after``."""
    rows = await conn.fetch(
        f"""SELECT {WRAP_COLUMNS} FROM threads t
            WHERE {DRIFTED} {_after(after)}
            ORDER BY t.id LIMIT $1""",
        limit,
        *_after_args(after),
    )
    return [Wrap(**r) for r in rows]


async def with_keys(conn: Connection, after: UUID | None, limit: int) -> list[Wrap]:
    """Every thread with a data key, in id order after ``after`` (rotation)."""
    rows = await conn.fetch(
        f"""SELECT {WRAP_COLUMNS} FROM threads t
            WHERE t.data_key IS NOT NULL {_after(after)}
            ORDER BY t.id LIMIT $1""",
        limit,
        *_after_args(after),
    )
    return [Wrap(**r) for r in rows]


async def set_wraps(
    conn: Connection, rows: Sequence[tuple[UUID, bytes, bytes, str, str | None]]
) -> int:
    """Compare-and-set many wraps at once: (id, old wrap, new wrap, key id, quarter)."""
    if not rows:
        return 0
    done: str = await conn.execute(
        """UPDATE threads t SET data_key = w.new, data_key_id = w.key_id,
                                data_key_quarter = w.quarter
           FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::text[], $5::text[])
               AS w(id, old, new, key_id, quarter)
           WHERE t.id = w.id AND t.data_key = w.old""",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
    )
    return int(done.split()[-1])


async def key_usage(conn: Connection) -> dict[str, int]:
    """How many live threads each keyring key wraps."""
    rows = await conn.fetch(
        """SELECT data_key_id, count(*) AS n FROM threads
           WHERE data_key_id IS NOT NULL GROUP BY data_key_id"""
    )
    return {r["data_key_id"]: r["n"] for r in rows}


async def legacy_count(conn: Connection) -> int:
    """Threads still without a data key (content under the keyring)."""
    n: int = await conn.fetchval("SELECT count(*) FROM threads WHERE data_key IS NULL")
    return n


async def next_without_key(conn: Connection, limit: int) -> list[UUID]:
    rows = await conn.fetch(
        "SELECT id FROM threads WHERE data_key IS NULL ORDER BY id LIMIT $1", limit
    )
    return [r["id"] for r in rows]


# --- Managers ------------------------------------------------------------------------------


async def extend(
    conn: Connection,
    thread_id: UUID,
    length: str,
    staff_id: int,
    sealed_reason: bytes,
    at: datetime,
) -> bool:
    """The one extension of a thread's retention; False if it was extended before. A closed
    thread's due date moves now; an open one's follows at closure (the trigger adds it)."""
    done = await conn.fetchval(
        """UPDATE threads SET retention_extension = $2::text::interval, retention_extended_at = $5,
                              retention_extended_by = $3, retention_extension_reason = $4,
                              erasure_due_at = erasure_due_at + $2::text::interval,
                              erasure_warned_at = NULL
           WHERE id = $1 AND retention_extended_at IS NULL RETURNING true""",
        thread_id,
        length,
        staff_id,
        sealed_reason,
        at,
    )
    return bool(done)


async def set_hold(
    conn: Connection,
    thread_id: UUID,
    staff_id: int,
    hold: bool,
    at: datetime,
    not_before: datetime | None = None,
) -> bool:
    """Set (``hold``) or lift a legal hold; False when it was already so. Lifting moves a
    closed thread's erasure to ``not_before`` at the earliest (the warning period from now)."""
    if hold:
        done = await conn.fetchval(
            """UPDATE threads SET legal_hold_at = $3, legal_hold_by = $2
               WHERE id = $1 AND legal_hold_at IS NULL RETURNING true""",
            thread_id,
            staff_id,
            at,
        )
    else:
        done = await conn.fetchval(
            """UPDATE threads SET legal_hold_at = NULL, legal_hold_by = NULL,
                                  erasure_warned_at = NULL,
                                  erasure_due_at = CASE
                                      WHEN erasure_due_at IS NULL OR $2::timestamptz IS NULL
                                      THEN erasure_due_at
                                      ELSE greatest(erasure_due_at, $2) END
               WHERE id = $1 AND legal_hold_at IS NOT NULL RETURNING true""",
            thread_id,
            not_before,
        )
    return bool(done)
