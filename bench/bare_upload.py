"""The bare baseline for uploads: the least an aiohttp app can do to keep a streamed file in
PostgreSQL.

``python -m bench.bare_upload --port N --dsn DSN`` serves ``POST /api/v1/uploads``: read the
``multipart/form-data`` body as it streams, and write the part named ``file`` to a bytea chunks
table in chunks of :data:`CHUNK_BYTES` (Confide's chunk size, ``confide.files.store``), one
autocommit INSERT a chunk from a pool of 10 without a reset query on release (as Confide's
store writes, through ``confide.db.create_pool``), then one row for the upload; answer 201 with
its id and size. The chunks table is TOAST ``EXTERNAL`` like Confide's,
so neither side tries to compress. No type check, limits, hashing, encryption or binding to a
caller: the gap between this and Confide is what those cost.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import BodyPartReader, web

CHUNK_BYTES = 256 * 1024
READ_BYTES = 64 * 1024
UPLOADS = "bench_bare_uploads"
CHUNKS = "bench_bare_upload_chunks"
CREATE = (
    f"""CREATE TABLE IF NOT EXISTS {UPLOADS} (
        id bigserial PRIMARY KEY, size bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
    )""",
    f"""CREATE TABLE IF NOT EXISTS {CHUNKS} (
        upload_id bigint NOT NULL, idx integer NOT NULL, data bytea NOT NULL,
        PRIMARY KEY (upload_id, idx)
    )""",
    f"ALTER TABLE {CHUNKS} ALTER COLUMN data SET STORAGE EXTERNAL",
)
DROP = f"DROP TABLE IF EXISTS {UPLOADS}, {CHUNKS}"
EMPTY = f"TRUNCATE {UPLOADS}, {CHUNKS}"
NEXT_ID = f"SELECT nextval('{UPLOADS}_id_seq')"
PUT = f"INSERT INTO {CHUNKS} (upload_id, idx, data) VALUES ($1, $2, $3)"
DONE = f"INSERT INTO {UPLOADS} (id, size) VALUES ($1, $2)"
POOL = web.AppKey("pool", asyncpg.Pool)
DSN = web.AppKey("dsn", str)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def upload(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        async with pool.acquire() as conn:
            upload_id = await conn.fetchval(NEXT_ID)
        buffer = bytearray()
        index = size = 0
        while chunk := await part.read_chunk(READ_BYTES):
            buffer += chunk
            size += len(chunk)
            while len(buffer) >= CHUNK_BYTES:
                async with pool.acquire() as conn:
                    await conn.execute(PUT, upload_id, index, bytes(buffer[:CHUNK_BYTES]))
                del buffer[:CHUNK_BYTES]
                index += 1
        async with pool.acquire() as conn:
            if buffer or index == 0:
                await conn.execute(PUT, upload_id, index, bytes(buffer))
            await conn.execute(DONE, upload_id, size)
        return web.json_response({"upload_id": str(upload_id), "size": size}, status=201)
    return web.json_response({"title": "No file", "status": 422}, status=422)


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


async def _pool(app: web.Application) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(app[DSN], min_size=10, max_size=10, reset=_no_reset)
    async with pool.acquire() as conn:
        for statement in CREATE:
            await conn.execute(statement)
    app[POOL] = pool
    yield
    await pool.close()


def make_app(dsn: str) -> web.Application:
    app = web.Application()
    app[DSN] = dsn
    app.cleanup_ctx.append(_pool)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/v1/uploads", upload)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.dsn), host="127.0.0.1", port=args.port, access_log=None, print=None)
