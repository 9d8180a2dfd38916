"""Tasks: the durable record of every background job, and the runner that drives one.

A task is stored QUEUED before its job is enqueued, so a crash between the two loses nothing
a retry cannot find. The runner is idempotent: a job delivered twice (a worker died, ARQ
re-delivered it) continues the same task, and since storing is an upsert the result is exact.
Terminal tasks are never run again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from domain.collect import CollectOptions, collect_group
from domain.errors import DomainError, InvalidInput, NotFound, TaskCancelled
from domain.models import Task, TaskKind, TaskState
from domain.ports import Adapters

log = structlog.get_logger(__name__)

TASKS_CHANNEL = "tasks"
PROGRESS_INTERVAL = 0.25  # seconds between progress writes/events of one task
CANCEL_CHECK_INTERVAL = 0.5

TaskHandler = Callable[[Adapters, Task, Callable[[int, int | None, str], Awaitable[None]]], Awaitable[dict]]


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
    }


def task_from_event(event: dict[str, Any]) -> Task:
    from domain.models import Progress

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
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def publish_task(adapters: Adapters, task: Task) -> None:
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
            task = await uow.tasks.add(task)
            tasks.append(task)
            fresh.append(task)
        await uow.commit()
    for task in fresh:
        await publish_task(adapters, task)
        await adapters.queue.enqueue(task)
    return tasks


async def start_task(adapters: Adapters, kind: TaskKind, params: dict[str, Any], *, priority: int = 5) -> Task:
    """A task that is not tied to one group (ANALYZE, EXPORT)."""
    if not 1 <= priority <= 10:
        raise InvalidInput("priority must be between 1 and 10", field="priority")
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.add(Task(kind=kind, priority=priority, params=params, created_at=adapters.clock.now()))
        await uow.commit()
    await publish_task(adapters, task)
    await adapters.queue.enqueue(task)
    return task


async def cancel_task(adapters: Adapters, task_id: int) -> Task:
    """A queued task ends CANCELLED at once; a running one at its next progress step."""
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.get(task_id)
        if task is None:
            raise NotFound(f"Task {task_id} not found", field="id")
        if task.state.terminal:
            raise InvalidInput(f"Task {task_id} has already ended ({task.state.value})", field="id")
        task.cancel_requested = True
        if task.state is TaskState.QUEUED:
            task.state = TaskState.CANCELLED
            task.finished_at = adapters.clock.now()
        await uow.tasks.save(task)
        await uow.commit()
    await publish_task(adapters, task)
    if task.state is TaskState.RUNNING:
        await adapters.queue.abort(task_id)
    return task


# --- running --------------------------------------------------------------------------------


async def run_parse(adapters: Adapters, task: Task, report) -> dict:
    async with adapters.uow_factory() as uow:
        group = await uow.groups.get(task.group_id) if task.group_id is not None else None
        keywords = await uow.keywords.list_active()
    if group is None:
        raise NotFound(f"Group {task.group_id} no longer exists")
    since = task.params.get("since")
    options = CollectOptions(
        max_posts=task.params.get("maxPosts"),
        since=datetime.fromisoformat(since) if since else None,
        full=bool(task.params.get("full")),
        recent_window=timedelta(hours=adapters.recent_window_hours) if adapters.recent_window_hours else None,
        concurrency=adapters.collect_concurrency,
    )
    matcher = adapters.matcher_factory(keywords) if adapters.matcher_factory and keywords else None
    now = adapters.clock.now()
    try:
        result = await collect_group(
            group, vk=adapters.vk, uow_factory=adapters.uow_factory, options=options,
            report=report, now=now, matcher=matcher,
        )
    except DomainError as e:
        await _record_group_run(adapters, group.id, now, error=e.message)
        raise
    await _record_group_run(adapters, group.id, now, error=None)
    return result.as_dict()


async def _record_group_run(adapters: Adapters, group_id: int, now: datetime, *, error: str | None) -> None:
    async with adapters.uow_factory() as uow:
        group = await uow.groups.get(group_id)
        if group is None:
            return
        group.last_run_at = now
        group.last_error = error
        if error is None:
            group.last_success_at = now
        await uow.groups.save(group)
        await uow.commit()


HANDLERS: dict[TaskKind, TaskHandler] = {TaskKind.PARSE: run_parse}


async def run_task(adapters: Adapters, task_id: int) -> Task | None:
    """Drive one task to a terminal state. Safe to call again for the same task."""
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.get(task_id)
        if task is None:
            log.warning("task.missing", task_id=task_id)
            return None
        if task.state.terminal:
            return task
        if task.cancel_requested:
            task.state, task.finished_at = TaskState.CANCELLED, adapters.clock.now()
        else:
            task.state = TaskState.RUNNING
            task.attempts += 1
            task.started_at = task.started_at or adapters.clock.now()
            task.error = None
        await uow.tasks.save(task)
        await uow.commit()
    await publish_task(adapters, task)
    if task.state.terminal:
        return task

    reporter = _Reporter(adapters, task)
    handler = HANDLERS.get(task.kind)
    log.info("task.started", task_id=task.id, kind=task.kind.value, attempt=task.attempts)
    try:
        if handler is None:
            raise InvalidInput(f"No handler for {task.kind.value} tasks")
        result = await handler(adapters, task, reporter)
    except TaskCancelled:
        return await _finish(adapters, task, TaskState.CANCELLED, reporter, error=None)
    except DomainError as e:
        log.info("task.failed", task_id=task.id, error=e.message)
        return await _finish(adapters, task, TaskState.FAILED, reporter, error=e.message)
    except Exception as e:  # an unexpected bug: the task must still end, with the class of error
        log.exception("task.crashed", task_id=task.id)
        return await _finish(adapters, task, TaskState.FAILED, reporter, error=f"internal error ({type(e).__name__})")
    return await _finish(adapters, task, TaskState.SUCCEEDED, reporter, result=result)


async def _finish(adapters, task: Task, state: TaskState, reporter: _Reporter, *, error=None, result=None) -> Task:
    async with adapters.uow_factory() as uow:
        stored = await uow.tasks.get(task.id)
        assert stored is not None
        if stored.cancel_requested and state is TaskState.SUCCEEDED:
            state = TaskState.SUCCEEDED  # it finished before the cancel took effect: keep the truth
        stored.state = state
        stored.finished_at = adapters.clock.now()
        stored.error = error
        stored.result = result
        stored.progress = reporter.last
        if state is TaskState.SUCCEEDED and stored.progress.total is not None:
            stored.progress.done = stored.progress.total
        await uow.tasks.save(stored)
        await uow.commit()
    await publish_task(adapters, stored)
    log.info("task.finished", task_id=stored.id, state=state.value)
    return stored


class _Reporter:
    """Progress writes and events at most every PROGRESS_INTERVAL; cancellation checks."""

    def __init__(self, adapters: Adapters, task: Task) -> None:
        self.adapters = adapters
        self.task = task
        self.last = task.progress
        self._sent_at = 0.0
        self._checked_at = time.monotonic()

    async def __call__(self, done: int, total: int | None, message: str) -> None:
        from domain.models import Progress

        self.last = Progress(done, total, message)
        now = time.monotonic()
        if now - self._checked_at >= CANCEL_CHECK_INTERVAL:
            self._checked_at = now
            async with self.adapters.uow_factory() as uow:
                stored = await uow.tasks.get(self.task.id)
            if stored is not None and stored.cancel_requested:
                raise TaskCancelled("cancelled")
        if now - self._sent_at < PROGRESS_INTERVAL and done != total:
            return
        self._sent_at = now
        async with self.adapters.uow_factory() as uow:
            stored = await uow.tasks.get(self.task.id)
            if stored is None:
                return
            if stored.cancel_requested:
                raise TaskCancelled("cancelled")
            stored.progress = self.last
            await uow.tasks.save(stored)
            await uow.commit()
        self.task = stored
        await publish_task(self.adapters, stored)


async def cancel_running(adapters: Adapters, task_id: int) -> None:
    """The job running a task was stopped from outside (ARQ abort): record CANCELLED."""
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.get(task_id)
        if task is None or task.state.terminal:
            return
        task.state = TaskState.CANCELLED
        task.cancel_requested = True
        task.finished_at = adapters.clock.now()
        await uow.tasks.save(task)
        await uow.commit()
    await publish_task(adapters, task)
