"""Typed application and request keys, in one place so handlers need not import the app."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web
from celery import Celery

from confide.context import Context
from confide.crypto import Keyring
from confide.db import Pool
from confide.oidc import Provider
from confide.org import Organisation
from confide.services.threads import Staff
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings
from webapp.categories import CategoryCache, InboxCounts, InboxRows, StatisticsPages
from webapp.dates import DateFormats
from webapp.jobs import CodeHasher, OutboxKicker
from webapp.page_shapes import PageShapes
from webapp.security import LoginLimits, StaffLoginLimits, SubmissionLimits, UploadLimits
from webapp.support_pages import SupportPages

SETTINGS = web.AppKey("settings", Settings)
ORG = web.AppKey("org", Organisation)
KEYRING = web.AppKey("keyring", Keyring)
POOL = web.AppKey("pool", Pool)
# The service context (confide.context), built once the pool exists; every service takes it.
CTX = web.AppKey("ctx", Context)
OUTBOX_KICKER = web.AppKey("outbox_kicker", OutboxKicker)
REDIS = web.AppKey("redis", aioredis.Redis)
CELERY = web.AppKey("celery", Celery)
HASHER = web.AppKey("hasher", CodeHasher)
LIMITS = web.AppKey("limits", SubmissionLimits)
UPLOAD_LIMITS = web.AppKey("upload_limits", UploadLimits)
LOGIN_LIMITS = web.AppKey("login_limits", LoginLimits)
STAFF_LOGIN_LIMITS = web.AppKey("staff_login_limits", StaffLoginLimits)
# Staff single sign-on's provider (confide.oidc), when CONFIDE_OIDC_* are set.
SSO_PROVIDER = web.AppKey("sso_provider", Provider)
STARTED = web.AppKey("started", float)
CALENDAR = web.AppKey("calendar", WorkingCalendar)
CATEGORIES = web.AppKey("categories", CategoryCache)
INBOX_COUNTS = web.AppKey("inbox_counts", InboxCounts)
INBOX_ROWS = web.AppKey("inbox_rows", InboxRows)
STATISTICS_PAGES = web.AppKey("statistics_pages", StatisticsPages)
SUPPORT_PAGES = web.AppKey("support_pages", SupportPages)
DATES = web.AppKey("dates", DateFormats)
# The report confirmation, drawn once per shape (webapp.page_shapes).
CONFIRMATION_PAGES = web.AppKey("confirmation_pages", PageShapes)

# Per-request storage (aiohttp's typed RequestKeys, like the AppKeys above).
REQUEST_ID = web.RequestKey("request_id", str)
# Set by webapp.handlers.caseworker.staff_page: the staff member (error pages then use the staff
# layout and menu), their CSRF token, and a posted form already read.
STAFF_MEMBER = web.RequestKey("staff", Staff)
CSRF_TOKEN = web.RequestKey("csrf_token", str)
FORM = web.RequestKey("form", dict[str, str])
