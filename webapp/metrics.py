"""GET /metrics: Prometheus text for ops (issue 6). Loopback, or a bearer token from elsewhere;
the token only, whatever the peer, behind a proxy (``CONFIDE_TRUST_PROXY=1``).

Every figure comes from a fixed number of round trips, whatever the number of threads: one SQL
query over small summary tables (``confide/sql/metrics.py``) and one Redis pipeline. No label
carries personal data.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from confide import jobs
from confide.crypto import same_text
from confide.services import ops
from confide.services.ops import Snapshot
from webapp.keys import CTX, LOGIN_LIMITS, REDIS, SETTINGS

QUEUES = jobs.QUEUES  # celery_queue_length{queue_name} for hashing, default and files


async def queue_lengths(request: web.Request) -> dict[str, int]:
    """Ready plus unacknowledged messages per queue (kombu keeps unacked in one hash)."""
    redis = request.app[REDIS]
    async with redis.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            pipe.llen(queue)
        pipe.hvals("unacked")
        results = await pipe.execute()
    lengths = {q: int(n) for q, n in zip(QUEUES, results[: len(QUEUES)], strict=True)}
    for raw in results[len(QUEUES)]:
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if routing_key in lengths:
            lengths[routing_key] += 1
    return lengths


async def queue_lengths_or_none(request: web.Request) -> dict[str, int] | None:
    """:func:`queue_lengths`, or None while Redis is away (the ops page says so)."""
    try:
        return await queue_lengths(request)
    except Exception:  # Redis away: whatever redis-py raised, there are no lengths to show
        return None


class _Snapshot:
    """A collector over values fetched for this scrape."""

    def __init__(
        self, row: Snapshot, queues: dict[str, int] | None, limited: int, down_after_s: float
    ) -> None:
        self.down_after_s = down_after_s
        self.row = row
        self.queues = queues
        self.limited = limited

    def collect(self) -> Iterator[Metric]:
        row = self.row
        if self.queues is not None:
            depth = GaugeMetricFamily(
                "celery_queue_length", "Ready plus unacknowledged messages", labels=["queue_name"]
            )
            for queue, n in self.queues.items():
                depth.add_metric([queue], n)
            yield depth
        up = GaugeMetricFamily(
            "celery_worker_up", "1 if the worker's heartbeat is recent", labels=["hostname"]
        )
        active = 0
        for worker in row.workers:
            alive = worker.age is not None and worker.age <= self.down_after_s
            active += int(alive)
            up.add_metric([worker.name], 1.0 if alive else 0.0)
        yield up
        yield GaugeMetricFamily(
            "celery_active_worker_count", "Workers with a recent heartbeat", value=active
        )
        for name, count, text in (
            ("confide_threads_awaiting_reply", row.awaiting, "Threads with a reply due"),
            ("confide_threads_nearing_deadline", row.nearing, "Threads nearing their deadline"),
            ("confide_threads_overdue", row.overdue, "Threads past their deadline"),
            ("confide_outbox_pending", row.outbox_pending, "Outbox rows not yet done"),
            ("confide_outbox_dead_letters", row.dead_letters, "Outbox rows that used up attempts"),
        ):
            yield GaugeMetricFamily(name, text, value=float(count))
        yield GaugeMetricFamily(
            "confide_outbox_oldest_age_seconds",
            "Age of the oldest pending outbox row",
            value=row.outbox_oldest or 0.0,
        )
        for name, key, at in (
            ("confide_escalation_last_success_timestamp_seconds", "escalation", row.escalation),
            ("confide_digest_last_success_timestamp_seconds", "digest", row.digest),
            ("confide_beat_last_tick_timestamp_seconds", "beat", row.beat),
        ):
            yield GaugeMetricFamily(name, f"Unix time of the last {key}", value=at or 0.0)
        yield CounterMetricFamily(
            "confide_login_rate_limited",
            "Code logins refused by a rate limit (this process)",
            value=self.limited,
        )


def allowed(request: web.Request) -> bool:
    token = request.app[SETTINGS].metrics_token
    header = request.headers.get("Authorization", "")
    if (
        token is not None
        and header.startswith("Bearer ")
        and same_text(header[7:].strip(), token.get())
    ):
        return True
    settings = request.app[SETTINGS]
    if settings.trust_proxy:
        # A same-host proxy makes every client look local (CONTRACTS §3 "Ops"): token only.
        return False
    try:
        # Read only to decide; never stored or logged.
        peer = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    # A proxy named in CONFIDE_TRUSTED_PROXIES forwards others' requests, loopback or not.
    return peer.is_loopback and not any(peer in net for net in settings.trusted_proxies)


def wrong_token(request: web.Request) -> bool:
    """A credential was presented and it is not the metrics token: 401, wherever it came from."""
    token = request.app[SETTINGS].metrics_token
    header = request.headers.get("Authorization")
    if token is None or header is None:
        return False
    return not (header.startswith("Bearer ") and same_text(header[7:].strip(), token.get()))


async def metrics(request: web.Request) -> web.Response:
    if wrong_token(request):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
    if not allowed(request):
        raise web.HTTPForbidden()
    row = await ops.metrics_snapshot(request.app[CTX])
    queues = await queue_lengths_or_none(request)  # Redis away: the gauges are absent, not wrong
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        _Snapshot(
            row,
            queues,
            request.app[LOGIN_LIMITS].limited,
            request.app[SETTINGS].worker_down_after_s,
        )
    )
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
