"""The keyring and thread data keys (docs/lifecycle.md "Keys", docs/deploy.md).

- ``rotate``: put a new key first in CONFIDE_ENCRYPTION_KEYS (or a new key for a quarter before
  that quarter's old one), keep the old ones after it, and run ``confide keys rotate``. Thread
  keys are rewrapped under the current key of their quarter (no content is re-encrypted); the
  few values the keyring seals itself (outbox recipients, authenticator secrets, threads not yet
  migrated, with their messages, notes and files' keys) are re-encrypted under the first key.
- ``migrate_threads``: gives every thread made before thread keys its own data key, a thread
  per transaction (resumable: stop it any time, run it again).
- ``usage`` / ``retire``: which keys wrap live threads or seal values, and retiring one that
  nothing uses any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from asyncpg import Connection

from confide.context import Context
from confide.crypto import quarter_tag
from confide.errors import ConfideError
from confide.org import Lifecycle
from confide.services import retention
from confide.sql import keys as sql_keys
from confide.sql import lifecycle as sql_lifecycle
from confide.sql.lifecycle import Wrap

BATCH = 500
REWRAP_BATCH = 2000  # 32 bytes a thread: big batches, few round trips


class KeyInUse(ConfideError):
    """``keys retire`` refused: the key still wraps a live thread or seals a value."""


def context_for(table: str, column: str, row_id: object) -> str:
    """The associated data each sealed column was written with."""
    if table == "threads":
        return f"threads.{column}:{row_id}"
    return f"{table}.{column}:{row_id}"


async def rotate(ctx: Context) -> tuple[dict[str, int], int]:
    """Re-encrypt keyring-sealed values not under the first key, and rewrap every thread key
    not under its quarter's current key: (re-encrypted per column, rewrapped). Idempotent;
    resumable (compare-and-set, batch by batch)."""
    return await reencrypt(ctx), await rewrap_all(ctx)


async def reencrypt(ctx: Context) -> dict[str, int]:
    """Re-encrypt every keyring-sealed value that is not under the primary key."""
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


async def rewrap_all(ctx: Context) -> int:
    """Rewrap every thread key that is not under the current key of its quarter (or whose
    quarter moved, e.g. an open thread that stayed active): one AES-GCM of 32 bytes a thread."""
    rules = retention.rules(ctx)
    after: UUID | None = None
    done = 0
    async with ctx.pool.acquire() as conn:
        while wraps := await sql_lifecycle.with_keys(conn, after, REWRAP_BATCH):
            rows = [r for w in wraps if (r := retention.new_wrap_for(ctx.keyring, rules, w))]
            done += await sql_lifecycle.set_wraps(conn, rows)
            after = wraps[-1].id
    return done


async def migrate_threads(ctx: Context, *, limit: int | None = None) -> dict[str, int]:
    """Give threads without a data key one: their report, messages, notes and files' keys,
    kept names and release reasons re-sealed under it, in one transaction per thread (a
    concurrent message waits for the row lock and then uses the new key). Resumable and idempotent: ``{"migrated": n, "left": n}``."""
    rules = retention.rules(ctx)
    migrated = 0
    while limit is None or migrated < limit:
        async with ctx.pool.acquire() as conn:
            ids = await sql_lifecycle.next_without_key(conn, BATCH)
            if not ids:
                break
            for thread_id in ids:
                async with conn.transaction():
                    migrated += await _migrate_one(ctx, conn, rules, thread_id)
                if limit is not None and migrated >= limit:
                    break
    async with ctx.pool.acquire() as conn:
        left = await sql_lifecycle.legacy_count(conn)
    return {"migrated": migrated, "left": left}


async def _migrate_one(ctx: Context, conn: Connection, rules: Lifecycle, thread_id: UUID) -> int:
    legacy = await sql_keys.lock_legacy_thread(conn, thread_id)
    if legacy is None:
        return 0  # another run did it
    wrap = Wrap(
        thread_id,
        None,
        None,
        None,
        legacy.category_slug,
        legacy.status,
        legacy.erasure_due_at,
        legacy.last_activity_at,
        legacy.held,
    )
    quarter = retention.wanted_quarter(rules, wrap)
    key, key_id, wrapped = ctx.keyring.new_thread_key(thread_id, quarter)
    columns = {}
    for column, sealed in legacy.sealed.items():
        context = context_for("threads", column, thread_id)
        plain = ctx.keyring.open_optional(None if sealed is None else bytes(sealed), context)
        columns[column] = key.seal_optional(plain, context)
    messages, notes = await sql_keys.thread_rows(conn, thread_id)
    new_messages = []
    for mid, body, salt in messages:
        body_ctx, salt_ctx = f"messages.body:{mid}", f"messages.receipt_salt:{mid}"
        new_messages.append(
            (
                mid,
                key.seal(ctx.keyring.open(bytes(body), body_ctx), body_ctx),
                None
                if salt is None
                else key.seal(ctx.keyring.open(bytes(salt), salt_ctx), salt_ctx),
            )
        )
    new_notes = []
    for nid, body in notes:
        note_ctx = f"notes.body:{nid}"
        new_notes.append((nid, key.seal(ctx.keyring.open(bytes(body), note_ctx), note_ctx)))
    new_files = []
    for aid, sealed_columns in await sql_keys.lock_thread_attachments(conn, thread_id):
        resealed: dict[str, bytes | None] = {}
        for column, sealed in sealed_columns.items():
            context = context_for("attachments", column, aid)
            # ThreadKey.open: the keyring's (0x01) as it sealed them, or a thread key's already.
            plain = key.open_optional(None if sealed is None else bytes(sealed), context)
            resealed[column] = key.seal_optional(plain, context)
        new_files.append((aid, resealed))
    await sql_keys.adopt_data_key(
        conn, thread_id, (wrapped, key_id, quarter), columns, new_messages, new_notes, new_files
    )
    return 1


@dataclass(frozen=True)
class KeyUse:
    id: str
    quarter: str | None
    first: bool
    threads: int  # live threads whose data key it wraps
    values: int  # values it seals itself (keyring-sealed columns)
    retired: bool  # retired already: remove it from CONFIDE_ENCRYPTION_KEYS

    @property
    def retirable(self) -> bool:
        return not self.first and self.threads == 0 and self.values == 0

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "quarter": self.quarter,
            "first": self.first,
            "threads": self.threads,
            "values": self.values,
            "in_use": self.threads > 0 or self.values > 0,
            "retirable": self.retirable,
            "retired": self.retired,
        }


async def usage(ctx: Context) -> list[KeyUse]:
    """Every key of the keyring: how many live threads (held, reopened or extended included)
    it wraps, how many values it seals itself, and whether it may be retired."""
    keyring = ctx.keyring
    async with ctx.pool.acquire() as conn:
        wraps = await sql_lifecycle.key_usage(conn)
        retired = await sql_keys.retired(conn)
        sealed: dict[str, int] = {}
        for table, _, column in sql_keys.SEALED:
            for key_id, n in (await sql_keys.count_by_key(conn, table, column)).items():
                sealed[key_id] = sealed.get(key_id, 0) + n
    return [
        KeyUse(
            key_id,
            quarter_tag(key_id),
            key_id == keyring.primary_id,
            wraps.get(key_id, 0),
            sealed.get(key_id, 0),
            key_id in retired,
        )
        for key_id in keyring.ids
    ]


async def retire(ctx: Context, key_id: str) -> KeyUse:
    """Record ``key_id`` as retired, refusing while any live thread's data key is wrapped by
    it or any value is sealed by it, and refusing the first key (it encrypts new values)."""
    found = next((u for u in await usage(ctx) if u.id == key_id), None)
    if found is None:
        raise ConfideError(f"no key {key_id!r} in CONFIDE_ENCRYPTION_KEYS")
    if found.first:
        raise KeyInUse(f"key {key_id!r} is the first key: it encrypts; put another key first")
    if found.threads or found.values:
        raise KeyInUse(
            f"key {key_id!r} still wraps {found.threads} live thread(s) and seals "
            f"{found.values} value(s); run `confide keys rotate` first"
        )
    async with ctx.pool.acquire() as conn:
        await sql_keys.retire(conn, key_id)
    return KeyUse(found.id, found.quarter, False, 0, 0, True)
