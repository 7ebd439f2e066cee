"""SQL for reports (threads) and their idempotency keys. Text columns hold ciphertext only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection

# A drawn reference or id that is taken: the submission statement fails whole, and is retried.
TAKEN = frozenset({"threads_reference_key", "threads_pkey"})


@dataclass(frozen=True, slots=True)
class KeyedSubmission:
    """The report an idempotency key submitted, and that key's request HMAC."""

    id: UUID
    reference: str
    anonymous: bool
    follow_up: bool
    received_at: datetime
    request_hmac: bytes | None
    pending: bool  # the first submission is still issuing its code


@dataclass(frozen=True, slots=True)
class Inserted:
    id: UUID
    reference: str
    received_at: datetime
    team_id: int


@dataclass(frozen=True, slots=True)
class Submitted:
    """What :func:`submit` did: ``inserted`` is None when no report was inserted."""

    claimed: bool
    category_ok: bool
    inserted: Inserted | None


async def thread_for_submission_key(conn: Connection, key_hmac: bytes) -> KeyedSubmission | None:
    """The report a key submitted, its request's HMAC, and whether its first answer is still
    being made (``pending``: the first submission is issuing its code)."""
    row = await conn.fetchrow(
        """SELECT t.id, t.reference, t.anonymous, t.follow_up, t.received_at, k.request_hmac,
                  coalesce(k.pending_until > now(), false) AS pending
           FROM submission_keys k JOIN threads t ON t.id = k.thread_id
           WHERE k.key_hmac = $1""",
        key_hmac,
    )
    return None if row is None else KeyedSubmission(**row)


async def finish_submission_key(conn: Connection, key_hmac: bytes) -> None:
    """The first answer is complete: repeats are answered from now on, not told to wait."""
    await conn.execute(
        "UPDATE submission_keys SET pending_until = NULL WHERE key_hmac = $1", key_hmac
    )


async def purge_submission_keys(conn: Connection, older_than_s: float, limit: int) -> int:
    """Forget keys older than their keeping time (CONTRACTS §3: 24 h), a batch at a time."""
    done: str = await conn.execute(
        """DELETE FROM submission_keys WHERE key_hmac IN (
               SELECT key_hmac FROM submission_keys
               WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)""",
        older_than_s,
        limit,
    )
    return int(done.split()[-1])


@dataclass(frozen=True, slots=True)
class NewThread:
    """One report to insert, sealed already (text columns hold ciphertext), with its idempotency
    key's HMACs (None: no key), the outbox rows it queues, and its deadlines."""

    key_hmac: bytes | None
    request_hmac: bytes | None
    # A code follows: repeats wait (HTML) or get 409 (API) until it is issued, for this long.
    pending_s: float | None
    thread_id: UUID
    reference: str
    category_slug: str
    anonymous: bool
    follow_up: bool
    description: bytes
    occurred: bytes | None
    location: bytes | None
    contact: bytes | None
    received_at: datetime
    awaiting_since: datetime | None
    reply_due_at: datetime | None
    nearing_at: datetime | None
    outbox: list[tuple[UUID, str, bytes | None]]
    receipt_salt: bytes | None = None
    commitment: bytes | None = None
    made_before: bool = False
    earlier_reference: bytes | None = None
    earlier_details: bytes | None = None
    data_key: tuple[bytes, str, str | None] | None = None
    acknowledge_by: datetime | None = None


# One row of `i` per report, in the order given; each part below joins it by the thread id.
_SUBMIT = """WITH i AS (
       SELECT * FROM unnest($1::bytea[], $2::uuid[], $3::text[], $4::text[], $5::bool[],
                            $6::bool[], $7::bytea[], $8::bytea[], $9::bytea[], $10::bytea[],
                            $11::timestamptz[], $12::timestamptz[], $13::timestamptz[],
                            $14::timestamptz[], $15::bytea[], $16::float8[], $17::bytea[],
                            $18::bytea[], $19::bool[], $20::bytea[], $21::bytea[], $22::bytea[],
                            $23::text[], $24::text[], $25::timestamptz[]) WITH ORDINALITY
           AS i(key_hmac, id, reference, category_slug, anonymous, follow_up, description,
                occurred, location, contact, received_at, awaiting_since, reply_due_at,
                nearing_at, request_hmac, pending_s, receipt_salt, commitment, made_before,
                earlier_reference, earlier_details, data_key, data_key_id, data_key_quarter,
                acknowledge_by, n)
   ), cat AS (
       SELECT i.id, c.slug, c.team_id
       FROM i JOIN categories c ON c.slug = i.category_slug AND c.active
   ), claim AS (
       INSERT INTO submission_keys (key_hmac, thread_id, request_hmac, pending_until)
       SELECT i.key_hmac, i.id, i.request_hmac, now() + make_interval(secs => i.pending_s)
       FROM i JOIN cat ON cat.id = i.id
       WHERE i.key_hmac IS NOT NULL
       ON CONFLICT (key_hmac) DO NOTHING
       RETURNING thread_id
   ), ins AS (
       INSERT INTO threads (id, reference, category_slug, team_id, anonymous, follow_up,
                            description, occurred, location, contact, received_at,
                            last_reporter_message_at, last_activity_at, awaiting_since,
                            reply_due_at, receipt_salt, commitment, made_before,
                            earlier_reference, earlier_details, data_key, data_key_id,
                            data_key_quarter)
       SELECT i.id, i.reference, cat.slug, cat.team_id, i.anonymous, i.follow_up,
              i.description, i.occurred, i.location, i.contact, i.received_at, i.received_at,
              i.received_at, i.awaiting_since, i.reply_due_at, i.receipt_salt, i.commitment,
              i.made_before, i.earlier_reference, i.earlier_details, i.data_key, i.data_key_id,
              i.data_key_quarter
       FROM i JOIN cat ON cat.id = i.id
       WHERE i.key_hmac IS NULL OR i.id IN (SELECT thread_id FROM claim)
       RETURNING id, reference, received_at, team_id
   ), queued AS (
       INSERT INTO outbox (id, kind, thread_id, team_id, recipient)
       SELECT o.id, o.kind, ins.id, ins.team_id, o.recipient
       FROM unnest($26::uuid[], $27::uuid[], $28::text[], $29::bytea[])
                AS o(thread_id, id, kind, recipient)
       JOIN ins ON ins.id = o.thread_id
   ), clock AS (
       INSERT INTO thread_clocks (thread_id, team_id, reply_due_at, nearing_at)
       SELECT ins.id, ins.team_id, i.reply_due_at, i.nearing_at
       FROM ins JOIN i ON i.id = ins.id
       WHERE i.reply_due_at IS NOT NULL
   ), statutory AS (
       -- The statutory clocks (migrations/0024), for reports whose organisation runs them: the
       -- table's trigger sets the deadlines.
       INSERT INTO statutory_clocks (thread_id, team_id, acknowledge_by, feedback_due_by)
       SELECT ins.id, ins.team_id, i.acknowledge_by, i.acknowledge_by
       FROM ins JOIN i ON i.id = ins.id
       WHERE i.acknowledge_by IS NOT NULL
   )
   SELECT i.key_hmac IS NULL OR claim.thread_id IS NOT NULL AS claimed,
          cat.id IS NOT NULL AS category_ok,
          ins.id, ins.reference, ins.received_at, ins.team_id
   FROM i
   LEFT JOIN cat ON cat.id = i.id
   LEFT JOIN claim ON claim.thread_id = i.id
   LEFT JOIN ins ON ins.id = i.id
   ORDER BY i.n"""


async def submit(conn: Connection, reports: Sequence[NewThread]) -> list[Submitted]:
    """Insert reports in one atomic statement, and answer each, in order (for
    :class:`confide.db.Batches`, or one report inside a caller's transaction).

    For each: claim its idempotency key (with its request's HMAC and, when a code is to follow,
    how long repeats are told to wait), insert the report with its deadline, and queue its
    outbox rows; with the receipt's sealed salt and commitment (``confide.receipts``), what the
    reporter said of an earlier report (sealed; migrations/0016), the thread's wrapped data key
    (wrapped, wrapping key id, quarter: migrations/0022), and with ``acknowledge_by`` the
    statutory clocks (migrations/0024). ``claimed`` is false for a repeat of an earlier key, and
    ``category_ok`` false for an unknown category: nothing is inserted for either. A key given
    twice in one statement is claimed by its first report only. A taken reference raises
    :class:`asyncpg.UniqueViolationError` (``threads_reference_key``): the whole statement is
    undone, its claims included (migrations/0027).
    """
    keys = [r.data_key or (None, None, None) for r in reports]
    outbox = [(r.thread_id, *o) for r in reports for o in r.outbox]
    rows = await conn.fetch(
        _SUBMIT,
        [r.key_hmac for r in reports],
        [r.thread_id for r in reports],
        [r.reference for r in reports],
        [r.category_slug for r in reports],
        [r.anonymous for r in reports],
        [r.follow_up for r in reports],
        [r.description for r in reports],
        [r.occurred for r in reports],
        [r.location for r in reports],
        [r.contact for r in reports],
        [r.received_at for r in reports],
        [r.awaiting_since for r in reports],
        [r.reply_due_at for r in reports],
        [r.nearing_at for r in reports],
        [r.request_hmac for r in reports],
        [r.pending_s for r in reports],
        [r.receipt_salt for r in reports],
        [r.commitment for r in reports],
        [r.made_before for r in reports],
        [r.earlier_reference for r in reports],
        [r.earlier_details for r in reports],
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [r.acknowledge_by for r in reports],
        [o[0] for o in outbox],
        [o[1] for o in outbox],
        [o[2] for o in outbox],
        [o[3] for o in outbox],
    )
    answers = []
    for row in rows:
        inserted = None
        if row["id"] is not None:
            inserted = Inserted(row["id"], row["reference"], row["received_at"], row["team_id"])
        answers.append(Submitted(row["claimed"], row["category_ok"], inserted))
    return answers
