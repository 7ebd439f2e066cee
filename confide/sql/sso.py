"""SQL for staff single sign-on: identities at the provider and sign-ins on their way there."""

from __future__ import annotations

from dataclasses import dataclass

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in sent to the provider, as the browser's cookie finds it (once)."""

    state_hmac: bytes
    nonce: str
    code_verifier: bytes  # sealed with the keyring


async def insert_attempt(
    conn: Connection,
    id_hmac: bytes,
    *,
    state_hmac: bytes,
    nonce: str,
    code_verifier: bytes,
    seconds: int,
) -> None:
    await conn.execute(
        """INSERT INTO sso_attempts (id_hmac, state_hmac, nonce, code_verifier, expires_at)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
        id_hmac,
        state_hmac,
        nonce,
        code_verifier,
        seconds,
    )


async def take_attempt(conn: Connection, id_hmac: bytes) -> Attempt | None:
    """The live attempt of this cookie, deleted as it is read: it is used once, whatever
    happens next (a replayed callback finds nothing)."""
    row = await conn.fetchrow(
        """DELETE FROM sso_attempts WHERE id_hmac = $1
           RETURNING state_hmac, nonce, code_verifier, expires_at > now() AS live""",
        id_hmac,
    )
    if row is None or not row["live"]:
        return None
    return Attempt(row["state_hmac"], row["nonce"], row["code_verifier"])


async def sweep_attempts(conn: Connection) -> int:
    """Forget attempts that expired (a browser that never came back)."""
    done: str = await conn.execute("DELETE FROM sso_attempts WHERE expires_at < now()")
    return int(done.split()[-1])


async def staff_for_identity(conn: Connection, issuer: str, subject: str) -> int | None:
    """The account bound to this identity, its last use noted."""
    staff_id: int | None = await conn.fetchval(
        """UPDATE staff_identities SET last_used_at = now()
           WHERE issuer = $1 AND subject = $2 RETURNING staff_id""",
        issuer,
        subject,
    )
    return staff_id


async def has_identity_at(conn: Connection, staff_id: int, issuer: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM staff_identities WHERE staff_id = $1 AND issuer = $2)",
        staff_id,
        issuer,
    )
    return found


async def bind(conn: Connection, staff_id: int, issuer: str, subject: str) -> bool:
    """Bind the account to this identity; False when either is bound already (a race)."""
    done: str = await conn.execute(
        """INSERT INTO staff_identities (issuer, subject, staff_id) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING""",
        issuer,
        subject,
        staff_id,
    )
    return done.endswith(" 1")


async def delete_for_staff(conn: Connection, staff_id: int) -> int:
    done: str = await conn.execute("DELETE FROM staff_identities WHERE staff_id = $1", staff_id)
    return int(done.split()[-1])
