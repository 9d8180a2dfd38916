"""The composition root: the one place that builds engines, stores, clients and background loops.

Embedded mode (no ``VKCP_REDIS_URL``): SQLite by default, in-process jobs and events.
Production mode: PostgreSQL, ARQ jobs, Redis pub/sub and a Redis rate limiter shared by every
process using the same VK token.

The entry points (``entrypoints/``: ``vkcp serve``, ``vkcp worker``, ``vkcp migrate``, the token
commands) read the settings once and call this module; nothing is built, read or connected when
a module is imported (``tests/integration/test_imports.py`` holds every module to that). It sits at the
repository root, beside the layers it wires, as cosmicpython's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from arq.connections import RedisSettings
from sqlalchemy import text

# Each use case registers its task handler (``domain.tasks.HANDLERS``) when imported: all of
# them must be, in every process that runs tasks.
from domain import analyze, collect, export  # noqa: F401
from domain.alert_model import DEFAULT_PUBLIC_URL, DeliveryStats
from domain.alerts import delivery_loop
from domain.errors import Unavailable
from domain.models import TaskState
from domain.monitoring import scheduler_tick
from domain.ports import Adapters, UnitOfWork, VkGateway
from domain.queries import ReadModel
from domain.tasks import enqueue_task, run_task, watch_tasks
from domain.timing import TaskTiming
from domain.vk import TokenStatus
from infrastructure.alert_budget import RedisSendBudget
from infrastructure.alert_channels import ChannelSender
from infrastructure.cache import InMemoryCache, RedisCache
from infrastructure.db.engine import create_engine, pool_usage, read_session_factory, session_factory
from infrastructure.db.migrate import upgrade, upgrade_async
from infrastructure.db.queries import SqlReadModel
from infrastructure.db.rules import SqlRules
from infrastructure.db.uow import SqlUnitOfWork
from infrastructure.events import InMemoryEventBus, RedisEventBus
from infrastructure.exports import FileExportStore
from infrastructure.memory import release_free_memory_forever
from infrastructure.queue import ArqJobQueue, InProcessJobQueue
from infrastructure.redis_client import arq_settings
from infrastructure.sealed import Sealer
from infrastructure.secret_key import load_secret_key
from infrastructure.settings import Settings

log = structlog.get_logger(__name__)


def arq_queue_name(settings: Settings) -> str:
    """The ARQ queue lives under the Redis key prefix, so installations (and test runs)
    sharing one Redis never take each other's jobs."""
    return settings.redis_prefix + "queue"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Container:
    settings: Settings
    adapters: Adapters
    read_model: ReadModel
    engine: Any
    secret_key: bytes = field(repr=False)  # signs download links (infrastructure/secret_key.py)
    redis: Any = None
    closers: list[Any] = field(default_factory=list)
    loops: list[asyncio.Task[None]] = field(default_factory=list)  # started by ``start_loops``

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
            checks["database"] = "ok"
        except Exception as e:  # readiness reports, it does not raise
            checks["database"] = f"error: {type(e).__name__}"
        if self.redis is None:
            checks["redis"] = "not configured"
        else:
            try:
                await asyncio.wait_for(self.redis.ping(), 5)
                checks["redis"] = "ok"
            except Exception as e:
                checks["redis"] = f"error: {type(e).__name__}"
        checks["vk"] = await _vk_readiness(self.adapters.vk, self.settings)
        return checks

    def database_pool(self) -> tuple[int, int] | None:
        """(connections in use, connections kept) of the database pool, for ``/metrics``."""
        return pool_usage(self.engine)

    async def aclose(self) -> None:
        """Stop the loops, then close the adapters in the reverse of their building; a second
        call does nothing (the app's shutdown and the entry point's may both call it)."""
        loops, self.loops = self.loops, []
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        closers, self.closers = self.closers, []
        for closer in reversed(closers):
            await closer()


async def _vk_readiness(vk: VkGateway, settings: Settings) -> str:
    if settings.vk_sandbox:
        return "sandbox"
    states = await vk.token_states()
    if not states:
        return "not configured"
    active = sum(1 for s in states if s.status is TokenStatus.ACTIVE)
    if active:
        return f"{active}/{len(states)} tokens active"
    parked = [s.until for s in states if s.status is TokenStatus.PARKED and s.until is not None]
    if parked:  # collection waits and resumes by itself then: not an error of this process
        return f"resting until {min(parked).isoformat()}: every token is parked (daily quota or captcha)"
    return "error: no usable token"


def build_vk(settings: Settings, redis: Any = None) -> VkGateway:
    if settings.vk_sandbox:
        from infrastructure.vk.sandbox import sandbox_gateway

        return sandbox_gateway()
    if not settings.vk_tokens:
        from infrastructure.vk.unconfigured import UnconfiguredVkGateway

        return UnconfiguredVkGateway()
    from infrastructure.vk.call_counts import DailyCallCounts
    from infrastructure.vk.gateway import HttpVkGateway
    from infrastructure.vk.limiter import InProcessRateLimiter, RedisRateLimiter
    from infrastructure.vk.token_pool import RedisTokenStates

    limiter = (
        RedisRateLimiter(redis, settings.vk_rps, prefix=settings.redis_prefix)
        if redis is not None
        else InProcessRateLimiter(settings.vk_rps)
    )
    return HttpVkGateway(
        settings.vk_api_url,
        [t.get_secret_value() for t in settings.vk_tokens],
        rps=settings.vk_rps,
        limiter=limiter,
        use_execute=settings.vk_execute,
        timeout=settings.vk_timeout,
        max_retries=settings.vk_max_retries,
        quota_park=timedelta(hours=settings.vk_quota_park_hours) if settings.vk_quota_park_hours else None,
        captcha_park=timedelta(minutes=settings.vk_captcha_park_minutes),
        # Every process sharing the Redis shares the tokens' states and daily call counts;
        # alone, a process keeps its own.
        shared_states=RedisTokenStates(redis, prefix=settings.redis_prefix) if redis is not None else None,
        call_counts=DailyCallCounts(redis, prefix=settings.redis_prefix),
    )


def build_matcher_factory():
    """Keywords → a function matching (comment id, text) pairs; None until keywords exist."""
    from domain.matching import KeywordMatcher, KeywordRule
    from domain.models import Match
    from infrastructure.morphology import get_lemmatizer

    def factory(keywords):
        rules = [
            KeywordRule(k.id, k.word, case_sensitive=k.case_sensitive, whole_word=k.whole_word, morphology=k.morphology)
            for k in keywords
            if k.active
        ]
        if not rules:
            return None
        matcher = KeywordMatcher(rules, get_lemmatizer())

        def match(pairs):
            return [
                Match(comment_id, h.keyword_id, h.matched_text, h.start, h.end, h.snippet)
                for comment_id, text in pairs
                for h in matcher.match(text or "")
            ]

        return match

    return factory


async def build_container(settings: Settings) -> Container:
    """Wire everything: the API and ``vkcp worker`` alike (with Redis, jobs come from ARQ)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.effective_database_url, pool_size=settings.database_pool_size)
    sessions = session_factory(engine)
    closers: list[Any] = [engine.dispose]

    redis = None
    if settings.redis_url:
        from infrastructure.redis_client import connect

        redis = connect(settings.redis_url)
        closers.append(redis.aclose)
        events: RedisEventBus | InMemoryEventBus = RedisEventBus(redis, prefix=settings.redis_prefix)
    else:
        events = InMemoryEventBus()
    closers.append(events.aclose)

    vk = build_vk(settings, redis)
    closers.append(vk.aclose)

    secret_key = load_secret_key(settings)
    sealer = Sealer(secret_key)  # alert channels' credentials at rest (infrastructure/sealed.py)
    exports = FileExportStore(sessions, settings.exports_dir, ttl_hours=settings.export_ttl_hours)
    exports.purge_expired()  # files that expired while nothing ran
    adapters = Adapters(
        uow_factory=lambda: SqlUnitOfWork(sessions, sealer),
        vk=vk,
        queue=None,  # type: ignore[arg-type]  # set below: the in-process queue needs adapters
        events=events,
        clock=SystemClock(),
        matcher_factory=build_matcher_factory(),
        recent_window_hours=settings.recent_window_hours,
        vk_daily_limits=dict(settings.vk_daily_limits),
        collect_concurrency=settings.collect_concurrency,
        exports=exports,
        export_time_zone=settings.export_time_zone,
        cache=RedisCache(redis, prefix=settings.redis_prefix) if redis is not None else InMemoryCache(),
        task_timing=TaskTiming(stall_after=timedelta(seconds=settings.task_stall_seconds)),
        rules=SqlRules(sessions),
    )
    if settings.redis_url:
        from arq import create_pool

        pool = await create_pool(arq_settings(settings.redis_url), default_queue_name=arq_queue_name(settings))
        queue: Any = ArqJobQueue(pool, queue_name=arq_queue_name(settings))
    else:
        # A name that survives a restart: the tasks this process was running when it stopped
        # are claimed again at startup at once, without waiting for their lease to go stale.
        embedded_worker = f"embedded@{socket.gethostname()}"
        queue = InProcessJobQueue(lambda task_id: run_task(adapters, task_id, worker_id=embedded_worker))
    closers.append(queue.aclose)
    adapters.queue = queue

    sender = ChannelSender()
    closers.append(sender.aclose)
    adapters.alert_sender = sender
    adapters.public_url = settings.public_url or DEFAULT_PUBLIC_URL
    adapters.alert_stats = DeliveryStats()
    if redis is not None:  # every worker's deliverer spends one budget per chat and bot
        adapters.alert_budget = RedisSendBudget(redis, prefix=settings.redis_prefix)
    adapters.alert_lease = timedelta(seconds=settings.alert_lease_seconds)

    return Container(
        settings=settings,
        adapters=adapters,
        read_model=SqlReadModel(read_session_factory(engine)),
        engine=engine,
        secret_key=secret_key,
        redis=redis,
        closers=closers,
    )


async def resume_unfinished(container: Container) -> int:
    """Embedded mode: tasks queued or running when the process stopped are run again (they
    are this process's by lease, see ``build_container``; later orphans are the scheduler's)."""
    async with container.adapters.uow_factory() as uow:
        tasks = await uow.tasks.list(states=[TaskState.QUEUED, TaskState.RUNNING], limit=10_000)
    for task in tasks:
        await enqueue_task(container.adapters, task)  # one waiting for VK: at its time
    if tasks:
        log.info("tasks.resumed", count=len(tasks))
    return len(tasks)


def freeze_startup_objects() -> None:
    """Keep what exists once the service is built (modules, schema, container) out of every
    later garbage collection: it lives as long as the process, and scanning it again on each
    full collection stalls requests and subscription fan-outs for tens of milliseconds."""
    gc.collect()
    gc.freeze()


SCHEDULER_INTERVAL = 60.0  # seconds: monitoring's granularity is a minute


async def scheduler_loop(adapters: Adapters) -> None:
    """Embedded mode's once-a-minute monitoring (``vkcp worker`` runs it as an ARQ cron job)."""
    while True:
        try:
            await scheduler_tick(adapters)
        except Unavailable as e:  # the database is away: the next minute's tick catches up
            log.warning("scheduler.tick_deferred", error=e.message)
        except Exception:  # a bug in one tick must not end monitoring
            log.exception("scheduler.tick_failed")
        await asyncio.sleep(SCHEDULER_INTERVAL - time.time() % SCHEDULER_INTERVAL)


def start_loops(
    container: Container, *, recover: bool, schedule: bool, wake: asyncio.Event | None = None
) -> None:
    """The background loops of a long-running process, owned by the container (``aclose`` stops
    them): returning freed memory to the system always; the recovery loop (``watch_tasks``)
    where tasks run (``wake`` re-offers queued tasks at once when set); the minute scheduler
    where no ARQ cron runs it (embedded mode)."""
    adapters = container.adapters
    container.loops.append(asyncio.create_task(release_free_memory_forever(), name="release-free-memory"))
    if recover:
        container.loops.append(asyncio.create_task(watch_tasks(adapters, wake=wake), name="watch-tasks"))
    if schedule:
        container.loops.append(asyncio.create_task(scheduler_loop(adapters), name="scheduler"))
    if recover:  # where tasks run, alerts are delivered: every worker, and the embedded serve
        worker_id = f"alerts@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        container.loops.append(asyncio.create_task(delivery_loop(adapters, worker_id=worker_id), name="alert-delivery"))


def migrate(settings: Settings) -> list[str]:
    """``vkcp migrate``: the database brought to the code's schema; the revisions applied."""
    return upgrade(settings.effective_database_url)


async def migrate_embedded(settings: Settings) -> None:
    """The embedded SQLite database migrates itself at startup (PostgreSQL: ``vkcp migrate``)."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_async(settings.effective_database_url)


@contextlib.asynccontextmanager
async def token_store(settings: Settings) -> AsyncIterator[Callable[[], UnitOfWork]]:
    """The database alone, as units of work: managing API tokens needs neither VK nor Redis."""
    await migrate_embedded(settings)
    engine = create_engine(settings.effective_database_url, pool_size=settings.database_pool_size)
    sessions = session_factory(engine)
    try:
        yield lambda: SqlUnitOfWork(sessions)
    finally:
        await engine.dispose()


# A worker started while Redis is down waits this many seconds for it before giving up.
WORKER_REDIS_RETRIES = 60


def worker_redis(settings: Settings) -> RedisSettings:
    """Where ``vkcp worker`` finds its Redis (``VKCP_REDIS_URL``, which it needs)."""
    if not settings.redis_url:
        raise ValueError("vkcp worker needs VKCP_REDIS_URL (without Redis, `vkcp serve` runs jobs itself)")
    return arq_settings(settings.redis_url, conn_retries=WORKER_REDIS_RETRIES, conn_retry_delay=1)
