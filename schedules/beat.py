"""Periodic entries only; the logic lives in confide/ and workers/."""

from __future__ import annotations

from typing import Any

from confide import jobs
from confide.settings import Settings

# Beat's own heartbeat is written by workers.scheduler.HeartbeatScheduler every 30 s.
OUTBOX_RELAY_EVERY_S = 15.0
PURGE_EVERY_S = 60.0  # a confirmation's code is wiped within a minute of its 10 (drafts)
LIFECYCLE_EVERY_S = 3600.0  # retention is counted in days: hourly is prompt enough
STATISTICS_EVERY_S = 300.0  # the statistics page is at most five minutes behind


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    every = float(settings.escalation_interval_s)
    return {
        # Marks nearing/overdue threads; at digest time on working days, queues the digests.
        "escalate-threads": {
            "task": jobs.ESCALATE,
            "schedule": every,
            "options": {"expires": every, "queue": jobs.DEFAULT_QUEUE},
        },
        # Re-publishes outbox rows whose immediate publish was lost (Redis restart, crash).
        "relay-outbox": {
            "task": jobs.RELAY_OUTBOX,
            "schedule": OUTBOX_RELAY_EVERY_S,
            "options": {"expires": OUTBOX_RELAY_EVERY_S, "queue": jobs.DEFAULT_QUEUE},
        },
        # Forgets expired sessions and drafts, and idempotency keys older than 24 h.
        "purge-expired": {
            "task": jobs.PURGE_EXPIRED,
            "schedule": PURGE_EVERY_S,
            "options": {"expires": PURGE_EVERY_S, "queue": jobs.DEFAULT_QUEUE},
        },
        # Auto-close, inactivity closes, erasure warnings and erasure (docs/lifecycle.md).
        "lifecycle-pass": {
            "task": jobs.LIFECYCLE,
            "schedule": LIFECYCLE_EVERY_S,
            "options": {"expires": LIFECYCLE_EVERY_S, "queue": jobs.DEFAULT_QUEUE},
        },
        # Statistics: facts of threads changed since the last pass, then their monthly summaries
        # (nothing is added to the report-submission request; the page reads the summaries).
        "refresh-statistics": {
            "task": jobs.REFRESH_STATISTICS,
            "schedule": STATISTICS_EVERY_S,
            "options": {"expires": STATISTICS_EVERY_S, "queue": jobs.DEFAULT_QUEUE},
        },
    }
