"""Task lifecycle, leases, cancellation and timeouts, against the in-memory fakes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime, timedelta

import pytest

import domain.collect  # noqa: F401  registers the PARSE handler, as the composition root does
from domain import tasks as task_cases
from domain.errors import InvalidInput, Unavailable
from domain.models import Progress, Task, TaskKind, TaskState
from domain.ports import Adapters
from domain.tasks import cancel_task, recover_orphaned, run_task, start_parse
from domain.timing import TaskTiming
from infrastructure.events import InMemoryEventBus
from infrastructure.vk.sandbox import sandbox_gateway
from infrastructure.vk.world import sandbox_world
from tests.fakes import FakeClock, InMemoryStore, RecordingQueue


class RecordingEvents(InMemoryEventBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[dict] = []

    async def publish(self, channel: str, event: dict) -> None:
        if channel.startswith("task:"):
            self.published.append(event)
        await super().publish(channel, event)


# A cancel is seen within 20 ms and every progress report is stored: tests need not wait.
FAST = dataclasses.replace(TaskTiming(), cancel_poll_interval=0.02, progress_interval=0.0)
# A run's backoff after a transient error in milliseconds, not seconds.
FAST_RETRIES = dataclasses.replace(FAST, retry_first=0.001, retry_max=0.005)


def make_adapters(store: InMemoryStore, vk=None, timing: TaskTiming = FAST) -> Adapters:
    return Adapters(
        uow_factory=store.uow_factory, vk=vk, queue=RecordingQueue(),  # type: ignore[arg-type]
        events=RecordingEvents(), clock=FakeClock(), task_timing=timing,
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
    assert events[0]["state"] == "RUNNING" and events[-1]["state"] == "SUCCEEDED"
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
    adapters.task_timing = dataclasses.replace(adapters.task_timing, heartbeat_interval=timedelta(hours=1))
    adapters.clock.advance(seconds=adapters.task_timing.lease.total_seconds() + 1)
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
    clock.advance(seconds=adapters.task_timing.lease.total_seconds() + 1)
    async with adapters.uow_factory() as uow:
        await uow.tasks.claim(fresh.id, worker_id="alive", now=clock.now(), stale_before=clock.now())
        await uow.commit()
    forgotten = await add_task(adapters)
    clock.advance(seconds=adapters.task_timing.queued_grace.total_seconds() + 1)
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
    timeouts = {**FAST.timeouts, TaskKind.EXPORT: timedelta(seconds=0.1)}
    adapters = make_adapters(InMemoryStore(), timing=dataclasses.replace(FAST, timeouts=timeouts))
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


# --- transient faults, lost jobs, stalls ----------------------------------------------------


async def test_a_transient_error_reruns_the_handler_from_what_is_stored_and_progress_never_goes_back(
    monkeypatch,
) -> None:
    runs: list[int] = []

    async def handler(adapters, task, report):
        runs.append(len(runs))
        if len(runs) == 1:
            await report(0, 10, "first run")
            await report(4, 10, "4/10")
            raise Unavailable("the database connection was lost; try again", dependency="database")
        # The rerun finds 4 of 10 stored and has 6 left to do.
        for done in range(0, 7):
            await report(done, 6, f"{done}/6 left")
        return {"ok": True}

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore(), timing=FAST_RETRIES)
    task = await add_task(adapters)
    done = await run_task(adapters, task.id)
    assert done.state is TaskState.SUCCEEDED and done.error is None and done.attempts == 1
    assert runs == [0, 1]
    shown = [(e["done"], e["total"]) for e in adapters.events.published if e["state"] == "RUNNING"]
    assert all(total == 10 for _, total in shown if total is not None), shown
    dones = [d for d, _ in shown]
    assert dones == sorted(dones) and dones[-1] == 10


async def test_a_dependency_down_past_the_budget_fails_the_task_saying_what_was_down(monkeypatch) -> None:
    async def handler(adapters, task, report):
        raise Unavailable("Redis is unavailable (enqueue: ConnectionError); try again", dependency="redis")

    use_handler(monkeypatch, handler)
    timing = dataclasses.replace(FAST_RETRIES, transient_budget=timedelta(seconds=0.05))
    adapters = make_adapters(InMemoryStore(), timing=timing)
    task = await add_task(adapters)
    done = await run_task(adapters, task.id)
    assert done.state is TaskState.FAILED
    assert done.error.startswith("Redis is unavailable") and "of retries" in done.error


async def test_a_task_whose_queue_is_down_is_still_started_and_the_recovery_loop_enqueues_it_later() -> None:
    class DownQueue(RecordingQueue):
        down = True

        async def enqueue(self, task: Task, *, defer_until: datetime | None = None) -> None:
            if self.down:
                raise Unavailable("Redis is unavailable (enqueue: ConnectionError); try again", dependency="redis")
            await super().enqueue(task, defer_until=defer_until)

    adapters = make_adapters(InMemoryStore())
    adapters.queue = DownQueue()
    task = await task_cases.start_task(adapters, TaskKind.ANALYZE, {})
    assert task.state is TaskState.QUEUED and adapters.queue.enqueued == []  # no error for the caller

    assert await recover_orphaned(adapters) == []  # too fresh to be suspect yet
    adapters.clock.advance(seconds=adapters.task_timing.queued_grace.total_seconds() + 1)
    await recover_orphaned(adapters)  # still down: nothing, and no exception
    adapters.queue.down = False
    [recovered] = await recover_orphaned(adapters)
    assert recovered.id == task.id and adapters.queue.enqueued == [(task.id, 0)]


async def test_a_running_task_that_makes_no_progress_is_detected_handed_over_and_failed_after_three(
    monkeypatch, caplog
) -> None:
    adapters = make_adapters(InMemoryStore(), timing=dataclasses.replace(FAST, stall_after=timedelta(minutes=10)))
    clock = adapters.clock
    task = await add_task(adapters)

    async def claim(worker: str) -> None:
        async with adapters.uow_factory() as uow:
            assert await uow.tasks.claim(task.id, worker_id=worker, now=clock.now(), stale_before=clock.now())
            await uow.commit()

    async def beat(worker: str, minutes: int) -> None:  # alive, but no progress
        for _ in range(minutes):
            clock.advance(minutes=1)
            async with adapters.uow_factory() as uow:
                await uow.tasks.heartbeat(task.id, worker_id=worker, now=clock.now())
                await uow.commit()

    await claim("w1")
    await beat("w1", 9)
    assert await task_cases.recover_stalled(adapters) == []
    await beat("w1", 2)
    [first] = await task_cases.recover_stalled(adapters)
    assert first.state is TaskState.RUNNING and first.stalls == 1 and first.stalled_at == clock.now()
    assert first.worker_id is None  # w1 lost the lease: its next heartbeat stops it
    assert adapters.queue.enqueued == [(task.id, 1)]
    async with adapters.uow_factory() as uow:
        assert await uow.tasks.heartbeat(task.id, worker_id="w1", now=clock.now()) is None
    assert adapters.events.published[-1]["stalls"] == 1

    for worker, expected in (("w2", TaskState.RUNNING), ("w3", TaskState.FAILED)):
        await claim(worker)
        await beat(worker, 11)
        [again] = await task_cases.recover_stalled(adapters)
        assert again.state is expected
    assert again.stalls == 3 and "no progress for" in again.error and "3 times" in again.error


async def test_progress_clears_a_stall_mark() -> None:
    adapters = make_adapters(InMemoryStore(), timing=dataclasses.replace(FAST, stall_after=timedelta(minutes=10)))
    clock = adapters.clock
    task = await add_task(adapters)
    async with adapters.uow_factory() as uow:
        await uow.tasks.claim(task.id, worker_id="w1", now=clock.now(), stale_before=clock.now())
        await uow.commit()
    clock.advance(minutes=11)
    async with adapters.uow_factory() as uow:
        await uow.tasks.heartbeat(task.id, worker_id="w1", now=clock.now())
        await uow.commit()
    await task_cases.recover_stalled(adapters)
    async with adapters.uow_factory() as uow:
        await uow.tasks.claim(task.id, worker_id="w2", now=clock.now(), stale_before=clock.now())
        moved = await uow.tasks.heartbeat(task.id, worker_id="w2", now=clock.now(), progress=Progress(1, 2, "1/2"))
        await uow.commit()
    assert moved.stalled_at is None and moved.stalls == 1
