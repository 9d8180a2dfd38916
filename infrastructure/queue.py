"""Job-queue adapters: in-process (embedded mode) and ARQ on Redis.

Both run ``domain.tasks.run_task(task_id)``; the task's state lives in the database, so the
queue only has to deliver a task id at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from arq.jobs import Job

from domain.models import Task
from infrastructure.redis_client import REDIS_ERRORS, unavailable

log = structlog.get_logger(__name__)

RUN_TASK = "run_task"  # the ARQ function name, see jobs/worker.py


def arq_job_id(task: Task, run: int, prefix: str = "") -> str:
    """One job id per run: enqueuing a run twice runs it once, while the next run (a worker
    died, or the task waited for VK) is not blocked by ARQ's leftover "in progress" key of the
    last one. The prefix and creation time keep ids apart between installations (and
    recreated databases) sharing one Redis."""
    created = int(task.created_at.timestamp()) if task.created_at else 0
    return f"{prefix}task:{task.id}:{created}:{run}"


def current_run(task: Task) -> int:
    """Runs started so far: the attempts (a first start, a restart after a crash or a stall)
    and the resumes after a wait for VK (``domain.tasks``)."""
    return task.attempts + task.waits


def next_run(task: Task) -> int:
    """The run a job enqueued now starts: a waiting task resumes without a new attempt."""
    return current_run(task) + (0 if task.waiting_until is not None else 1)


class InProcessJobQueue:
    """A priority queue drained by a few asyncio workers inside the API process."""

    def __init__(self, run: Callable[[int], Awaitable[object]], *, concurrency: int = 4) -> None:
        self._run = run
        self._queue: asyncio.PriorityQueue[tuple[int, int, int]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._workers: list[asyncio.Task] = []
        self._concurrency = concurrency
        self._pending: set[int] = set()  # task ids queued or running here: enqueued once
        self._running: set[int] = set()
        # Enqueued again while their job runs (a task that starts waiting for VK just as its
        # time has come, a stalled one handed over): run once more after it.
        self._again: set[int] = set()
        self._deferred: dict[int, asyncio.TimerHandle] = {}  # task id -> its enqueue, later

    def start(self) -> None:
        if not self._workers:
            self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def enqueue(self, task: Task, *, defer_until: datetime | None = None) -> None:
        assert task.id is not None
        self.start()
        if defer_until is not None:
            # Off the queue until then: the job that waits returns, its worker takes other work.
            delay = max(0.0, (defer_until - datetime.now(UTC)).total_seconds())
            if task.id in self._deferred:
                self._deferred[task.id].cancel()
            loop = asyncio.get_running_loop()
            self._deferred[task.id] = loop.call_later(delay, self._enqueue_deferred, task.id, task.priority)
            return
        self._put(task.id, task.priority)

    def _enqueue_deferred(self, task_id: int, priority: int) -> None:
        self._deferred.pop(task_id, None)
        self._put(task_id, priority)

    def _put(self, task_id: int, priority: int) -> None:
        if task_id in self._running:
            self._again.add(task_id)
            return
        if task_id in self._pending:
            return
        self._pending.add(task_id)
        # Higher priority first; FIFO among equals. Unbounded: never blocks.
        self._queue.put_nowait((-priority, next(self._order), task_id))

    async def abort(self, task: Task) -> None:
        # The runner's supervisor sees the task's cancel flag within a second and stops it; a
        # task waiting for VK is not run when its time comes.
        deferred = self._deferred.pop(task.id, None) if task.id is not None else None
        if deferred is not None:
            deferred.cancel()

    async def join(self) -> None:
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            priority, _, task_id = await self._queue.get()
            self._running.add(task_id)
            try:
                await self._run(task_id)
            except Exception:
                log.exception("queue.job_crashed", task_id=task_id)
            finally:
                self._running.discard(task_id)
                self._pending.discard(task_id)
                if task_id in self._again:
                    self._again.discard(task_id)
                    self._put(task_id, -priority)
                self._queue.task_done()

    async def aclose(self) -> None:
        for deferred in self._deferred.values():
            deferred.cancel()
        self._deferred.clear()
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

    async def enqueue(self, task: Task, *, defer_until: datetime | None = None) -> None:
        """Raises ``Unavailable`` when Redis cannot take the job; the task stays QUEUED in the
        database, and the recovery loop enqueues it again once Redis is back. A deferred job
        sits in ARQ's queue, scored by its time, and no worker takes it before then."""
        assert task.id is not None
        # ARQ keeps job and result keys outside any prefix: the queue name keeps them apart.
        job_id = arq_job_id(task, next_run(task), prefix=f"{self._queue_name}:")
        try:
            job = await self._pool.enqueue_job(
                RUN_TASK, task.id, _job_id=job_id, _queue_name=self._queue_name, _defer_until=defer_until
            )
        except REDIS_ERRORS as e:
            raise unavailable(e, "enqueue") from None
        if job is None:
            log.debug("queue.already_enqueued", task_id=task.id, job_id=job_id)

    async def abort(self, task: Task) -> None:
        """Abort the job running the task's current attempt (its runner ends it CANCELLED).
        Best effort: without Redis, the runner's supervisor still sees the cancel flag."""
        assert task.id is not None
        run = max(current_run(task), 1)
        job = Job(arq_job_id(task, run, prefix=f"{self._queue_name}:"), self._pool, _queue_name=self._queue_name)
        try:
            await job.abort(timeout=0)
        except TimeoutError:
            pass
        except REDIS_ERRORS as e:
            log.warning("queue.abort_failed", task_id=task.id, error=type(e).__name__)

    async def aclose(self) -> None:
        await self._pool.aclose()
