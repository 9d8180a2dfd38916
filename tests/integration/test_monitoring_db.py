"""Monitoring on the real databases: the scheduler of two workers ticking in the same minute.

ARQ gives each cron run a job id made of the name and the minute, so one tick per minute runs
cluster-wide; this checks the layer beneath, should two ticks still meet (a worker's clock a
minute off, an operator's manual run): each due community is started once, by priority.
"""

from __future__ import annotations

import asyncio

from domain.models import Group, TaskKind, TaskState
from domain.monitoring import scheduler_tick
from domain.ports import Adapters
from tests.fakes import FakeClock
from tests.unit.test_tasks import RecordingEvents, RecordingQueue


async def test_two_ticks_at_once_start_each_due_group_once_by_priority(uow_factory) -> None:
    adapters = Adapters(uow_factory=uow_factory, vk=None, queue=RecordingQueue(),  # type: ignore[arg-type]
                        events=RecordingEvents(), clock=FakeClock())
    async with uow_factory() as uow:
        low = await uow.groups.add(Group(vk_id=1, screen_name="low", name="Low", monitor_enabled=True,
                                         monitor_interval_minutes=5, monitor_priority=2))
        high = await uow.groups.add(Group(vk_id=2, screen_name="high", name="High", monitor_enabled=True,
                                          monitor_interval_minutes=5, monitor_priority=9))
        await uow.groups.add(Group(vk_id=3, screen_name="off", name="Off", monitor_enabled=False,
                                   monitor_interval_minutes=1, monitor_priority=10))
        await uow.commit()

    first, second = await asyncio.gather(scheduler_tick(adapters), scheduler_tick(adapters))

    async with uow_factory() as uow:
        tasks = await uow.tasks.list(kinds=[TaskKind.PARSE])
    assert sorted(t.group_id for t in tasks) == sorted([low.id, high.id])  # once each, never the disabled one
    assert all(t.state is TaskState.QUEUED for t in tasks)
    assert {t.id for t in first} | {t.id for t in second} == {t.id for t in tasks}
    enqueued = [task_id for task_id, _ in adapters.queue.enqueued]
    assert sorted(enqueued) == sorted(t.id for t in tasks)  # and enqueued once each
    by_group = {t.group_id: t for t in tasks}
    assert enqueued.index(by_group[high.id].id) < enqueued.index(by_group[low.id].id)  # priority first
    assert by_group[high.id].priority == 9

    adapters.clock.advance(minutes=1)  # the next minute: nothing is due yet
    assert await scheduler_tick(adapters) == []


async def test_a_group_has_one_active_parse_until_it_ends(uow_factory) -> None:
    from domain.models import Task

    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=7, screen_name="g7", name="G7"))
        await uow.commit()

    def parse() -> Task:
        return Task(kind=TaskKind.PARSE, group_id=group.id, params={})

    async with uow_factory() as uow:
        first = await uow.tasks.add_parse(parse())
        assert first is not None and first.id is not None
        assert await uow.tasks.add_parse(parse()) is None  # queued: a second is refused
        first.state = TaskState.RUNNING
        await uow.tasks.save(first)
        assert await uow.tasks.add_parse(parse()) is None  # running: still refused
        first.state = TaskState.SUCCEEDED
        await uow.tasks.save(first)
        second = await uow.tasks.add_parse(parse())  # finished: the next run may start
        assert second is not None and second.id != first.id
        await uow.commit()


async def test_the_migration_keeps_the_oldest_of_duplicate_runs(database_url) -> None:
    """Databases from before 0003 may hold two active parses of one group (the race this
    index closes); the upgrade cancels all but the oldest instead of failing."""
    from sqlalchemy import text

    from infrastructure.db.engine import create_engine
    from infrastructure.db.migrate import upgrade_async

    await upgrade_async(database_url, "0002")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO groups (id, vk_id, screen_name, name, created_at, updated_at) VALUES (1, 1, 'g', 'G', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            for state in ("RUNNING", "QUEUED", "SUCCEEDED"):
                await conn.execute(text(
                    "INSERT INTO tasks (kind, state, group_id, params, created_at) "
                    "VALUES ('PARSE', :state, 1, '{}', CURRENT_TIMESTAMP)"), {"state": state})
        await upgrade_async(database_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, state FROM tasks ORDER BY id"))).all()
        assert [state for _, state in rows] == ["RUNNING", "CANCELLED", "SUCCEEDED"]
    finally:
        await engine.dispose()
