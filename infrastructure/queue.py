"""Job-queue adapters: in-process (embedded mode) and ARQ on Redis.

Both run ``domain.tasks.run_task(task_id)``; the task's state lives in the database, so the
queue only has to deliver a task id at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable

import structlog
from arq.jobs import Job

from domain.models import Task
from infrastructure.redis_client import REDIS_ERRORS, unavailable

log = structlog.get_logger(__name__)

RUN_TASK = "run_task"  # the ARQ function name, see jobs/worker.py


def arq_job_id(task: Task, attempt: int, prefix: str = "") -> str:
    """One job id per attempt: enqueuing an attempt twice runs it once, while the next attempt
    (a worker died) is not blocked by ARQ's leftover "in progress" key of the dead one. The
    prefix and creation time keep ids apart between installations (and recreated databases)
    sharing one Redis."""
    created = int(task.created_at.timestamp()) if task.created_at else 0
    return f"{prefix}task:{task.id}:{created}:{attempt}"


class InProcessJobQueue:
    """A priority queue drained by a few asyncio workers inside the API process."""

    def __init__(self, run: Callable[[int], Awaitable[object]], *, concurrency: int = 4) -> None:
        self._run = run
        self._queue: asyncio.PriorityQueue[tuple[int, int, int]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._workers: list[asyncio.Task] = []
        self._concurrency = concurrency
        self._pending: set[int] = set()  # task ids queued or running here: enqueued once

    def start(self) -> None:
        if not self._workers:
            self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def enqueue(self, task: Task) -> None:
        assert task.id is not None
        self.start()
        if task.id in self._pending:
            return
        self._pending.add(task.id)
        # Higher priority first; FIFO among equals.
        await self._queue.put((-task.priority, next(self._order), task.id))

    async def abort(self, task: Task) -> None:
        # The runner's supervisor sees the task's cancel flag within a second and stops it.
        return None

    async def join(self) -> None:
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            _, _, task_id = await self._queue.get()
            try:
                await self._run(task_id)
            except Exception:
                log.exception("queue.job_crashed", task_id=task_id)
            finally:
                self._pending.discard(task_id)
                self._queue.task_done()

    async def aclose(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []


class ArqJobQueue:
    """Enqueues ``run_task`` jobs for ``vkcp worker`` processes (ARQ on Redis)."""

    def __init__(self, pool, *, queue_name: str) -> None:
        self._pool = pool  # arq.connections.ArqRedis
        self._queue_name = queue_name

    async def enqueue(self, task: Task) -> None:
        """Raises ``Unavailable`` when Redis cannot take the job; the task stays QUEUED in the
        database, and the recovery loop enqueues it again once Redis is back."""
        assert task.id is not None
        # ARQ keeps job and result keys outside any prefix: the queue name keeps them apart.
        job_id = arq_job_id(task, task.attempts + 1, prefix=f"{self._queue_name}:")
        try:
            job = await self._pool.enqueue_job(RUN_TASK, task.id, _job_id=job_id, _queue_name=self._queue_name)
        except REDIS_ERRORS as e:
            raise unavailable(e, "enqueue") from None
        if job is None:
            log.debug("queue.already_enqueued", task_id=task.id, job_id=job_id)

    async def abort(self, task: Task) -> None:
        """Abort the job running the task's current attempt (its runner ends it CANCELLED).
        Best effort: without Redis, the runner's supervisor still sees the cancel flag."""
        assert task.id is not None
        job = Job(arq_job_id(task, max(task.attempts, 1), prefix=f"{self._queue_name}:"), self._pool, _queue_name=self._queue_name)
        try:
            await job.abort(timeout=0)
        except asyncio.TimeoutError:
            pass
        except REDIS_ERRORS as e:
            log.warning("queue.abort_failed", task_id=task.id, error=type(e).__name__)

    async def aclose(self) -> None:
        await self._pool.aclose()
