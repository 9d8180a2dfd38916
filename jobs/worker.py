"""ARQ worker: the job functions and ``WorkerSettings``; every job is a task id.

``vkcp worker`` (``entrypoints/worker.py``) runs ``WorkerSettings`` with what depends on the
settings (the queue's name, Redis, the startup that builds the container): nothing here reads
them, so importing this module builds and connects nothing.

Crash safety lives in the task's lease (``domain.tasks``), not in ARQ: a worker killed with
-9 leaves its job "in progress" in Redis (for ARQ's ``job_timeout``, hours: ARQ itself would
not re-deliver it sooner), but every worker runs the recovery loop (``watch_tasks``), which
wakes when the dead runner's lease lapses and enqueues the task again under a new job id, and
the next worker continues it. The same loop re-offers QUEUED tasks whose job a Redis restart
lost, at once when this worker's poll loop sees Redis answer again. Redis outages do not end a
worker: its poll loop waits them out (``jobs/arq_compat.py``), and the running jobs go on.
"""

from __future__ import annotations

from typing import Any, ClassVar

from arq.cron import CronJob, cron
from arq.worker import func

from domain.monitoring import scheduler_tick
from domain.tasks import run_task
from domain.timing import TaskTiming
from infrastructure.queue import RUN_TASK

# ARQ's own limit is only a backstop: each kind's timeout (TaskTiming.timeouts) ends the task
# FAILED with a clear error first.
JOB_TIMEOUT = int(max(t.total_seconds() for t in TaskTiming().timeouts.values())) + 600


async def run_task_job(ctx: dict[str, Any], task_id: int) -> str | None:
    task = await run_task(ctx["container"].adapters, task_id, worker_id=ctx["worker_id"])
    return task.state.value if task else None


async def scheduler_job(ctx: dict[str, Any]) -> int:
    """Monitoring, once a minute cluster-wide (ARQ gives each minute's run one job id, so
    however many workers run, one of them runs it)."""
    return len(await scheduler_tick(ctx["container"].adapters))


def cron_jobs(queue_name: str) -> list[CronJob]:
    # ARQ derives each run's job id from the cron name and the minute, outside any key prefix:
    # the queue name in it keeps installations sharing one Redis from skipping each other's runs.
    return [cron(scheduler_job, name=f"{queue_name}:scheduler", second=0, run_at_startup=False, timeout=300)]


class WorkerSettings:
    # keep_result=0: a finished job leaves no result behind, so the recovery loop can offer a
    # task that is still QUEUED again under the same job id (e.g. its run could not claim it).
    functions: ClassVar = [func(run_task_job, name=RUN_TASK, keep_result=0)]
    allow_abort_jobs = True
    job_timeout = JOB_TIMEOUT
    max_tries = 1000  # a shutdown re-queues the job; the task's state, not ARQ, decides what runs
    keep_result = 300  # > a few seconds: a finished cron run's id still blocks its duplicates
