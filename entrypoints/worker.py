"""``vkcp worker``: an ARQ worker running ``jobs.worker.WorkerSettings``.

Its startup builds the container (``bootstrap``) and starts the worker's loops: the recovery
loop, woken when Redis answers again after an outage, and memory trimming. The minute
scheduler is an ARQ cron job here (one run a minute cluster-wide), not a loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

from arq.worker import async_check_health, get_kwargs

from bootstrap import arq_queue_name, build_container, start_loops, worker_redis
from infrastructure.settings import Settings
from jobs.arq_compat import QUEUE_BACK, ResilientWorker
from jobs.worker import WorkerSettings, cron_jobs

HEALTH_INTERVAL = 30  # seconds between a worker's "alive" marks; the mark lives a second longer


def health_key(queue_name: str) -> str:
    """One health key per host (per container), not ARQ's one per queue: a worker's healthcheck
    must fail when *this* worker is gone, even while its siblings are fine."""
    return f"{queue_name}:health-check:{socket.gethostname()}"


def check(settings: Settings) -> int:
    """``vkcp worker --check``: 0 when the worker on this host reported itself alive recently."""
    queue_name = arq_queue_name(settings)
    return asyncio.run(async_check_health(worker_redis(settings), health_key(queue_name), queue_name))


def run(settings: Settings) -> int:
    queue_name = arq_queue_name(settings)

    async def startup(ctx: dict[str, Any]) -> None:
        container = ctx["container"] = await build_container(settings)
        ctx["worker_id"] = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # Set by the poll loop when Redis answers again after an outage (jobs/arq_compat.py): the
        # recovery loop then re-offers every queued task at once, instead of after ``TaskTiming.queued_grace``.
        ctx[QUEUE_BACK] = queue_back = asyncio.Event()
        start_loops(container, recover=True, schedule=False, wake=queue_back)

    async def shutdown(ctx: dict[str, Any]) -> None:
        container = ctx.get("container")
        if container is not None:
            await container.aclose()

    options: dict[str, Any] = {
        **get_kwargs(dict(vars(WorkerSettings))),
        "queue_name": queue_name,
        "cron_jobs": cron_jobs(queue_name),
        "redis_settings": worker_redis(settings),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "health_check_key": health_key(queue_name),
        "health_check_interval": HEALTH_INTERVAL,
    }
    ResilientWorker(**options).run()
    return 0
