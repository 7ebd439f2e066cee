"""The worker's service context (:class:`confide.context.Context`).

Its process-wide parts (settings, keyring, working calendar) are built once per process by
:func:`init`, which the Celery signals call in every kind of pool: ``worker_process_init`` in
each prefork child, ``worker_init`` for the solo and threads pools (and the prefork parent), and
``beat_init`` in beat. The pool belongs to the calling thread's event loop (``workers.db``), so
:func:`current` pairs those parts with this thread's pool. A worker needs no outbox wake-up: its
relay runs on a beat and after each escalation pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from confide import org as org_file
from confide.clock_rules import ClockRules
from confide.context import Context
from confide.crypto import Keyring
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings
from workers import db


@dataclass(frozen=True, slots=True)
class _Parts:
    settings: Settings
    keyring: Keyring
    calendar: WorkingCalendar
    rules: ClockRules


_settings: Settings | None = None
_parts: _Parts | None = None
_lock = threading.RLock()
_local = threading.local()


def settings() -> Settings:
    """This process's settings, read from the environment on first use."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.from_env()
        return _settings


def init() -> None:
    """Build this process's parts (idempotent)."""
    global _parts
    with _lock:
        if _parts is None:
            current = settings()
            org = org_file.load(current.org_file)
            _parts = _Parts(
                current,
                Keyring.from_secret(current.encryption_keys),
                WorkingCalendar.for_org(org),
                org.clock_rules,
            )


async def current() -> Context:
    """The context for a task running on this thread's loop."""
    parts = _parts
    if parts is None:
        raise RuntimeError("workers.context.init() has not run in this process")
    pool = await db.pool(parts.settings)
    ctx: Context | None = getattr(_local, "ctx", None)
    if ctx is None or ctx.pool is not pool or ctx.settings is not parts.settings:
        ctx = Context(pool, parts.settings, parts.keyring, parts.calendar, rules=parts.rules)
        _local.ctx = ctx
    return ctx


def reset_after_fork() -> None:
    """A forked child builds its own context on first use (its pool is new)."""
    _local.__dict__.clear()
