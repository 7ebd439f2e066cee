"""Every URL, in one list."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from webapp import metrics
from webapp.auth import login_purpose
from webapp.form_routes import FORMS, Form, Token
from webapp.handlers import (
    api,
    caseworker,
    devmail,
    ops,
    passkeys,
    reporter,
    sso,
    staff_security,
    staff_sessions,
    statistics,
    support,
)
from webapp.report_flow import STEPS
from webapp.security import RECEIPT_KEYS_PATH

STAFF = Form(Token.STAFF_SESSION)
STEP_PATHS = "|".join(STEPS)  # GET /report/<step>: a question page drawn from the draft
# The thread page's forms: POST /staff/threads/{reference}/<action>, route "staff_thread_<action>",
# its form drawn again with what was typed when refused (caseworker.thread_again).
THREAD_ACTIONS: dict[str, Handler] = {
    "reply": caseworker.reply,
    "note": caseworker.note,
    "release_file": caseworker.release_file,
    "status": caseworker.status,
    "assign": caseworker.assign,
    "restrict": caseworker.restrict,
    "team": caseworker.team,
    "extend": caseworker.extend,
    "hold": caseworker.hold,
    "link": caseworker.link,
    "unlink": caseworker.unlink,
}
# What each unsafe HTML route's form carries (webapp.form_routes), checked by webapp.policy
# before the handler runs, and the page drawn again with what was typed when a check or a service
# refuses it. A route missing here is refused, whatever it sends (docs/security.md).
FORM_ROUTES: dict[str, Form] = {
    "report_step": Form(
        Token.NONE,
        why="a step draws the next question; with a draft cookie it writes only that browser's "
        "own draft, sealed under its key, which a cross-site form cannot send (SameSite=Strict)",
    ),
    # models helper: the check page's signed token is the submission's idempotency key too, so
    # report_submit checks it itself (and draws the check page "expired" with the answers).
    "report_submit": Form(
        Token.SERVICE,
        why="its signed submit token, checked by the handler",
        page=reporter.report_again,
    ),
    "confirmation_saved": Form(
        Token.NONE,
        why="it only forgets the code in this browser's own draft (a SameSite=Strict cookie)",
    ),
    "confirmation_code_file": Form(
        Token.NONE,
        why="it writes nothing and answers only with what this browser holds already: the code "
        "in its own draft (a SameSite=Strict cookie), or without one the code its page posted",
    ),
    "confirmation_check": Form(
        Token.NONE,
        why="it writes only into this browser's own draft (a SameSite=Strict cookie) the 4 "
        "characters typed, for the confirmation's GET to say whether they match its code; it "
        "counts nothing",
    ),
    "login_submit": Form(Token.SIGNED, purpose=login_purpose, page=reporter.login_again),
    "messages_submit": Form(Token.REPORTER_SESSION, page=reporter.thread_again),
    "logout": Form(Token.REPORTER_SESSION),
    "reminder_from_confirmation": Form(
        Token.SERVICE, why="its single-use reminder token (reminders.file_for_token)"
    ),
    "receipt_from_confirmation": Form(
        Token.SERVICE,
        why="the report's draft (a SameSite=Strict cookie), or its check page's submit token",
    ),
    "check_receipt_submit": Form(
        Token.NONE,
        why="checks a pasted receipt's signature: nothing is stored, sent or read",
        page=reporter.check_receipt_again,
    ),
    "staff_thread_receipt": Form(Token.STAFF_SESSION, page=caseworker.thread_again("receipt")),
    "staff_login_submit": Form(
        Token.SIGNED, purpose=caseworker.login_purpose, page=caseworker.login_again
    ),
    "staff_logout": STAFF,
    # The second step of a sign-in: a half-signed-in session has no CSRF token, so these forms
    # carry a token bound to the browser's staff cookie (webapp.auth.staff_cookie_purpose).
    "staff_second_factor_submit": Form(
        Token.SIGNED,
        purpose=staff_security.SECOND_FACTOR_PURPOSE,
        page=staff_security.second_factor_again,
    ),
    "staff_enrol_submit": Form(
        Token.SIGNED, purpose=staff_security.ENROL_PURPOSE, page=staff_security.enrol_again
    ),
    # Passkeys (webapp/static/passkeys.js fills the form's credential field): adding one is a
    # step of enrolment too, so like it the form's token is bound to the staff cookie; the
    # passwordless sign-in's forms are bound to the login cookie, as is their challenge.
    "staff_passkey_register": Form(
        Token.SIGNED, purpose=passkeys.REGISTER_PURPOSE, page=passkeys.register_again
    ),
    "staff_remove_passkey": Form(Token.STAFF_SESSION, page=staff_security.security_again),
    "staff_passkey_second_factor": Form(
        Token.SIGNED,
        purpose=staff_security.PASSKEY_SECOND_FACTOR_PURPOSE,
        page=staff_security.second_factor_again,
    ),
    "staff_passkey_login_options": Form(
        Token.SIGNED, purpose=caseworker.PASSKEY_LOGIN_PURPOSE, page=caseworker.login_again
    ),
    "staff_passkey_login": Form(
        Token.SIGNED, purpose=caseworker.PASSKEY_LOGIN_PURPOSE, page=caseworker.login_again
    ),
    "staff_end_session": STAFF,
    "staff_end_other_sessions": STAFF,
    "staff_revoke_token": STAFF,
    "staff_remove_authenticator": Form(Token.STAFF_SESSION, page=staff_security.security_again),
    "staff_new_recovery_codes": Form(Token.STAFF_SESSION, page=staff_security.security_again),
    **{
        f"staff_thread_{action}": Form(Token.STAFF_SESSION, page=caseworker.thread_again(action))
        for action in THREAD_ACTIONS
    },
    "staff_password_submit": Form(Token.STAFF_SESSION, page=caseworker.password_again),
    "staff_set_password_submit": Form(
        Token.SERVICE,
        why="the set-password link's token (staff.finish_reset)",
        page=caseworker.set_password_again,
    ),
    "staff_admin_submit": Form(Token.STAFF_SESSION, page=caseworker.admin_again),
    "staff_support_submit": Form(Token.STAFF_SESSION, page=support.staff_again),
    "ops_action": STAFF,
}


def _attachment(path: str, handler: Handler, name: str) -> web.RouteDef:
    """A GET that sends an attachment, without HEAD: a HEAD would audit and decrypt a whole file."""
    return web.get(path, handler, name=name, allow_head=False)


def setup(app: web.Application, static_dir: Path) -> None:
    app[FORMS] = FORM_ROUTES
    app.router.add_routes(
        [
            web.get("/", reporter.start, name="start"),
            web.get("/report", reporter.report_start, name="report"),
            web.post("/report", reporter.report_step, name="report_step"),
            web.get(f"/report/{{step:{STEP_PATHS}}}", reporter.report_page, name="report_page"),
            web.get("/report/confirmation", reporter.confirmation_page, name="confirmation"),
            web.post(
                "/report/confirmation", reporter.confirmation_saved, name="confirmation_saved"
            ),
            web.post(
                "/report/confirmation/check",
                reporter.confirmation_check,
                name="confirmation_check",
            ),
            web.post("/report/code.txt", reporter.code_file, name="confirmation_code_file"),
            web.get("/exit", reporter.exit_page, name="exit"),
            web.post("/report/submit", reporter.report_submit, name="report_submit"),
            web.get("/login", reporter.login, name="login"),
            web.post("/login", reporter.login_submit, name="login_submit"),
            web.get("/messages", reporter.messages_page, name="messages"),
            web.post("/messages", reporter.messages_submit, name="messages_submit"),
            web.post("/logout", reporter.logout, name="logout"),
            web.get("/reminder.ics", reporter.reminder_download, name="reminder"),
            web.post(
                "/reminder.ics",
                reporter.reminder_from_confirmation,
                name="reminder_from_confirmation",
            ),
            web.get(
                "/api/v1/reporter/reminder.ics", api.reporter_reminder, name="api_reporter_reminder"
            ),
            web.post(
                "/receipt.json",
                reporter.receipt_from_confirmation,
                name="receipt_from_confirmation",
            ),
            web.get("/messages/receipt.json", reporter.receipt_download, name="receipt"),
            _attachment(
                "/messages/attachments/{attachment_id}",
                reporter.attachment_download,
                "reporter_attachment",
            ),
            web.get("/check-receipt", reporter.check_receipt, name="check_receipt"),
            web.post("/check-receipt", reporter.check_receipt_submit, name="check_receipt_submit"),
            web.get(RECEIPT_KEYS_PATH, reporter.receipt_keys, name="receipt_keys"),
            web.get("/accessibility", reporter.accessibility, name="accessibility"),
            web.get("/support", support.index, name="support"),
            web.get("/support/{slug}", support.page, name="support_page"),
            web.get("/api/v1/openapi.json", api.openapi, name="api_openapi"),
            web.get("/api/v1/categories", api.categories, name="api_categories"),
            web.post("/api/v1/reports", api.create_report, name="api_reports"),
            web.post("/api/v1/reporter/session", api.reporter_session, name="api_reporter_login"),
            web.delete("/api/v1/reporter/session", api.reporter_logout, name="api_reporter_logout"),
            web.get("/api/v1/reporter/thread", api.reporter_thread, name="api_reporter_thread"),
            web.post(
                "/api/v1/reporter/messages", api.reporter_message, name="api_reporter_message"
            ),
            web.post("/api/v1/uploads", api.upload, name="api_uploads"),
            _attachment(
                "/api/v1/reporter/attachments/{attachment_id}",
                api.reporter_attachment,
                "api_reporter_attachment",
            ),
            _attachment(
                "/api/v1/staff/attachments/{attachment_id}",
                api.staff_attachment,
                "api_staff_attachment",
            ),
            _attachment(
                "/api/v1/staff/attachments/{attachment_id}/preview",
                api.staff_attachment_preview,
                "api_staff_attachment_preview",
            ),
            web.post(
                "/api/v1/staff/attachments/{attachment_id}/release",
                api.staff_attachment_release,
                name="api_staff_attachment_release",
            ),
            web.post("/api/v1/staff/session", api.staff_session, name="api_staff_login"),
            web.delete("/api/v1/staff/session", api.staff_logout, name="api_staff_logout"),
            web.get("/api/v1/staff/threads", api.staff_threads, name="api_staff_threads"),
            web.get("/api/v1/staff/statistics", api.staff_statistics, name="api_staff_statistics"),
            web.get("/api/v1/staff/threads/{reference}", api.staff_thread, name="api_staff_thread"),
            web.post(
                "/api/v1/staff/threads/{reference}/messages",
                api.staff_thread_messages,
                name="api_staff_thread_messages",
            ),
            web.post(
                "/api/v1/staff/threads/{reference}/notes",
                api.staff_thread_notes,
                name="api_staff_thread_notes",
            ),
            web.post(
                "/api/v1/staff/threads/{reference}/status",
                api.staff_thread_status,
                name="api_staff_thread_status",
            ),
            web.post(
                "/api/v1/staff/threads/{reference}/team",
                api.staff_thread_team,
                name="api_staff_thread_team",
            ),
            web.post(
                "/api/v1/staff/threads/{reference}/assignee",
                api.staff_thread_assignee,
                name="api_staff_thread_assignee",
            ),
            web.post(
                "/api/v1/staff/threads/{reference}/restricted",
                api.staff_thread_restricted,
                name="api_staff_thread_restricted",
            ),
            web.get("/staff/login", caseworker.login, name="staff_login"),
            web.post("/staff/login", caseworker.login_submit, name="staff_login_submit"),
            web.post("/staff/logout", caseworker.logout, name="staff_logout"),
            web.get("/staff/sso/start", sso.start, name="staff_sso_start"),
            web.get("/staff/sso/callback", sso.callback, name="staff_sso_callback"),
            web.get(
                "/staff/sign-in/second-factor",
                staff_security.second_factor_page,
                name="staff_second_factor",
            ),
            web.post(
                "/staff/sign-in/second-factor",
                staff_security.second_factor_submit,
                name="staff_second_factor_submit",
            ),
            web.get("/staff/security", staff_security.security_page, name="staff_security"),
            web.post(
                "/staff/login/passkey/options",
                passkeys.login_options,
                name="staff_passkey_login_options",
            ),
            web.post("/staff/login/passkey", passkeys.login_submit, name="staff_passkey_login"),
            web.post(
                "/staff/sign-in/passkey",
                passkeys.second_factor_submit,
                name="staff_passkey_second_factor",
            ),
            web.get(
                "/staff/security/passkeys/new", passkeys.register_page, name="staff_passkey_new"
            ),
            web.post(
                "/staff/security/passkeys/new",
                passkeys.register_submit,
                name="staff_passkey_register",
            ),
            web.post(
                "/staff/security/passkeys/remove", passkeys.remove, name="staff_remove_passkey"
            ),
            web.get("/staff/sessions", staff_sessions.sessions_page, name="staff_sessions"),
            web.post("/staff/sessions/end", staff_sessions.end_session, name="staff_end_session"),
            web.post(
                "/staff/sessions/end-others",
                staff_sessions.end_other_sessions,
                name="staff_end_other_sessions",
            ),
            web.post(
                "/staff/sessions/tokens/revoke",
                staff_sessions.revoke_token,
                name="staff_revoke_token",
            ),
            web.get("/staff/security/authenticator", staff_security.enrol_page, name="staff_enrol"),
            web.post(
                "/staff/security/authenticator",
                staff_security.enrol_submit,
                name="staff_enrol_submit",
            ),
            web.post(
                "/staff/security/authenticator/remove",
                staff_security.remove_authenticator,
                name="staff_remove_authenticator",
            ),
            web.post(
                "/staff/security/recovery-codes",
                staff_security.new_recovery_codes,
                name="staff_new_recovery_codes",
            ),
            web.get("/staff", caseworker.inbox, name="staff_inbox"),
            web.get("/staff/threads/{reference}", caseworker.thread_page, name="staff_thread"),
            web.get(
                "/staff/threads/{reference}/print", caseworker.print_page, name="staff_thread_print"
            ),
            web.get("/staff/statistics", statistics.page, name="staff_statistics"),
            web.get("/staff/statistics.csv", statistics.download, name="staff_statistics_csv"),
            *(
                web.post(
                    f"/staff/threads/{{reference}}/{action}", handler, name=f"staff_thread_{action}"
                )
                for action, handler in THREAD_ACTIONS.items()
            ),
            _attachment(
                "/staff/attachments/{attachment_id}",
                caseworker.attachment_download,
                "staff_attachment",
            ),
            _attachment(
                "/staff/attachments/{attachment_id}/preview",
                caseworker.attachment_preview,
                "staff_attachment_preview",
            ),
            web.post(
                "/staff/threads/{reference}/receipt",
                caseworker.receipt_check,
                name="staff_thread_receipt",
            ),
            web.get("/staff/password", caseworker.password_page, name="staff_password"),
            web.post("/staff/password", caseworker.password_submit, name="staff_password_submit"),
            web.get("/staff/set-password", caseworker.set_password_page, name="staff_set_password"),
            web.post(
                "/staff/set-password",
                caseworker.set_password_submit,
                name="staff_set_password_submit",
            ),
            web.get("/staff/audit", caseworker.audit_page, name="staff_audit"),
            web.get("/staff/admin", caseworker.admin_page, name="staff_admin"),
            web.post("/staff/admin", caseworker.admin_submit, name="staff_admin_submit"),
            web.get("/staff/support", support.staff_list, name="staff_support"),
            web.post("/staff/support", support.staff_submit, name="staff_support_submit"),
            # Before "{slug}", which would take "new" too ("new" is no page's slug).
            web.get("/staff/support/new", support.staff_new, name="staff_support_new"),
            web.get("/staff/support/{slug}", support.staff_edit, name="staff_support_edit"),
            web.get(
                "/staff/support/{slug}/versions/{version}",
                support.staff_version,
                name="staff_support_version",
            ),
            web.get("/dev/mail", devmail.dev_mail, name="dev_mail"),
            web.get("/staff/escalations", caseworker.escalations, name="staff_escalations"),
            web.get("/metrics", metrics.metrics, name="metrics"),
            web.get("/ops", caseworker.ops_page, name="ops"),
            web.post(
                r"/ops/dead-letters/{action:retry|dismiss}",
                caseworker.ops_action,
                name="ops_action",
            ),
            web.get("/healthz", ops.healthz, name="healthz"),
            web.get("/readyz", ops.readyz, name="readyz"),
        ]
    )
    # The ``.gz`` siblings (``make static``) are not addresses of their own: FileResponse sends
    # one instead of its file to a browser that accepts gzip, with ``Vary: Accept-Encoding``.
    files = {
        path.name: path for path in static_dir.iterdir() if path.is_file() and path.suffix != ".gz"
    }

    async def static(request: web.Request) -> web.FileResponse:
        """Only the files we ship: never a path outside, never aiohttp's bare 404 body."""
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    app.router.add_get("/static/{name}", static, name="static")
