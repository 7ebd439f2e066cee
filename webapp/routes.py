"""Every URL, in one list."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from webapp.handlers import api, ops, reporter


def setup(app: web.Application, static_dir: Path) -> None:
    app.router.add_routes(
        [
            web.get("/", reporter.start, name="start"),
            web.get("/report", reporter.report_start, name="report"),
            web.post("/report", reporter.report_step, name="report_step"),
            web.post("/report/submit", reporter.report_submit, name="report_submit"),
            web.get("/login", reporter.login, name="login"),
            web.get("/accessibility", reporter.accessibility, name="accessibility"),
            web.get("/api/v1/openapi.json", api.openapi, name="api_openapi"),
            web.get("/api/v1/categories", api.categories, name="api_categories"),
            web.post("/api/v1/reports", api.create_report, name="api_reports"),
            web.get("/healthz", ops.healthz, name="healthz"),
            web.get("/readyz", ops.readyz, name="readyz"),
        ]
    )
    app.router.add_static("/static/", static_dir, name="static", append_version=False)
