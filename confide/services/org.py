"""Keep teams and categories in PostgreSQL in step with the organisation file."""

from __future__ import annotations

from confide.context import Context
from confide.org import Organisation
from confide.services import retention
from confide.sql import org as sql_org
from confide.sql.org import ActiveCategory


async def sync_organisation(ctx: Context, org: Organisation) -> None:
    """Idempotent upsert of the file's teams and categories (admin-made ones are kept)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        team_ids = {}
        for team in org.teams:
            team_ids[team.slug] = await sql_org.upsert_team(conn, team.slug, team.name, team.email)
        for position, category in enumerate(org.categories):
            await sql_org.upsert_category(
                conn, category.slug, category.name, team_ids[category.team], position
            )
        await retention.sync_rules(conn, org)


async def active_categories(ctx: Context) -> list[ActiveCategory]:
    """The categories a reporter may choose, in the organisation's order."""
    async with ctx.pool.acquire() as conn:
        return await sql_org.active_categories(conn)
