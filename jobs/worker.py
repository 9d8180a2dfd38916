"""ARQ worker: ``vkcp worker`` runs ``WorkerSettings``; every job is a task id.

Crash safety lives in the task's lease (``domain.tasks``), not in ARQ: a worker killed with
-9 leaves its job "in progress" in Redis (for ARQ's ``job_timeout``, hours: ARQ itself would
not re-deliver it sooner), but every worker runs the recovery loop (``watch_tasks``), which
wakes when the dead runner's lease lapses and enqueues the task again under a new job id, and
the next worker continues it. The same loop re-offers QUEUED tasks whose job a Redis restart
lost, at once when this worker's poll loop sees Redis answer again. Redis outages do not end a
worker: its poll loop waits them out (``jobs/arq_compat.py``), and the running jobs go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import func

from domain.monitoring import scheduler_tick
from domain.tasks import TIMEOUTS, run_task, watch_tasks
from infrastructure.bootstrap import arq_queue_name, build_container
from infrastructure.logging import configure_logging
from infrastructure.memory import release_free_memory_forever
from infrastructure.queue import RUN_TASK
from infrastructure.redis_client import arq_settings
from infrastructure.settings import Settings
from jobs.arq_compat import QUEUE_BACK

# ARQ's own limit is only a backstop: each kind's timeout (domain.tasks.TIMEOUTS) ends the task
# FAILED with a clear error first.
JOB_TIMEOUT = int(max(t.total_seconds() for t in TIMEOUTS.values())) + 600


async def run_task_job(ctx: dict[str, Any], task_id: int) -> str | None:
    task = await run_task(ctx["container"].adapters, task_id, worker_id=ctx["worker_id"])
    return task.state.value if task else None


async def scheduler_job(ctx: dict[str, Any]) -> int:
    """Monitoring, once a minute cluster-wide (ARQ gives each minute's run one job id, so
    however many workers run, one of them runs it)."""
    return len(await scheduler_tick(ctx["container"].adapters))


async def startup(ctx: dict[str, Any]) -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    container = ctx["container"] = await build_container(settings)
    ctx["worker_id"] = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    # Set by the poll loop when Redis answers again after an outage (jobs/arq_compat.py): the
    # recovery loop then re-offers every queued task at once, instead of after QUEUED_GRACE.
    ctx[QUEUE_BACK] = queue_back = asyncio.Event()
    ctx["watch"] = asyncio.create_task(
        watch_tasks(container.adapters, stall_after=timedelta(seconds=settings.task_stall_seconds), wake=queue_back),
        name="watch-tasks",
    )
    ctx["trim"] = asyncio.create_task(release_free_memory_forever(), name="release-free-memory")


async def shutdown(ctx: dict[str, Any]) -> None:
    for name in ("watch", "trim"):
        background = ctx.get(name)
        if background is not None:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
    await ctx["container"].aclose()


# A worker started while Redis is down waits this many seconds for it before giving up.
STARTUP_REDIS_RETRIES = 60


def _redis_settings() -> RedisSettings:
    url = Settings().redis_url
    if not url:
        raise SystemExit("vkcp worker needs VKCP_REDIS_URL (without Redis, `vkcp serve` runs jobs itself)")
    return arq_settings(url, conn_retries=STARTUP_REDIS_RETRIES, conn_retry_delay=1)


_QUEUE = arq_queue_name(Settings())


class WorkerSettings:
    # keep_result=0: a finished job leaves no result behind, so the recovery loop can offer a
    # task that is still QUEUED again under the same job id (e.g. its run could not claim it).
    functions = [func(run_task_job, name=RUN_TASK, keep_result=0)]
    # ARQ derives each run's job id from the cron name and the minute, outside any key prefix:
    # the queue name in it keeps installations sharing one Redis from skipping each other's runs.
    cron_jobs = [cron(scheduler_job, name=f"{_QUEUE}:scheduler", second=0, run_at_startup=False, timeout=300)]
    queue_name = _QUEUE
    on_startup = startup
    on_shutdown = shutdown
    allow_abort_jobs = True
    job_timeout = JOB_TIMEOUT
    max_tries = 1000  # a shutdown re-queues the job; the task's state, not ARQ, decides what runs
    keep_result = 300  # > a few seconds: a finished cron run's id still blocks its duplicates

    @classmethod
    def redis(cls) -> RedisSettings:
        return _redis_settings()
