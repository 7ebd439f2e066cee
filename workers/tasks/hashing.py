"""argon2id work on the ``hashing`` queue (CONTRACTS §2).

Arguments are ids and the peppered pre-hash, never a code; ``argsrepr`` is redacted by the sender.
Each task returns a boolean, kept 60 s.
"""

from __future__ import annotations

from uuid import UUID

from confide import codes, jobs
from confide.services import codes as code_service
from confide.sql import codes as sql_codes
from workers import db
from workers.celery_app import app, settings

_hasher = codes.hasher(settings)


@app.task(name=jobs.STORE_CODE_VERIFIER, ignore_result=False, acks_late=True)
def store_code_verifier(thread_id: str, issue_id: str, prehash_b64: str) -> bool:
    """Hash and commit the verifier for one issued code. Idempotent: a rerun finds it stored."""
    verifier = codes.make_verifier(_hasher, codes.decode_prehash(prehash_b64))

    async def commit() -> bool:
        pool = await db.pool(settings)
        return await code_service.commit_verifier(pool, UUID(thread_id), UUID(issue_id), verifier)

    return db.run(commit())


@app.task(name=jobs.CHECK_CODE, ignore_result=False, acks_late=True)
def check_code(issue_id: str, prehash_b64: str) -> bool:
    """One argon2id verification of a login attempt against one code (a report may have up to
    three); the verifier is re-read from PostgreSQL."""
    prehash = codes.decode_prehash(prehash_b64)

    async def verifier() -> str | None:
        pool = await db.pool(settings)
        async with pool.acquire() as conn:
            return await sql_codes.verifier_for_issue(conn, UUID(issue_id))

    stored = db.run(verifier())
    return stored is not None and codes.check_verifier(_hasher, stored, prehash)
