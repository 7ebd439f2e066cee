"""The OpenAPI 3.1 document served at /api/v1/openapi.json (CONTRACTS §3)."""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
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
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                        }
                    ],
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
                        },
                        "200": {
                            "description": "A retry with the same Idempotency-Key: the same "
                            "reference, and a fresh code that replaces the earlier one",
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
                        "429": _problem("Too many submissions; see Retry-After"),
                        "503": _problem("A dependency is down and nothing was accepted"),
                    },
                }
            },
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
            "schemas": {
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
            }
        },
    }
