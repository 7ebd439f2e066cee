"""SQL for staff second factors: authenticator secrets (sealed), recovery codes (HMACs) and the
per-account limit on wrong codes. Each check that must happen once is one conditional UPDATE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class Totp:
    secret: bytes  # sealed: AAD ``staff_totp.secret:<staff id>``
    confirmed_at: datetime | None
    last_step: int | None
    created_at: datetime
    begun_by: bytes | None  # the browser whose unconfirmed key this is (its session token HMAC)


async def totp(conn: Connection, staff_id: int) -> Totp | None:
    row = await conn.fetchrow(
        """SELECT secret, confirmed_at, last_step, created_at, begun_by
           FROM staff_totp WHERE staff_id = $1""",
        staff_id,
    )
    return None if row is None else Totp(**row)


async def drop_stale_candidate(
    conn: Connection, staff_id: int, older_than_s: int, begun_by: bytes
) -> None:
    """An enrolment left unconfirmed for too long, or begun by another browser, starts again
    with a new secret (so no browser ever sees the key that another one will confirm)."""
    await conn.execute(
        """DELETE FROM staff_totp WHERE staff_id = $1 AND confirmed_at IS NULL
             AND (created_at < now() - make_interval(secs => $2)
                  OR begun_by IS DISTINCT FROM $3::bytea)""",
        staff_id,
        older_than_s,
        begun_by,
    )


async def insert_candidate(conn: Connection, staff_id: int, sealed: bytes, begun_by: bytes) -> bool:
    """A new unconfirmed secret of this browser; False when the account already has one."""
    done = await conn.fetchval(
        """INSERT INTO staff_totp (staff_id, secret, begun_by) VALUES ($1, $2, $3)
           ON CONFLICT (staff_id) DO NOTHING RETURNING true""",
        staff_id,
        sealed,
        begun_by,
    )
    return bool(done)


async def lock_factors(conn: Connection, staff_id: int) -> None:
    """Take the account's row lock until the transaction ends: factor changes of one account
    (two tabs, or a half-signed-in stranger and its owner) then happen one after the other."""
    await conn.execute("SELECT 1 FROM staff WHERE id = $1 FOR UPDATE", staff_id)


async def confirm(conn: Connection, staff_id: int, step: int, begun_by: bytes) -> bool:
    """This browser's candidate takes effect, its first code's step used; False if it is
    confirmed already or no longer this browser's."""
    done = await conn.fetchval(
        """UPDATE staff_totp SET confirmed_at = now(), last_step = $2, begun_by = NULL
           WHERE staff_id = $1 AND confirmed_at IS NULL AND begun_by = $3 RETURNING true""",
        staff_id,
        step,
        begun_by,
    )
    return bool(done)


async def use_step(conn: Connection, staff_id: int, step: int) -> bool:
    """Accept a code of time-step ``step`` once: only if no code of this or a later step was
    accepted before. Atomic: of two processes given the same code, one UPDATE wins."""
    done = await conn.fetchval(
        """UPDATE staff_totp SET last_step = $2
           WHERE staff_id = $1 AND confirmed_at IS NOT NULL
             AND (last_step IS NULL OR last_step < $2)
           RETURNING true""",
        staff_id,
        step,
    )
    return bool(done)


async def delete_totp(conn: Connection, staff_id: int) -> bool:
    done = await conn.fetchval(
        "DELETE FROM staff_totp WHERE staff_id = $1 RETURNING confirmed_at IS NOT NULL", staff_id
    )
    return bool(done)


async def has_confirmed_totp(conn: Connection, staff_id: int) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM staff_totp WHERE staff_id = $1 AND confirmed_at IS NOT NULL", staff_id
    )
    return bool(found)


async def replace_recovery_codes(conn: Connection, staff_id: int, hmacs: list[bytes]) -> None:
    """The account's recovery codes become these, and only these."""
    await conn.execute("DELETE FROM staff_recovery_codes WHERE staff_id = $1", staff_id)
    await conn.executemany(
        "INSERT INTO staff_recovery_codes (staff_id, code_hmac) VALUES ($1, $2)",
        [(staff_id, mac) for mac in hmacs],
    )


async def use_recovery_code(conn: Connection, staff_id: int, code_hmac: bytes) -> bool:
    """Spend one recovery code, once and only once (one lookup on the primary key)."""
    done = await conn.fetchval(
        """UPDATE staff_recovery_codes SET used_at = now()
           WHERE staff_id = $1 AND code_hmac = $2 AND used_at IS NULL RETURNING true""",
        staff_id,
        code_hmac,
    )
    return bool(done)


async def recovery_codes_left(conn: Connection, staff_id: int) -> int:
    left: int = await conn.fetchval(
        "SELECT count(*) FROM staff_recovery_codes WHERE staff_id = $1 AND used_at IS NULL",
        staff_id,
    )
    return left


async def recovery_codes_set(conn: Connection, staff_id: int) -> str:
    """Which set of recovery codes the account has: when it was made (one transaction makes a
    set, so its codes share ``created_at``), as microseconds; "none" for no set."""
    made = await conn.fetchval(
        """SELECT (extract(epoch FROM max(created_at)) * 1000000)::bigint
           FROM staff_recovery_codes WHERE staff_id = $1""",
        staff_id,
    )
    return "none" if made is None else str(made)


async def delete_recovery_codes(conn: Connection, staff_id: int) -> int:
    result: str = await conn.execute(
        "DELETE FROM staff_recovery_codes WHERE staff_id = $1", staff_id
    )
    return int(result.split()[-1])


async def claim_attempt(conn: Connection, staff_id: int, *, limit: int, window_s: int) -> bool:
    """Take one second-factor attempt from the account's window; False when ``limit`` were
    taken in the last ``window_s`` seconds. Claimed before the code is checked, so parallel
    requests cannot try more than ``limit`` codes between them."""
    # Every test reads the row being updated (no joined copy of it), so that of two requests
    # racing for the last attempt, the second re-checks the row the first wrote.
    fresh = """(second_factor_window_start IS NULL
                OR second_factor_window_start <= now() - make_interval(secs => $3))"""
    done = await conn.fetchval(
        f"""UPDATE staff SET
               second_factor_attempts = CASE WHEN {fresh} THEN 1
                                             ELSE second_factor_attempts + 1 END,
               second_factor_window_start = CASE WHEN {fresh} THEN now()
                                                 ELSE second_factor_window_start END
            WHERE id = $1 AND ({fresh} OR second_factor_attempts < $2)
            RETURNING true""",
        staff_id,
        limit,
        window_s,
    )
    return bool(done)


async def seconds_until_attempts(conn: Connection, staff_id: int, window_s: int) -> int:
    value = await conn.fetchval(
        """SELECT ceil(extract(epoch FROM second_factor_window_start
                                          + make_interval(secs => $2) - now()))
           FROM staff WHERE id = $1""",
        staff_id,
        window_s,
    )
    return max(1, int(value or 1))


async def give_back_attempts(conn: Connection, staff_id: int) -> None:
    """A right code: the account's window starts again."""
    await conn.execute(
        """UPDATE staff SET second_factor_attempts = 0, second_factor_window_start = NULL
           WHERE id = $1 AND second_factor_attempts > 0""",
        staff_id,
    )
