"""The bare baseline for report submission: the least an aiohttp app can do for the same form.

``python -m bench.bare_server --port N --dsn DSN`` serves ``POST /report/submit``: read the
urlencoded form, one asyncpg INSERT (autocommit, a pool as big as Confide's default), render a small jinja2
page. No validation, encryption, idempotency, logging or security headers: the gap between this
and Confide is what those cost. ``reuse_port`` lets N copies share one port, as Confide's do.

It also serves ``POST /api/v1/reporter/session``, the baseline of the ``wrong_codes`` benchmark:
read the JSON body, HMAC the code's first 6 characters, ONE indexed SELECT on
``reporter_codes.lookup_hmac`` (bytea, unique) and a small JSON answer: 401 when no row matches.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
from collections.abc import AsyncIterator

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web

from confide.settings import Settings

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
LOOKUP = "SELECT thread_id, verifier FROM reporter_codes WHERE lookup_hmac = $1"
LOOKUP_KEY = b"bench-bare-lookup"
DSN = web.AppKey("dsn", str)
POOL = web.AppKey("pool", asyncpg.Pool)
# The same connections as Confide gets by default (CONFIDE_DB_POOL_SIZE), so neither side waits
# for a connection the other would have had.
POOL_SIZE = Settings.db_pool_size


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


async def lookup(request: web.Request) -> web.Response:
    code = str((await request.json()).get("code", "")).replace("-", "").upper()
    key = hmac.new(LOOKUP_KEY, code[:6].encode(), hashlib.sha256).digest()
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(LOOKUP, key)
    if row is None:
        return web.json_response({"title": "Not recognised", "status": 401}, status=401)
    return web.json_response({"thread_id": str(row["thread_id"])})


async def _pool(app: web.Application) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(app[DSN], min_size=POOL_SIZE, max_size=POOL_SIZE)
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
    app.router.add_post("/api/v1/reporter/session", lookup)
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
