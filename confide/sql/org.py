"""SQL for teams and categories."""

from __future__ import annotations

from dataclasses import dataclass

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class ActiveCategory:
    """A category a reporter may choose, with its team."""

    slug: str
    name: str
    team_id: int
    team: str  # the team's slug


@dataclass(frozen=True, slots=True)
class CategoryRow:
    slug: str
    name: str
    team_id: int


@dataclass(frozen=True, slots=True)
class CategoryListing:
    """A category as the admin page lists it, active or not."""

    slug: str
    name: str
    team: str  # the team's slug
    active: bool


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    slug: str
    name: str
    email: str  # the team's shared address, '' for none


@dataclass(frozen=True, slots=True)
class TeamName:
    slug: str
    name: str


async def upsert_team(conn: Connection, slug: str, name: str, email: str) -> int:
    team_id: int = await conn.fetchval(
        """INSERT INTO teams (slug, name, email) VALUES ($1, $2, $3)
           ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email
           RETURNING id""",
        slug,
        name,
        email,
    )
    return team_id


async def upsert_category(
    conn: Connection, slug: str, name: str, team_id: int, position: int
) -> None:
    await conn.execute(
        """INSERT INTO categories (slug, name, team_id, position) VALUES ($1, $2, $3, $4)
           ON CONFLICT (slug) DO UPDATE
           SET name = EXCLUDED.name, team_id = EXCLUDED.team_id, position = EXCLUDED.position,
               active = true""",
        slug,
        name,
        team_id,
        position,
    )


async def active_categories(conn: Connection) -> list[ActiveCategory]:
    rows = await conn.fetch(
        """SELECT c.slug, c.name, c.team_id, t.slug AS team
           FROM categories c JOIN teams t ON t.id = c.team_id
           WHERE c.active ORDER BY c.position, c.name"""
    )
    return [ActiveCategory(**r) for r in rows]


async def category(conn: Connection, slug: str) -> CategoryRow | None:
    row = await conn.fetchrow(
        "SELECT slug, name, team_id FROM categories WHERE slug = $1 AND active", slug
    )
    return None if row is None else CategoryRow(**row)


async def team_slugs(conn: Connection) -> list[str]:
    return [
        r["slug"] for r in await conn.fetch("SELECT slug FROM teams WHERE active ORDER BY slug")
    ]


async def team_id(conn: Connection, slug: str, *, active_only: bool = False) -> int | None:
    value: int | None = await conn.fetchval(
        "SELECT id FROM teams WHERE slug = $1 AND (active OR NOT $2)", slug, active_only
    )
    return value


async def team(conn: Connection, team_id: int) -> Team | None:
    row = await conn.fetchrow("SELECT id, slug, name, email FROM teams WHERE id = $1", team_id)
    return None if row is None else Team(**row)


async def all_teams(conn: Connection) -> list[Team]:
    rows = await conn.fetch("SELECT id, slug, name, email FROM teams ORDER BY slug")
    return [Team(**r) for r in rows]


async def active_teams(conn: Connection) -> list[TeamName]:
    rows = await conn.fetch("SELECT slug, name FROM teams WHERE active ORDER BY name")
    return [TeamName(**r) for r in rows]


async def all_categories(conn: Connection) -> list[CategoryListing]:
    rows = await conn.fetch(
        """SELECT c.slug, c.name, t.slug AS team, c.active FROM categories c
           JOIN teams t ON t.id = c.team_id ORDER BY c.position, c.name"""
    )
    return [CategoryListing(**r) for r in rows]


async def next_category_position(conn: Connection) -> int:
    value: int = await conn.fetchval("SELECT coalesce(max(position), 0) + 1 FROM categories")
    return value
