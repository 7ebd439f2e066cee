"""The admin page: teams, categories and memberships (alongside the organisation file)."""

from __future__ import annotations

import re
from typing import Any

from confide.context import Context
from confide.errors import FieldError, ValidationFailed
from confide.services.staff import THREAD_READER_ROLES
from confide.services.validation import email_field
from confide.sql import audit as sql_audit
from confide.sql import org as sql_org
from confide.sql import staff as sql_staff

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


async def overview(ctx: Context) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        teams = await sql_org.all_teams(conn)
        categories = await sql_org.all_categories(conn)
        staff = await sql_staff.all_staff(conn)
    return {"teams": teams, "categories": categories, "people": staff}


def _slug(form: dict[str, str], field: str) -> str:
    value = form.get(field, "").strip()
    if not _SLUG.match(value):
        raise ValidationFailed([FieldError(field, "Use lower-case letters, digits and hyphens")])
    return value


def _text(form: dict[str, str], field: str, label: str) -> str:
    value = form.get(field, "").strip()
    if not value or len(value) > 200:
        raise ValidationFailed([FieldError(field, f"Enter {label} (up to 200 characters)")])
    return value


async def apply(ctx: Context, admin_id: int, form: dict[str, str]) -> None:
    """One admin action from the admin page's forms; audited."""
    action = form.get("action", "")
    async with ctx.pool.acquire() as conn, conn.transaction():
        if action == "team":
            errors: list[FieldError] = []
            email = email_field(errors, "team_email", form.get("team_email", "")) or ""
            if errors:
                raise ValidationFailed(errors)
            slug = _slug(form, "team_slug")
            await sql_org.upsert_team(conn, slug, _text(form, "team_name", "a team name"), email)
            await sql_audit.record(conn, admin_id, None, "admin_team", {"team": slug})
        elif action == "category":
            slug = _slug(form, "category_slug")
            team_id = await sql_org.team_id(conn, form.get("category_team", ""))
            if team_id is None:
                raise ValidationFailed([FieldError("category_team", "Choose a team")])
            position = await sql_org.next_category_position(conn)
            await sql_org.upsert_category(
                conn, slug, _text(form, "category_name", "a name"), team_id, position
            )
            await sql_audit.record(conn, admin_id, None, "admin_category", {"category": slug})
        elif action in ("join", "leave"):
            email = form.get("member_email", "").strip()
            member = await sql_staff.by_email(conn, email) if email.isprintable() else None
            team_id = await sql_org.team_id(conn, form.get("member_team", ""))
            if member is None:
                raise ValidationFailed(
                    [FieldError("member_email", "No staff member has that email address")]
                )
            if team_id is None:
                raise ValidationFailed([FieldError("member_team", "Choose a team")])
            if action == "join":
                if member["role"] not in THREAD_READER_ROLES:
                    raise ValidationFailed(
                        [FieldError("member_email", "Ops accounts belong to no team")]
                    )
                await sql_staff.add_to_team(conn, member["id"], team_id)
            else:
                await sql_staff.remove_from_team(conn, member["id"], team_id)
            await sql_audit.record(
                conn,
                admin_id,
                None,
                f"admin_{action}",
                {"staff_id": member["id"], "team_id": team_id},
            )
        else:
            raise ValidationFailed([FieldError("action", "Unknown action")])
