"""Names of background jobs and their queues, shared by the web process and the workers.

Only ids (and, for hashing, a peppered pre-hash) ever travel as arguments (CONTRACTS §2, §6).
"""

from __future__ import annotations

HASHING_QUEUE = "hashing"
FILES_QUEUE = "files"  # attachment stripping: large files never delay mail or escalation
DEFAULT_QUEUE = "default"
QUEUES = (HASHING_QUEUE, DEFAULT_QUEUE, FILES_QUEUE)  # what `confide run` and the tests consume

STORE_CODE_VERIFIER = "confide.store_code_verifier"
CHECK_CODE = "confide.check_code"
DELIVER = "confide.deliver_outbox_item"
RELAY_OUTBOX = "confide.relay_outbox"
ESCALATE = "confide.escalate_threads"
PURGE_EXPIRED = "confide.purge_expired"
LIFECYCLE = "confide.run_lifecycle_pass"
REFRESH_STATISTICS = "confide.refresh_statistics"
STRIP_ATTACHMENT = "confide.strip_attachment"

BEAT_HEARTBEAT_NAME = "beat"
BEAT_INTERVAL_S = 30
BEAT_STALE_AFTER_S = 90
WORKER_HEARTBEAT_S = 10

REDACTED_ARGS = "(<ids>, <redacted>)"
# Where a hashing task's sealed boolean is kept (and published, on the channel of the same name),
# in the shape of Celery's Redis result backend, and for how long.
HASH_RESULT_PREFIX = "celery-task-meta-"
HASH_RESULT_TTL_S = 60

# Longer than any task may run (the workers' task_time_limit), so none runs twice.
VISIBILITY_TIMEOUT_S = 600


def celery_config(**transport_options: float) -> dict[str, object]:
    """The Celery settings the web's client and the workers' app share, so that what one sends
    the other accepts and routes alike. Each adds its own on top (``webapp.jobs.make_client``:
    fail fast; ``workers.celery_app``: late acks, limits, results), and its broker URL from the
    settings. ``transport_options`` join the broker's transport options.

    Plain values, no Celery import: ``confide`` knows nothing of Celery but these names.
    """
    return {
        # JSON only: pickle would let anyone who can write to Redis run code in the workers.
        "task_serializer": "json",
        "accept_content": ["json"],
        # Routing: argon2 work alone on "hashing", so logins never wait behind other work, and
        # attachment stripping on "files", so a 20 MiB PDF never delays a mail.
        "task_default_queue": DEFAULT_QUEUE,
        "task_routes": {
            STORE_CODE_VERIFIER: {"queue": HASHING_QUEUE},
            CHECK_CODE: {"queue": HASHING_QUEUE},
            STRIP_ATTACHMENT: {"queue": FILES_QUEUE},
        },
        # Set the same everywhere: kombu's Redis transport restores unacked messages after it.
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            **transport_options,
        },
    }
