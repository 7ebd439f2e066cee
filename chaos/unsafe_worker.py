"""The negative control's worker: the outbox and late acks switched off, in this process only.

``python -m chaos.unsafe_worker worker -Q …`` runs the normal Celery worker after three patches,
which exist here and nowhere in the product:

- tasks are acknowledged when received (no ``acks_late``, no requeue when a worker dies);
- the relay hands a row to Redis once and forgets it: it leases the row forever, so neither the
  beat relay nor a later kick publishes it again, and Redis holds the only copy of the work;
- a delivery claims its row without looking at the lease.

A harness that counts no losses with these switches could not see a loss at all.
"""

from __future__ import annotations

import sys
from uuid import UUID

from asyncpg import Connection

from confide.sql import outbox as sql_outbox


async def _hand_off(conn: Connection, limit: int) -> list[UUID]:
    rows = await conn.fetch(
        """UPDATE outbox SET leased_until = 'infinity'
           WHERE id IN (SELECT id FROM outbox
                        WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                          AND (leased_until IS NULL OR leased_until < now())
                        ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id""",
        limit,
    )
    return [r["id"] for r in rows]


async def _claim_any(conn: Connection, outbox_id: UUID) -> sql_outbox.OutboxItem | None:
    row = await conn.fetchrow(
        """UPDATE outbox SET attempts = attempts + 1
           WHERE id = $1 AND sent_at IS NULL AND failed_at IS NULL
           RETURNING id, kind, thread_id, team_id, staff_id, recipient, payload, attempts,
                     created_at""",
        outbox_id,
    )
    return None if row is None else sql_outbox.outbox_item(row)


def main() -> None:
    sql_outbox.due_ids = _hand_off
    sql_outbox.claim = _claim_any
    from workers import celery_app
    from workers.tasks import delivery, hashing

    celery_app.app.conf.task_acks_late = False
    celery_app.app.conf.task_reject_on_worker_lost = False
    for task in (delivery.deliver_outbox_item, delivery.relay_outbox, delivery.escalate_threads):
        task.acks_late = False
        task.reject_on_worker_lost = False
    del hashing  # imported for its task registrations only
    celery_app.app.worker_main(sys.argv[1:])


if __name__ == "__main__":
    main()
