"""Live updates over WebSocket: ``taskProgress``, ``taskEvents`` and ``commentMatched``.

A subscriber reads events from the bus (``domain.ports.EventBus``: in-process, or Redis across
processes) and, where a lost event would leave it wrong, the stored state too: ``taskProgress``
subscribes before it reads the task (no gap) and re-reads it every ``RECHECK_SECONDS`` while
waiting; ``taskEvents`` sends what changed in the database after the bus lost Redis for a while;
``commentMatched``, which has no feed to replay, says so and ends. Each event is decoded once for
all of its subscribers (``fanout.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

import strawberry

from domain import analyze as analyze_cases
from domain import tasks as task_cases
from domain.errors import NotFound, Unavailable
from domain.models import TaskState as DomainTaskState
from domain.ports import EventsMissed
from domain.queries import MAX_PAGE, TaskFilter
from graphql_api.auth import IsViewer
from graphql_api.comments import Comment, CommentFilterInput, to_comment_filter
from graphql_api.context import Info
from graphql_api.fanout import MAX_SHARED_EVENTS, ByIdentity, share
from graphql_api.ids import NodeType, parse_id
from graphql_api.tasks import Task, TaskId

# While a subscriber waits for events, the task is also re-read this often, so a state
# published before the subscription was live (or events the bus dropped) cannot be missed for long.
RECHECK_SECONDS = 5.0


class _EventStream:
    """Events of one channel, read with a timeout. The bus registers the subscriber when
    ``subscribe()`` returns; ``ready()`` waits for a cross-process bus (Redis) to confirm."""

    def __init__(self, subscription) -> None:
        self._subscription = subscription
        self._ended = False

    async def ready(self) -> bool:
        return await self._subscription.ready()

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` (always, once the bus ended the stream,
        which it does to a subscriber that fell too far behind)."""
        if self._ended:
            await asyncio.sleep(timeout)
            return None
        try:
            # Safe to cancel: the subscriber's queue keeps whatever arrives meanwhile. (A timeout
            # scope, not wait_for: no task per event, which counts with a thousand subscribers.)
            async with asyncio.timeout(timeout):
                return await anext(self._subscription)
        except (TimeoutError, EventsMissed):  # either way: the caller re-reads the stored state
            return None
        except StopAsyncIteration:
            self._ended = True
            return None

    async def aclose(self) -> None:
        await self._subscription.aclose()


_STATE_ORDER = {DomainTaskState.QUEUED: 0, DomainTaskState.RUNNING: 1}
# event -> (domain task, Task)
_decoded_events: ByIdentity[tuple[Any, Task]] = ByIdentity(MAX_SHARED_EVENTS)


def _decoded(event: dict[str, Any]):
    """An event reaches every subscriber of its task, and subscribers that fell behind read
    older ones meanwhile: decode each event once, into one ``Task`` all of them share."""
    decoded = _decoded_events.get(event)
    if decoded is None:
        task = task_cases.task_from_event(event)
        decoded = _decoded_events.put(event, (task, cast(Task, share(Task.from_domain(task)))))
    return decoded


async def _with_gaps(events) -> AsyncIterator[dict[str, Any] | None]:
    """A subscription's events, with None where the bus may have lost some (``EventsMissed``)."""
    while True:
        try:
            event = await anext(events)
        except StopAsyncIteration:
            return
        except EventsMissed:
            event = None
        yield event


CATCH_UP_MARGIN = timedelta(seconds=5)  # processes' clocks differ: resend a little, miss nothing
CATCH_UP_LIMIT = 1000  # changed tasks sent after a gap; older ones stay a `tasks` query away


async def _tasks_changed_since(read_model, since: datetime) -> list:
    """Tasks changed at or after ``since``, oldest change first."""
    found: list = []
    after = None
    while len(found) < CATCH_UP_LIMIT:
        page = await read_model.tasks_page(TaskFilter(updated_since=since), first=MAX_PAGE, after=after)
        found += [task for _, task in page.edges]
        if not page.has_next_page:
            break
        after = page.end_cursor
    return sorted(found, key=lambda t: (t.updated_at or since, t.id))


def _progress_key(task) -> tuple[int, int, int]:
    """Orders snapshots of one task: a retry or a resume after a wait for VK starts a new run,
    states only move forward within one."""
    return task.attempts + task.waits, _STATE_ORDER.get(task.state, 2), task.progress.done


class _ClosingStream:
    """A subscription's items that close ``stream`` when they are closed, even if they never
    started (a generator that has not started skips its ``finally``)."""

    def __init__(self, items: AsyncGenerator[Task, None], stream: _EventStream) -> None:
        self._items, self._stream = items, stream

    def __aiter__(self) -> _ClosingStream:
        return self

    async def __anext__(self) -> Task:
        return await anext(self._items)

    async def aclose(self) -> None:
        try:
            await self._items.aclose()
        finally:
            await self._stream.aclose()


async def _task_progress(
    info: Info, task_id: int, channel: str, stream: _EventStream, live: bool, current
) -> AsyncGenerator[Task, None]:
    """``taskProgress`` from the task's ``current`` state, read after ``stream`` subscribed to
    its channel (``live``: confirmed by the bus), until a final state.

    Subscribed before the current state is read: no gap. Progress is stored before it is
    published, so the read holds everything published before the subscription was live, and
    everything after it arrives through the stream, in order."""
    adapters, read_model = info.context.adapters, info.context.read_model
    try:
        yield Task.from_domain(current)
        # Without a live subscription, the bus's snapshot is the freshest state there is.
        # (With one, jumping to the snapshot would skip the events queued before it.)
        last = None if live else await adapters.events.last(channel)
        if last is not None:
            published = task_cases.task_from_event(last)
            if _progress_key(published) > _progress_key(current):
                current = published
                yield Task.from_domain(current)
        last_seen = task_cases.task_event(current)
        while not current.state.terminal:
            event = await stream.next(RECHECK_SECONDS)
            if event is None:
                fresh = (await read_model.tasks_by_ids([task_id]))[0]
                if fresh is None:  # removed meanwhile
                    return
                snapshot = task_cases.task_event(fresh)
                item = None
            else:
                fresh, item = _decoded(event)
                snapshot = event
            if _progress_key(fresh) < _progress_key(current):
                continue  # older than what was already sent: progress never goes back
            if snapshot != last_seen:
                current, last_seen = fresh, snapshot
                yield item or Task.from_domain(current)
    finally:
        await stream.aclose()


@strawberry.subscription(
    description="A task now and on every change; completes after it reaches a final state. "
    "An id that names no task is an error (code NOT_FOUND), sent at once.",
    permission_classes=[IsViewer],
)
async def task_progress(info: Info, id: TaskId) -> AsyncIterator[Task]:
    # The task is read before the stream starts, so an unknown id is refused as the
    # subscription is made (graphql-transport-ws: an `error` message with code NOT_FOUND),
    # never a stream that just ends. Subscribed before the read: no gap (see _task_progress).
    task_id = parse_id(id, NodeType.TASK)
    adapters = info.context.adapters
    channel = task_cases.task_channel(task_id)
    stream = _EventStream(adapters.events.subscribe(channel))
    try:
        live = await stream.ready()
        current = (await info.context.read_model.tasks_by_ids([task_id]))[0]
        if current is None:
            raise NotFound(f"Task '{id}' not found", field="id")
    except BaseException:
        await stream.aclose()
        raise
    return _ClosingStream(_task_progress(info, task_id, channel, stream, live, current), stream)

@strawberry.subscription(
    description="Every change of every task, live. A client that falls far behind is dropped "
    "(the subscription completes) rather than slowing everyone down.",
    permission_classes=[IsViewer],
)
async def task_events(info: Info) -> AsyncGenerator[Task, None]:
    adapters, read_model = info.context.adapters, info.context.read_model
    events = adapters.events.subscribe(task_cases.TASKS_CHANNEL)
    seen_until = adapters.clock.now()  # changes up to about here have been sent
    try:
        async for event in _with_gaps(events):
            if event is None:
                # The bus lost Redis for a while: send what changed meanwhile, from the database.
                since = seen_until - CATCH_UP_MARGIN
                for task in await _tasks_changed_since(read_model, since):
                    seen_until = max(seen_until, task.updated_at or seen_until)
                    yield Task.from_domain(task)
                continue
            task, item = _decoded(event)
            seen_until = max(seen_until, task.updated_at or seen_until)
            yield item
    finally:
        with contextlib.suppress(RuntimeError):
            await events.aclose()

@strawberry.subscription(
    description="Comments as they get keyword matches, live: new comments of a parse and comments "
    "matched again by an analyze. Only those passing `filter` are sent: the filter means what it means in "
    "`comments` (ids in it that name nothing match nothing).",
    permission_classes=[IsViewer],
)
async def comment_matched(
    self,
    info: Info,
    filter: Annotated[CommentFilterInput | None, strawberry.argument(description="Which comments.")] = None,
) -> AsyncGenerator[Comment, None]:
    flt = to_comment_filter(filter)
    read_model = info.context.read_model
    query = await read_model.compiled(flt)  # references resolved once, as the feed starts
    events = info.context.adapters.events.subscribe(analyze_cases.COMMENTS_MATCHED_CHANNEL)
    try:
        async for event in _with_gaps(events):
            if event is None:
                # Matches are not kept as a feed, so a gap cannot be replayed: say so, and
                # the client subscribes again and queries comments to catch up.
                raise Unavailable(
                    "The live feed was interrupted (Redis was unavailable); matches made meanwhile "
                    "were not sent. Subscribe again, and query `comments` to catch up.",
                    dependency="redis",
                )
            ids = [int(i) for i in event.get("commentIds") or ()]
            for start in range(0, len(ids), MAX_PAGE):
                chunk = ids[start : start + MAX_PAGE]
                views, matches = await asyncio.gather(
                    read_model.comments_by_ids(chunk), read_model.matches_by_comment_ids(chunk)
                )
                # A long-lived operation: drop what the loaders cached for earlier events.
                info.context.loaders(info).clear_all()
                for view, found in zip(views, matches, strict=True):
                    if view is not None and flt.admits(view, found, query):
                        yield Comment.from_view(view)
    finally:
        with contextlib.suppress(RuntimeError):
            await events.aclose()
