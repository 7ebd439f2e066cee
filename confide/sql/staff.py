"""SQL for staff accounts and team memberships."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asyncpg import Connection, Record

from confide.domain import Role

COLUMNS = "s.id, s.email, s.name, s.role, s.active, s.password_hash"


@dataclass(frozen=True, slots=True)
class Account:
    """A staff account with its password hash (``COLUMNS``)."""

    id: int
    email: str
    name: str
    role: Role
    active: bool
    password_hash: str | None


@dataclass(frozen=True, slots=True)
class Listed:
    """A staff member as the admin page lists them, with their teams' slugs."""

    id: int
    email: str
    name: str
    role: Role
    active: bool
    teams: list[str]


@dataclass(frozen=True, slots=True)
class Member:
    """An active member of a team."""

    id: int
    email: str
    name: str
    role: Role


def _account(row: Record | None) -> Account | None:
    if row is None:
        return None
    return Account(
        row["id"], row["email"], row["name"], Role(row["role"]), row["active"], row["password_hash"]
    )


async def by_email(conn: Connection, email: str) -> Account | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM staff s WHERE lower(s.email) = lower($1)", email
    )
    return _account(row)


async def by_id(conn: Connection, staff_id: int) -> Account | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM staff s WHERE s.id = $1", staff_id)
    return _account(row)


async def insert(
    conn: Connection, email: str, name: str, role: Role, password_hash: str | None
) -> int:
    staff_id: int = await conn.fetchval(
        """INSERT INTO staff (email, name, role, password_hash) VALUES ($1, $2, $3, $4)
           RETURNING id""",
        email,
        name,
        role,
        password_hash,
    )
    return staff_id


async def add_to_team(conn: Connection, staff_id: int, team_id: int) -> None:
    await conn.execute(
        "INSERT INTO staff_teams (staff_id, team_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        staff_id,
        team_id,
    )


async def remove_from_team(conn: Connection, staff_id: int, team_id: int) -> None:
    await conn.execute(
        "DELETE FROM staff_teams WHERE staff_id = $1 AND team_id = $2", staff_id, team_id
    )


async def team_ids(conn: Connection, staff_id: int) -> list[int]:
    return [
        r["team_id"]
        for r in await conn.fetch("SELECT team_id FROM staff_teams WHERE staff_id = $1", staff_id)
    ]


async def set_active(conn: Connection, email: str, active: bool) -> int | None:
    value: int | None = await conn.fetchval(
        "UPDATE staff SET active = $2 WHERE lower(email) = lower($1) RETURNING id", email, active
    )
    return value


async def set_password(conn: Connection, staff_id: int, password_hash: str) -> None:
    await conn.execute(
        """UPDATE staff SET password_hash = $2, reset_token_hmac = NULL, reset_expires_at = NULL
           WHERE id = $1""",
        staff_id,
        password_hash,
    )


async def set_reset_token(
    conn: Connection, email: str, token_hmac: bytes, expires_at: datetime
) -> int | None:
    value: int | None = await conn.fetchval(
        """UPDATE staff SET reset_token_hmac = $2, reset_expires_at = $3
           WHERE lower(email) = lower($1) RETURNING id""",
        email,
        token_hmac,
        expires_at,
    )
    return value


async def by_reset_token(conn: Connection, token_hmac: bytes) -> Account | None:
    row = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM staff s
            WHERE s.reset_token_hmac = $1 AND s.reset_expires_at > now() AND s.active""",
        token_hmac,
    )
    return _account(row)


async def all_staff(conn: Connection) -> list[Listed]:
    rows = await conn.fetch(
        """SELECT s.id, s.email, s.name, s.role, s.active,
                  coalesce(array_agg(t.slug ORDER BY t.slug) FILTER (WHERE t.slug IS NOT NULL),
                           '{}') AS teams
           FROM staff s LEFT JOIN staff_teams st ON st.staff_id = s.id
           LEFT JOIN teams t ON t.id = st.team_id
           GROUP BY s.id ORDER BY s.email"""
    )
    return [
        Listed(r["id"], r["email"], r["name"], Role(r["role"]), r["active"], list(r["teams"]))
        for r in rows
    ]


async def team_members(conn: Connection, team_id: int, *, roles: list[str]) -> list[Member]:
    """The team's active members in one of ``roles``."""
    rows = await conn.fetch(
        """SELECT s.id, s.email, s.name, s.role FROM staff s
           JOIN staff_teams st ON st.staff_id = s.id
           WHERE st.team_id = $1 AND s.active AND s.role = ANY($2::text[]) ORDER BY s.name""",
        team_id,
        roles,
    )
    return [Member(r["id"], r["email"], r["name"], Role(r["role"])) for r in rows]


async def active_email(conn: Connection, staff_id: int) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT email FROM staff WHERE id = $1 AND active", staff_id
    )
    return value


async def is_manager_of(conn: Connection, staff_id: int, team_id: int) -> bool:
    found = await conn.fetchval(
        """SELECT true FROM staff s JOIN staff_teams st ON st.staff_id = s.id
           WHERE s.id = $1 AND st.team_id = $2 AND s.active AND s.role = 'manager'""",
        staff_id,
        team_id,
    )
    return bool(found)
