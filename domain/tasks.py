"""Tasks: the durable record of every background job, and the runner that drives one.

A task is stored QUEUED before its job is enqueued, so a crash between the two loses nothing
a retry cannot find. The runner is idempotent: a job delivered twice (a worker died, ARQ
re-delivered it) continues the same task, and since storing is an upsert the result is exact.
Terminal tasks are never run again.

Leases make crashes cheap: a runner claims a task with one conditional UPDATE (QUEUED, or
RUNNING with a stale heartbeat) and heartbeats every few seconds while it runs. A worker
killed with -9 stops heartbeating; the recovery loop of every other worker wakes up when that
lease lapses (``lease`` after the last beat, not at its next fixed pass), enqueues the task
again (``recover_orphaned``), and the next runner continues it: about ``lease`` plus a second
after the kill. A runner that finds the task held by a live runner leaves it alone. A watcher
that could not reach the database itself does not judge leases until it has watched them for
a whole ``lease`` again: the runners could not renew theirs meanwhile either. Every such
duration, with its reason, is a field of ``domain.timing.TaskTiming``, which the runner and the
recovery loop read from ``Adapters.task_timing``.

Faults of the infrastructure are not the task's fault. A transient error (the database or
Redis unavailable, VK failing past the gateway's retries; see ``domain.resilience``) makes the
runner run the handler again from what is stored (collection is incremental and idempotent)
after a backoff, for up to ``transient_budget`` in one stretch; a task ends FAILED only for a
reason a person can act on, and says it. The recovery loop (``watch_tasks``, in every worker)
enqueues tasks whose job was lost (a Redis restart empties the queue) or whose runner died,
and finds tasks that still heartbeat but make no progress (stalled): it logs them at ERROR,
records the stall on the task and has another runner take them over. When the queue comes
back after an outage (``wake``), it re-offers every QUEUED task at once.

When every VK token rests (daily quota, captcha: the gateway raises ``VkTokensResting``), the
work waits, it does not fail: the runner stores the task QUEUED with ``waiting_until`` and a
message saying why and until when, gives its lease and its worker slot up, and enqueues the
task again for that time (``JobQueue.enqueue(defer_until=...)``). The resumed run continues
from what is stored. A wait is neither an attempt nor a stall, and the next run gets the whole
timeout and transient budget again; the recovery loop leaves a waiting task alone until its
time (then re-offers it, in case Redis lost the deferred job); a cancel ends it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from domain.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    TaskCancelled,
    Unavailable,
    VkTokensResting,
)
from domain.models import Progress, Task, TaskKind, TaskState
from domain.ports import Adapters
from domain.progress import Say
from domain.resilience import TRANSIENT, backoff_delay, is_transient, retry_transient
from domain.stats import invalidate_stats

log = structlog.get_logger(__name__)

TASKS_CHANNEL = "tasks"
CAPTCHA_CODES = frozenset({14, 17})  # VK's captcha and "validation required": no one here solves them
# Identifies this process's runners in task leases; ARQ workers pass their own.
LOCAL_WORKER = f"{socket.gethostname()}:{os.getpid()}"
_running_here: set[tuple[str, int]] = set()  # (worker id, task id) being run in this process

TaskHandler = Callable[[Adapters, Task, Callable[[int, int | None, str], Awaitable[None]]], Awaitable[dict[str, Any]]]


def task_channel(task_id: int) -> str:
    return f"task:{task_id}"


def task_event(task: Task) -> dict[str, Any]:
    """The snapshot published on every change: enough to rebuild a ``Task`` for subscribers."""
    return {
        "id": task.id,
        "kind": task.kind.value,
        "state": task.state.value,
        "priority": task.priority,
        "groupId": task.group_id,
        "params": task.params,
        "done": task.progress.done,
        "total": task.progress.total,
        "message": task.progress.message,
        "attempts": task.attempts,
        "createdAt": _iso(task.created_at),
        "startedAt": _iso(task.started_at),
        "finishedAt": _iso(task.finished_at),
        "error": task.error,
        "result": task.result,
        "cancelRequested": task.cancel_requested,
        "updatedAt": _iso(task.updated_at),
        "stalledAt": _iso(task.stalled_at),
        "stalls": task.stalls,
        "waitingUntil": _iso(task.waiting_until),
        "waits": task.waits,
    }


def task_from_event(event: dict[str, Any]) -> Task:
    return Task(
        id=event["id"],
        kind=TaskKind(event["kind"]),
        state=TaskState(event["state"]),
        priority=event["priority"],
        group_id=event.get("groupId"),
        params=event.get("params") or {},
        progress=Progress(event.get("done") or 0, event.get("total"), event.get("message") or ""),
        attempts=event.get("attempts") or 0,
        created_at=_parse(event.get("createdAt")),
        started_at=_parse(event.get("startedAt")),
        finished_at=_parse(event.get("finishedAt")),
        error=event.get("error"),
        result=event.get("result"),
        cancel_requested=bool(event.get("cancelRequested")),
        updated_at=_parse(event.get("updatedAt")),
        stalled_at=_parse(event.get("stalledAt")),
        stalls=event.get("stalls") or 0,
        waiting_until=_parse(event.get("waitingUntil")),
        waits=event.get("waits") or 0,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def publish_task(adapters: Adapters, task: Task) -> None:
    assert task.id is not None, "only a stored task has a channel"
    event = task_event(task)
    await adapters.events.publish(task_channel(task.id), event)
    await adapters.events.publish(TASKS_CHANNEL, event)


# --- starting -------------------------------------------------------------------------------


async def start_parse(
    adapters: Adapters,
    group_ids: Sequence[int],
    *,
    max_posts: int | None = None,
    since: datetime | None = None,
    priority: int = 5,
    full: bool = False,
) -> list[Task]:
    """One PARSE task per group. A group already queued or running gets its existing task back
    (documented behaviour: starting twice never runs a community twice at once)."""
    if not group_ids:
        raise InvalidInput("Give at least one group id", field="groupIds")
    if max_posts is not None and max_posts < 1:
        raise InvalidInput("maxPosts must be at least 1", field="maxPosts")
    if not 1 <= priority <= 10:
        raise InvalidInput("priority must be between 1 and 10", field="priority")
    tasks: list[Task] = []
    fresh: list[Task] = []
    async with adapters.uow_factory() as uow:
        for group_id in dict.fromkeys(group_ids):
            group = await uow.groups.get(group_id)
            if group is None:
                raise NotFound(f"Group {group_id} not found", field="groupIds")
            existing = await uow.tasks.find_active(TaskKind.PARSE, group_id)
            if existing is not None:
                tasks.append(existing)
                continue
            params: dict[str, Any] = {"maxPosts": max_posts or group.max_posts, "full": full}
            since_value = since or group.since
            if since_value is not None:
                params["since"] = since_value.isoformat()
            task = Task(
                kind=TaskKind.PARSE,
                priority=priority,
                group_id=group_id,
                params=params,
                created_at=adapters.clock.now(),
            )
            added = await uow.tasks.add_parse(task)
            if added is None:  # a concurrent start won the race: its task is the run
                existing = await uow.tasks.find_active(TaskKind.PARSE, group_id)
                if existing is None:  # ...and it has finished already: this one may run
                    raise Conflict(f"Group {group_id} was being started concurrently; try again", field="groupIds")
                tasks.append(existing)
                continue
            tasks.append(added)
            fresh.append(added)
        await uow.commit()
    for task in fresh:
        await _announce(adapters, task)
    return tasks


async def start_task(adapters: Adapters, kind: TaskKind, params: dict[str, Any], *, priority: int = 5) -> Task:
    """A task that is not tied to one group (ANALYZE, EXPORT)."""
    if not 1 <= priority <= 10:
        raise InvalidInput("priority must be between 1 and 10", field="priority")
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.add(Task(kind=kind, priority=priority, params=params, created_at=adapters.clock.now()))
        await uow.commit()
    await _announce(adapters, task)
    return task


async def _announce(adapters: Adapters, task: Task) -> None:
    """Tell subscribers and hand the stored task to the queue. A queue that cannot take it now
    (Redis down) is not the caller's problem: the task is stored, the recovery loop enqueues it
    once the queue is back, and the caller gets the task (a client that retried on an error
    would start it twice)."""
    await publish_task(adapters, task)
    await enqueue_task(adapters, task)


async def enqueue_task(adapters: Adapters, task: Task) -> bool:
    """Hand a QUEUED task to the queue: a waiting one for when its tokens come back. False
    when the queue cannot take it now (the recovery loop offers it again later)."""
    defer_until = task.waiting_until + adapters.task_timing.resume_margin if task.waiting_until is not None else None
    if defer_until is not None and defer_until <= adapters.clock.now():
        defer_until = None  # its time has come (the recovery loop, a restart)
    try:
        await adapters.queue.enqueue(task, defer_until=defer_until)
    except Unavailable as e:
        log.warning("task.enqueue_deferred", task_id=task.id, error=e.message)
        return False
    return True


async def cancel_task(adapters: Adapters, task_id: int) -> Task:
    """A queued task (one waiting for VK too) ends CANCELLED at once; a running one within a
    second or two (its job is aborted, and its runner's supervisor sees the flag even while VK
    keeps it waiting)."""
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.request_cancel(task_id, now=adapters.clock.now())
        if task is None:
            existing = await uow.tasks.get(task_id)
            if existing is None:
                raise NotFound(f"Task {task_id} not found", field="id")
            raise InvalidInput(f"Task {task_id} has already ended ({existing.state.value})", field="id")
        await uow.commit()
    await publish_task(adapters, task)
    if task.state is TaskState.RUNNING or task.waits:  # a waiting one has a deferred job
        await adapters.queue.abort(task)
    return task


# --- running --------------------------------------------------------------------------------


HANDLERS: dict[TaskKind, TaskHandler] = {}
"""What runs a task of each kind. The use cases register their handlers into it when their
module is imported (``domain.collect``, ``domain.analyze``, ``domain.export``), so this module
imports none of them; the composition root imports them all."""


def register_handler(kind: TaskKind, handler: TaskHandler) -> None:
    HANDLERS[kind] = handler


async def run_task(adapters: Adapters, task_id: int, *, worker_id: str = LOCAL_WORKER) -> Task | None:
    """Drive one task to a terminal state. Safe to call again for the same task, from any
    number of runners: the lease decides which one runs it (see the module docstring)."""
    key = (worker_id, task_id)
    if key in _running_here:  # a duplicate delivery to this runner while it runs the task
        return None
    _running_here.add(key)
    try:
        return await _claim_and_run(adapters, task_id, worker_id)
    finally:
        _running_here.discard(key)


async def _claim_and_run(adapters: Adapters, task_id: int, worker_id: str) -> Task | None:
    async def claim() -> tuple[Task | None, Task | None]:
        now = adapters.clock.now()
        stale_before = now - adapters.task_timing.lease
        current = None
        async with adapters.uow_factory() as uow:
            task = await uow.tasks.claim(task_id, worker_id=worker_id, now=now, stale_before=stale_before)
            if task is None:
                current = await uow.tasks.get(task_id)
            await uow.commit()
        return task, current

    task, current = await retry_transient(claim, what="claim task", task_id=task_id)
    if task is None:
        if current is None:
            log.warning("task.missing", task_id=task_id)
        else:  # ended already, or another live runner holds it
            log.info("task.not_claimed", task_id=task_id, state=current.state.value, holder=current.worker_id)
        return current
    if task.cancel_requested:  # cancelled while its runner was dead
        return await _finish(adapters, task, worker_id, TaskState.CANCELLED, task.progress)
    await publish_task(adapters, task)

    reporter = _Reporter(adapters, task, worker_id)
    handler = HANDLERS.get(task.kind)
    timeout = adapters.task_timing.timeout(task.kind)
    log.info("task.started", task_id=task.id, kind=task.kind.value, attempt=task.attempts, worker=worker_id)
    if handler is None:
        return await _finish(adapters, task, worker_id, TaskState.FAILED, reporter.last,
                             error=f"No handler for {task.kind.value} tasks")

    work = asyncio.create_task(_run_handler(adapters, task, handler, reporter), name=f"task-{task.id}")
    supervisor = _Supervisor(adapters, task_id, worker_id, work)
    watching = asyncio.create_task(supervisor.run(), name=f"task-{task.id}-supervisor")
    deadline = asyncio.timeout(timeout.total_seconds())
    try:
        try:
            async with deadline:
                result = await work
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
    except asyncio.CancelledError:
        current_task = asyncio.current_task()
        if current_task is not None and current_task.cancelling():
            # Stopped from outside: an ARQ abort (cancelTask) or the process shutting down.
            work.cancel()
            await asyncio.shield(_stopped_from_outside(adapters, task, worker_id, reporter))
            raise
        return await _stopped_by_supervisor(adapters, task, worker_id, reporter, supervisor)
    except BaseException as e:
        if supervisor.reason is not None:  # the handler turned our cancellation into an error
            return await _stopped_by_supervisor(adapters, task, worker_id, reporter, supervisor)
        if isinstance(e, TimeoutError) and deadline.expired():
            error = f"timed out after {_human(timeout)}"
            log.info("task.timed_out", task_id=task.id, timeout=error)
            return await _finish(adapters, task, worker_id, TaskState.FAILED, reporter.last, error=error)
        if isinstance(e, TaskCancelled):
            return await _finish(adapters, task, worker_id, TaskState.CANCELLED, reporter.last)
        if isinstance(e, _LeaseLost):
            log.warning("task.lease_lost", task_id=task.id, worker=worker_id)
            return None
        if isinstance(e, VkTokensResting):
            return await _wait(adapters, task, worker_id, reporter, e)
        if isinstance(e, DomainError):
            error = e.message
            if is_transient(e):
                error += f" (still failing after {_human(adapters.task_timing.transient_budget)} of retries)"
            log.info("task.failed", task_id=task.id, error=error)
            return await _finish(adapters, task, worker_id, TaskState.FAILED, reporter.last, error=error)
        if not isinstance(e, Exception):
            raise
        # An unexpected bug: the task must still end, with the class of error.
        log.exception("task.crashed", task_id=task.id)
        return await _finish(adapters, task, worker_id, TaskState.FAILED, reporter.last,
                             error=f"internal error ({type(e).__name__})")
    done = reporter.last
    if done.total is not None:
        done = Progress(done.total, done.total, done.message)
    return await _finish(adapters, task, worker_id, TaskState.SUCCEEDED, done, result=result)


async def _run_handler(adapters: Adapters, task: Task, handler: TaskHandler, reporter: _Reporter) -> dict[str, Any]:
    """The handler, run again from what is stored after a transient error, with backoff, until
    the dependency is back or has been failing for ``transient_budget`` without progress."""
    timing = adapters.task_timing
    attempt = 0
    failing_since: float | None = None
    while True:
        try:
            return await handler(adapters, task, reporter)
        except TRANSIENT as e:
            now = time.monotonic()
            if failing_since is None or reporter.moved_at > failing_since:
                failing_since, attempt = now, 0  # progress was made since: a new stretch
            if now - failing_since >= timing.transient_budget.total_seconds():
                raise
            attempt += 1
            delay = backoff_delay(attempt, first=timing.retry_first, cap=timing.retry_max)
            log.warning("task.retrying", task_id=task.id, attempt=attempt, delay=round(delay, 2), error=e.message)
            reporter.resume()
            await reporter(reporter.last.done, reporter.last.total, Say.retrying(e.message))
            await asyncio.sleep(delay)


def waiting_message(until: datetime, vk_code: int | None, now: datetime) -> Say:
    """What a task waiting for VK says, in UTC: "waiting for VK: every token is over its daily
    quota until 00:00 UTC" (the date too when it is not today's)."""
    return Say.waiting_for_vk(until, now, captcha=vk_code in CAPTCHA_CODES)


async def _wait(
    adapters: Adapters, task: Task, worker_id: str, reporter: _Reporter, resting: VkTokensResting
) -> Task | None:
    """Every token rests: store the task QUEUED, waiting until the first comes back, give the
    lease up and enqueue the task for then. The run (and its worker slot) ends here."""
    task_id = task.id
    assert task_id is not None
    now = adapters.clock.now()
    until = max(resting.until, now)
    progress = Progress(reporter.last.done, reporter.last.total, waiting_message(until, resting.vk_code, now))

    async def store() -> tuple[Task | None, Task | None]:
        async with adapters.uow_factory() as uow:
            waiting = await uow.tasks.wait(task_id, worker_id=worker_id, now=now, until=until, progress=progress)
            current = waiting or await uow.tasks.get(task_id)
            await uow.commit()
        return waiting, current

    waiting, current = await retry_transient(store, what="store the wait", task_id=task.id)
    await invalidate_stats(adapters.cache)  # what the run stored so far counts now
    if waiting is None:
        if current is not None and current.cancel_requested and current.worker_id == worker_id:
            return await _finish(adapters, task, worker_id, TaskState.CANCELLED, reporter.last)
        log.warning("task.lease_lost", task_id=task.id, worker=worker_id)
        return None
    log.info("task.waiting", task_id=task.id, until=until.isoformat(), reason=resting.message)
    await publish_task(adapters, waiting)
    await enqueue_task(adapters, waiting)
    return waiting


async def _stopped_by_supervisor(
    adapters: Adapters, task: Task, worker_id: str, reporter: _Reporter, supervisor: _Supervisor
) -> Task | None:
    if supervisor.reason == "lease lost":
        log.warning("task.lease_lost", task_id=task.id, worker=worker_id)
        return None
    return await _finish(adapters, task, worker_id, TaskState.CANCELLED, reporter.last)


async def _stopped_from_outside(adapters: Adapters, task: Task, worker_id: str, reporter: _Reporter) -> None:
    """A cancel request ends the task CANCELLED; anything else (a shutdown) gives the lease up,
    so the next runner continues the task at once instead of waiting for it to go stale."""
    assert task.id is not None
    async with adapters.uow_factory() as uow:
        stored = await uow.tasks.get(task.id)
    if stored is not None and stored.cancel_requested:
        await _finish(adapters, task, worker_id, TaskState.CANCELLED, reporter.last)
        return
    try:
        async with adapters.uow_factory() as uow:
            await uow.tasks.release(task.id, worker_id=worker_id)
            await uow.commit()
    except Unavailable as e:  # shutting down: the lease goes stale by itself
        log.warning("task.release_failed", task_id=task.id, error=e.message)
        return
    log.info("task.released", task_id=task.id, worker=worker_id)


async def _finish(
    adapters: Adapters, task: Task, worker_id: str, state: TaskState, progress: Progress, *,
    error: str | None = None, result: dict[str, Any] | None = None,
) -> Task | None:
    task_id = task.id
    assert task_id is not None

    async def store() -> Task | None:
        async with adapters.uow_factory() as uow:
            stored = await uow.tasks.finish(
                task_id, worker_id=worker_id, state=state, now=adapters.clock.now(),
                error=error, result=result, progress=progress,
            )
            await uow.commit()
        return stored

    # Conditional on the lease, so trying again is safe; if the database stays away past the
    # step budget, the task stays RUNNING without a heartbeat and the next runner ends it.
    stored = await retry_transient(store, what="finish task", task_id=task.id)
    # Before anyone hears the task ended: whoever reacts by reading stats sees fresh numbers.
    await invalidate_stats(adapters.cache)
    if stored is None:  # the lease went to another runner meanwhile: the task is theirs to end
        log.warning("task.finish_skipped", task_id=task.id, state=state.value, worker=worker_id)
        return None
    await publish_task(adapters, stored)
    log.info("task.finished", task_id=stored.id, state=state.value, error=error)
    return stored


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


class _LeaseLost(Exception):
    """Another runner took the task over (this one was presumed dead): stop, write nothing."""


class _Supervisor:
    """Runs beside the handler: renews the lease and, within a second of a cancel request,
    cancels the handler, even while it is waiting on VK (where it reports no progress)."""

    def __init__(self, adapters: Adapters, task_id: int, worker_id: str, work: asyncio.Task[dict[str, Any]]) -> None:
        self.adapters, self.task_id, self.worker_id, self.work = adapters, task_id, worker_id, work
        self.reason: str | None = None

    async def run(self) -> None:
        beat_at = time.monotonic()
        while True:
            timing = self.adapters.task_timing
            await asyncio.sleep(timing.cancel_poll_interval)
            beat = time.monotonic() - beat_at >= timing.heartbeat_interval.total_seconds()
            try:
                async with self.adapters.uow_factory() as uow:
                    if beat:
                        stored = await uow.tasks.heartbeat(
                            self.task_id, worker_id=self.worker_id, now=self.adapters.clock.now()
                        )
                        await uow.commit()
                    else:
                        stored = await uow.tasks.get(self.task_id)
            except Unavailable as e:  # a database blip: the lease survives a few missed beats
                log.warning("task.heartbeat_failed", task_id=self.task_id, error=e.message)
                continue
            except Exception:  # a bug: keep supervising, or the lease would lapse unnoticed
                log.exception("task.supervisor_error", task_id=self.task_id)
                continue
            if beat:
                beat_at = time.monotonic()
            if stored is None or (beat and stored.worker_id != self.worker_id):
                return self._stop("lease lost")
            if stored.cancel_requested:
                return self._stop("cancel requested")

    def _stop(self, reason: str) -> None:
        self.reason = reason
        self.work.cancel()


class _Reporter:
    """Progress writes and events at most every ``progress_interval``, each renewing the lease and
    checking for a cancel request.

    Progress only moves forward: a resumed attempt (after a crash) counts what the earlier
    attempts finished as done, and a step that would go back is shown at the earlier value.
    """

    def __init__(self, adapters: Adapters, task: Task, worker_id: str) -> None:
        self.adapters = adapters
        assert task.id is not None
        self.task, self.task_id = task, task.id
        self.worker_id = worker_id
        self.last = task.progress
        # An earlier run (a crash, a wait) left progress behind.
        earlier = task.attempts + task.waits > 1
        self.carried = task.progress if earlier and task.progress.total is not None else None
        self._sent_at = 0.0
        self.moved_at = time.monotonic()  # when a moved done/total was last stored

    def resume(self) -> None:
        """The handler runs again from what is stored: count what it did so far as done."""
        if self.last.total is not None:
            self.carried = self.last

    def _forward(self, done: int, total: int | None, message: str) -> Progress:
        previous, carried = self.last, self.carried
        if carried is not None and carried.total is not None:
            if total is None:
                return Progress(previous.done, previous.total, message)
            if total <= carried.total:
                done, total = carried.total - total + done, carried.total
        if total == previous.total and done < previous.done:
            done = previous.done
        return Progress(done, total, message)

    async def __call__(self, done: int, total: int | None, message: str) -> None:
        before = self.last
        self.last = self._forward(done, total, message)
        moved = (self.last.done, self.last.total) != (before.done, before.total)
        now = time.monotonic()
        if now - self._sent_at < self.adapters.task_timing.progress_interval and done != total:
            return
        self._sent_at = now
        try:
            async with self.adapters.uow_factory() as uow:
                stored = await uow.tasks.heartbeat(
                    self.task_id, worker_id=self.worker_id, now=self.adapters.clock.now(), progress=self.last
                )
                await uow.commit()
        except Unavailable as e:  # progress is stored again with the next report
            log.warning("task.progress_not_stored", task_id=self.task.id, error=e.message)
            return
        if moved:
            self.moved_at = now
        if stored is None:
            raise _LeaseLost(f"task {self.task.id}")
        self.task = stored
        await publish_task(self.adapters, stored)
        if stored.cancel_requested:
            raise TaskCancelled("cancelled")


# --- recovery -------------------------------------------------------------------------------


async def recover_orphaned(adapters: Adapters, *, judge_leases: bool = True, every_queued: bool = False) -> list[Task]:
    """Enqueue again the tasks nobody is running: RUNNING ones whose runner stopped
    heartbeating (killed, or its machine gone), and QUEUED ones whose job may have been lost
    (a task waiting for VK only once its time has come). Part of the recovery loop. The queue
    gives each new attempt a new job id, and the lease keeps a task that is in fact still
    running from being run twice. ``judge_leases=False`` leaves RUNNING tasks with a heartbeat
    alone (the caller cannot tell a dead runner now); ``every_queued`` offers every QUEUED task
    again, however recent (a waiting one still only after its time), not only those older than
    ``queued_grace``."""
    timing = adapters.task_timing
    now = adapters.clock.now()
    stale_before = now - timing.lease if judge_leases else _NEVER
    # Every task created until now; a task waiting for VK also only once its time is past.
    queued_before = now if every_queued else now - timing.queued_grace
    async with adapters.uow_factory() as uow:
        orphans = await uow.tasks.list_orphaned(stale_before=stale_before, queued_before=queued_before)
    for task in orphans:
        if task.state is TaskState.RUNNING:  # QUEUED ones are re-offered quietly, every pass
            log.info("task.recovered", task_id=task.id, attempts=task.attempts, holder=task.worker_id)
        if not await enqueue_task(adapters, task):
            break  # the queue is down: the next pass tries again
    return orphans


async def recover_stalled(adapters: Adapters) -> list[Task]:
    """RUNNING tasks whose runner heartbeats but whose progress has not moved for
    ``stall_after``: logged at ERROR, the stall recorded on the task (``stalled_at``,
    ``stalls``), the lease taken from the runner (which stops at its next heartbeat) and the
    task enqueued for another; found stuck ``max_stalls`` times, it ends FAILED saying so."""
    timing = adapters.task_timing
    now = adapters.clock.now()
    async with adapters.uow_factory() as uow:
        stalled = await uow.tasks.list_stalled(
            progress_before=now - timing.stall_after, stale_before=now - timing.lease
        )
    recovered: list[Task] = []
    for task in stalled:
        assert task.id is not None
        idle = _human(timedelta(seconds=int((now - (task.progress_at or now)).total_seconds())))
        log.error("task.stalled", task_id=task.id, kind=task.kind.value, worker=task.worker_id, no_progress_for=idle,
                  stalls=task.stalls + 1, step=task.progress.message)
        async with adapters.uow_factory() as uow:
            marked = await uow.tasks.mark_stalled(task.id, worker_id=task.worker_id, now=now)
            if marked is not None and marked.stalls >= timing.max_stalls:
                step = task.progress.message or "none"
                error = (f"no progress for {idle}, {marked.stalls} times (last step: {step}); "
                         "stopped, see the worker's log")
                marked = await uow.tasks.finish(task.id, worker_id=None, state=TaskState.FAILED, now=now, error=error)
            await uow.commit()
        if marked is None:  # it moved or ended meanwhile
            continue
        await publish_task(adapters, marked)
        if marked.state is TaskState.RUNNING:
            await enqueue_task(adapters, marked)
        recovered.append(marked)
    return recovered


async def watch_tasks(adapters: Adapters, *, wake: asyncio.Event | None = None) -> None:
    """The recovery loop: every worker (and the embedded server) runs it, forever. Passes
    racing in several processes are harmless: enqueueing an attempt is idempotent, and the
    lease changes are conditional updates.

    A pass runs every ``recovery_interval`` seconds, and also at the moment the oldest live lease would
    lapse, so a dead runner's task is taken over as soon as its lease allows. ``wake`` (set by
    the queue's owner when the queue is back after an outage) runs a pass at once that
    re-offers every QUEUED task, whatever its age: a restarted Redis has lost their jobs.
    After this loop could not reach the database, it does not judge leases for a whole
    ``lease``: runners could not renew theirs while the database was away."""
    judge_from = 0.0  # monotonic time from which stale heartbeats mean dead runners
    queue_back = False
    while True:
        timing = adapters.task_timing
        delay, margin = timing.recovery_interval, timing.lapse_margin
        try:
            judge = time.monotonic() >= judge_from
            await recover_orphaned(adapters, judge_leases=judge, every_queued=queue_back)
            queue_back = False
            await recover_stalled(adapters)
            lapse = await _next_lapse(adapters)
            if lapse is not None:
                delay = min(delay, max(margin, lapse + margin))
            if not judge:
                delay = min(delay, max(margin, judge_from - time.monotonic()))
        except Unavailable as e:
            log.warning("tasks.recovery_deferred", error=e.message)
            if e.dependency == "database":
                judge_from = time.monotonic() + timing.lease.total_seconds()
        if wake is None:
            await asyncio.sleep(delay)
            continue
        try:
            await asyncio.wait_for(wake.wait(), delay)
        except TimeoutError:
            continue
        wake.clear()
        queue_back = True
        log.info("tasks.queue_back", detail="re-offering every queued task")


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # a heartbeat is never older than this


async def _next_lapse(adapters: Adapters) -> float | None:
    """Seconds until the next live lease of a RUNNING task lapses (None: none is live; those
    lapsed already are the regular passes' to re-offer)."""
    async with adapters.uow_factory() as uow:
        running = await uow.tasks.list(states=[TaskState.RUNNING], limit=10_000)
    now = adapters.clock.now()
    lapses = [
        (beat if beat.tzinfo else beat.replace(tzinfo=UTC)) + adapters.task_timing.lease - now
        for beat in (t.heartbeat_at for t in running) if beat is not None
    ]
    live = [lapse.total_seconds() for lapse in lapses if lapse > timedelta(0)]
    return min(live) if live else None
