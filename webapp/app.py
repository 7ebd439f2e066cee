"""create_app(settings): AppKeys, cleanup contexts (pool, Redis, Celery client), routes, middlewares."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import redis.asyncio as aioredis
import structlog
from aiohttp import web

from confide import db, logs
from confide import org as org_file
from confide.context import Context
from confide.crypto import Keyring
from confide.errors import ConfigError
from confide.oidc import Provider
from confide.services import support
from confide.services.org import sync_organisation
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings
from webapp import form_files, i18n, routes
from webapp.audit_words import audit_words
from webapp.body_limits import body_limit_middleware
from webapp.categories import CategoryCache, InboxCounts, InboxRows, StatisticsPages
from webapp.dates import DateFormats
from webapp.errors import error_middleware, error_page, prepare_parser_error_pages
from webapp.jobs import CodeHasher, HashResults, OutboxKicker, make_client
from webapp.keys import (
    CALENDAR,
    CATEGORIES,
    CELERY,
    CONFIRMATION_PAGES,
    CTX,
    DATES,
    HASHER,
    INBOX_COUNTS,
    INBOX_ROWS,
    KEYRING,
    LIMITS,
    LOGIN_LIMITS,
    ORG,
    OUTBOX_KICKER,
    POOL,
    REDIS,
    REQUEST_ID,
    SETTINGS,
    SSO_PROVIDER,
    STAFF_LOGIN_LIMITS,
    STARTED,
    STATISTICS_PAGES,
    SUPPORT_PAGES,
    UPLOAD_LIMITS,
)
from webapp.page_shapes import PageShapes
from webapp.policy import same_origin_middleware
from webapp.security import (
    LoginLimits,
    StaffLoginLimits,
    SubmissionLimits,
    UploadLimits,
    is_tls,
    security_headers,
)
from webapp.slow_clients import body_rate_middleware, install_header_timeout
from webapp.support_pages import SupportPages

ROOT = Path(__file__).resolve().parent.parent
MAX_BODY = 1024 * 1024  # 1 MiB (CONTRACTS §3: 413 above it)


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Our own access log: route name, status, duration. No address, user agent or query."""
    request_id = secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    # Each request runs in its own task, so this binding stays with this request's log lines.
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.name or "unmatched"
        logs.access(
            request_id,
            route,
            request.method,
            status,
            round((time.perf_counter() - started) * 1000, 2),
        )


class FixedGlobalsEnvironment(jinja2.Environment):
    """Template globals as one plain dict, copied when a template loads.

    Jinja2 chains each template's globals onto the environment's (a ``ChainMap``), and copies
    that chain into a dict on every render: a Python-level walk that cost about 6 % of a report
    submission. Our globals are all set in :func:`create_app`, before any template loads, which
    is what Jinja2's documentation asks anyway ("avoid modifying any globals after a template is
    loaded"), so a flat copy renders the same.

    Serves ``make bench`` ``submit`` (req/s ÷ bare ≥ 0.50, met narrowly): the copy was about 6 %
    of a submission's web CPU (py-spy; docs/benchmarks.md, third round).
    """

    # Any: jinja2's own signature (template globals hold values of every kind).
    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


def create_app(settings: Settings) -> web.Application:
    org = org_file.load(settings.org_file)
    if not org.sso.password_sign_in and settings.oidc is None:
        raise ConfigError(
            "CONFIDE_ORG_FILE: 'sso.password_sign_in = false' needs single sign-on: set "
            "CONFIDE_OIDC_ISSUER, CONFIDE_OIDC_CLIENT_ID and CONFIDE_OIDC_CLIENT_SECRET"
        )
    app = web.Application(
        client_max_size=MAX_BODY,
        # Inside the error middleware: a body cut off for its rate is answered 408, not 503.
        middlewares=[
            body_limit_middleware,  # outermost: routes carrying files get their own limit
            access_middleware,
            error_middleware,
            body_rate_middleware(_slow_body),
            same_origin_middleware,  # webapp.policy: every unsafe HTML request
        ],
    )
    app[SETTINGS] = settings
    app[ORG] = org
    app[KEYRING] = Keyring.from_secret(settings.encryption_keys)
    app[LIMITS] = SubmissionLimits(settings)
    app[UPLOAD_LIMITS] = UploadLimits(settings)
    app[LOGIN_LIMITS] = LoginLimits(settings)
    app[STAFF_LOGIN_LIMITS] = StaffLoginLimits(settings)
    app[CALENDAR] = WorkingCalendar.for_org(org)
    app[OUTBOX_KICKER] = OutboxKicker()
    app[CATEGORIES] = CategoryCache()
    # Filter counts may lag a few seconds; the list itself never does.
    app[INBOX_COUNTS] = InboxCounts(ttl_s=5.0)
    app[STARTED] = time.time()
    app[SUPPORT_PAGES] = SupportPages()

    env = FixedGlobalsEnvironment(
        loader=jinja2.FileSystemLoader(str(ROOT / "templates")),
        autoescape=jinja2.select_autoescape(["html", "xml"], default=True),
        extensions=["jinja2.ext.i18n", i18n.FoldConstantGettext],
        undefined=jinja2.StrictUndefined,
        # Templates are read once per process: no stat() of every template on every render.
        auto_reload=False,
    )
    # What aiohttp_jinja2.setup() does, minus its url()/static() helpers, which we do not use.
    app[aiohttp_jinja2.APP_KEY] = env
    translations = i18n.load()
    i18n.install(env, translations)
    i18n.activate(translations)  # Python's _() translates through the templates' catalogue
    # The organisation is fixed for the life of the process: a global, not a context processor
    # (which would add a middleware to every request).
    env.globals["org"] = org
    # Every reporter page's footer lists the support pages (in memory: webapp.support_pages).
    env.globals["support_pages"] = app[SUPPORT_PAGES]
    prepare_parser_error_pages(env, org)
    install_header_timeout()
    dates = app[DATES] = DateFormats(i18n.DATE_LOCALE, org.timezone, app[CALENDAR])
    env.filters["when"] = dates.when
    env.filters["file_size"] = form_files.in_words
    env.filters["audit_words"] = audit_words
    env.filters["time_of_day"] = dates.time_of_day
    env.filters["waited"] = dates.waited
    env.filters["working_left"] = dates.working_left
    env.filters["due_words"] = dates.due_words
    warning_days = org.lifecycle.erasure_warning_days
    env.filters["erased_in"] = lambda due: dates.erased_in(due, warning_days)
    env.filters["last_day_before"] = dates.last_day_before
    # Loaded last: FixedGlobalsEnvironment fixes a template's globals when it loads.
    app[INBOX_ROWS] = InboxRows(env.get_template("staff/_inbox_row.html"))
    app[STATISTICS_PAGES] = StatisticsPages(env.get_template("staff/_statistics_body.html"))
    support_pages = app[SUPPORT_PAGES]
    app[CONFIRMATION_PAGES] = PageShapes(
        env.get_template("reporter/confirmation.html"), lambda: support_pages.links
    )

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        security_headers(
            request, response, tls=is_tls(request, settings), onion=settings.onion_location
        )

    app.on_response_prepare.append(on_prepare)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_support_pages)
    app.cleanup_ctx.append(_queue)
    if settings.oidc is not None:
        app[SSO_PROVIDER] = Provider(settings.oidc)
        app.cleanup_ctx.append(_sso_provider)
    routes.setup(app, ROOT / "webapp" / "static")
    return app


def _slow_body(request: web.Request) -> web.StreamResponse:
    return error_page(request, 408, "The connection was too slow to send this. Please try again.")


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    dsn = settings.require_database()
    if not settings.is_production:
        await db.ensure_database(dsn)
    pool = await db.create_pool(
        dsn, max_size=settings.db_pool_size, timeout_s=settings.db_timeout_s
    )
    async with pool.acquire() as conn:
        if settings.is_production:
            pending = ", ".join(await db.pending_migrations(conn))
            if pending:
                raise ConfigError(f"database schema is behind: run `confide migrate` ({pending})")
        else:
            await db.migrate(conn)
    app[POOL] = pool
    ctx = app[CTX] = Context(
        pool,
        settings,
        app[KEYRING],
        app[CALENDAR],
        wake_outbox=app[OUTBOX_KICKER],
        rules=app[ORG].clock_rules,
        attachments=app[ORG].attachments,
    )
    await sync_organisation(ctx, app[ORG])
    yield
    await pool.close()


async def _sso_provider(app: web.Application) -> AsyncIterator[None]:
    """Its HTTP client lives as long as the app; discovery is read at the first sign-in."""
    provider = app[SSO_PROVIDER]
    await provider.start()
    yield
    await provider.close()


async def _support_pages(app: web.Application) -> AsyncIterator[None]:
    """The default support pages on first start (confide/data/support-pages.toml), then the
    latest versions in memory, reloaded in the background."""
    ctx, pages = app[CTX], app[SUPPORT_PAGES]
    await support.seed_defaults(ctx)
    await pages.refresh(ctx)
    refresher = asyncio.create_task(pages.keep_fresh(ctx))
    yield
    refresher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await refresher


async def _queue(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[REDIS] = aioredis.from_url(
        settings.require_redis(), socket_timeout=1.0, socket_connect_timeout=1.0
    )
    client = make_client(settings)
    app[CELERY] = client
    results = HashResults(settings.require_redis(), app[REDIS])
    await results.start()
    hasher = CodeHasher(app[CTX], client, results)
    app[HASHER] = hasher
    app[OUTBOX_KICKER].attach(client)
    yield
    app[OUTBOX_KICKER].detach()
    hasher.close()
    await results.close()
    await app[REDIS].aclose()
    await asyncio.get_running_loop().run_in_executor(None, client.close)
