"""Periodic entries only; the logic lives in confide/ and workers/."""

from __future__ import annotations

from typing import Any

# Beat's own heartbeat is written by workers.scheduler.HeartbeatScheduler every 30 s.
# The escalation sweep, digests and the outbox relay join here (issues 5 and 7).
beat_schedule: dict[str, dict[str, Any]] = {}
