"""SQL for teams and categories."""

from __future__ import annotations

from asyncpg import Connection, Record


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


async def active_categories(conn: Connection) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        """SELECT c.slug, c.name, c.team_id, t.slug AS team
           FROM categories c JOIN teams t ON t.id = c.team_id
           WHERE c.active ORDER BY c.position, c.name"""
    )
    return rows


async def category(conn: Connection, slug: str) -> Record | None:
    row: Record | None = await conn.fetchrow(
        "SELECT slug, name, team_id FROM categories WHERE slug = $1 AND active", slug
    )
    return row


async def team_slugs(conn: Connection) -> list[str]:
    return [
        r["slug"] for r in await conn.fetch("SELECT slug FROM teams WHERE active ORDER BY slug")
    ]


async def team_id(conn: Connection, slug: str, *, active_only: bool = False) -> int | None:
    value: int | None = await conn.fetchval(
        "SELECT id FROM teams WHERE slug = $1 AND (active OR NOT $2)", slug, active_only
    )
    return value


async def team(conn: Connection, team_id: int) -> Record | None:
    row: Record | None = await conn.fetchrow(
        "SELECT id, slug, name, email FROM teams WHERE id = $1", team_id
    )
    return row


async def all_teams(conn: Connection) -> list[Record]:
    rows: list[Record] = await conn.fetch("SELECT id, slug, name, email FROM teams ORDER BY slug")
    return rows


async def active_teams(conn: Connection) -> list[Record]:
    rows: list[Record] = await conn.fetch("SELECT slug, name FROM teams WHERE active ORDER BY name")
    return rows


async def all_categories(conn: Connection) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        """SELECT c.slug, c.name, t.slug AS team, c.active FROM categories c
           JOIN teams t ON t.id = c.team_id ORDER BY c.position, c.name"""
    )
    return rows


async def next_category_position(conn: Connection) -> int:
    value: int = await conn.fetchval("SELECT coalesce(max(position), 0) + 1 FROM categories")
    return value
