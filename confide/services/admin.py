"""The admin page: teams, categories and memberships (alongside the organisation file).

Each change takes typed arguments and is audited in its own transaction. A ``FieldError`` names
the argument at fault (``slug``, ``name``, ``email``, ``team``); the page maps it to its field.
"""

from __future__ import annotations

import re

from asyncpg import Connection

from confide.context import Context
from confide.db import Pool
from confide.errors import FieldError, ValidationFailed
from confide.models import email_field
from confide.services.staff import THREAD_READER_ROLES
from confide.sql import audit as sql_audit
from confide.sql import org as sql_org
from confide.sql import staff as sql_staff

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


async def overview(ctx: Context) -> dict[str, object]:
    async with ctx.pool.acquire() as conn:
        teams = await sql_org.all_teams(conn)
        categories = await sql_org.all_categories(conn)
        staff = await sql_staff.all_staff(conn)
    return {"teams": teams, "categories": categories, "people": staff}


def _slug(value: str) -> str:
    value = value.strip()
    if not _SLUG.match(value):
        raise ValidationFailed([FieldError("slug", "Use lower-case letters, digits and hyphens")])
    return value


def _text(value: str, label: str) -> str:
    value = value.strip()
    if not value or len(value) > 200:
        raise ValidationFailed([FieldError("name", f"Enter {label} (up to 200 characters)")])
    return value


async def _team_id(conn: Connection, slug: str) -> int:
    team_id = await sql_org.team_id(conn, slug)
    if team_id is None:
        raise ValidationFailed([FieldError("team", "Choose a team")])
    return team_id


async def save_team(ctx: Context, admin_id: int, *, slug: str, name: str, email: str) -> None:
    """Add a team or update the one with this slug; audited."""
    errors: list[FieldError] = []
    address = email_field(errors, "email", email) or ""
    if errors:
        raise ValidationFailed(errors)
    slug = _slug(slug)
    name = _text(name, "a team name")
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sql_org.upsert_team(conn, slug, name, address)
        await sql_audit.record(conn, admin_id, None, "admin_team", {"team": slug})


async def save_category(ctx: Context, admin_id: int, *, slug: str, name: str, team: str) -> None:
    """Add a category routed to ``team`` (a slug), or update the one with this slug; audited."""
    slug = _slug(slug)
    async with ctx.pool.acquire() as conn, conn.transaction():
        team_id = await _team_id(conn, team)
        position = await sql_org.next_category_position(conn)
        await sql_org.upsert_category(conn, slug, _text(name, "a name"), team_id, position)
        await sql_audit.record(conn, admin_id, None, "admin_category", {"category": slug})


async def join_team(ctx: Context, admin_id: int, *, email: str, team: str) -> None:
    """Make the staff member with this address a member of ``team``; audited. Ops join none."""
    await _membership(ctx.pool, admin_id, email=email, team=team, joins=True)


async def leave_team(ctx: Context, admin_id: int, *, email: str, team: str) -> None:
    """Take the staff member with this address out of ``team``; audited."""
    await _membership(ctx.pool, admin_id, email=email, team=team, joins=False)


async def _membership(pool: Pool, admin_id: int, *, email: str, team: str, joins: bool) -> None:
    email = email.strip()
    async with pool.acquire() as conn, conn.transaction():
        member = await sql_staff.by_email(conn, email) if email.isprintable() else None
        team_id = await sql_org.team_id(conn, team)
        if member is None:
            raise ValidationFailed([FieldError("email", "No staff member has that email address")])
        if team_id is None:
            raise ValidationFailed([FieldError("team", "Choose a team")])
        if joins:
            if member.role not in THREAD_READER_ROLES:
                raise ValidationFailed([FieldError("email", "Ops accounts belong to no team")])
            await sql_staff.add_to_team(conn, member.id, team_id)
        else:
            await sql_staff.remove_from_team(conn, member.id, team_id)
        await sql_audit.record(
            conn,
            admin_id,
            None,
            "admin_join" if joins else "admin_leave",
            {"staff_id": member.id, "team_id": team_id},
        )
