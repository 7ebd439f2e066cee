"""SQL for reports (threads) and their idempotency keys. Text columns hold ciphertext only."""

from __future__ import annotations

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
    queued: int
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


# The statutory clocks (migrations/0024), only when the organisation runs them: a part of the
# same statement, so no round trip; the table's trigger sets the deadlines. Without them the
# statement is the one it always was, text and parameters alike (the submission benchmark).
STATUTORY = """, statutory AS (
               INSERT INTO statutory_clocks (thread_id, team_id, acknowledge_by, feedback_due_by)
               SELECT ins.id, ins.team_id, $28, $28 FROM ins
           )"""


async def submit(
    conn: Connection,
    *,
    key_hmac: bytes | None,
    request_hmac: bytes | None,
    pending_s: float | None,
    thread_id: UUID,
    reference: str,
    category_slug: str,
    anonymous: bool,
    follow_up: bool,
    description: bytes,
    occurred: bytes | None,
    location: bytes | None,
    contact: bytes | None,
    received_at: datetime,
    awaiting_since: datetime | None,
    reply_due_at: datetime | None,
    nearing_at: datetime | None,
    outbox: list[tuple[UUID, str, bytes | None]],
    receipt_salt: bytes | None = None,
    commitment: bytes | None = None,
    made_before: bool = False,
    earlier_reference: bytes | None = None,
    earlier_details: bytes | None = None,
    data_key: tuple[bytes, str, str | None] | None = None,
    acknowledge_by: datetime | None = None,
) -> Submitted:
    """One atomic statement: claim the idempotency key (with its request's HMAC and, when a code
    is to follow, how long repeats are told to wait for it), insert the report with its deadline, and
    queue its outbox rows; with the receipt's sealed salt and commitment (``confide.receipts``),
    and what the reporter said of an earlier report (sealed; migrations/0016), and the thread's
    wrapped data key (wrapped, wrapping key id, quarter: migrations/0022), in the same INSERT;
    with ``acknowledge_by``, the statutory clocks too (migrations/0024).
    ``claimed`` is false for a repeat of an earlier key (nothing is
    inserted); ``category_ok`` is false for an unknown category (nothing is inserted). A taken
    reference raises :class:`asyncpg.UniqueViolationError` (``threads_reference_key``): the
    whole statement is undone, its claim included (migrations/0027).
    """
    ids = [o[0] for o in outbox]
    kinds = [o[1] for o in outbox]
    recipients = [o[2] for o in outbox]
    statutory = STATUTORY if acknowledge_by is not None else ""
    row = await conn.fetchrow(
        f"""WITH claim AS (
               INSERT INTO submission_keys (key_hmac, thread_id, request_hmac, pending_until)
               SELECT $1::bytea, $2, $18::bytea,
                      now() + make_interval(secs => $19::float8)
               WHERE $1::bytea IS NOT NULL
                 AND EXISTS (SELECT 1 FROM categories WHERE slug = $4 AND active)
               ON CONFLICT (key_hmac) DO NOTHING
               RETURNING thread_id
           ), cat AS (
               SELECT slug, team_id FROM categories WHERE slug = $4 AND active
           ), ins AS (
               INSERT INTO threads (id, reference, category_slug, team_id, anonymous, follow_up,
                                    description, occurred, location, contact, received_at,
                                    last_reporter_message_at, last_activity_at, awaiting_since,
                                    reply_due_at, receipt_salt, commitment, made_before,
                                    earlier_reference, earlier_details, data_key, data_key_id,
                                    data_key_quarter)
               SELECT $2, $3, cat.slug, cat.team_id, $5, $6, $7, $8, $9, $10, $11, $11, $11,
                      $12, $13, $20, $21, $22, $23, $24, $25, $26, $27
               FROM cat WHERE $1::bytea IS NULL OR EXISTS (SELECT 1 FROM claim)
               RETURNING id, reference, received_at, team_id
           ), queued AS (
               INSERT INTO outbox (id, kind, thread_id, team_id, recipient)
               SELECT o.id, o.kind, ins.id, ins.team_id, o.recipient
               FROM ins, unnest($15::uuid[], $16::text[], $17::bytea[]) AS o(id, kind, recipient)
               RETURNING 1
           ), clock AS (
               INSERT INTO thread_clocks (thread_id, team_id, reply_due_at, nearing_at)
               SELECT ins.id, ins.team_id, $13, $14 FROM ins WHERE $13::timestamptz IS NOT NULL
           ){statutory}
           SELECT ($1::bytea IS NULL OR EXISTS (SELECT 1 FROM claim)) AS claimed,
                  EXISTS (SELECT 1 FROM cat) AS category_ok,
                  (SELECT count(*) FROM queued) AS queued,
                  ins.id, ins.reference, ins.received_at, ins.team_id
           FROM (SELECT 1) AS one LEFT JOIN ins ON true""",
        key_hmac,
        thread_id,
        reference,
        category_slug,
        anonymous,
        follow_up,
        description,
        occurred,
        location,
        contact,
        received_at,
        awaiting_since,
        reply_due_at,
        nearing_at,
        ids,
        kinds,
        recipients,
        request_hmac,
        pending_s,
        receipt_salt,
        commitment,
        made_before,
        earlier_reference,
        earlier_details,
        *(data_key if data_key is not None else (None, None, None)),
        *((acknowledge_by,) if acknowledge_by is not None else ()),
    )
    inserted = None
    if row["id"] is not None:
        inserted = Inserted(row["id"], row["reference"], row["received_at"], row["team_id"])
    return Submitted(row["claimed"], row["category_ok"], row["queued"], inserted)
