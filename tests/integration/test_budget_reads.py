"""What ``domain.budget`` reads of past runs, on SQLite and PostgreSQL: each community's last
successful PARSE results, newest first, a bounded number of them."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.models import Group, Task, TaskKind, TaskState
from infrastructure.db.queries import SqlReadModel

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


async def test_recent_parse_results_per_community(migrated_db, uow_factory):
    async with uow_factory() as uow:
        first = await uow.groups.add(Group(vk_id=1, screen_name="one", name="One"))
        second = await uow.groups.add(Group(vk_id=2, screen_name="two", name="Two"))
        silent = await uow.groups.add(Group(vk_id=3, screen_name="three", name="Three"))
        await uow.commit()
    runs = [(first, TaskKind.PARSE, TaskState.SUCCEEDED, n) for n in range(1, 5)]
    runs += [(first, TaskKind.PARSE, TaskState.FAILED, 99), (first, TaskKind.ANALYZE, TaskState.SUCCEEDED, 98),
             (second, TaskKind.PARSE, TaskState.SUCCEEDED, 7), (silent, TaskKind.PARSE, TaskState.CANCELLED, 97)]
    for group, kind, state, calls in runs:
        async with uow_factory() as uow:
            task = await uow.tasks.add(Task(kind=kind, group_id=group.id, created_at=NOW))
            await uow.tasks.finish(task.id, worker_id=None, state=state, now=NOW,
                                   result={"vkCalls": {"wall.get": calls}})
            await uow.commit()

    found = await SqlReadModel(migrated_db[1]).recent_parse_results([first.id, second.id, silent.id], 3)
    assert found == {
        first.id: [{"vkCalls": {"wall.get": n}} for n in (4, 3, 2)],
        second.id: [{"vkCalls": {"wall.get": 7}}],
    }
    assert await SqlReadModel(migrated_db[1]).recent_parse_results([], 3) == {}
