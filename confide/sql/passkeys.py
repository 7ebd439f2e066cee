"""SQL for staff passkeys (WebAuthn credentials, unique across accounts) and their single-use,
short-lived challenges (kept as HMACs, bound to a browser and a ceremony)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class Passkey:
    public_id: UUID
    staff_id: int
    credential_id: bytes
    public_key: bytes
    sign_count: int
    name: str
    transports: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None


_COLUMNS = """public_id, staff_id, credential_id, public_key, sign_count, name, transports,
              created_at, last_used_at"""


def _passkey(row: object) -> Passkey:
    values = dict(row)  # type: ignore[call-overload]
    values["transports"] = tuple(values["transports"])
    return Passkey(**values)


async def for_staff(conn: Connection, staff_id: int) -> list[Passkey]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM staff_passkeys WHERE staff_id = $1 ORDER BY created_at",
        staff_id,
    )
    return [_passkey(row) for row in rows]


async def by_credential(conn: Connection, credential_id: bytes) -> Passkey | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM staff_passkeys WHERE credential_id = $1", credential_id
    )
    return None if row is None else _passkey(row)


async def has_passkey(conn: Connection, staff_id: int) -> bool:
    found = await conn.fetchval("SELECT true FROM staff_passkeys WHERE staff_id = $1", staff_id)
    return bool(found)


async def insert(
    conn: Connection,
    staff_id: int,
    *,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    name: str,
    transports: list[str],
) -> UUID | None:
    """A new passkey; None when this credential is registered already (to any account)."""
    public_id: UUID | None = await conn.fetchval(
        """INSERT INTO staff_passkeys (staff_id, credential_id, public_key, sign_count, name,
                                       transports)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (credential_id) DO NOTHING RETURNING public_id""",
        staff_id,
        credential_id,
        public_key,
        sign_count,
        name,
        transports,
    )
    return public_id


async def use(conn: Connection, public_id: UUID, old_count: int, new_count: int) -> bool:
    """Record a use: only if the counter is still what the check read (of two processes given
    the same assertion, one wins)."""
    done = await conn.fetchval(
        """UPDATE staff_passkeys SET sign_count = $3, last_used_at = now()
           WHERE public_id = $1 AND sign_count = $2 RETURNING true""",
        public_id,
        old_count,
        new_count,
    )
    return bool(done)


async def delete(conn: Connection, staff_id: int, public_id: UUID) -> bool:
    done = await conn.fetchval(
        "DELETE FROM staff_passkeys WHERE staff_id = $1 AND public_id = $2 RETURNING true",
        staff_id,
        public_id,
    )
    return bool(done)


async def delete_for_staff(conn: Connection, staff_id: int) -> int:
    result: str = await conn.execute("DELETE FROM staff_passkeys WHERE staff_id = $1", staff_id)
    return int(result.split()[-1])


# --- Challenges --------------------------------------------------------------------------------


async def add_challenge(
    conn: Connection,
    challenge_hmac: bytes,
    *,
    ceremony: str,
    binding_hmac: bytes,
    staff_id: int | None,
    lifetime_s: int,
) -> None:
    await conn.execute(
        """INSERT INTO webauthn_challenges (challenge_hmac, ceremony, binding_hmac, staff_id,
                                            expires_at)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
        challenge_hmac,
        ceremony,
        binding_hmac,
        staff_id,
        lifetime_s,
    )


async def spend_challenge(
    conn: Connection, challenge_hmac: bytes, *, ceremony: str, binding_hmac: bytes
) -> tuple[bool, int | None]:
    """Spend a live challenge of this ceremony and browser, once: (found, its staff id)."""
    row = await conn.fetchrow(
        """DELETE FROM webauthn_challenges
           WHERE challenge_hmac = $1 AND ceremony = $2 AND binding_hmac = $3
             AND expires_at > now()
           RETURNING staff_id""",
        challenge_hmac,
        ceremony,
        binding_hmac,
    )
    return (False, None) if row is None else (True, row["staff_id"])


async def purge_challenges(conn: Connection) -> int:
    result: str = await conn.execute("DELETE FROM webauthn_challenges WHERE expires_at <= now()")
    return int(result.split()[-1])
