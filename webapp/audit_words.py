"""What an audit row's action means, in words, for the audit log page (``|audit_words``).

The stored action stays a stable code (tests, exports and the database rely on it). An action
added later without words here is shown as its code with spaces, never hidden.
"""

from __future__ import annotations

from webapp.i18n import N_, _

WORDS = {
    "view": N_("Opened the thread"),
    "print": N_("Opened the printable case record"),
    "reply": N_("Replied to the reporter"),
    "auto_close": N_("Closed automatically: the reporter had not written since the last reply"),
    "auto_acknowledgement": N_("Sent the automatic acknowledgement"),
    "note": N_("Added a note"),
    "status": N_("Changed the status"),
    "team": N_("Moved to another team"),
    "assign": N_("Changed who it is assigned to"),
    "restrict": N_("Changed who may see it"),
    "link": N_("Linked to another report"),
    "unlink": N_("Removed a link to another report"),
    "receipt_check": N_("Checked a reporter's receipt"),
    "attachment_download": N_("Downloaded an attached file"),
    "attachment_preview": N_("Previewed an attached image"),
    "attachment_release": N_("Released a file that could not be made safe"),
    "retention_extended": N_("Extended how long it is kept"),
    "legal_hold_set": N_("Set a legal hold"),
    "legal_hold_lifted": N_("Lifted a legal hold"),
    "erased": N_("Erased at the end of its retention period"),
    "admin_team": N_("Changed a team"),
    "admin_category": N_("Changed a category"),
    "admin_join": N_("Added a member to a team"),
    "admin_leave": N_("Removed a member from a team"),
    "admin_support_page": N_("Edited a support page"),
    "ops_retry": N_("Retried a failed message"),
    "ops_dismiss": N_("Dismissed a failed message"),
    "second_factor_enrolled": N_("Set up a second factor"),
    "second_factor_removed": N_("Removed a second factor"),
    "second_factor_failed": N_("Entered a wrong second-factor code"),
    "second_factor_reset": N_("Second factors reset by an administrator"),
    "passkey_registered": N_("Added a passkey"),
    "passkey_removed": N_("Removed a passkey"),
    "passkey_failed": N_("A passkey was refused"),
    "recovery_code_used": N_("Signed in with a recovery code"),
    "recovery_codes_regenerated": N_("Made new recovery codes"),
    "sso_sign_in": N_("Signed in through single sign-on"),
    "sso_failed": N_("Single sign-on refused"),
    "sso_identity_bound": N_("Account linked to the organisation's sign-in"),
}


def audit_words(action: str) -> str:
    words = WORDS.get(action)
    return _(words) if words is not None else action.replace("_", " ")
