"""SQL for ``GET /metrics``: one query over small summary tables, whatever the number of threads."""

from __future__ import annotations

from asyncpg import Connection, Record

SNAPSHOT = """
SELECT
  (SELECT coalesce(sum(awaiting), 0) FROM team_deadline_summary) AS awaiting,
  (SELECT coalesce(sum(nearing), 0) FROM team_deadline_summary) AS nearing,
  (SELECT coalesce(sum(overdue), 0) FROM team_deadline_summary) AS overdue,
  (SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL) AS outbox_pending,
  (SELECT extract(epoch FROM now() - min(created_at)) FROM outbox
     WHERE sent_at IS NULL AND failed_at IS NULL) AS outbox_oldest,
  (SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL) AS dead_letters,
  (SELECT extract(epoch FROM last_success) FROM job_runs WHERE name = 'escalation') AS escalation,
  (SELECT extract(epoch FROM last_success) FROM job_runs WHERE name = 'digest') AS digest,
  (SELECT extract(epoch FROM last_tick) FROM heartbeats WHERE name = 'beat') AS beat,
  (SELECT coalesce(json_agg(json_build_object('name', substr(name, 8),
                                              'age', extract(epoch FROM now() - last_tick))), '[]')
     FROM heartbeats WHERE name LIKE 'worker:%') AS workers
"""


async def snapshot(conn: Connection) -> Record:
    """Thread, outbox, job and heartbeat figures; ``workers`` is JSON ``[{"name", "age"}]``."""
    row: Record = await conn.fetchrow(SNAPSHOT)
    return row
