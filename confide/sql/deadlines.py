"""SQL for reply deadlines and the escalation pass. Set-based: no loops over threads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection, Record

from confide.domain import Escalation
from confide.sql.threads import RESTRICTED_READER


@dataclass(frozen=True, slots=True)
class Clock:
    """A thread's reply clock; every field None while no reply is awaited."""

    awaiting_since: datetime | None
    reply_due_at: datetime | None
    nearing_at: datetime | None


@dataclass(frozen=True, slots=True)
class TeamCounts:
    """A team's awaiting, nearing and overdue threads, as the escalation pass counted them."""

    id: int
    slug: str
    awaiting: int
    nearing: int
    overdue: int


@dataclass(frozen=True, slots=True)
class TeamDeadlines:
    """A team's counts as the ops dashboard and /metrics read them from the summary table."""

    slug: str
    name: str
    awaiting: int
    nearing: int
    overdue: int


@dataclass(frozen=True, slots=True)
class OverdueThread:
    reference: str
    category_name: str
    reply_due_at: datetime


@dataclass(frozen=True, slots=True)
class DigestThread:
    """What a digest may say of a thread: no content."""

    reference: str
    category_name: str
    awaiting_since: datetime
    reply_due_at: datetime
    escalation: Escalation


def _digest_thread(r: Record) -> DigestThread:
    return DigestThread(
        r["reference"],
        r["category_name"],
        r["awaiting_since"],
        r["reply_due_at"],
        Escalation(r["escalation"]),
    )


async def set_clock(
    conn: Connection, thread_id: UUID, since: datetime, due: datetime, nearing: datetime
) -> None:
    """Start (or restart) the thread's clock: its due time on the thread, its marks reset."""
    await conn.execute(
        """WITH t AS (
               UPDATE threads SET awaiting_since = $2, reply_due_at = $3 WHERE id = $1
               RETURNING id, team_id
           )
           INSERT INTO thread_clocks (thread_id, team_id, reply_due_at, nearing_at)
           SELECT id, team_id, $3, $4 FROM t
           ON CONFLICT (thread_id) DO UPDATE SET team_id = EXCLUDED.team_id,
               reply_due_at = EXCLUDED.reply_due_at, nearing_at = EXCLUDED.nearing_at,
               escalation = 'none', escalated_at = NULL""",
        thread_id,
        since,
        due,
        nearing,
    )


async def clear_clock(conn: Connection, thread_id: UUID) -> None:
    await conn.execute(
        """WITH t AS (
               UPDATE threads SET awaiting_since = NULL, reply_due_at = NULL WHERE id = $1
           )
           DELETE FROM thread_clocks WHERE thread_id = $1""",
        thread_id,
    )


async def clock(conn: Connection, thread_id: UUID) -> Clock | None:
    row = await conn.fetchrow(
        """SELECT t.awaiting_since, t.reply_due_at, k.nearing_at
           FROM threads t LEFT JOIN thread_clocks k ON k.thread_id = t.id WHERE t.id = $1""",
        thread_id,
    )
    return None if row is None else Clock(**row)


async def escalate(conn: Connection, as_of: datetime) -> tuple[int, int]:
    """Mark nearing and overdue threads as of ``as_of``, and alert each manager of a team once
    about the team's threads that became overdue in this pass, in one statement.

    A manager gets one outbox row per pass (unique key per team, manager and pass) that covers
    every thread of the team that went overdue in it; the mail lists them from the threads'
    ``escalated_at``. So each thread is alerted once per manager, and a pass that finds 500
    overdue threads sends a manager one mail, not 500. Returns (threads changed, thread alerts:
    overdue threads times the managers told about them).

    Reads and writes only ``thread_clocks``, the narrow table of running clocks (see
    migrations/0007_thread_clocks.sql): one row per thread whose clock runs, so no status check.

    Idempotent: the UPDATE changes a thread's state once (a concurrent pass waits on the row lock
    and then finds nothing to change), and the unique key keeps a row single. Only counts come
    back, so memory stays flat.
    """
    row = await conn.fetchrow(
        """WITH changed AS (
               UPDATE thread_clocks k
               SET escalation = CASE WHEN k.reply_due_at <= $1 THEN 'overdue' ELSE 'nearing' END,
                   escalated_at = $1
               WHERE k.nearing_at <= $1 AND k.escalation <> 'overdue'
                 AND k.escalation <> CASE WHEN k.reply_due_at <= $1 THEN 'overdue'
                                          ELSE 'nearing' END
               RETURNING k.team_id, k.escalation
           ), overdue AS (
               SELECT team_id, count(*) AS threads FROM changed
               WHERE escalation = 'overdue' GROUP BY team_id
           ), alerts AS (
               INSERT INTO outbox (id, kind, dedupe_key, team_id, staff_id, payload)
               SELECT gen_random_uuid(), 'overdue_alert',
                      'overdue:' || o.team_id || ':' || s.id || ':'
                          || extract(epoch FROM $1::timestamptz)::bigint,
                      o.team_id, s.id,
                      jsonb_build_object('as_of', $1::timestamptz, 'threads', o.threads)
               FROM overdue o JOIN staff_teams st ON st.team_id = o.team_id
               JOIN staff s ON s.id = st.staff_id AND s.role = 'manager' AND s.active
               ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
               RETURNING (payload ->> 'threads')::bigint AS threads
           )
           SELECT (SELECT count(*) FROM changed) AS changed,
                  (SELECT coalesce(sum(threads), 0) FROM alerts) AS alerts""",
        as_of,
    )
    return int(row["changed"]), int(row["alerts"])


async def refresh_summary(conn: Connection, as_of: datetime) -> list[TeamCounts]:
    """Recount each team's awaiting/nearing/overdue threads once, store and return the counts.

    Two statements on purpose: a query that writes (an INSERT in a CTE) never runs in parallel,
    and the count over every awaiting thread is the part worth two workers.
    """
    rows = await conn.fetch(
        """WITH per_team AS (
               SELECT team_id, count(*) AS awaiting,
                      count(*) FILTER (WHERE escalation = 'nearing') AS nearing,
                      count(*) FILTER (WHERE escalation = 'overdue') AS overdue
               FROM thread_clocks GROUP BY team_id
           )
           SELECT tm.id, tm.slug, coalesce(p.awaiting, 0) AS awaiting,
                  coalesce(p.nearing, 0) AS nearing, coalesce(p.overdue, 0) AS overdue
           FROM teams tm LEFT JOIN per_team p ON p.team_id = tm.id
           ORDER BY tm.slug"""
    )
    await conn.execute(
        """INSERT INTO team_deadline_summary (team_id, awaiting, nearing, overdue, updated_at)
           SELECT id, awaiting, nearing, overdue, $5
           FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::bigint[])
                AS c(id, awaiting, nearing, overdue)
           ON CONFLICT (team_id) DO UPDATE SET awaiting = EXCLUDED.awaiting,
               nearing = EXCLUDED.nearing, overdue = EXCLUDED.overdue,
               updated_at = EXCLUDED.updated_at""",
        [r["id"] for r in rows],
        [r["awaiting"] for r in rows],
        [r["nearing"] for r in rows],
        [r["overdue"] for r in rows],
        as_of,
    )
    return [TeamCounts(**r) for r in rows]


async def summary(conn: Connection) -> list[TeamDeadlines]:
    rows = await conn.fetch(
        """SELECT tm.slug, tm.name, coalesce(s.awaiting, 0) AS awaiting,
                  coalesce(s.nearing, 0) AS nearing, coalesce(s.overdue, 0) AS overdue
           FROM teams tm LEFT JOIN team_deadline_summary s ON s.team_id = tm.id
           ORDER BY tm.slug"""
    )
    return [TeamDeadlines(**r) for r in rows]


async def queue_digests(
    conn: Connection,
    day: str,
    as_of: datetime,
    roles: list[str],
    erasure_until: datetime | None = None,
) -> list[str]:
    """One digest per (team, day) for every team with nearing or overdue unrestricted threads
    (the teams' slugs), and the restricted threads' digests to the people who may see them.
    The pass's ``as_of`` goes in the payload: the digest measures "waited" to it, not to when
    it is sent.

    Reads the summary that :func:`refresh_summary` wrote earlier in the same transaction, so the
    threads are not scanned a second time.
    """
    rows = await conn.fetch(
        """INSERT INTO outbox (id, kind, dedupe_key, team_id, payload)
           SELECT gen_random_uuid(), 'digest', 'digest:' || tm.slug || ':' || $1, tm.id,
                  jsonb_build_object('day', $1::text, 'as_of', $2::timestamptz,
                                     'erasure_until', $3::timestamptz)
           FROM teams tm JOIN team_deadline_summary s ON s.team_id = tm.id
           WHERE tm.active AND tm.email <> ''
             -- The shared address hears of unrestricted threads only (see below): more
             -- nearing or overdue threads than restricted ones among them. Counted from the
             -- few restricted threads (index threads_restricted), not by walking the team's
             -- clocks for an unrestricted one, which took a seq scan of every clock when the
             -- escalated ones lay at the end of the table (escalation bench, embedded server).
             AND (s.nearing + s.overdue > (
                 SELECT count(*) FROM threads t JOIN thread_clocks k ON k.thread_id = t.id
                 WHERE t.restricted AND t.team_id = tm.id AND k.escalation <> 'none')
               -- or unrestricted threads to be erased within the warning period
               -- (docs/lifecycle.md), from the partial index threads_erasure_due
               OR EXISTS (SELECT 1 FROM threads t WHERE t.erasure_due_at <= $3
                          AND t.team_id = tm.id AND NOT t.restricted
                          AND t.status = 'closed' AND t.legal_hold_at IS NULL)
               -- or an unrestricted statutory clock nears or is overdue (migrations/0024)
               OR EXISTS (
                  SELECT 1 FROM statutory_clocks q JOIN threads t ON t.id = q.thread_id
                  WHERE q.team_id = tm.id AND q.statutory <> 'none' AND NOT t.restricted))
           ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
           RETURNING (SELECT slug FROM teams WHERE id = team_id) AS slug""",
        day,
        as_of,
        erasure_until,
    )
    await queue_restricted_digests(conn, day, as_of, roles, erasure_until)
    return [r["slug"] for r in rows]


async def queue_restricted_digests(
    conn: Connection,
    day: str,
    as_of: datetime,
    roles: list[str],
    erasure_until: datetime | None = None,
) -> None:
    """One digest per (team, day, person) for a team's nearing and overdue restricted threads,
    and its closed restricted threads to be erased by ``erasure_until`` (not held), to each
    person who may see one of them: the team's managers and the thread's assignee, active
    members of the team in one of ``roles`` (so never ops, never the shared address).
    Starts from the few restricted threads (index threads_restricted, migrations/0009)."""
    await conn.execute(
        """INSERT INTO outbox (id, kind, dedupe_key, team_id, staff_id, payload)
           SELECT gen_random_uuid(), 'digest',
                  'digest:' || tm.slug || ':' || $1 || ':' || r.staff_id, tm.id, r.staff_id,
                  jsonb_build_object('day', $1::text, 'as_of', $3::timestamptz,
                                     'erasure_until', $4::timestamptz)
           FROM (
               SELECT DISTINCT t.team_id, s.id AS staff_id
               FROM threads t LEFT JOIN thread_clocks k ON k.thread_id = t.id
               LEFT JOIN statutory_clocks q ON q.thread_id = t.id
               JOIN staff_teams st ON st.team_id = t.team_id
               JOIN staff s ON s.id = st.staff_id AND s.active AND s.role = ANY($2::text[])
               WHERE t.restricted
                 AND (k.escalation <> 'none' OR q.statutory <> 'none'
                      OR (t.erasure_due_at <= $4 AND t.status = 'closed'
                          AND t.legal_hold_at IS NULL))
                 AND (s.role = 'manager' OR s.id = t.assignee_id)
           ) AS r JOIN teams tm ON tm.id = r.team_id
           WHERE tm.active
           ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING""",
        day,
        roles,
        as_of,
        erasure_until,
    )


async def newly_overdue(conn: Connection, team_id: int, as_of: datetime) -> list[OverdueThread]:
    """The team's threads that became overdue in the pass at ``as_of`` and still are."""
    rows = await conn.fetch(
        """SELECT t.reference, c.name AS category_name, k.reply_due_at
           FROM thread_clocks k JOIN threads t ON t.id = k.thread_id
           JOIN categories c ON c.slug = t.category_slug
           WHERE k.team_id = $1 AND k.escalation = 'overdue' AND k.escalated_at = $2
           ORDER BY k.reply_due_at, t.reference""",
        team_id,
        as_of,
    )
    return [OverdueThread(**r) for r in rows]


async def digest_threads(conn: Connection, team_id: int) -> list[DigestThread]:
    """The team's nearing and overdue threads that are not restricted, oldest first: what its
    shared address may be told. One query, whatever the count."""
    rows = await conn.fetch(
        """SELECT t.reference, c.name AS category_name, t.awaiting_since, k.reply_due_at,
                  k.escalation
           FROM thread_clocks k JOIN threads t ON t.id = k.thread_id
           JOIN categories c ON c.slug = t.category_slug
           WHERE k.team_id = $1 AND k.escalation <> 'none' AND NOT t.restricted
           ORDER BY t.awaiting_since, t.reference""",
        team_id,
    )
    return [_digest_thread(r) for r in rows]


@dataclass(frozen=True, slots=True)
class ErasingThread:
    """What a digest may say of a thread about to be erased: no content."""

    reference: str
    category_name: str
    erasure_due_at: datetime


async def erasing_threads(conn: Connection, team_id: int, until: datetime) -> list[ErasingThread]:
    """The team's unrestricted, unheld closed threads to be erased by ``until``, soonest first."""
    rows = await conn.fetch(
        """SELECT t.reference, c.name AS category_name, t.erasure_due_at
           FROM threads t JOIN categories c ON c.slug = t.category_slug
           WHERE t.erasure_due_at <= $2 AND t.team_id = $1 AND NOT t.restricted
             AND t.status = 'closed' AND t.legal_hold_at IS NULL
           ORDER BY t.erasure_due_at, t.reference LIMIT 500""",
        team_id,
        until,
    )
    return [ErasingThread(**r) for r in rows]


async def restricted_erasing_threads(
    conn: Connection, team_id: int, staff_id: int, roles: list[str], until: datetime
) -> list[ErasingThread]:
    """The team's restricted, unheld closed threads to be erased by ``until`` that one person
    may see now (a manager of the team, or the assignee), soonest first."""
    rows = await conn.fetch(
        f"""SELECT t.reference, c.name AS category_name, t.erasure_due_at
           FROM threads t JOIN categories c ON c.slug = t.category_slug
           {RESTRICTED_READER}
           WHERE t.team_id = $1 AND t.restricted AND t.erasure_due_at <= $4
             AND t.status = 'closed' AND t.legal_hold_at IS NULL
           ORDER BY t.erasure_due_at, t.reference LIMIT 500""",
        team_id,
        staff_id,
        roles,
        until,
    )
    return [ErasingThread(**r) for r in rows]


async def restricted_digest_threads(
    conn: Connection, team_id: int, staff_id: int, roles: list[str]
) -> list[DigestThread]:
    """The team's nearing and overdue restricted threads that one person may see now (a manager
    of the team, or the assignee; an active member of the team in one of ``roles``)."""
    rows = await conn.fetch(
        f"""SELECT t.reference, c.name AS category_name, t.awaiting_since, k.reply_due_at,
                  k.escalation
           FROM threads t JOIN thread_clocks k ON k.thread_id = t.id
           JOIN categories c ON c.slug = t.category_slug
           {RESTRICTED_READER}
           WHERE t.team_id = $1 AND t.restricted AND k.escalation <> 'none'
           ORDER BY t.awaiting_since, t.reference""",
        team_id,
        staff_id,
        roles,
    )
    return [_digest_thread(r) for r in rows]


async def record_success(conn: Connection, name: str, at: datetime) -> None:
    await conn.execute(
        """INSERT INTO job_runs (name, last_success) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET last_success = EXCLUDED.last_success""",
        name,
        at,
    )
