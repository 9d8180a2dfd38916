"""When every VK token rests (daily quota, captcha), work waits: it does not fail.

The runner stores its task QUEUED with ``waiting_until`` and a message, gives its lease and
worker slot up and enqueues the task for then; it resumes by itself, continuing from what is
stored. Against the in-memory fakes; the last test runs the whole embedded path (in-process
queue, the real gateway over the VK emulator answering error 29).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta

import httpx

import domain.collect  # noqa: F401  (registers the PARSE handler)
from bootstrap import SystemClock
from domain import tasks as task_cases
from domain.errors import VkTokensResting
from domain.models import Group, Progress, Task, TaskKind, TaskState
from domain.monitoring import scheduler_tick
from domain.tasks import (
    cancel_task,
    recover_orphaned,
    run_task,
    start_parse,
    task_from_event,
    waiting_message,
)
from infrastructure.queue import InProcessJobQueue, arq_job_id, current_run, next_run
from infrastructure.vk.gateway import HttpVkGateway
from infrastructure.vk.world import sandbox_world
from tests.fakes import InMemoryStore
from tests.quota_emulator import QuotaDay
from tests.unit.test_tasks import FAST, add_task, make_adapters, stored, use_handler


def resting(until: datetime, code: int = 29) -> VkTokensResting:
    return VkTokensResting(f"every VK token is parked until {until:%H:%M} UTC", until=until, vk_code=code)


async def test_a_task_whose_tokens_all_rest_waits_queued_until_they_return_and_then_resumes(monkeypatch) -> None:
    runs: list[int] = []

    async def handler(adapters, task, report):
        runs.append(task.attempts)
        await report(3, 10, "3/10 posts")
        if len(runs) == 1:
            raise resting(adapters.clock.now() + timedelta(hours=6))
        await report(10, 10, "10/10 posts")
        return {"ok": True}

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore())
    clock = adapters.clock
    task = await add_task(adapters)
    until = clock.now() + timedelta(hours=6)

    waiting = await run_task(adapters, task.id, worker_id="w1")
    assert waiting.state is TaskState.QUEUED and waiting.waiting_until == until
    assert waiting.progress == Progress(3, 10, "waiting for VK: every token is over its daily quota until 18:00 UTC")
    # The lease is given up; a wait is neither an attempt, a stall nor an error.
    assert (waiting.worker_id, waiting.heartbeat_at, waiting.error) == (None, None, None)
    assert (waiting.attempts, waiting.waits, waiting.stalls) == (1, 1, 0)
    # Enqueued again for when the first token is back, not now.
    assert adapters.queue.enqueued == [] and adapters.queue.deferred == [(task.id, until + adapters.task_timing.resume_margin)]
    assert adapters.events.published[-1]["state"] == "QUEUED"
    assert task_from_event(adapters.events.published[-1]).waiting_until == until

    # Before its time nobody runs it: a job delivered early is refused, the recovery loop
    # leaves it alone.
    clock.advance(hours=5)
    assert (await run_task(adapters, task.id, worker_id="w2")).state is TaskState.QUEUED
    assert await recover_orphaned(adapters) == [] and runs == [1]

    # After it, it resumes by itself and finishes, from where it was.
    clock.advance(hours=1, seconds=1)
    done = await run_task(adapters, task.id, worker_id="w2")
    assert done.state is TaskState.SUCCEEDED and done.waiting_until is None
    assert (done.attempts, done.waits, done.progress.done, runs) == (1, 1, 10, [1, 1])
    dones = [e["done"] for e in adapters.events.published]
    assert dones == sorted(dones)


async def test_a_deferred_job_lost_with_redis_is_offered_again_after_its_time(monkeypatch) -> None:
    async def handler(adapters, task, report):
        raise resting(adapters.clock.now() + timedelta(minutes=30))

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters)
    await run_task(adapters, task.id, worker_id="w1")
    adapters.clock.advance(minutes=30)
    assert await recover_orphaned(adapters) == []  # its deferred job may still come
    adapters.clock.advance(seconds=adapters.task_timing.queued_grace.total_seconds() + 1)
    assert [t.id for t in await recover_orphaned(adapters)] == [task.id]
    assert adapters.queue.enqueued == [(task.id, 1)]


def test_the_message_says_why_and_until_when_in_utc() -> None:
    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert waiting_message(datetime(2026, 12, 8, 0, 0, tzinfo=UTC), 29, now) == (
        "waiting for VK: every token is over its daily quota until 2026-12-08 00:00 UTC"
    )
    moscow = datetime(2026, 12, 7, 19, 30, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow"))
    assert waiting_message(moscow, 14, now) == "waiting for VK: every token needs a captcha solved until 19:30 UTC"


async def test_a_waiting_task_is_cancelled_at_once_and_never_runs_again(monkeypatch) -> None:
    calls = 0

    async def handler(adapters, task, report):
        nonlocal calls
        calls += 1
        raise resting(adapters.clock.now() + timedelta(seconds=30))

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore())
    task = await add_task(adapters)
    await run_task(adapters, task.id, worker_id="w1")
    cancelled = await cancel_task(adapters, task.id)
    assert cancelled.state is TaskState.CANCELLED and cancelled.waiting_until is None and cancelled.finished_at
    assert adapters.queue.aborted == [task.id]  # its deferred job too
    adapters.clock.advance(minutes=1)
    assert (await run_task(adapters, task.id, worker_id="w2")).state is TaskState.CANCELLED
    assert calls == 1


async def test_a_cancel_asked_while_it_ran_wins_over_the_wait(monkeypatch) -> None:
    async def handler(adapters, task, report):
        async with adapters.uow_factory() as uow:  # cancelTask arrives while VK is being asked
            await uow.tasks.request_cancel(task.id, now=adapters.clock.now())
            await uow.commit()
        raise resting(adapters.clock.now() + timedelta(hours=1))

    use_handler(monkeypatch, handler)
    # The supervisor does not see it first.
    adapters = make_adapters(InMemoryStore(), timing=dataclasses.replace(FAST, cancel_poll_interval=60))
    task = await add_task(adapters)
    finished = await run_task(adapters, task.id, worker_id="w1")
    assert finished.state is TaskState.CANCELLED and finished.waiting_until is None
    assert adapters.queue.deferred == []


async def test_a_wait_does_not_eat_the_task_timeout(monkeypatch) -> None:
    timeouts = {**FAST.timeouts, TaskKind.ANALYZE: timedelta(seconds=0.4)}
    runs = 0

    async def handler(adapters, task, report):
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.25)
        if runs == 1:
            raise resting(adapters.clock.now())
        return {}

    use_handler(monkeypatch, handler)
    adapters = make_adapters(InMemoryStore(), timing=dataclasses.replace(FAST, timeouts=timeouts))
    task = await add_task(adapters)
    assert (await run_task(adapters, task.id, worker_id="w1")).state is TaskState.QUEUED
    adapters.clock.advance(seconds=2)
    # 0.5 s of work in all, more than the timeout: each run has its own.
    assert (await run_task(adapters, task.id, worker_id="w1")).state is TaskState.SUCCEEDED


async def test_the_in_process_queue_runs_a_task_enqueued_again_while_its_job_runs() -> None:
    """A run that stores its wait just as the wait's time has come enqueues its own task from
    inside its job: the task runs again once that job has ended, not never."""
    runs: list[int] = []
    queue: InProcessJobQueue

    async def run(task_id: int) -> None:
        runs.append(task_id)
        if len(runs) == 1:
            await queue.enqueue(Task(kind=TaskKind.PARSE, id=task_id))
            await queue.enqueue(Task(kind=TaskKind.PARSE, id=task_id))  # once is enough

    queue = InProcessJobQueue(run, concurrency=2)
    try:
        await queue.enqueue(Task(kind=TaskKind.PARSE, id=5))
        await asyncio.sleep(0.1)
        assert runs == [5, 5]
    finally:
        await queue.aclose()


class RestingVk:
    """A VK gateway whose every token rests: each call says so, and none reaches VK."""

    def __init__(self, until: datetime) -> None:
        self.until, self.calls = until, 0

    def __getattr__(self, name: str):
        async def call(*args, **kwargs):
            self.calls += 1
            raise resting(self.until)

        return call


async def test_monitoring_runs_due_while_the_pool_rests_wait_and_never_pile_up() -> None:
    store = InMemoryStore()
    adapters = make_adapters(store)
    until = adapters.clock.now() + timedelta(hours=3)
    adapters.vk = RestingVk(until)
    async with store.uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=1, screen_name="g1", name="G1", monitor_enabled=True,
                                           monitor_interval_minutes=5, monitor_priority=5))
        await uow.commit()
    [task] = await scheduler_tick(adapters)
    waiting = await run_task(adapters, task.id, worker_id="w1")
    assert waiting.state is TaskState.QUEUED and waiting.waiting_until == until
    for _ in range(3):  # due again and again while it waits: the same run, no second one
        adapters.clock.advance(minutes=5)
        assert [t.id for t in await scheduler_tick(adapters)] == [task.id]
    assert [t.id for t in store.tasks.values()] == [task.id]
    # Not the community's error: a wait is no failed run.
    assert (store.groups[group.id].last_error, store.groups[group.id].last_run_at) == (None, None)


def test_each_run_of_a_task_has_its_own_arq_job_id() -> None:
    created = datetime(2026, 12, 7, tzinfo=UTC)
    fresh = Task(kind=TaskKind.PARSE, id=7, created_at=created)
    running = Task(kind=TaskKind.PARSE, id=7, created_at=created, attempts=1)
    waiting = Task(kind=TaskKind.PARSE, id=7, created_at=created, attempts=1, waits=1, waiting_until=created)
    resumed = Task(kind=TaskKind.PARSE, id=7, created_at=created, attempts=1, waits=1)
    assert next_run(fresh) == current_run(running) == 1
    assert next_run(waiting) == current_run(resumed) == 2  # the resumed run is the deferred job
    assert next_run(resumed) == 3  # its runner died: the next run is a new job
    assert len({arq_job_id(t, next_run(t)) for t in (fresh, waiting, resumed)}) == 3


async def test_the_in_process_queue_runs_a_deferred_task_at_its_time_and_drops_it_on_abort() -> None:
    ran: list[tuple[int, float]] = []

    async def run(task_id: int) -> None:
        ran.append((task_id, time.monotonic()))

    queue = InProcessJobQueue(run, concurrency=1)
    try:
        start = time.monotonic()
        now = datetime.now(UTC)
        await queue.enqueue(Task(kind=TaskKind.PARSE, id=1), defer_until=now + timedelta(seconds=0.3))
        await queue.enqueue(Task(kind=TaskKind.PARSE, id=2), defer_until=now + timedelta(seconds=0.3))
        await queue.enqueue(Task(kind=TaskKind.PARSE, id=3))
        await queue.abort(Task(kind=TaskKind.PARSE, id=2))  # cancelled while it waited
        await asyncio.sleep(0.1)
        assert [task_id for task_id, _ in ran] == [3]  # the slot is free for other work meanwhile
        await asyncio.sleep(0.4)
        assert [task_id for task_id, _ in ran] == [3, 1] and ran[1][1] - start >= 0.29
    finally:
        await queue.aclose()


async def test_embedded_a_parse_waits_out_the_quota_without_a_call_or_a_worker_and_stores_everything(
    monkeypatch,
) -> None:
    """The embedded path: in-process jobs, one worker slot, the real gateway against the
    emulator. Every token meets error 29 mid-parse; the parse waits, QUEUED, with the time and
    the message; VK hears nothing meanwhile and another task uses the slot; once the park is
    over, the parse resumes and stores every comment."""
    world = sandbox_world()
    token = "vk1.a.only-token"
    park = timedelta(seconds=1.5)
    vk_app = QuotaDay(world, tokens=[token], after=4, lasting=0.5)
    vk = HttpVkGateway("http://vk/method", [token], rps=1000, transport=httpx.ASGITransport(app=vk_app),
                       quota_park=park, max_retries=1)
    store = InMemoryStore()
    adapters = make_adapters(store, vk)
    adapters.clock = SystemClock()
    adapters.queue = InProcessJobQueue(lambda task_id: run_task(adapters, task_id, worker_id="embedded"),
                                       concurrency=1)

    async def analyze(adapters, task, report):
        return {"ran": True}

    use_handler(monkeypatch, analyze, TaskKind.ANALYZE)
    try:
        _, vk_id = await vk.resolve_screen_name("koshki_spb")
        [group] = await vk.get_groups([vk_id])
        async with store.uow_factory() as uow:
            group = await uow.groups.add(group)
            await uow.commit()
        [task] = await start_parse(adapters, [group.id])

        async def current() -> Task:
            return await stored(adapters, task.id)

        deadline = time.monotonic() + 10
        while (waiting := await current()).waiting_until is None:
            assert waiting.state in (TaskState.QUEUED, TaskState.RUNNING) and time.monotonic() < deadline, waiting
            await asyncio.sleep(0.01)
        assert waiting.state is TaskState.QUEUED
        assert waiting.progress.message.startswith("waiting for VK: every token is over its daily quota until ")
        heard = vk_app.requests_total
        # The slot is free: another task runs to its end while the parse waits.
        other = await task_cases.start_task(adapters, TaskKind.ANALYZE, {})
        await asyncio.sleep(0.3)
        assert (await stored(adapters, other.id)).state is TaskState.SUCCEEDED
        assert (await current()).state is TaskState.QUEUED and vk_app.requests_total == heard
        assert store.groups[group.id].last_error is None

        while not (finished := await current()).state.terminal:
            assert time.monotonic() < deadline + 10, finished
            if finished.state is TaskState.QUEUED and finished.waiting_until is not None:
                assert vk_app.requests_total == heard  # not one VK request while it waits
            await asyncio.sleep(0.02)
        assert finished.state is TaskState.SUCCEEDED, finished.error
        assert (finished.attempts, finished.waits, finished.waiting_until) == (1, 1, None)
        assert finished.progress.done == finished.progress.total
        assert store.comment_ids(-vk_id) == world.expected_comments(-vk_id)
        assert store.groups[group.id].last_error is None and store.groups[group.id].last_success_at
        assert vk_app.errors[29] >= 1
    finally:
        await adapters.queue.aclose()
        await vk.aclose()
