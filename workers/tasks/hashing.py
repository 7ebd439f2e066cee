"""argon2id work on the ``hashing`` queue (CONTRACTS §2).

Arguments are ids and the peppered pre-hash, never a code; ``argsrepr`` is redacted by the sender.
Each task returns a boolean, kept 60 s.
"""

from __future__ import annotations

from uuid import UUID

from confide import codes, jobs
from confide.services import codes as code_service
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
