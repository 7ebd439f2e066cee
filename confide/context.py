"""The service context: what every service needs, built once per process.

The web app builds it at start-up (``webapp.app``, once the pool exists) and each worker process
builds its own (``workers.context``). Services take it as their first argument, own their
transaction, and call :meth:`Context.after_commit` themselves once a write that left outbox
rows has committed, so no caller can forget to wake the relay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confide.clock_rules import DEFAULT_RULES, ClockRules
from confide.crypto import Keyring
from confide.db import Pool
from confide.files.limits import AttachmentLimits
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings


def _nothing() -> None:
    return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Context:
    pool: Pool
    settings: Settings
    keyring: Keyring
    calendar: WorkingCalendar
    # A wake-up only: the relay's periodic pass finds every committed outbox row anyway. The web
    # sends a throttled "relay now" task; a worker needs none (its own relay runs on a beat).
    wake_outbox: Callable[[], None] = field(default=_nothing)
    # The time that lifecycle rules (retention, auto-close, statutory clocks) judge by. Tests and
    # `--as-of` passes give a fixed clock here instead of sleeping.
    clock: Callable[[], datetime] = field(default=_utc_now)
    # The organisation file's auto-close and statutory-clock rules (confide.clock_rules).
    rules: ClockRules = DEFAULT_RULES
    # The organisation file's ``[attachments]`` limits (files per report or message, sizes, types).
    attachments: AttachmentLimits = field(default_factory=AttachmentLimits)

    def after_commit(self) -> None:
        """Call after a transaction that added outbox rows has committed."""
        self.wake_outbox()
