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

from aiohttp import web

from chaos.unsafe_worker import _hand_off
from confide import jobs
from confide.db import Pool
from webapp import jobs as web_jobs
from webapp.keys import POOL

_POOLS: list[Pool] = []


def _fire_and_forget(self: web_jobs.OutboxKicker) -> None:
    loop = asyncio.get_running_loop()
    client, io = self._client, self._io
    if client is None or io is None or not _POOLS:
        return

    async def publish() -> None:
        async with _POOLS[0].acquire() as conn:
            ids = await _hand_off(conn, 500)
        for outbox_id in ids:
            send = functools.partial(
                client.send_task,
                jobs.DELIVER,
                args=[str(outbox_id)],
                argsrepr="(<outbox>)",
                kwargsrepr="{}",
                queue=jobs.DEFAULT_QUEUE,
                ignore_result=True,
            )
            await loop.run_in_executor(io, send)

    task = loop.create_task(publish())
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def main() -> int:
    web_jobs.OutboxKicker.__call__ = _fire_and_forget  # type: ignore[method-assign]
    import webapp.__main__ as web_main_module

    make_app = web_main_module.create_app  # type: ignore[attr-defined]

    def create_app(settings: object) -> web.Application:
        app = make_app(settings)  # type: ignore[arg-type]

        async def remember_pool(app: web.Application) -> None:
            _POOLS.append(app[POOL])

        app.on_startup.append(remember_pool)
        return app

    web_main_module.create_app = create_app  # type: ignore[attr-defined]
    return web_main_module.main()


if __name__ == "__main__":
    sys.exit(main())
