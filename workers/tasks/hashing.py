"""argon2id work on the ``hashing`` queue (CONTRACTS §2).

Arguments are ids and the peppered pre-hash, never a code; ``argsrepr`` is redacted by the sender.
Each task publishes a boolean sealed with an HMAC bound to the task (``codes.seal_result``), kept
60 s (:mod:`workers.hash_results`): a writer to Redis cannot forge a "true" that the web would
accept.
"""

from __future__ import annotations

from functools import cache
from uuid import UUID

from argon2 import PasswordHasher
from celery import Task, shared_task, states

from confide import codes, jobs
from confide.services import codes as code_service
from confide.sql import codes as sql_codes
from workers import context, db, hash_results


@cache
def _tools() -> tuple[PasswordHasher, bytes]:
    """The argon2 hasher and the results' HMAC key (never sent to Redis), once per process."""
    settings = context.settings()
    return codes.hasher(settings), codes.result_key(settings)


@shared_task(bind=True, name=jobs.STORE_CODE_VERIFIER, ignore_result=True, acks_late=True)
def store_code_verifier(self: Task, thread_id: str, issue_id: str, prehash_b64: str) -> None:
    """Hash and commit the verifier for one issued code. Idempotent: a rerun finds it stored."""
    task_id = self.request.id
    with hash_results.failure_published(task_id):
        hasher, result_key = _tools()
        verifier = codes.make_verifier(hasher, codes.decode_prehash(prehash_b64))

        async def commit() -> bool:
            ctx = await context.current()
            return await code_service.commit_verifier(
                ctx, UUID(thread_id), UUID(issue_id), verifier
            )

        stored = db.run(commit())
        sealed = codes.seal_result(result_key, jobs.STORE_CODE_VERIFIER, task_id, stored)
        hash_results.publish(task_id, states.SUCCESS, sealed)


@shared_task(bind=True, name=jobs.CHECK_CODE, ignore_result=True, acks_late=True)
def check_code(self: Task, issue_id: str, prehash_b64: str) -> None:
    """One argon2id verification of a login attempt against one code (a report may have up to
    three); the verifier is re-read from PostgreSQL."""
    task_id = self.request.id
    with hash_results.failure_published(task_id):
        hasher, result_key = _tools()
        prehash = codes.decode_prehash(prehash_b64)

        async def verifier() -> str | None:
            ctx = await context.current()
            async with ctx.pool.acquire() as conn:
                return await sql_codes.verifier_for_issue(conn, UUID(issue_id))

        stored = db.run(verifier())
        matches = stored is not None and codes.check_verifier(hasher, stored, prehash)
        sealed = codes.seal_result(result_key, jobs.CHECK_CODE, task_id, matches)
        hash_results.publish(task_id, states.SUCCESS, sealed)
