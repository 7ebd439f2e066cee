"""SQL for ``GET /metrics``: one query over small summary tables, whatever the number of threads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class WorkerAge:
    name: str
    age: float | None  # seconds since its last heartbeat


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The figures of ``GET /metrics``; moments are Unix times, None where never recorded."""

    awaiting: int
    nearing: int
    overdue: int
    outbox_pending: int
    outbox_oldest: float | None  # seconds
    dead_letters: int
    escalation: float | None
    digest: float | None
    beat: float | None
    workers: list[WorkerAge]


def _float(value: Decimal | float | None) -> float | None:  # extract() gives numeric
    return None if value is None else float(value)


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


async def snapshot(conn: Connection) -> Snapshot:
    """Thread, outbox, job and heartbeat figures; ``workers`` is JSON ``[{"name", "age"}]``."""
    row = await conn.fetchrow(SNAPSHOT)
    return Snapshot(
        awaiting=int(row["awaiting"]),
        nearing=int(row["nearing"]),
        overdue=int(row["overdue"]),
        outbox_pending=int(row["outbox_pending"]),
        outbox_oldest=_float(row["outbox_oldest"]),
        dead_letters=int(row["dead_letters"]),
        escalation=_float(row["escalation"]),
        digest=_float(row["digest"]),
        beat=_float(row["beat"]),
        workers=[WorkerAge(w["name"], _float(w["age"])) for w in json.loads(row["workers"])],
    )
