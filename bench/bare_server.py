"""The bare baseline for report submission: the least an aiohttp app can do for the same form.

``python -m bench.bare_server --port N --dsn DSN`` serves ``POST /report/submit``: read the
urlencoded form, one asyncpg INSERT (autocommit, pool of 10 like Confide's), render a small jinja2
page. No validation, encryption, idempotency, logging or security headers: the gap between this
and Confide is what those cost. ``reuse_port`` lets N copies share one port, as Confide's do.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web

TABLE = "bench_bare_reports"
CREATE_TABLE = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    category     text NOT NULL,
    description  text NOT NULL
)"""
INSERT = f"INSERT INTO {TABLE} (category, description) VALUES ($1, $2) RETURNING id"
RECEIVED_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Report received</title></head>
<body><main>
<h1>Report received</h1>
<p>Your reference <strong>{{ reference }}</strong> ({{ category }})</p>
<p>The right team will read your report. This is not an emergency service: call 999.</p>
<ul>{% for line in next_steps %}<li>{{ line }}</li>{% endfor %}</ul>
</main></body></html>
"""
DSN = web.AppKey("dsn", str)
POOL = web.AppKey("pool", asyncpg.Pool)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@aiohttp_jinja2.template("received.html")
async def submit(request: web.Request) -> dict[str, object]:
    form = await request.post()
    category = str(form.get("category", ""))
    description = str(form.get("description", ""))
    async with request.app[POOL].acquire() as conn:
        report_id = await conn.fetchval(INSERT, category, description)
    return {
        "reference": f"B-{report_id:08d}",
        "category": category,
        "next_steps": ["We aim to reply within 2 working days", "Keep your reference"],
    }


async def _pool(app: web.Application) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(app[DSN], min_size=10, max_size=10)
    app[POOL] = pool
    yield
    await pool.close()


def make_app(dsn: str) -> web.Application:
    app = web.Application()
    app[DSN] = dsn
    app.cleanup_ctx.append(_pool)
    aiohttp_jinja2.setup(
        app, loader=jinja2.DictLoader({"received.html": RECEIVED_HTML}), autoescape=True
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/report/submit", submit)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    args = parser.parse_args()
    web.run_app(
        make_app(args.dsn),
        host="127.0.0.1",
        port=args.port,
        reuse_port=True,
        access_log=None,
        print=None,
    )
