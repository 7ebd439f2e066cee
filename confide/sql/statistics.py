"""SQL for statistics: facts rows (no text, no reference), monthly summaries, the refresh's
watermark and dirty groups. Never report text; a facts row outlives its thread."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from asyncpg import Connection, Record

WATERMARK = "facts"
# One number for pg_try_advisory_xact_lock: two refresh passes never run at once.
REFRESH_LOCK = 7_316_016

Group = tuple[date, int, str]  # (month, team_id, category_slug)


@dataclass(frozen=True, slots=True)
class ThreadState:
    """What a facts row is computed from (ids and times only, never text)."""

    id: UUID
    last_activity_at: datetime
    received_at: datetime
    team_id: int
    category_slug: str
    anonymous: bool
    follow_up: bool
    status: str
    first_message_at: datetime | None
    contacted_at: datetime | None
    overdue: bool


@dataclass(frozen=True, slots=True)
class Fact:
    thread_id: UUID
    activity_at: datetime
    month: date
    team_id: int
    category_slug: str
    anonymous: bool
    follow_up: bool
    is_open: bool
    overdue: bool
    first_reply_hours: float | None
    within_target: bool


@dataclass(frozen=True, slots=True)
class GroupFact:
    month: date
    team_id: int
    category_slug: str
    anonymous: bool
    follow_up: bool
    is_open: bool
    overdue: bool
    first_reply_hours: float | None
    within_target: bool


@dataclass(frozen=True, slots=True)
class Summary:
    month: date
    team_id: int
    category_slug: str
    received: int
    anonymous: int
    with_contact: int
    follow_up: int
    open: int
    closed: int
    overdue: int
    replied: int
    replied_within_target: int
    median_hours: float | None
    p90_hours: float | None
    reply_histogram: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NamedSummary:
    summary: Summary
    team: str
    team_name: str
    category_name: str


STATE_COLUMNS = """t.id, t.last_activity_at, t.received_at, t.team_id, t.category_slug,
    t.anonymous, t.follow_up, t.status,
    (SELECT min(m.sent_at) FROM messages m
     WHERE m.thread_id = t.id AND m.author = 'caseworker') AS first_message_at,
    (SELECT min(a.at) FROM audit_log a
     WHERE a.thread_id = t.id AND a.action = 'status'
       AND a.detail->>'status' = 'contacted') AS contacted_at,
    EXISTS (SELECT 1 FROM thread_clocks k
            WHERE k.thread_id = t.id AND k.escalation = 'overdue') AS overdue"""


async def try_lock_refresh(conn: Connection) -> bool:
    """In a transaction: True if this pass may run (no other holds the lock)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", REFRESH_LOCK))


async def watermark(conn: Connection) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT changed_after FROM statistics_watermark WHERE name = $1", WATERMARK
    )
    return value


async def set_watermark(conn: Connection, at: datetime) -> None:
    await conn.execute(
        """INSERT INTO statistics_watermark (name, changed_after) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET changed_after = excluded.changed_after""",
        WATERMARK,
        at,
    )


async def database_now(conn: Connection) -> datetime:
    value: datetime = await conn.fetchval("SELECT now()")
    return value


async def changed_threads(
    conn: Connection, after: datetime, after_id: UUID, limit: int
) -> list[ThreadState]:
    """Threads whose last activity is after (``after``, ``after_id``), oldest first. Through the
    existing (team_id, last_activity_at) index, one range per team: no index is added to
    ``threads``, whose inserts the submission benchmark times."""
    rows = await conn.fetch(
        f"""SELECT {STATE_COLUMNS} FROM threads t
            WHERE t.team_id = ANY(ARRAY(SELECT id FROM teams))
              AND t.last_activity_at >= $1
              AND (t.last_activity_at, t.id) > ($1, $2)
            ORDER BY t.last_activity_at, t.id LIMIT $3""",
        after,
        after_id,
        limit,
    )
    return [ThreadState(**r) for r in rows]


async def stale_states(conn: Connection, thread_ids: Sequence[UUID]) -> list[ThreadState]:
    """Of these threads, the states of those whose facts row is missing or older than their
    last activity (the erasure's: one statement rather than a filter then a read)."""
    rows = await conn.fetch(
        f"""SELECT {STATE_COLUMNS} FROM threads t
            LEFT JOIN statistics_facts f ON f.thread_id = t.id
            WHERE t.id = ANY($1::uuid[])
              AND (f.id IS NULL OR f.activity_at < t.last_activity_at)""",
        list(thread_ids),
    )
    return [ThreadState(**r) for r in rows]


def _columns(facts: Sequence[Fact], *names: str) -> list[list[object]]:
    """One list per named field, in order: the arrays an ``unnest`` of these facts takes."""
    return [[getattr(f, name) for f in facts] for name in names]


def _groups(rows: Iterable[Record]) -> set[Group]:
    return {(r["month"], r["team_id"], r["category_slug"]) for r in rows}


async def upsert_facts(conn: Connection, facts: Sequence[Fact]) -> set[Group]:
    """Write the facts of live threads; returns the groups they left and joined."""
    if not facts:
        return set()
    ids = [f.thread_id for f in facts]
    before = await conn.fetch(
        """SELECT month, team_id, category_slug FROM statistics_facts
           WHERE thread_id = ANY($1::uuid[])""",
        ids,
    )
    await conn.execute(
        """INSERT INTO statistics_facts (thread_id, activity_at, month, team_id, category_slug,
               anonymous, follow_up, is_open, overdue, first_reply_hours, within_target)
           SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::date[], $4::int[],
               $5::text[], $6::bool[], $7::bool[], $8::bool[], $9::bool[], $10::float8[],
               $11::bool[])
           ON CONFLICT (thread_id) DO UPDATE SET
               activity_at = excluded.activity_at, month = excluded.month,
               team_id = excluded.team_id, category_slug = excluded.category_slug,
               anonymous = excluded.anonymous, follow_up = excluded.follow_up,
               is_open = excluded.is_open, overdue = excluded.overdue,
               first_reply_hours = excluded.first_reply_hours,
               within_target = excluded.within_target""",
        ids,
        *_columns(
            facts,
            "activity_at",
            "month",
            "team_id",
            "category_slug",
            "anonymous",
            "follow_up",
            "is_open",
            "overdue",
            "first_reply_hours",
            "within_target",
        ),
    )
    return _groups(before) | {(f.month, f.team_id, f.category_slug) for f in facts}


async def sync_overdue(conn: Connection) -> set[Group]:
    """Follow the escalation pass's overdue marks (which move without any thread activity);
    returns the groups whose overdue count changed."""
    marked = await conn.fetch(
        """UPDATE statistics_facts f SET overdue = true
           FROM thread_clocks k
           WHERE k.thread_id = f.thread_id AND k.escalation = 'overdue' AND NOT f.overdue
           RETURNING f.month, f.team_id, f.category_slug"""
    )
    cleared = await conn.fetch(
        """UPDATE statistics_facts f SET overdue = false
           WHERE f.overdue AND (f.thread_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM thread_clocks k
               WHERE k.thread_id = f.thread_id AND k.escalation = 'overdue'))
           RETURNING f.month, f.team_id, f.category_slug"""
    )
    return _groups(marked) | _groups(cleared)


async def clear_orphans(conn: Connection) -> set[Group]:
    """Rows whose thread was deleted without :func:`detach` (ON DELETE SET NULL): forget when
    it was last active, and count it as closed."""
    rows = await conn.fetch(
        """UPDATE statistics_facts SET activity_at = NULL, is_open = false, overdue = false
           WHERE thread_id IS NULL AND activity_at IS NOT NULL
           RETURNING month, team_id, category_slug"""
    )
    return _groups(rows)


async def detach(conn: Connection, thread_ids: Sequence[UUID]) -> set[Group]:
    """Cut the facts rows of these threads loose: no thread id, no activity time, closed."""
    rows = await conn.fetch(
        """UPDATE statistics_facts
           SET thread_id = NULL, activity_at = NULL, is_open = false, overdue = false
           WHERE thread_id = ANY($1::uuid[])
           RETURNING month, team_id, category_slug""",
        list(thread_ids),
    )
    return _groups(rows)


async def write_detached(conn: Connection, facts: Sequence[Fact]) -> set[Group]:
    """The erasure's write for threads whose facts row is missing or stale: each row written at
    once in its detached form (no thread id, no activity time, closed, not overdue; see
    :func:`detach`), updating the thread's row or adding one. One statement, where an upsert
    then a detach wrote each row twice. Returns the groups the rows left and joined."""
    if not facts:
        return set()
    left = await conn.fetch(
        """WITH u AS (
               SELECT * FROM unnest($1::uuid[], $2::date[], $3::int[], $4::text[], $5::bool[],
                   $6::bool[], $7::float8[], $8::bool[])
                   AS u(thread_id, month, team_id, category_slug, anonymous, follow_up,
                        first_reply_hours, within_target)
           ), old AS (
               SELECT f.thread_id, f.month, f.team_id, f.category_slug
               FROM statistics_facts f JOIN u ON f.thread_id = u.thread_id
           ), updated AS (
               UPDATE statistics_facts f
               SET thread_id = NULL, activity_at = NULL, month = u.month, team_id = u.team_id,
                   category_slug = u.category_slug, anonymous = u.anonymous,
                   follow_up = u.follow_up, is_open = false, overdue = false,
                   first_reply_hours = u.first_reply_hours, within_target = u.within_target
               FROM u WHERE f.thread_id = u.thread_id
           ), added AS (
               INSERT INTO statistics_facts (thread_id, activity_at, month, team_id,
                   category_slug, anonymous, follow_up, is_open, overdue, first_reply_hours,
                   within_target)
               SELECT NULL, NULL, u.month, u.team_id, u.category_slug, u.anonymous, u.follow_up,
                      false, false, u.first_reply_hours, u.within_target
               FROM u WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.thread_id = u.thread_id)
           )
           SELECT month, team_id, category_slug FROM old""",
        *_columns(
            facts,
            "thread_id",
            "month",
            "team_id",
            "category_slug",
            "anonymous",
            "follow_up",
            "first_reply_hours",
            "within_target",
        ),
    )
    return _groups(left) | {(f.month, f.team_id, f.category_slug) for f in facts}


async def mark_dirty(conn: Connection, groups: Iterable[Group]) -> None:
    wanted = sorted(groups)
    if not wanted:
        return
    await conn.execute(
        """INSERT INTO statistics_dirty (month, team_id, category_slug)
           SELECT * FROM unnest($1::date[], $2::int[], $3::text[])
           ON CONFLICT DO NOTHING""",
        [g[0] for g in wanted],
        [g[1] for g in wanted],
        [g[2] for g in wanted],
    )


async def take_dirty(conn: Connection, limit: int) -> list[Group]:
    rows = await conn.fetch(
        """DELETE FROM statistics_dirty WHERE (month, team_id, category_slug) IN (
               SELECT month, team_id, category_slug FROM statistics_dirty
               ORDER BY month, team_id, category_slug LIMIT $1)
           RETURNING month, team_id, category_slug""",
        limit,
    )
    return sorted(_groups(rows))


async def group_facts(conn: Connection, groups: Sequence[Group]) -> list[GroupFact]:
    rows = await conn.fetch(
        """SELECT f.month, f.team_id, f.category_slug, f.anonymous, f.follow_up, f.is_open,
                  f.overdue, f.first_reply_hours, f.within_target
           FROM statistics_facts f
           JOIN unnest($1::date[], $2::int[], $3::text[]) AS g (month, team_id, category_slug)
             ON (f.month, f.team_id, f.category_slug) = (g.month, g.team_id, g.category_slug)""",
        [g[0] for g in groups],
        [g[1] for g in groups],
        [g[2] for g in groups],
    )
    return [GroupFact(**r) for r in rows]


async def replace_summaries(
    conn: Connection, groups: Sequence[Group], summaries: Sequence[Summary]
) -> None:
    """Replace the summaries of ``groups`` (a group with no facts left loses its row)."""
    await conn.execute(
        """DELETE FROM statistics_monthly m
           USING unnest($1::date[], $2::int[], $3::text[]) AS g (month, team_id, category_slug)
           WHERE (m.month, m.team_id, m.category_slug) = (g.month, g.team_id, g.category_slug)""",
        [g[0] for g in groups],
        [g[1] for g in groups],
        [g[2] for g in groups],
    )
    if summaries:
        await conn.executemany(
            """INSERT INTO statistics_monthly (month, team_id, category_slug, received,
                   anonymous, with_contact, follow_up, open, closed, overdue, replied,
                   replied_within_target, median_hours, p90_hours, reply_histogram)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)""",
            [
                (
                    s.month,
                    s.team_id,
                    s.category_slug,
                    s.received,
                    s.anonymous,
                    s.with_contact,
                    s.follow_up,
                    s.open,
                    s.closed,
                    s.overdue,
                    s.replied,
                    s.replied_within_target,
                    s.median_hours,
                    s.p90_hours,
                    list(s.reply_histogram),
                )
                for s in summaries
            ],
        )


async def summaries(
    conn: Connection, first: date, last: date, team_ids: Sequence[int] | None
) -> list[NamedSummary]:
    """The monthly summaries of [first, last] for these teams (None: every team), in order.
    One indexed read of precomputed rows: nothing is counted at request time."""
    by_team = "AND m.team_id = ANY($3::int[])" if team_ids is not None else ""
    args: list[object] = [first, last]
    if team_ids is not None:
        args.append(list(team_ids))
    rows = await conn.fetch(
        f"""SELECT m.month, m.team_id, m.category_slug, m.received, m.anonymous, m.with_contact,
                   m.follow_up, m.open, m.closed, m.overdue, m.replied,
                   m.replied_within_target, m.median_hours, m.p90_hours, m.reply_histogram,
                   coalesce(t.slug, 'team-' || m.team_id) AS team,
                   coalesce(t.name, 'Team ' || m.team_id) AS team_name,
                   coalesce(c.name, m.category_slug) AS category_name
            FROM statistics_monthly m
            LEFT JOIN teams t ON t.id = m.team_id
            LEFT JOIN categories c ON c.slug = m.category_slug
            WHERE m.month BETWEEN $1 AND $2 {by_team}
            ORDER BY m.month, team_name, category_name""",
        *args,
    )
    found = []
    for r in rows:
        values = dict(r)
        names = (values.pop("team"), values.pop("team_name"), values.pop("category_name"))
        values["reply_histogram"] = tuple(values["reply_histogram"])
        found.append(NamedSummary(Summary(**values), *names))
    return found
