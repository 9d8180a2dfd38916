"""Monitoring: the once-a-minute scheduler against the fakes and a fake clock."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from domain import tasks as task_cases
from domain.errors import InvalidInput
from domain.groups import GroupChanges, update_group
from domain.models import Group, TaskKind, TaskState
from domain.monitoring import scheduler_tick, validate_monitoring
from domain.tasks import run_task
from tests.fakes import InMemoryStore
from tests.unit.test_tasks import make_adapters


async def add_group(store: InMemoryStore, vk_id: int, *, interval: int, priority: int, enabled: bool = True) -> Group:
    async with store.uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=vk_id, screen_name=f"g{vk_id}", name=f"G{vk_id}",
                                           monitor_enabled=enabled, monitor_interval_minutes=interval,
                                           monitor_priority=priority))
        await uow.commit()
    return group


@pytest.fixture
def instant_parse(monkeypatch):
    async def parse(adapters, task, report):
        await report(1, 1, "done")
        return {}

    monkeypatch.setitem(task_cases.HANDLERS, TaskKind.PARSE, parse)


async def test_two_groups_due_together_both_run_by_priority_once_per_interval(instant_parse) -> None:
    store = InMemoryStore()
    adapters = make_adapters(store)
    low = await add_group(store, 1, interval=5, priority=3)
    high = await add_group(store, 2, interval=5, priority=8)
    await add_group(store, 3, interval=1, priority=10, enabled=False)
    runs: Counter[int] = Counter()
    first_tick_order = None
    for minute in range(15):  # minutes 0..14: runs at 0, 5 and 10
        started = await scheduler_tick(adapters)
        if minute == 0:
            first_tick_order = [t.group_id for t in started]
        for task in started:
            runs[task.group_id] += 1
            assert (await run_task(adapters, task.id)).state is TaskState.SUCCEEDED
        adapters.clock.advance(minutes=1, seconds=0.5)  # ticks land a little late, as in life
    assert first_tick_order == [high.id, low.id]
    assert runs == {high.id: 3, low.id: 3}
    # The last run (minute 10) set the next one on the minute's boundary: 12:15, not 12:15:05.
    assert store.groups[high.id].next_run_at == datetime(2026, 10, 1, 12, 15, tzinfo=UTC)


async def test_a_group_whose_run_is_still_going_is_not_started_again(instant_parse) -> None:
    store = InMemoryStore()
    adapters = make_adapters(store)
    group = await add_group(store, 1, interval=1, priority=5)
    [first] = await scheduler_tick(adapters)
    adapters.clock.advance(minutes=1)
    [again] = await scheduler_tick(adapters)  # due again, but the first run has not finished
    assert again.id == first.id
    assert [task_id for task_id, _ in adapters.queue.enqueued] == [first.id]
    tasks = [t for t in store.tasks.values() if t.group_id == group.id]
    assert len(tasks) == 1


def test_monitoring_settings_are_validated() -> None:
    validate_monitoring(1, 10)
    validate_monitoring(1440, 1)
    for interval, priority in ((0, 5), (1441, 5), (5, 0), (5, 11)):
        with pytest.raises(InvalidInput):
            validate_monitoring(interval, priority)


async def test_switching_monitoring_on_makes_a_group_due_now_and_a_new_interval_counts_from_the_last_run() -> None:
    store = InMemoryStore()
    adapters = make_adapters(store)
    group = await add_group(store, 1, interval=60, priority=5, enabled=False)
    switched_on = await update_group(adapters, group.id, GroupChanges(monitor_enabled=True))
    assert switched_on.next_run_at == adapters.clock.now()  # not one interval later

    store.groups[group.id].last_run_at = datetime(2026, 10, 1, 11, 50, 30, tzinfo=UTC)
    shorter = await update_group(adapters, group.id, GroupChanges(monitor_interval_minutes=15))
    assert shorter.next_run_at == datetime(2026, 10, 1, 12, 5, tzinfo=UTC)
    untouched = await update_group(adapters, group.id, GroupChanges(max_posts=None))
    assert untouched.monitor_interval_minutes == 15 and untouched.monitor_enabled and untouched.max_posts is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (GroupChanges(active=None), "active"),
        (GroupChanges(max_posts=0), "maxPosts"),
        (GroupChanges(monitor_interval_minutes=0), "monitoring.intervalMinutes"),
        (GroupChanges(monitor_priority=11), "monitoring.priority"),
    ],
)
async def test_group_settings_out_of_range_are_refused_before_anything_changes(changes, field) -> None:
    store = InMemoryStore()
    group = await add_group(store, 1, interval=60, priority=5)
    with pytest.raises(InvalidInput) as refused:
        await update_group(make_adapters(store), group.id, changes)
    assert refused.value.field == field
