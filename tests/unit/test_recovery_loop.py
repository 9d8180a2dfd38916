"""The recovery loop's timing (``domain.tasks.watch_tasks``), against the in-memory fakes: it
looks when a lease lapses rather than at its next fixed pass, it does not judge leases right
after it could not see the database, and the queue's return re-offers queued tasks at once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from datetime import timedelta

from domain.errors import Unavailable
from domain.models import Task, TaskKind, TaskState
from domain.ports import Adapters
from domain.tasks import watch_tasks
from domain.timing import TaskTiming
from infrastructure.events import InMemoryEventBus
from tests.fakes import FakeClock, InMemoryStore, RecordingQueue

# The loop's fixed period in these tests is 30 s: anything sooner is the design at work.
SLOW_PASSES = dataclasses.replace(TaskTiming(), recovery_interval=30.0)


class FlakyStore(InMemoryStore):
    """The database, unreachable while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def uow_factory(self):
        if self.down:
            raise Unavailable("the database is unavailable (OSError)", dependency="database")
        return super().uow_factory()


def make_adapters(store: InMemoryStore, timing: TaskTiming = SLOW_PASSES) -> Adapters:
    return Adapters(uow_factory=store.uow_factory, vk=None, queue=RecordingQueue(),  # type: ignore[arg-type]
                    events=InMemoryEventBus(), clock=FakeClock(), task_timing=timing)


async def running_task(adapters: Adapters, worker: str) -> Task:
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.add(Task(kind=TaskKind.ANALYZE, created_at=adapters.clock.now()))
        claimed = await uow.tasks.claim(task.id, worker_id=worker, now=adapters.clock.now(),
                                        stale_before=adapters.clock.now())
        await uow.commit()
    assert claimed is not None and claimed.state is TaskState.RUNNING
    return claimed


@contextlib.asynccontextmanager
async def watching(adapters: Adapters, wake: asyncio.Event | None = None):
    loop = asyncio.create_task(watch_tasks(adapters, wake=wake))
    try:
        yield loop
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def until(predicate, timeout: float) -> float | None:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        await asyncio.sleep(0.02)
    return None


async def test_a_dead_runners_task_is_offered_again_when_its_lease_lapses_not_at_the_next_pass() -> None:
    adapters = make_adapters(InMemoryStore())
    task = await running_task(adapters, "killed")
    adapters.clock.advance(seconds=adapters.task_timing.lease.total_seconds() - 0.5)  # its last beat: lapses in 0.5 s
    async with watching(adapters):
        await asyncio.sleep(0.1)
        assert adapters.queue.enqueued == []  # the lease holds: nothing to take over yet
        adapters.clock.advance(seconds=0.6)  # (the fake clock moves with the real one)
        took = await until(lambda: adapters.queue.enqueued, 3)
    assert took is not None and took < 2, "the lapse was noticed only at the loop's next fixed pass"
    assert [tid for tid, _ in adapters.queue.enqueued] == [task.id]


async def test_leases_are_not_judged_until_the_watcher_has_seen_the_database_for_a_whole_lease() -> None:
    """Runners could not renew their leases while the database was away: right after it
    returns, old heartbeats say nothing about who is dead."""
    store = FlakyStore()
    # Passes often: only the guard can hold it back.
    adapters = make_adapters(store, dataclasses.replace(TaskTiming(), lease=timedelta(seconds=1), recovery_interval=0.2))
    task = await running_task(adapters, "alive-but-cut-off")
    adapters.clock.advance(seconds=5)  # its heartbeat looks stale
    store.down = True
    async with watching(adapters):
        await asyncio.sleep(0.1)  # a pass met the outage
        store.down = False
        returned = time.monotonic()
        await asyncio.sleep(0.5)
        assert adapters.queue.enqueued == [], "a lease was judged right after the database returned"
        took = await until(lambda: adapters.queue.enqueued, 3)
    assert took is not None
    assert adapters.queue.enqueued_at[0] - returned >= 0.9  # a whole lease (1 s here) after it returned
    assert [tid for tid, _ in adapters.queue.enqueued] == [task.id]


async def test_the_queues_return_re_offers_every_queued_task_at_once() -> None:
    """A restarted Redis has lost the jobs of tasks queued a moment ago, younger than
    ``queued_grace``: they are offered again as soon as the queue is back, not after the grace."""
    adapters = make_adapters(InMemoryStore())
    async with adapters.uow_factory() as uow:
        # Queued a second ago: well within ``queued_grace``.
        queued = await uow.tasks.add(Task(kind=TaskKind.ANALYZE, created_at=adapters.clock.now() - timedelta(seconds=1)))
        await uow.commit()
    back = asyncio.Event()
    async with watching(adapters, wake=back):
        await asyncio.sleep(0.1)
        assert adapters.queue.enqueued == []  # within its grace: its job is presumably queued
        back.set()
        took = await until(lambda: adapters.queue.enqueued, 2)
    assert took is not None and took < 1
    assert [tid for tid, _ in adapters.queue.enqueued] == [queued.id]
