"""ARQ worker: ``vkcp worker`` runs ``WorkerSettings``; every job is a task id."""

from __future__ import annotations

import asyncio
from typing import Any

from arq.connections import RedisSettings
from arq.worker import func

from domain.tasks import cancel_running, run_task
from infrastructure.bootstrap import ARQ_QUEUE, build_container
from infrastructure.queue import RUN_TASK
from infrastructure.logging import configure_logging
from infrastructure.settings import Settings


async def run_task_job(ctx: dict[str, Any], task_id: int) -> str | None:
    adapters = ctx["container"].adapters
    try:
        task = await run_task(adapters, task_id)
    except asyncio.CancelledError:
        # ARQ aborted the job (cancelTask): record it before the cancellation propagates.
        await asyncio.shield(cancel_running(adapters, task_id))
        raise
    return task.state.value if task else None


async def startup(ctx: dict[str, Any]) -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    ctx["container"] = await build_container(settings, worker=True)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["container"].aclose()


def _redis_settings() -> RedisSettings:
    url = Settings().redis_url
    if not url:
        raise SystemExit("vkcp worker needs VKCP_REDIS_URL (without Redis, `vkcp serve` runs jobs itself)")
    return RedisSettings.from_dsn(url)


class WorkerSettings:
    functions = [func(run_task_job, name=RUN_TASK)]
    queue_name = ARQ_QUEUE
    on_startup = startup
    on_shutdown = shutdown
    allow_abort_jobs = True
    job_timeout = 6 * 3600  # a first parse of a big community takes hours at VK's rate
    max_tries = 5  # re-delivery after a crash continues the same task
    keep_result = 3600

    @classmethod
    def redis(cls) -> RedisSettings:
        return _redis_settings()
