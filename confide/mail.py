"""E-mail: composing (never with report, message or note text, nor contact details) and SMTP.

Every mail has a ``Message-ID`` derived from its outbox row, so a rare resend after a crash
between the SMTP server's acceptance and our commit is recognisable as the same message.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formatdate
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

from confide.settings import Settings


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    tls: bool
    starttls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    tls = parts.scheme == "smtps"
    query = parse_qs(parts.query)
    return SmtpTarget(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (465 if tls else 25),
        tls=tls,
        starttls=query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def message_id(outbox_id: UUID, settings: Settings) -> str:
    domain = settings.mail_from.rpartition("@")[2] or "confide.invalid"
    return f"<{outbox_id}@{domain}>"


def compose(
    settings: Settings, outbox_id: UUID, *, to: str, subject: str, text: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id(outbox_id, settings)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    return msg


def send(settings: Settings, msg: EmailMessage, timeout: float = 20.0) -> None:
    """Blocking SMTP send (workers are synchronous). Raises SMTPException/OSError on failure."""
    if not settings.smtp_url:
        raise smtplib.SMTPServerDisconnected("SMTP_URL is not set")
    target = parse_smtp_url(settings.smtp_url)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if target.tls:
        smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=timeout)
    with smtp:
        if target.starttls:
            smtp.starttls(context=context)
        if target.username:
            smtp.login(target.username, target.password or "")
        smtp.send_message(msg)


__all__ = ["SmtpTarget", "compose", "format_datetime", "message_id", "parse_smtp_url", "send"]
