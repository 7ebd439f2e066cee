"""SQL for threads as staff see them, and for messages and notes. Text columns hold ciphertext."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from asyncpg import Connection, Record

from confide.domain import Author, Escalation, ThreadStatus

# Inbox filters: fixed SQL fragments chosen by name, never built from input.
STATES: dict[str, str] = {
    "awaiting": """t.status = 'open' AND NOT (t.anonymous AND NOT t.follow_up)
                   AND t.last_reporter_message_at IS NOT NULL
                   AND t.last_reporter_message_at > coalesce(t.last_caseworker_message_at,
                                                             '-infinity')""",
    "mine": "t.assignee_id = $2 AND t.status <> 'closed'",
    "new": "t.anonymous AND NOT t.follow_up AND t.status <> 'closed'",
    "open": "t.status <> 'closed'",
    "closed": "t.status = 'closed'",
    # Marks live in thread_clocks (migrations/0007), one row per running clock.
    "nearing": "t.id IN (SELECT thread_id FROM thread_clocks WHERE escalation = 'nearing')",
    "overdue": "t.id IN (SELECT thread_id FROM thread_clocks WHERE escalation = 'overdue')",
}

# The nearing and overdue filters as conditions on thread_clocks k, for the queries that join it
# (the counts, and the inbox pages of those two filters, which start from the clocks).
CLOCK_STATES = {"nearing": "k.escalation = 'nearing'", "overdue": "k.escalation = 'overdue'"}

# Who may see a thread: a member of its team, and for a restricted thread only its assignee and
# the team's managers. $1 = the staff member's team ids, $2 = staff id, $3 = is a manager.
VISIBLE = "t.team_id = ANY($1::int[]) AND (NOT t.restricted OR t.assignee_id = $2 OR $3)"

# Joined to a team's restricted thread t, for the digests: the one person who may hear of it, an
# active member of its team in one of the roles who manages the team or is its assignee.
# $2 = staff id, $3 = the roles (text[]).
RESTRICTED_READER = """JOIN staff_teams st ON st.team_id = t.team_id AND st.staff_id = $2
    JOIN staff s ON s.id = st.staff_id AND s.active AND s.role = ANY($3::text[])
        AND (s.role = 'manager' OR t.assignee_id = s.id)"""

SUMMARY_COLUMNS = """t.id, t.reference, t.category_slug, c.name AS category_name, tm.slug AS team,
    tm.name AS team_name, t.anonymous, t.follow_up, t.received_at, t.last_reporter_message_at,
    t.last_caseworker_message_at, t.status, t.restricted, t.assignee_id, s.email AS assignee,
    s.name AS assignee_name, t.last_activity_at, t.reply_due_at,
    coalesce(k.escalation, 'none') AS escalation, t.awaiting_since, t.team_id,
    q.acknowledge_by, q.acknowledged_at, q.feedback_due_by, q.feedback_at,
    coalesce(q.statutory, 'none') AS statutory, q.due_at AS statutory_due_at"""
# What an inbox row shows, in the order of InboxRow: nothing more, since
# decoding unused columns (a UUID, two timestamps) was a tenth of a 50-row page. Its timestamps
# are whole microseconds since the Unix epoch (exact: extract() is numeric): asyncpg builds an
# aware datetime for a timestamptz at about 1 µs, 200 of them a page (see InboxRow).
INBOX_COLUMNS = """t.reference, t.category_slug AS category, c.name AS category_name,
    tm.slug AS team, t.anonymous, t.follow_up, t.status, t.restricted,
    s.email AS assignee, s.name AS assignee_name, coalesce(k.escalation, 'none') AS escalation,
    (extract(epoch FROM t.received_at) * 1000000)::int8 AS received_us,
    (extract(epoch FROM t.last_reporter_message_at) * 1000000)::int8
        AS last_reporter_message_us,
    (extract(epoch FROM t.reply_due_at) * 1000000)::int8 AS reply_due_us,
    (extract(epoch FROM t.awaiting_since) * 1000000)::int8 AS awaiting_since_us,
    coalesce(q.statutory, 'none') AS statutory,
    CASE WHEN q.due_at IS NULL THEN NULL WHEN q.acknowledged_at IS NULL THEN 'acknowledgement'
         ELSE 'feedback' END AS statutory_phase,
    (extract(epoch FROM q.due_at) * 1000000)::int8 AS statutory_due_us,
    CASE WHEN t.legal_hold_at IS NULL
         THEN (extract(epoch FROM t.erasure_due_at) * 1000000)::int8 END AS erasure_due_us"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_us(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


class InboxRow(NamedTuple):
    """One inbox row: what the page and the API list show (``INBOX_COLUMNS``). A tuple, built
    straight from the record; the page's row cache uses it as its key.

    Its moments are held as whole microseconds since the Unix epoch and read as aware UTC
    datetimes through the properties. This is for benchmark 3's inbox p99 target: decoding
    about 200 timestamptz values a page into datetimes, and hashing them for the row cache
    (each hash asks the time zone for its offset), cost a fifth of the page's web CPU, while
    the cache hits on most rows and never needs them. Measured: web CPU per page 1.59 → 1.30 ms
    (docs/benchmarks.md, issue 12).

    For the same reason ``status`` and ``escalation`` stay the text PostgreSQL sent, not
    converted to :class:`ThreadStatus` and :class:`Escalation` row by row: they hold those
    enums' values and compare equal to their members (StrEnum).
    """

    reference: str
    category: str
    category_name: str
    team: str
    anonymous: bool
    follow_up: bool
    status: str  # a ThreadStatus value
    restricted: bool
    assignee: str | None
    assignee_name: str | None
    escalation: str  # an Escalation value
    received_us: int
    last_reporter_message_us: int | None
    reply_due_us: int | None
    awaiting_since_us: int | None
    # The statutory clocks (migrations/0024): the pass's mark, which clock runs, and its due time.
    statutory: str  # an Escalation value
    statutory_phase: str | None  # "acknowledgement", "feedback", or None when none runs
    statutory_due_us: int | None
    erasure_due_us: int | None = None  # closed and not held (docs/lifecycle.md)

    @property
    def received_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.received_us)

    @property
    def last_reporter_message_at(self) -> datetime | None:
        return _from_us(self.last_reporter_message_us)

    @property
    def reply_due_by(self) -> datetime | None:
        return _from_us(self.reply_due_us)

    @property
    def awaiting_since(self) -> datetime | None:
        return _from_us(self.awaiting_since_us)

    @property
    def erasure_due_by(self) -> datetime | None:
        return _from_us(self.erasure_due_us)

    @property
    def statutory_due_by(self) -> datetime | None:
        return _from_us(self.statutory_due_us)


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """A thread's ``SUMMARY_COLUMNS``: what lists and headers show. No content."""

    id: UUID
    reference: str
    category_slug: str
    category_name: str
    team: str  # the team's slug
    team_name: str
    anonymous: bool
    follow_up: bool
    received_at: datetime
    last_reporter_message_at: datetime | None
    last_caseworker_message_at: datetime | None
    status: ThreadStatus
    restricted: bool
    assignee_id: int | None
    assignee: str | None  # the assignee's e-mail address
    assignee_name: str | None
    last_activity_at: datetime
    reply_due_at: datetime | None
    escalation: Escalation
    awaiting_since: datetime | None
    team_id: int
    # The statutory clocks (None without them: migrations/0024).
    acknowledge_by: datetime | None
    acknowledged_at: datetime | None
    feedback_due_by: datetime | None
    feedback_at: datetime | None
    statutory: Escalation
    statutory_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class ThreadDetail(ThreadSummary):
    """A thread with its sealed report fields (ciphertext; ``contact`` only for staff)."""

    description: bytes
    occurred: bytes | None
    location: bytes | None
    contact: bytes | None = None
    has_receipt: bool = False  # read for the reporter's page only (reporter_thread)
    # Staff only: the reporter says this is about an earlier report (sealed words, 0016).
    made_before: bool = False
    earlier_reference: bytes | None = None
    earlier_details: bytes | None = None
    data_key: bytes | None = None  # wrapped (migrations/0022); None before migrate-threads
    # Retention (migrations/0023): staff only.
    erasure_due_at: datetime | None = None
    legal_hold_at: datetime | None = None
    retention_extended_at: datetime | None = None


def _typed(row: Record) -> dict[str, Any]:  # Any: a row's columns, of their own types
    return {
        **row,
        "status": ThreadStatus(row["status"]),
        "escalation": Escalation(row["escalation"]),
        "statutory": Escalation(row["statutory"]),
    }


@dataclass(frozen=True, slots=True)
class LockedThread:
    id: UUID
    status: ThreadStatus
    anonymous: bool
    follow_up: bool
    awaiting_since: datetime | None
    data_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class KeyedMessage:
    """The message an idempotency key sent, with that request's HMAC."""

    id: UUID
    thread_id: UUID
    sent_at: datetime
    request_hmac: bytes | None


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: UUID
    author: Author
    body: bytes  # sealed
    sent_at: datetime
    staff_name: str | None
    has_receipt: bool = False  # a reporter's message sent since receipts exist
    feedback: bool = False  # sent with "This is our feedback" ticked (migrations/0024)
    automatic: bool = False  # the automatic acknowledgement, sent by Confide itself


@dataclass(frozen=True, slots=True)
class NoteRow:
    id: UUID
    body: bytes  # sealed
    created_at: datetime
    author: str | None  # the author's e-mail address
    author_name: str | None


@dataclass(frozen=True, slots=True)
class MailThread:
    """What a notification may say about a thread: no content."""

    reference: str
    category_name: str
    team_email: str
    team_name: str
    restricted: bool
    data_key: bytes | None = None  # wrapped; opens the acknowledgement's sealed recipient


FROM = """threads t JOIN categories c ON c.slug = t.category_slug JOIN teams tm ON tm.id = t.team_id
    LEFT JOIN staff s ON s.id = t.assignee_id LEFT JOIN thread_clocks k ON k.thread_id = t.id
    LEFT JOIN statutory_clocks q ON q.thread_id = t.id"""


async def inbox(
    conn: Connection,
    *,
    team_ids: list[int],
    staff_id: int,
    is_manager: bool,
    state: str,
    reference: str | None,
    limit: int,
    offset: int,
) -> list[InboxRow]:
    # Per team, walk its (team_id, last_activity_at) index and stop after offset+limit matches;
    # then merge. A team of 2,000 threads or a manager of 50 teams reads only what it shows.
    # The reference search is a statement of its own, not "$n IS NULL OR reference = $n": after
    # five runs PostgreSQL plans a prepared statement once for any values, and that clause then
    # looks so selective that the plan read and sorted every thread of every team (13 ms became
    # 100-200 ms for a manager of 50 teams).
    by_reference = "AND t.reference = $6" if reference is not None else ""
    source, condition = "threads t", STATES[state]
    if state in CLOCK_STATES:
        # Nearing and overdue threads are few: start from the team's running clocks rather than
        # walk all of the team's threads in activity order (25 ms a team at 1,000,000 threads).
        source = "thread_clocks k JOIN threads t ON t.id = k.thread_id"
        condition = f"k.team_id = team.id AND {CLOCK_STATES[state]}"
    # One team (a case worker's inbox) has a statement of its own, for the inbox p99 target: over
    # unnest(), whose row estimate is a guess for any array, PostgreSQL prefers a custom plan and
    # re-plans on every execution (half of the page's 1 ms of PostgreSQL CPU); over the array's
    # one element the generic plan is as good, so it plans once per connection.
    teams = "unnest($1::int[]) AS team(id)"
    if len(team_ids) == 1:
        teams = "(SELECT ($1::int[])[1] AS id) AS team"
    make = InboxRow._make  # straight from the record's values, in INBOX_COLUMNS order
    rows = await conn.fetch(
        f"""SELECT {INBOX_COLUMNS}
            FROM (
                SELECT t.* FROM {teams}
                CROSS JOIN LATERAL (
                    SELECT t.* FROM {source}
                    WHERE t.team_id = team.id
                      AND (NOT t.restricted OR t.assignee_id = $2 OR $3)
                      AND ({condition}) {by_reference}
                    ORDER BY t.last_activity_at DESC LIMIT $4::int + $5::int
                ) AS t
                ORDER BY t.last_activity_at DESC, t.id LIMIT $4::int OFFSET $5::int
            ) AS t
            -- Joined after the page is cut: 51 rows, not 51 for each of a manager's teams.
            JOIN categories c ON c.slug = t.category_slug JOIN teams tm ON tm.id = t.team_id
            LEFT JOIN staff s ON s.id = t.assignee_id
            LEFT JOIN thread_clocks k ON k.thread_id = t.id
            LEFT JOIN statutory_clocks q ON q.thread_id = t.id
            ORDER BY t.last_activity_at DESC, t.id""",
        team_ids,
        staff_id,
        is_manager,
        limit,
        offset,
        *([reference] if reference is not None else []),
    )
    return [make(r) for r in rows]


async def inbox_counts(
    conn: Connection, *, team_ids: list[int], staff_id: int, is_manager: bool
) -> dict[str, int]:
    columns = ", ".join(
        f"count(*) FILTER (WHERE {CLOCK_STATES.get(name, sql)}) AS {name}"
        for name, sql in STATES.items()
    )
    row = await conn.fetchrow(
        f"""SELECT {columns} FROM threads t LEFT JOIN thread_clocks k ON k.thread_id = t.id
            WHERE {VISIBLE}""",
        team_ids,
        staff_id,
        is_manager,
    )
    return {name: int(row[name]) for name in STATES}


async def visible_thread(
    conn: Connection,
    reference: str,
    *,
    team_ids: list[int],
    staff_id: int,
    is_manager: bool,
    lock: bool = False,
) -> ThreadDetail | None:
    """``lock`` takes the thread's row lock (FOR UPDATE) until the transaction ends."""
    for_update = "FOR UPDATE OF t" if lock else ""
    row = await conn.fetchrow(
        f"""SELECT {SUMMARY_COLUMNS}, t.description, t.occurred, t.location, t.contact,
                   t.made_before, t.earlier_reference, t.earlier_details, t.data_key,
                   t.erasure_due_at, t.legal_hold_at, t.retention_extended_at
            FROM {FROM} WHERE {VISIBLE} AND t.reference = $4 {for_update}""",
        team_ids,
        staff_id,
        is_manager,
        reference,
    )
    return None if row is None else ThreadDetail(**_typed(row))


async def reporter_thread(conn: Connection, thread_id: UUID) -> ThreadDetail | None:
    row = await conn.fetchrow(
        f"""SELECT {SUMMARY_COLUMNS}, t.description, t.occurred, t.location,
                   t.commitment IS NOT NULL AS has_receipt, t.data_key
            FROM {FROM} WHERE t.id = $1""",
        thread_id,
    )
    return None if row is None else ThreadDetail(**_typed(row))


async def see_replies(conn: Connection, thread_id: UUID, shown: datetime) -> bool:
    """Mark the case-worker messages up to ``shown`` (the last one the reporter's page showed)
    as seen; True if one of them had not been seen. The mark is that reply's own time, never
    the time of the visit."""
    unseen: bool | None = await conn.fetchval(
        """UPDATE threads SET reporter_seen_reply_at = $2
           WHERE id = $1 AND (reporter_seen_reply_at IS NULL OR reporter_seen_reply_at < $2)
           RETURNING true""",
        thread_id,
        shown,
    )
    return bool(unseen)


async def earliest_unanswered(conn: Connection, thread_id: UUID) -> datetime | None:
    """The earliest reporter report or message after the last case worker message."""
    value: datetime | None = await conn.fetchval(
        """SELECT CASE
                   WHEN t.last_caseworker_message_at IS NULL
                        AND NOT (t.anonymous AND t.follow_up) THEN now()
                   WHEN t.last_caseworker_message_at IS NULL THEN t.received_at
                   ELSE (SELECT min(m.sent_at) FROM messages m
                         WHERE m.thread_id = t.id AND m.author = 'reporter'
                           AND m.sent_at > t.last_caseworker_message_at)
               END
           FROM threads t WHERE t.id = $1""",
        thread_id,
    )
    return value


async def lock_thread(conn: Connection, thread_id: UUID) -> LockedThread | None:
    row = await conn.fetchrow(
        """SELECT id, status, anonymous, follow_up, awaiting_since, data_key FROM threads
           WHERE id = $1 FOR UPDATE""",
        thread_id,
    )
    return None if row is None else LockedThread(**{**row, "status": ThreadStatus(row["status"])})


async def insert_message(
    conn: Connection,
    *,
    message_id: UUID,
    thread_id: UUID,
    author: Author,
    staff_id: int | None,
    body: bytes,
    key_hmac: bytes | None,
    request_hmac: bytes | None,
    receipt_salt: bytes | None = None,
    commitment: bytes | None = None,
    feedback: bool = False,
    automatic: bool = False,
) -> datetime | None:
    """The new message's time; None if this idempotency key already sent one. A reporter's
    message comes with its receipt's sealed salt and commitment (``confide.receipts``)."""
    sent_at: datetime | None = await conn.fetchval(
        """INSERT INTO messages (id, thread_id, author, staff_id, body, key_hmac, request_hmac,
                                 receipt_salt, commitment, feedback, automatic)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (key_hmac) DO NOTHING RETURNING sent_at""",
        message_id,
        thread_id,
        author,
        staff_id,
        body,
        key_hmac,
        request_hmac,
        receipt_salt,
        commitment,
        feedback,
        automatic,
    )
    return sent_at


async def message_by_key(conn: Connection, key_hmac: bytes) -> KeyedMessage | None:
    row = await conn.fetchrow(
        "SELECT id, thread_id, sent_at, request_hmac FROM messages WHERE key_hmac = $1", key_hmac
    )
    return None if row is None else KeyedMessage(**row)


async def purge_message_keys(conn: Connection, older_than_s: float, limit: int) -> int:
    """Forget message idempotency keys older than their keeping time (24 h), a batch at a time:
    the message stays, only its key and request HMACs go."""
    done: str = await conn.execute(
        """UPDATE messages SET key_hmac = NULL, request_hmac = NULL WHERE id IN (
               SELECT id FROM messages
               WHERE key_hmac IS NOT NULL AND sent_at < now() - make_interval(secs => $1)
               LIMIT $2)""",
        older_than_s,
        limit,
    )
    return int(done.split()[-1])


async def mark_reporter_message(conn: Connection, thread_id: UUID, at: datetime) -> None:
    await conn.execute(
        """UPDATE threads SET last_reporter_message_at = $2, last_activity_at = $2
           WHERE id = $1""",
        thread_id,
        at,
    )


async def mark_caseworker_message(
    conn: Connection, thread_id: UUID, at: datetime, *, feedback: bool = False
) -> None:
    """A case worker wrote: the thread's times, and in the same statement its statutory clocks
    when it has them (migrations/0024): any message acknowledges, and one sent with "This is
    our feedback" ticked is the feedback."""
    await conn.execute(
        """WITH statutory AS (
               UPDATE statutory_clocks SET acknowledged_at = coalesce(acknowledged_at, $2),
                   feedback_at = CASE WHEN $3 THEN coalesce(feedback_at, $2) ELSE feedback_at END
               WHERE thread_id = $1 AND (acknowledged_at IS NULL OR ($3 AND feedback_at IS NULL))
           )
           UPDATE threads SET last_caseworker_message_at = $2, last_activity_at = $2
           WHERE id = $1""",
        thread_id,
        at,
        feedback,
    )


async def messages(conn: Connection, thread_id: UUID) -> list[MessageRow]:
    rows = await conn.fetch(
        """SELECT m.id, m.author, m.body, m.sent_at, s.name AS staff_name,
                  m.commitment IS NOT NULL AS has_receipt, m.feedback, m.automatic
           FROM messages m LEFT JOIN staff s ON s.id = m.staff_id
           WHERE m.thread_id = $1 ORDER BY m.sent_at, m.id""",
        thread_id,
    )
    return [
        MessageRow(
            r["id"],
            Author(r["author"]),
            r["body"],
            r["sent_at"],
            r["staff_name"],
            r["has_receipt"],
            r["feedback"],
            r["automatic"],
        )
        for r in rows
    ]


async def insert_note(
    conn: Connection, *, note_id: UUID, thread_id: UUID, staff_id: int, body: bytes
) -> datetime:
    created: datetime = await conn.fetchval(
        """INSERT INTO notes (id, thread_id, staff_id, body) VALUES ($1, $2, $3, $4)
           RETURNING created_at""",
        note_id,
        thread_id,
        staff_id,
        body,
    )
    return created


async def notes(conn: Connection, thread_id: UUID) -> list[NoteRow]:
    rows = await conn.fetch(
        """SELECT n.id, n.body, n.created_at, s.email AS author, s.name AS author_name
           FROM notes n LEFT JOIN staff s ON s.id = n.staff_id
           WHERE n.thread_id = $1 ORDER BY n.created_at, n.id""",
        thread_id,
    )
    return [NoteRow(**r) for r in rows]


async def set_status(conn: Connection, thread_id: UUID, status: ThreadStatus) -> None:
    await conn.execute(
        "UPDATE threads SET status = $2, last_activity_at = now() WHERE id = $1", thread_id, status
    )


async def set_team(conn: Connection, thread_id: UUID, team_id: int) -> bool:
    """Move a thread to a team; false if the team no longer exists (threads.team_id has no
    foreign key, see migrations/0006_reference_guards.sql)."""
    moved = await conn.fetchval(
        """WITH moved AS (
               UPDATE threads SET team_id = $2, assignee_id = NULL, last_activity_at = now()
               WHERE id = $1 AND EXISTS (SELECT 1 FROM teams WHERE id = $2)
               RETURNING id
           ), clock AS (
               UPDATE thread_clocks k SET team_id = $2 FROM moved WHERE k.thread_id = moved.id
           ), statutory AS (
               UPDATE statutory_clocks q SET team_id = $2 FROM moved WHERE q.thread_id = moved.id
           )
           SELECT count(*) FROM moved""",
        thread_id,
        team_id,
    )
    return bool(moved)


async def set_assignee(conn: Connection, thread_id: UUID, staff_id: int | None) -> None:
    await conn.execute("UPDATE threads SET assignee_id = $2 WHERE id = $1", thread_id, staff_id)


async def set_restricted(conn: Connection, thread_id: UUID, restricted: bool) -> None:
    await conn.execute("UPDATE threads SET restricted = $2 WHERE id = $1", thread_id, restricted)


async def escalated(
    conn: Connection, *, team_ids: list[int], staff_id: int, is_manager: bool
) -> list[ThreadSummary]:
    """Nearing and overdue threads the staff member may see, oldest first (as in the digest)."""
    rows = await conn.fetch(
        f"""SELECT {SUMMARY_COLUMNS} FROM {FROM}
            WHERE {VISIBLE} AND k.escalation <> 'none'
            ORDER BY t.awaiting_since, t.reference LIMIT 500""",
        team_ids,
        staff_id,
        is_manager,
    )
    return [ThreadSummary(**_typed(r)) for r in rows]


async def for_mail(conn: Connection, thread_id: UUID) -> MailThread | None:
    """What a notification may say about a thread: reference, category, team. No content.
    ``restricted`` decides who may be told (services.notifications)."""
    row = await conn.fetchrow(
        """SELECT t.reference, c.name AS category_name, tm.email AS team_email,
                  tm.name AS team_name, t.restricted, t.data_key
           FROM threads t JOIN categories c ON c.slug = t.category_slug
           JOIN teams tm ON tm.id = t.team_id WHERE t.id = $1""",
        thread_id,
    )
    return None if row is None else MailThread(**row)


async def staff_may_see(conn: Connection, thread_id: UUID, staff_id: int, roles: list[str]) -> bool:
    """The visibility rule for one staff member and one thread, read from the database (for
    mail, where no session holds the staff member): an active member of the thread's team in
    one of ``roles``, and for a restricted thread its assignee or a manager."""
    found = await conn.fetchval(
        """SELECT true FROM threads t
           JOIN staff_teams st ON st.team_id = t.team_id AND st.staff_id = $2
           JOIN staff s ON s.id = st.staff_id AND s.active AND s.role = ANY($3::text[])
           WHERE t.id = $1 AND (NOT t.restricted OR t.assignee_id = s.id OR s.role = 'manager')""",
        thread_id,
        staff_id,
        roles,
    )
    return bool(found)


async def restricted_recipients(conn: Connection, thread_id: UUID, roles: list[str]) -> list[str]:
    """Who may be told about a restricted thread: its assignee and the team's managers, each an
    active member of the thread's team in one of ``roles`` (so never ops)."""
    rows = await conn.fetch(
        """SELECT DISTINCT s.email FROM threads t
           JOIN staff_teams st ON st.team_id = t.team_id
           JOIN staff s ON s.id = st.staff_id AND s.active AND s.role = ANY($2::text[])
           WHERE t.id = $1 AND (s.id = t.assignee_id OR s.role = 'manager')
           ORDER BY s.email""",
        thread_id,
        roles,
    )
    return [r["email"] for r in rows]
