"""The domain's closed sets of values: roles, thread statuses, escalation marks, session kinds,
message authors.

They are ``StrEnum``s: each member is its own text, so it goes into SQL parameters, JSON,
templates and logs unchanged, and a value read back from PostgreSQL compares equal to it.
The database keeps plain text columns with CHECK constraints on the same sets (migrations).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CASEWORKER = "caseworker"
    MANAGER = "manager"
    ADMIN = "admin"
    OPS = "ops"  # watches queues and workers; reads no thread, anywhere


# The roles that read threads (ops reads none), and those that need a team to be added.
THREAD_READER_ROLES: tuple[Role, ...] = (Role.CASEWORKER, Role.MANAGER, Role.ADMIN)
TEAM_ROLES: tuple[Role, ...] = (Role.CASEWORKER, Role.MANAGER)


class ThreadStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CONTACTED = "contacted"  # a report with contact details, taken up outside Confide


class Escalation(StrEnum):
    NONE = "none"
    NEARING = "nearing"
    OVERDUE = "overdue"


class SessionKind(StrEnum):
    REPORTER = "reporter"
    STAFF = "staff"


class Author(StrEnum):
    REPORTER = "reporter"
    CASEWORKER = "caseworker"
