"""The OpenAPI 3.1 document served at /api/v1/openapi.json (CONTRACTS §3)."""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# What a client does next with a receipt or a session (OpenAPI links; schemathesis follows them
# in `make chaos`: submit -> log in -> message, and the staff reply to the same thread).
RECEIPT_LINKS = {
    "LogIn": {
        "operationId": "reporterLogin",
        "description": "Log in with the one-time code (anonymous reports with follow-up)",
        "requestBody": {"code": "$response.body#/code"},
    },
    "StaffReply": {
        "operationId": "staffThreadMessages",
        "description": "A case worker replies to this report (staff bearer token)",
        "parameters": {"path.reference": "$response.body#/reference"},
    },
}
SESSION_LINKS = {
    "Message": {
        "operationId": "reporterMessage",
        "description": "Send a message, with this token as the bearer token",
    },
    "Thread": {
        "operationId": "reporterThread",
        "description": "Read the report and its messages, with this token as the bearer token",
    },
}
AUTH_ERRORS = {
    "401": _problem("No valid session or token"),
    "404": _problem("Not found, or not yours to see"),
}
BODY_ERRORS = {
    "400": _problem("Malformed JSON or invalid UTF-8"),
    "413": _problem("Body over 1 MiB"),
    "415": _problem("Not application/json"),
    "422": _problem("Invalid fields, listed in errors[]"),
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "16 to 255 visible ASCII characters, scoped to its endpoint and author. "
    "A repeat with the same request returns the first answer (200); with a different request "
    "422 (type ending /idempotency-key-reused); while the first is still running 409.",
    "schema": {"type": "string", "minLength": 16, "maxLength": 255, "pattern": "^[!-~]+$"},
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _text_body(max_len: int) -> dict[str, Any]:
    return _body(
        {
            "type": "object",
            "required": ["body"],
            "properties": {"body": {"type": "string", "minLength": 1, "maxLength": max_len}},
        }
    )


def _session_paths() -> dict[str, Any]:
    session = _ref("Session")
    staff_action = {
        "status": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"enum": ["open", "closed", "contacted"]}},
        },
        "team": {
            "type": "object",
            "required": ["team"],
            "properties": {"team": {"type": "string"}},
        },
        "assignee": {
            "type": "object",
            "required": ["email"],
            "properties": {"email": {"type": ["string", "null"]}},
        },
        "restricted": {
            "type": "object",
            "required": ["restricted"],
            "properties": {"restricted": {"type": "boolean"}},
        },
    }
    paths: dict[str, Any] = {
        "/api/v1/reporter/session": {
            "post": {
                "operationId": "reporterLogin",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["code"],
                        "properties": {"code": {"type": "string"}},
                    }
                ),
                "responses": {
                    "200": {**_json(session, "Logged in"), "links": SESSION_LINKS},
                    "401": _problem("Not recognised (reveals nothing more)"),
                    "429": _problem("Too many attempts; see Retry-After"),
                    **BODY_ERRORS,
                },
            },
            "delete": {
                "operationId": "reporterLogout",
                "security": BEARER,
                "responses": {"204": {"description": "Logged out"}, "401": _problem("No session")},
            },
        },
        "/api/v1/reporter/thread": {
            "get": {
                "operationId": "reporterThread",
                "security": BEARER,
                "responses": {
                    "200": _json(_ref("ReporterThread"), "The reporter's own report"),
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/reporter/messages": {
            "post": {
                "operationId": "reporterMessage",
                "security": BEARER,
                "parameters": [IDEMPOTENCY],
                "requestBody": _text_body(10_000),
                "responses": {
                    "201": _json(_ref("Sent"), "Committed"),
                    "200": _json(_ref("Sent"), "A repeat of the same Idempotency-Key and body"),
                    "409": _problem("The thread is closed"),
                    **AUTH_ERRORS,
                    **BODY_ERRORS,
                },
            }
        },
        "/api/v1/reporter/reminder.ics": {
            "get": {
                "operationId": "reporterReminder",
                "security": BEARER,
                "parameters": [
                    {"name": "include_address", "in": "query", "schema": {"enum": ["0", "1"]}}
                ],
                "responses": {
                    "200": {
                        "description": "The latest calendar reminder",
                        "content": {"text/calendar": {"schema": {"type": "string"}}},
                    },
                    "503": _problem("Not ready yet; see Retry-After"),
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/staff/session": {
            "post": {
                "operationId": "staffLogin",
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["email", "password"],
                        "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
                    }
                ),
                "responses": {
                    "200": _json(session, "Logged in"),
                    "401": _problem("Wrong e-mail or password"),
                    "429": _problem("Slowed down after failures"),
                    **BODY_ERRORS,
                },
            },
            "delete": {
                "operationId": "staffLogout",
                "security": BEARER,
                "responses": {"204": {"description": "Logged out"}, "401": _problem("No session")},
            },
        },
        "/api/v1/staff/threads": {
            "get": {
                "operationId": "staffThreads",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {
                            "enum": [
                                "awaiting",
                                "open",
                                "closed",
                                "overdue",
                                "nearing",
                                "mine",
                                "new",
                            ]
                        },
                    },
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["threads", "next_page"],
                            "properties": {
                                "threads": {"type": "array", "items": _ref("ThreadSummary")},
                                "next_page": {"type": ["integer", "null"]},
                            },
                        },
                        "50 threads a page",
                    ),
                    "401": _problem("No session"),
                    "403": _problem("Your role reads no threads (ops)"),
                    "422": _problem("Unknown filter or page"),
                },
            }
        },
        "/api/v1/staff/threads/{reference}": {
            "get": {
                "operationId": "staffThread",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "reference",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json(_ref("StaffThread"), "The whole thread"),
                    "403": _problem("Your role reads no threads (ops)"),
                    **AUTH_ERRORS,
                },
            }
        },
    }
    for action, schema in {"messages": None, "notes": None, **staff_action}.items():
        body = _text_body(10_000) if schema is None else _body(schema)
        ok = (
            {
                "201": _json(_ref("Sent"), "Committed"),
                "200": _json(_ref("Sent"), "A repeat of the same Idempotency-Key and body"),
            }
            if action == "messages"
            else {"201": {"description": "Committed"}}
            if action == "notes"
            else {"200": {"description": "Done"}}
        )
        paths[f"/api/v1/staff/threads/{{reference}}/{action}"] = {
            "post": {
                "operationId": f"staffThread{action.title()}",
                "security": BEARER,
                "parameters": [
                    {
                        "name": "reference",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    *([IDEMPOTENCY] if action == "messages" else []),
                ],
                "requestBody": body,
                "responses": {
                    **ok,
                    "403": _problem(
                        "Your role cannot do this: ops reads no thread, and on a restricted "
                        "thread only managers change the assignee, team or restriction"
                    ),
                    "409": _problem("The thread is closed or has no follow-up"),
                    **AUTH_ERRORS,
                    **BODY_ERRORS,
                },
            }
        }
    return paths


SUMMARY_PROPERTIES: dict[str, Any] = {
    "reference": {"type": "string"},
    "category": {"type": "string"},
    "team": {"type": "string"},
    "anonymous": {"type": "boolean"},
    "follow_up": {"type": "boolean"},
    "received_at": {"type": "string", "format": "date-time"},
    "last_reporter_message_at": {"type": ["string", "null"], "format": "date-time"},
    "status": {"enum": ["open", "closed", "contacted"]},
    "assignee": {"type": ["string", "null"]},
    "reply_due_by": {"type": ["string", "null"], "format": "date-time"},
    "escalation": {"enum": ["none", "nearing", "overdue"]},
}
MESSAGE = {
    "type": "object",
    "required": ["from", "body", "sent_at"],
    "properties": {
        "from": {"enum": ["reporter", "caseworker"]},
        "body": {"type": "string"},
        "sent_at": {"type": "string", "format": "date-time"},
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Confide API",
            "version": "1",
            "description": "Anonymous incident reporting. Errors are application/problem+json; "
            "clients must ignore fields they do not know.",
        },
        "paths": {
            "/api/v1/categories": {
                "get": {
                    "operationId": "listCategories",
                    "responses": {
                        "200": {
                            "description": "The categories a report can have",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Category"},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/api/v1/reports": {
                "post": {
                    "operationId": "createReport",
                    "parameters": [IDEMPOTENCY],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/NewReport"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Received and committed",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Receipt"}
                                }
                            },
                            "links": RECEIPT_LINKS,
                        },
                        "200": {
                            "description": "A retry with the same Idempotency-Key and request: "
                            "the same reference. `code` is an additional code that works beside "
                            "the earlier ones within 10 minutes of the first submission, before "
                            "any login and while the report has fewer than 3 codes; otherwise "
                            "null (the first code still works)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Receipt"}
                                }
                            },
                        },
                        "400": _problem("Malformed JSON or invalid UTF-8"),
                        "413": _problem("Body over 1 MiB"),
                        "415": _problem("Not application/json"),
                        "422": _problem("Invalid fields, listed in errors[]"),
                        "409": _problem(
                            "The first request with this Idempotency-Key is still running; "
                            "see Retry-After"
                        ),
                        "429": _problem("Too many submissions; see Retry-After"),
                        "503": _problem("A dependency is down and nothing was accepted"),
                    },
                }
            },
            **_session_paths(),
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "responses": {"200": {"description": "The process runs"}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "responses": {
                        "200": {"description": "PostgreSQL answers"},
                        "503": {"description": "PostgreSQL is down"},
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Session": {
                    "type": "object",
                    "required": ["token", "expires_at"],
                    "properties": {
                        "token": {"type": "string"},
                        "expires_at": {"type": "string", "format": "date-time"},
                    },
                },
                "Sent": {
                    "type": "object",
                    "required": ["sent_at"],
                    "properties": {"sent_at": {"type": "string", "format": "date-time"}},
                },
                "Message": MESSAGE,
                "ReporterThread": {
                    "type": "object",
                    "properties": {
                        "reference": {"type": "string"},
                        "category": {"type": "string"},
                        "description": {"type": "string"},
                        "submitted_at": {"type": "string", "format": "date-time"},
                        "status": {"enum": ["open", "closed"]},
                        "reply_due_by": {"type": ["string", "null"], "format": "date-time"},
                        "messages": {"type": "array", "items": MESSAGE},
                    },
                },
                "ThreadSummary": {
                    "type": "object",
                    "required": list(SUMMARY_PROPERTIES),
                    "properties": SUMMARY_PROPERTIES,
                },
                "StaffThread": {
                    "type": "object",
                    "properties": {
                        **SUMMARY_PROPERTIES,
                        "description": {"type": "string"},
                        "contact": {"type": ["object", "null"]},
                        "messages": {"type": "array", "items": MESSAGE},
                        "notes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "author": {"type": ["string", "null"]},
                                    "body": {"type": "string"},
                                    "created_at": {"type": "string", "format": "date-time"},
                                },
                            },
                        },
                    },
                },
                "Category": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
                },
                "Contact": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": ["string", "null"], "maxLength": 200},
                        "email": {"type": ["string", "null"], "format": "email"},
                        "phone": {
                            "type": ["string", "null"],
                            "description": "UK or international; stored as E.164",
                        },
                    },
                },
                "NewReport": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["category", "description", "anonymous"],
                    "properties": {
                        "category": {"type": "string"},
                        "description": {"type": "string", "minLength": 1, "maxLength": 20000},
                        "occurred": {"type": ["string", "null"], "maxLength": 500},
                        "location": {"type": ["string", "null"], "maxLength": 500},
                        "anonymous": {"type": "boolean"},
                        "follow_up": {"type": "boolean"},
                        "contact": {"$ref": "#/components/schemas/Contact"},
                    },
                },
                "Receipt": {
                    "type": "object",
                    "required": ["reference", "code", "reply_due_by"],
                    "properties": {
                        "reference": {"type": "string", "pattern": "^R-[0-9A-Z]{8}$"},
                        "code": {
                            "type": ["string", "null"],
                            "description": "Shown once; cannot be recovered",
                        },
                        "reply_due_by": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "message"],
                                "properties": {
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    }
