"""The admin page's forms, mapped to ``confide.services.admin`` calls, and errors back to them.

The forms name their fields ``<form>_<argument>`` (team_slug, member_email, ...), so that one
page can hold four forms and each error sits next to its own form's field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from confide.context import Context
from confide.errors import FieldError, ValidationFailed
from confide.services import admin, staff_sessions

AdminCall = Callable[[Context, int, dict[str, str]], Awaitable[object]]
ADMIN_FORMS: dict[str, tuple[str, AdminCall]] = {
    "team": (
        "team",
        lambda ctx, by, f: admin.save_team(
            ctx, by, slug=f["slug"], name=f["name"], email=f["email"]
        ),
    ),
    "category": (
        "category",
        lambda ctx, by, f: admin.save_category(
            ctx, by, slug=f["slug"], name=f["name"], team=f["team"]
        ),
    ),
    "join": (
        "member",
        lambda ctx, by, f: admin.join_team(ctx, by, email=f["email"], team=f["team"]),
    ),
    "end_sessions": (
        "account",
        lambda ctx, by, f: staff_sessions.end_all_for_account(ctx, by, email=f["email"]),
    ),
    "leave": (
        "member",
        lambda ctx, by, f: admin.leave_team(ctx, by, email=f["email"], team=f["team"]),
    ),
}


async def apply_admin_form(ctx: Context, admin_id: int, form: dict[str, str]) -> None:
    """Make the change one of the admin page's forms asks for; a ValidationFailed names that
    form's fields."""
    found = ADMIN_FORMS.get(form.get("action", ""))
    if found is None:
        raise ValidationFailed([FieldError("action", "Unknown action")])
    prefix, call = found
    fields = {name: form.get(f"{prefix}_{name}", "") for name in ("slug", "name", "email", "team")}
    try:
        await call(ctx, admin_id, fields)
    except ValidationFailed as exc:
        errors = [FieldError(f"{prefix}_{e.field}", e.message) for e in exc.errors]
        raise ValidationFailed(errors) from None
