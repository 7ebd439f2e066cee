"""Names of background jobs and their queues, shared by the web process and the workers.

Only ids (and, for hashing, a peppered pre-hash) ever travel as arguments (CONTRACTS §2, §6).
"""

from __future__ import annotations

HASHING_QUEUE = "hashing"
DEFAULT_QUEUE = "default"

STORE_CODE_VERIFIER = "confide.store_code_verifier"
CHECK_CODE = "confide.check_code"
DELIVER = "confide.deliver_outbox_item"
RELAY_OUTBOX = "confide.relay_outbox"
ESCALATE = "confide.escalate_threads"
PURGE_EXPIRED = "confide.purge_expired"

BEAT_HEARTBEAT_NAME = "beat"
BEAT_INTERVAL_S = 30
BEAT_STALE_AFTER_S = 90
WORKER_HEARTBEAT_S = 10

REDACTED_ARGS = "(<ids>, <redacted>)"
