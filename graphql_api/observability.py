"""What operators watch: Prometheus metrics and one JSON log line per GraphQL request.

Every app has its own ``CollectorRegistry`` (tests build many apps in one process). Request
series are recorded by the view, subscription gauges by the WebSocket handler, task durations
by a listener on the task event stream; everything else is read when ``/metrics`` is scraped:
task counts by one GROUP BY, the VK gateway's counters and token pool, the database pool, and
the process's CPU, memory and file descriptors. No ``*_created`` series: they double the
output and nothing here reads them.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from strawberry.extensions import SchemaExtension

from domain.budget import method_quotas
from domain.errors import Unavailable
from domain.models import TaskKind, TaskState
from domain.ports import EventsMissed
from domain.tasks import TASKS_CHANNEL, task_from_event
from domain.vk import TokenState, TokenStatus
from graphql_api.errors import INTERNAL_MESSAGE, is_unexpected

log = structlog.get_logger("vkcp.api")

disable_created_metrics()  # process-wide in prometheus_client: no registry-level switch exists

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_OPERATION_NAMES = 200  # label values are kept bounded whatever clients send


@dataclass
class OperationRecord:
    name: str | None
    type: str | None
    errors: int = 0
    unexpected: bool = False


@dataclass
class RequestRecord:
    """Filled while one HTTP request runs (by ``OperationObserver``), read by the view."""

    media_type: str = "application/json"
    request_id: str | None = None
    operations: list[OperationRecord] = field(default_factory=list)
    request_error: bool = False  # the document could not run (syntax, validation, variables)

    def outcome(self) -> str:
        if self.request_error:
            return "invalid"
        if any(o.unexpected for o in self.operations):
            return "internal"
        if any(o.errors for o in self.operations):
            return "error"
        return "ok"


current_request: ContextVar[RequestRecord | None] = ContextVar("vkcp_request", default=None)


class OperationObserver(SchemaExtension):
    """Records each operation's name, type and errors for the request log and metrics."""

    def on_operation(self) -> Iterator[None]:
        yield
        record = current_request.get()
        if record is None:  # a WebSocket operation
            return
        ec = self.execution_context
        errors = (ec.result.errors if ec.result is not None else None) or ec.pre_execution_errors or []
        try:
            operation_type = ec.operation_type
        except RuntimeError:  # no document (it did not parse) or no operation to run in it
            operation_type = None
        record.operations.append(
            OperationRecord(
                name=ec.operation_name,
                type=getattr(operation_type, "value", None),
                errors=len(errors),
                unexpected=any(is_unexpected(e) or e.message.startswith(INTERNAL_MESSAGE) for e in errors),
            )
        )


class ApiMetrics:
    def __init__(self, container: Any) -> None:
        self.container = container
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vkcp_graphql_requests",
            "GraphQL HTTP requests by operation name, type and outcome.",
            ["operation", "type", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vkcp_graphql_request_duration_seconds",
            "GraphQL HTTP request latency.",
            ["type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.tasks = Gauge(
            "vkcp_tasks", "Tasks by kind and state (from the database).", ["kind", "state"], registry=self.registry
        )
        self.stalled = Gauge(
            "vkcp_tasks_stalled", "Running tasks found stuck (no progress for the stall timeout), now.",
            registry=self.registry,
        )
        self.waiting = Gauge(
            "vkcp_tasks_waiting_for_vk",
            "Tasks waiting (QUEUED, with Task.waitingUntil) because every VK token rests (daily quota, captcha).",
            registry=self.registry,
        )
        self.stalls = Gauge(
            "vkcp_task_stalls", "Stalls detected and recovered, summed over all tasks (from the database).",
            registry=self.registry,
        )
        self.subscriptions = Gauge(
            "vkcp_graphql_subscriptions_active",
            "Subscriptions running now over WebSocket, by root field (taskProgress, taskEvents, commentMatched).",
            ["field"], registry=self.registry,
        )
        self.websockets = Gauge(
            "vkcp_websocket_connections_open", "WebSocket connections open now.", registry=self.registry
        )
        self.task_duration = Histogram(
            "vkcp_task_duration_seconds",
            "Run time (started to finished) of tasks that finished while this API process was up, "
            "whichever process ran them: observed from the task event stream (Redis pub/sub with "
            "workers). Every API replica counts every task, so do not sum across replicas. Tasks "
            "that finished while the stream was disconnected are missing.",
            ["kind", "state"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600),
            registry=self.registry,
        )
        self.collected = Counter(
            "vkcp_collected_comments",
            "Comments read from VK (commentsSeen) by PARSE tasks that finished while this API process was up, "
            "observed like vkcp_task_duration_seconds: every replica counts every task, and a task adds its "
            "whole count when it succeeds (a failed or cancelled run reports none).",
            registry=self.registry,
        )
        self.collected_matches = Counter(
            "vkcp_collected_matches",
            "Keyword matches found by PARSE tasks that finished while this API process was up (as "
            "vkcp_collected_comments).",
            registry=self.registry,
        )
        self.read_plan_fallbacks = Counter(
            "vkcp_read_plan_fallbacks",
            "Query operations not answered the fastest way the compiled read plan knows, by reason: "
            "unknown_shape (it has no rule for the document; kind: what it lacks), handed_back (a value it "
            "cannot answer exactly; kind: null, scalar, method_error), error (kind: the exception's class); "
            "these three ran on Strawberry's executor. projection_refused: a comments page read as objects "
            "rather than written by PostgreSQL (kind: what could not be written).",
            ["reason", "kind"],
            registry=self.registry,
        )
        # Alerts, from the outbox (every process's deliveries; see domain.alerts).
        self.alert_deliveries = Gauge(
            "vkcp_alert_deliveries",
            "Alert deliveries stored, by state (PENDING, SENT, FAILED, SKIPPED), from the database.",
            ["state"], registry=self.registry,
        )
        self.alert_pending = Gauge(
            "vkcp_alert_deliveries_pending", "Alert deliveries not sent yet (waiting, or retrying).",
            registry=self.registry,
        )
        self.alert_oldest_pending = Gauge(
            "vkcp_alert_oldest_pending_seconds",
            "Age of the oldest alert delivery still PENDING (0 when none): grows while a channel is down.",
            registry=self.registry,
        )
        self.alert_failing_channels = Gauge(
            "vkcp_alert_channels_failing", "Alert channels with a delivery waiting to be retried after a failure.",
            registry=self.registry,
        )
        self.alert_latency = Histogram(
            "vkcp_alert_delivery_latency_seconds",
            "From a delivery queued (the match stored) to the channel accepting it, for deliveries sent since "
            "this API process started, whichever process sent them (read from the database at each scrape). "
            "DIGEST and THRESHOLD deliveries wait for their window by design.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
            registry=self.registry,
        )
        self._alert_seen = -1  # the highest SENT delivery id observed; -1: not read yet
        self._finished: deque[Any] = deque(maxlen=10_000)  # a terminal task is counted once
        self._names: set[str] = set()
        self._runtime = _RuntimeCollector(container)
        self.registry.register(self._runtime)
        ProcessCollector(registry=self.registry)

    def operation_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if not _NAME.match(name):
            return "invalid"
        if name not in self._names:
            if len(self._names) >= MAX_OPERATION_NAMES:
                return "other"
            self._names.add(name)
        return name

    def read_plan_fallback(self, reason: str, kind: str) -> None:
        self.read_plan_fallbacks.labels(reason, kind).inc()

    def observe(self, record: RequestRecord, outcome: str, seconds: float) -> None:
        operations = record.operations or [OperationRecord(name=None, type=None)]
        for operation in operations:
            kind = operation.type or "none"
            self.requests.labels(self.operation_label(operation.name), kind, outcome).inc()
        self.latency.labels(operations[0].type or "none").observe(seconds)

    async def render(self, *, per_token: bool = False) -> tuple[bytes, str]:
        """The scrape; ``per_token``: with the per-token VK series (an admin's scrape)."""
        # Read here, not in the collector: with Redis the pool's states are every process's.
        self._runtime.vk_tokens = await self.container.adapters.vk.token_states()
        try:
            counts = await self.container.read_model.task_counts()
            stalled, stalls = await self.container.read_model.task_stalls()
            waiting, _ = await self.container.read_model.tasks_waiting()
        except Unavailable as e:  # a scrape reports what it can; the DB's health is /readyz's
            log.warning("metrics.tasks_unavailable", error=e.message)
        else:
            # Every kind and state, zeros included: a series that appears only once its first
            # task does makes `rate()` and absence alerts lie.
            for kind in TaskKind:
                for state in TaskState:
                    self.tasks.labels(kind.value, state.value).set(counts.get((kind.value, state.value), 0))
            self.stalled.set(stalled)
            self.stalls.set(stalls)
            self.waiting.set(waiting)
        try:
            await self._alert_metrics()
        except Unavailable as e:
            log.warning("metrics.alerts_unavailable", error=e.message)
        self._runtime.per_token = per_token  # no await from here on: no other scrape in between
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


    async def _alert_metrics(self) -> None:
        read_model = self.container.read_model
        health = await read_model.alert_delivery_health()
        for state, count in health.by_state.items():
            self.alert_deliveries.labels(state).set(count)
        self.alert_pending.set(health.by_state.get("PENDING", 0))
        oldest = health.oldest_pending_at
        self.alert_oldest_pending.set(
            max(0.0, (self.container.adapters.clock.now() - oldest).total_seconds()) if oldest is not None else 0
        )
        self.alert_failing_channels.set(health.failing_channels)
        # Latencies of deliveries sent since the last scrape (the first scrape only marks where it starts).
        self._alert_seen, latencies = await read_model.alert_latencies(after_id=self._alert_seen, limit=50_000)
        for seconds in latencies:
            self.alert_latency.observe(seconds)

    def task_changed(self, event: dict[str, Any]) -> None:
        task = task_from_event(event)
        if not task.state.terminal or task.started_at is None or task.finished_at is None:
            return
        if task.id in self._finished:
            return
        self._finished.append(task.id)
        seconds = max(0.0, (task.finished_at - task.started_at).total_seconds())
        self.task_duration.labels(task.kind.value, task.state.value).observe(seconds)
        if task.kind is TaskKind.PARSE and isinstance(task.result, dict):
            self.collected.inc(_count(task.result.get("commentsSeen")))
            self.collected_matches.inc(_count(task.result.get("matches")))

    async def watch_tasks(self) -> None:
        """Observe task durations from the event stream until cancelled."""
        subscription = self.container.adapters.events.subscribe(TASKS_CHANNEL)
        try:
            while True:
                try:
                    event = await anext(subscription)
                except EventsMissed:  # reconnected: finishes in the gap are missing, as the help says
                    continue
                except StopAsyncIteration:  # dropped as a slow consumer: subscribe again
                    await subscription.aclose()
                    subscription = self.container.adapters.events.subscribe(TASKS_CHANNEL)
                    await asyncio.sleep(1)
                    continue
                self.task_changed(event)
        finally:
            await subscription.aclose()


def _count(value: Any) -> int:
    """A count from a task's result, which is JSON: anything but a non-negative int counts 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _vk_quota_metrics(states: list[TokenState], limits: dict[str, int], *, per_token: bool):
    """Today's calls by method, what is left of the known limits, and whether the pool rests.

    For the pool as a whole to anyone who can reach /metrics; per token (labelled by its
    fingerprint, never the token) only to a scrape that sends an admin API token, as which
    token is in trouble is for admins (GraphQL ``vkTokens``, an admin's ``/readyz``)."""
    pool_calls = GaugeMetricFamily(
        "vkcp_vk_pool_calls_today", "VK API calls made today (UTC day) by method, every token and process together.",
        labels=["method"],
    )
    pool_remaining = GaugeMetricFamily(
        "vkcp_vk_pool_calls_remaining",
        "VK API calls left today by method with a known daily limit, usable (not revoked) tokens together.",
        labels=["method"],
    )
    calls = GaugeMetricFamily(
        "vkcp_vk_calls_today", "VK API calls made today (UTC day) per token and method, every process together "
        "(admin scrapes only).", labels=["token", "method"],
    )
    remaining = GaugeMetricFamily(
        "vkcp_vk_calls_remaining", "VK API calls left today per token and method with a known daily limit "
        "(admin scrapes only).", labels=["token", "method"],
    )
    totals: dict[str, int] = {}
    left: dict[str, int] = {}
    for s in states:
        usable = s.status is not TokenStatus.REVOKED
        for quota in method_quotas(s.calls_today, limits):
            totals[quota.method] = totals.get(quota.method, 0) + quota.calls
            if quota.remaining is not None and usable:
                left[quota.method] = left.get(quota.method, 0) + quota.remaining
            if per_token:
                calls.add_metric([s.fingerprint, quota.method], quota.calls)
                if quota.remaining is not None:
                    remaining.add_metric([s.fingerprint, quota.method], quota.remaining)
    for method, count in sorted(totals.items()):
        pool_calls.add_metric([method], count)
    for method, count in sorted(left.items()):
        pool_remaining.add_metric([method], count)
    yield pool_calls
    yield pool_remaining
    if per_token:
        yield calls
        yield remaining
    parked = [s.until for s in states if s.status is TokenStatus.PARKED and s.until]
    resting = bool(parked) and all(s.status is not TokenStatus.ACTIVE for s in states)
    yield GaugeMetricFamily(
        "vkcp_vk_tokens_resting", "1 while every usable VK token is parked (quota or captcha): collection waits.",
        value=1 if resting else 0,
    )
    until = GaugeMetricFamily(
        "vkcp_vk_tokens_resting_until_seconds",
        "While every token rests: when the first comes back (Unix time); absent otherwise.",
    )
    if resting:
        until.add_metric([], min(parked).timestamp())
    yield until


class _RuntimeCollector(Collector):
    """Read at scrape time: the VK gateway's counters and token pool, the database pool."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.vk_tokens: list[TokenState] = []  # the pool's states, read by ApiMetrics.render
        self.per_token = False  # set by ApiMetrics.render: an admin's scrape

    def describe(self):  # no fixed description: collected only on scrape
        return []

    def collect(self):
        stats = self.container.adapters.vk.stats
        yield CounterMetricFamily("vkcp_vk_requests", "HTTP requests sent to VK.", value=stats.requests)
        yield CounterMetricFamily("vkcp_vk_calls", "VK API calls (several per `execute` request).", value=stats.calls)
        errors = CounterMetricFamily("vkcp_vk_errors", "VK errors by VK error code.", labels=["code"])
        for code, count in sorted(stats.errors.items()):
            errors.add_metric([str(code)], count)
        yield errors
        yield CounterMetricFamily(
            "vkcp_vk_network_errors", "Requests to VK that failed in transport.", value=stats.network_errors
        )
        yield CounterMetricFamily("vkcp_vk_retries", "Requests to VK retried.", value=stats.retries)
        yield CounterMetricFamily(
            "vkcp_vk_rate_limiter_wait_seconds", "Time spent waiting for rate-limiter slots.", value=stats.limiter_wait
        )
        states = self.vk_tokens
        # Counts by state, not fingerprints: /metrics is open to whoever can reach it, and which
        # token is parked or revoked is for admins (GraphQL `vkTokens`, an admin's `/readyz`).
        tokens = GaugeMetricFamily("vkcp_vk_tokens", "VK tokens in the pool by state.", labels=["state"])
        by_state = dict.fromkeys(TokenStatus, 0)
        for s in states:
            by_state[s.status] += 1
        for status, count in by_state.items():
            tokens.add_metric([status.value], count)
        yield tokens
        yield from _vk_quota_metrics(states, self.container.adapters.vk_daily_limits, per_token=self.per_token)

        usage = self.container.database_pool()
        if usage is not None:
            checked_out, size = usage
            yield GaugeMetricFamily("vkcp_db_pool_checked_out", "Database connections in use.", value=checked_out)
            yield GaugeMetricFamily("vkcp_db_pool_size", "Database connections the pool keeps.", value=size)
