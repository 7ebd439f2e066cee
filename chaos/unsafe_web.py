"""The negative control's web process: no outbox relay, fire-and-forget delivery tasks.

``python -m chaos.unsafe_web`` runs the normal web process, except that after a commit it hands
every due outbox row straight to Redis as a delivery task and leases the row forever (see
:mod:`chaos.unsafe_worker`), as a design without an outbox would: Redis then holds the only copy
of the work. This patch exists here and nowhere in the product.
"""

from __future__ import annotations

import asyncio
import functools
import sys

from chaos.unsafe_worker import _hand_off
from confide import jobs
from webapp import jobs as web_jobs


def _fire_and_forget(self: web_jobs.CodeHasher) -> None:
    loop = asyncio.get_running_loop()

    async def publish() -> None:
        async with self.pool.acquire() as conn:
            ids = await _hand_off(conn, 500)
        for outbox_id in ids:
            send = functools.partial(
                self.client.send_task,
                jobs.DELIVER,
                args=[str(outbox_id)],
                argsrepr="(<outbox>)",
                kwargsrepr="{}",
                queue=jobs.DEFAULT_QUEUE,
                ignore_result=True,
            )
            await loop.run_in_executor(self.io, send)

    task = loop.create_task(publish())
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def main() -> int:
    web_jobs.CodeHasher.kick_outbox = _fire_and_forget  # type: ignore[method-assign]
    from webapp.__main__ import main as web_main

    return web_main()


if __name__ == "__main__":
    sys.exit(main())
