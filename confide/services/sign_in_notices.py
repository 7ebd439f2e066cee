"""Mails about a staff member's own sign-ins (docs/staff-sign-in.md "Sign-in notices").

- ``new_sign_in``: each full sign-in (after the second factor when there is one; browser and
  API alike) queues one, in the transaction that creates the session, keyed by the session's
  public id: one mail per sign-in, however often a worker retries.
- ``password_known``: when the account's wrong second-factor codes reach the limit, one mail
  per window (keyed by the window's start) says someone has the password.

Neither holds an IP address, a location or a user agent: Confide keeps none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from email.message import EmailMessage
from uuid import UUID

from asyncpg import Connection

from confide import mail
from confide.context import Context
from confide.sql import outbox as sql_outbox
from confide.sql import staff as sql_staff
from confide.sql.outbox import OutboxItem

NEW_SIGN_IN = "new_sign_in"
PASSWORD_KNOWN = "password_known"  # noqa: S105 (an outbox kind, not a password)
KINDS = frozenset({NEW_SIGN_IN, PASSWORD_KNOWN})
SESSIONS_PATH = "/staff/sessions"

# How each sign-in method reads to people; a method with no entry here is shown by its name.
METHOD_WORDS = {
    "password": "password",
    "totp": "authenticator code",
    "recovery_code": "recovery code",
    "passkey": "passkey",
    "webauthn": "passkey",
    "sso": "single sign-on",
    "oidc": "single sign-on",
    "sso_mfa": "your organisation's second factor",
    "personal_access_token": "personal access token",
}


def method_words(methods: Iterable[str], translate: Callable[[str], str] = str) -> str:
    """("password", "totp") -> "Password and authenticator code"; ("oidc",) -> "Single
    sign-on"; an unknown name is shown as it is."""
    words: list[str] = []
    for name in methods:
        word = translate(METHOD_WORDS[name]) if name in METHOD_WORDS else name
        if word not in words:
            words.append(word)
    if not words:
        return translate("unknown")
    text = f" {translate('and')} ".join(words)
    return text[:1].upper() + text[1:]


async def queue_new_sign_in(
    conn: Connection, staff_id: int, session_id: UUID, methods: tuple[str, ...], at: datetime
) -> None:
    """In the transaction that creates the full session; the caller wakes the outbox."""
    await sql_outbox.enqueue(
        conn,
        NEW_SIGN_IN,
        staff_id=staff_id,
        payload={"at": at.isoformat(), "methods": list(methods)},
        dedupe_key=f"{NEW_SIGN_IN}:{session_id}",
    )


async def queue_password_known(conn: Connection, staff_id: int, limit: int) -> bool:
    """After a wrong second-factor code: when the account's window has reached ``limit``
    attempts, queue the mail once for that window. True if one was queued now."""
    window = await conn.fetchrow(
        """SELECT second_factor_attempts, second_factor_window_start FROM staff WHERE id = $1""",
        staff_id,
    )
    if window is None or window[1] is None or window[0] < limit:
        return False
    start: datetime = window[1]
    queued = await sql_outbox.enqueue(
        conn,
        PASSWORD_KNOWN,
        staff_id=staff_id,
        payload={"attempts": limit},
        dedupe_key=f"{PASSWORD_KNOWN}:{staff_id}:{start.isoformat()}",
    )
    return queued is not None


def _when(ctx: Context, moment: datetime) -> str:
    local = moment.astimezone(ctx.calendar.tz)
    hour = local.hour % 12 or 12
    ampm = "am" if local.hour < 12 else "pm"
    return f"{local:%A} {local.day} {local:%B %Y} at {hour}:{local:%M}{ampm} ({ctx.calendar.tz})"


async def render(ctx: Context, conn: Connection, row: OutboxItem) -> EmailMessage | None:
    """The mail for one of :data:`KINDS`; None when the account is gone or disabled."""
    if row.staff_id is None:
        return None
    to = await sql_staff.active_email(conn, row.staff_id)
    if not to:
        return None
    link = f"{ctx.settings.base_url}{SESSIONS_PATH}"
    if row.kind == NEW_SIGN_IN:
        try:
            at = datetime.fromisoformat(str(row.payload.get("at", "")))
        except ValueError:
            at = row.created_at
        raw = row.payload.get("methods")
        how = method_words([str(m) for m in raw] if isinstance(raw, list) else [])
        text = (
            "You signed in to Confide.\n\n"
            f"When: {_when(ctx, at)}\n"
            f"How: {how}\n\n"
            "If this was you, there is nothing to do.\n\n"
            "If it was not you, sign out of that session and change your password now, then "
            "tell your Confide administrator:\n"
            f"{link}\n"
        )
        subject = "New sign-in to your Confide account"
    else:
        attempts = row.payload.get("attempts")
        times = f"{attempts} times" if isinstance(attempts, int) else "several times"
        text = (
            "Someone entered your Confide password correctly, then got the second step (a "
            f"code from your authenticator app, or a recovery code) wrong {times}.\n"
            "Your account's second step is paused for a while, so they could not sign in.\n\n"
            "If this was not you, someone has your password:\n"
            f"- change your password now: {ctx.settings.base_url}/staff/password\n"
            "- tell your Confide administrator.\n\n"
            f"Your sessions: {link}\n"
        )
        subject = "Someone has your Confide password"
    return mail.compose(ctx.settings, row.id, to=to, subject=subject, text=text)
