"""Task lifecycle, leases, cancellation and timeouts, against the in-memory fakes."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from domain import tasks as task_cases
from domain.errors import InvalidInput
from domain.models import Task, TaskKind, TaskState
from domain.ports import Adapters
from domain.tasks import cancel_task, recover_orphaned, run_task, start_parse
from infrastructure.events import InMemoryEventBus
from infrastructure.vk.sandbox import sandbox_gateway
from infrastructure.vk.world import sandbox_world
from tests.fakes import FakeClock, InMemoryStore


class RecordingQueue:
    def __init__(self) -> None:
        self.enqueued: list[tuple[int, int]] = []  # (task id, attempts at enqueue)
        self.aborted: list[int] = []

    async def enqueue(self, task: Task) -> None:
        self.enqueued.append((task.id, task.attempts))

    async def abort(self, task: Task) -> None:
        self.aborted.append(task.id)


class RecordingEvents(InMemoryEventBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[dict] = []

    async def publish(self, channel: str, event: dict) -> None:
        if channel.startswith("task:"):
            self.published.append(event)
        await super().publish(channel, event)


@pytest.fixture(autouse=True)
def fast_supervision(monkeypatch):
    monkeypatch.setattr(task_cases, "CANCEL_POLL_INTERVAL", 0.02)
    monkeypatch.setattr(task_cases, "PROGRESS_INTERVAL", 0.0)


def make_adapters(store: InMemoryStore, vk=None) -> Adapters:
    return Adapters(
        uow_factory=store.uow_factory, vk=vk, queue=RecordingQueue(),  # type: ignore[arg-type]
        events=RecordingEvents(), clock=FakeClock(),
    )


async def add_task(adapters: Adapters, kind: TaskKind = TaskKind.ANALYZE, **fields) -> Task:
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.add(Task(kind=kind, created_at=adapters.clock.now(), **fields))
        await uow.commit()
    return task


async def stored(adapters: Adapters, task_id: int) -> Task:
    async with adapters.uow_factory() as uow:
        task = await uow.tasks.get(task_id)
    assert task is not None
    return task


def use_handler(monkeypatch, handler, kind: TaskKind = TaskKind.ANALYZE) -> None:
    monkeypatch.setitem(task_cases.HANDLERS, kind, handler)


async def test_a_task_runs_to_success_with_monotonic_progress(monkeypatch) -> None:
    async def handler(adapters, task, report):
        for done in range(0, 11):
            await report(done, 10, f"{done}/10")
        return {"rows": 10}

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters)
    finished = await run_task(adapters, task.id, worker_id="w1")
    assert finished is not None and finished.state is TaskState.SUCCEEDED
    assert (finished.attempts, finished.result, finished.progress.done, finished.progress.total) == (1, {"rows": 10}, 10, 10)
    assert finished.heartbeat_at is None and finished.started_at and finished.finished_at
    events = adapters.events.published
    assert [e["state"] for e in events][0] == "RUNNING" and events[-1]["state"] == "SUCCEEDED"
    dones = [e["done"] for e in events]
    assert dones == sorted(dones)
    # A terminal task is never run again.
    assert (await run_task(adapters, task.id, worker_id="w2")).attempts == 1


async def test_a_task_held_by_a_live_runner_is_left_alone_and_a_stale_one_is_taken_over(monkeypatch) -> None:
    gate = asyncio.Event()

    async def handler(adapters, task, report):
        await gate.wait()
        return {}

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters)
    first = asyncio.create_task(run_task(adapters, task.id, worker_id="w1"))
    await asyncio.sleep(0.05)
    held = await run_task(adapters, task.id, worker_id="w2")  # w1 heartbeats: not claimed
    assert held.state is TaskState.RUNNING and held.worker_id == "w1" and held.attempts == 1

    # w1 stops heartbeating (its clock looks frozen): after the lease, w2 may take over.
    monkeypatch.setattr(task_cases, "HEARTBEAT_INTERVAL", timedelta(hours=1))
    adapters.clock.advance(seconds=task_cases.LEASE.total_seconds() + 1)
    second = asyncio.create_task(run_task(adapters, task.id, worker_id="w2"))
    await asyncio.sleep(0.05)
    current = await stored(adapters, task.id)
    assert (current.worker_id, current.attempts) == ("w2", 2)
    gate.set()
    assert await first is None  # w1 lost its lease: it writes nothing
    finished = await second
    assert finished.state is TaskState.SUCCEEDED and finished.attempts == 2


async def test_the_reaper_enqueues_stale_running_and_forgotten_queued_tasks() -> None:
    adapters = make_adapters(InMemoryStore())
    clock = adapters.clock
    stale = await add_task(adapters, state=TaskState.QUEUED)
    fresh = await add_task(adapters)
    async with adapters.uow_factory() as uow:
        await uow.tasks.claim(stale.id, worker_id="dead", now=clock.now(), stale_before=clock.now())
        await uow.commit()
    clock.advance(seconds=task_cases.LEASE.total_seconds() + 1)
    async with adapters.uow_factory() as uow:
        await uow.tasks.claim(fresh.id, worker_id="alive", now=clock.now(), stale_before=clock.now())
        await uow.commit()
    forgotten = await add_task(adapters)
    clock.advance(seconds=task_cases.QUEUED_GRACE.total_seconds() + 1)
    recent = await add_task(adapters)
    async with adapters.uow_factory() as uow:  # "alive" kept heartbeating
        await uow.tasks.heartbeat(fresh.id, worker_id="alive", now=clock.now())
        await uow.commit()

    recovered = await recover_orphaned(adapters)
    assert sorted(t.id for t in recovered) == sorted([stale.id, forgotten.id])
    # The re-run of the stale task is its attempt 2: a new ARQ job id.
    assert sorted(adapters.queue.enqueued) == sorted([(stale.id, 1), (forgotten.id, 0)])
    assert recent.id not in {t.id for t in recovered}


async def test_cancelling_a_queued_task_ends_it_at_once() -> None:
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters)
    cancelled = await cancel_task(adapters, task.id)
    assert cancelled.state is TaskState.CANCELLED and cancelled.finished_at
    assert (await run_task(adapters, task.id)).state is TaskState.CANCELLED
    with pytest.raises(InvalidInput):
        await cancel_task(adapters, task.id)


async def test_cancelling_a_running_task_stops_it_while_it_waits(monkeypatch) -> None:
    async def handler(adapters, task, report):
        await report(0, 100, "waiting on VK")
        await asyncio.sleep(3600)  # e.g. VK keeps it waiting: no progress, no cooperative check

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters)
    running = asyncio.create_task(run_task(adapters, task.id, worker_id="w1"))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await cancel_task(adapters, task.id)
    assert adapters.queue.aborted == [task.id]
    finished = await asyncio.wait_for(running, 2)
    assert finished.state is TaskState.CANCELLED and time.monotonic() - started < 1
    assert adapters.events.published[-1]["state"] == "CANCELLED"


async def test_a_task_over_its_kinds_time_limit_fails_with_a_clear_error(monkeypatch) -> None:
    async def handler(adapters, task, report):
        await asyncio.sleep(3600)

    use_handler(monkeypatch, handler, TaskKind.EXPORT)
    monkeypatch.setitem(task_cases.TIMEOUTS, TaskKind.EXPORT, timedelta(seconds=0.1))
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters, TaskKind.EXPORT)
    finished = await asyncio.wait_for(run_task(adapters, task.id), 2)
    assert finished.state is TaskState.FAILED and finished.error.startswith("timed out after")


async def test_a_shutdown_gives_the_lease_up_so_the_next_runner_continues_at_once(monkeypatch) -> None:
    async def handler(adapters, task, report):
        await report(3, 10, "3/10")
        await asyncio.sleep(3600)

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters)
    running = asyncio.create_task(run_task(adapters, task.id, worker_id="w1"))
    await asyncio.sleep(0.05)
    running.cancel()  # what ARQ does to its jobs on SIGTERM
    with pytest.raises(asyncio.CancelledError):
        await running
    left = await stored(adapters, task.id)
    assert left.state is TaskState.RUNNING and left.heartbeat_at is None

    async def finish(adapters, task, report):
        await report(4, 7, "resumed")  # the resumed attempt sees only what is left
        await report(7, 7, "done")
        return {}

    use_handler(monkeypatch, finish)
    finished = await run_task(adapters, task.id, worker_id="w2")
    assert finished.state is TaskState.SUCCEEDED and finished.attempts == 2
    dones = [e["done"] for e in adapters.events.published if e["state"] != "QUEUED"]
    assert dones == sorted(dones) and dones[-1] == 10  # carried over: 3 done before + 7 after


async def test_a_crashing_handler_fails_the_task_with_the_class_of_error(monkeypatch) -> None:
    async def handler(adapters, task, report):
        raise KeyError("boom")

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters)
    finished = await run_task(adapters, task.id)
    assert finished.state is TaskState.FAILED and finished.error == "internal error (KeyError)"


async def test_a_parse_run_twice_stores_every_comment_exactly_once() -> None:
    world = sandbox_world()
    vk = sandbox_gateway(rps=1000)
    store = InMemoryStore()
    adapters = make_adapters(store, vk)
    try:
        _, vk_id = await vk.resolve_screen_name("koshki_spb")
        [group] = await vk.get_groups([vk_id])
        async with store.uow_factory() as uow:
            group = await uow.groups.add(group)
            await uow.commit()
        [task] = await start_parse(adapters, [group.id])
        assert (await start_parse(adapters, [group.id]))[0].id == task.id  # one run per community
        first = await run_task(adapters, task.id)
        assert first.state is TaskState.SUCCEEDED
        expected = world.expected_comments(-vk_id)
        assert store.comment_ids(-vk_id) == expected
        count = len(store.comments)
        # As if the job were delivered again after the worker died just before finishing.
        async with store.uow_factory() as uow:
            again = await uow.tasks.get(task.id)
            again.state = TaskState.QUEUED
            await uow.tasks.save(again)
            await uow.commit()
        second = await run_task(adapters, task.id)
        assert second.state is TaskState.SUCCEEDED and second.attempts == 2
        assert len(store.comments) == count and store.comment_ids(-vk_id) == expected
        assert (await stored(adapters, task.id)).group_id == group.id
        assert store.groups[group.id].last_success_at is not None
    finally:
        await vk.aclose()
