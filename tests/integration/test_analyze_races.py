"""Ten ANALYZE tasks over the same comments at once, through the real task runner: every one
succeeds, and the stored matches are exactly what one run alone stores. (On PostgreSQL nine of
ten used to fail: each replaced the matches it could see, and the others' uncommitted rows then
collided on the primary key.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from domain import analyze
from domain import tasks as task_cases
from domain.keywords import KeywordInput, add_keywords
from domain.models import Comment, Group, Post, Task, TaskKind, TaskState
from infrastructure.db.tables import comments, matches
from tests.e2e.graphql_support import make_settings, start_container

RUNS = 10
OWNER = -1
TEXTS = ["Кот спит на окне", "кошки и коты", "корм для кошки, корм для кота", "собака", "ветеринар смотрел котёнка"]


async def _store_comments(adapters, count: int) -> None:
    now = datetime.now(UTC)
    async with adapters.uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=-OWNER, screen_name="club1", name="Кошки"))
        await uow.posts.upsert_many(group.id, [Post(OWNER, 1, OWNER, "пост", now, comments_count=count)])
        texts = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(count)]
        await uow.comments.upsert_many(group.id, [Comment(OWNER, i + 1, 1, 100 + i, t, now) for i, t in enumerate(texts)])
        await uow.commit()


async def _stored(container) -> tuple[set[tuple], dict[int, int]]:
    """Every stored match, and each comment's match count."""
    async with container.engine.connect() as connection:
        found = set((await connection.execute(select(*matches.c))).all())
        counts = dict((await connection.execute(select(comments.c.id, comments.c.matches_count))).all())
    return found, counts


async def _analyze_at_once(container, runs: int) -> list[Task]:
    adapters = container.adapters
    now = datetime.now(UTC)
    async with adapters.uow_factory() as uow:
        queued = [
            await uow.tasks.add(Task(kind=TaskKind.ANALYZE, params={"groupIds": None, "keywordIds": None}, created_at=now))
            for _ in range(runs)
        ]
        await uow.commit()

    async def run(i: int, task: Task) -> Task:
        await asyncio.sleep(i * 0.005)  # staggered: the runs meet in every phase of a batch
        return await task_cases.run_task(adapters, task.id, worker_id=f"runner-{i}")

    # Each its own runner, all at once (the in-process queue would run only a few together).
    return await asyncio.gather(*(run(i, t) for i, t in enumerate(queued)))


async def test_concurrent_analyze_runs_all_succeed_and_store_exact_matches(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analyze, "ANALYZE_BATCH", 100)  # several transactions per run, interleaved
    container = await start_container(make_settings(tmp_path, database_url=database_url))
    try:
        await _store_comments(container.adapters, 200)
        await add_keywords(container.adapters, [KeywordInput(w) for w in ("кот", "корм", "ветеринар")])

        # Twice: first over no matches (inserts collide), then over stored ones (each run
        # deletes rows the others are replacing too).
        rounds = []
        for _ in range(2):
            finished = await _analyze_at_once(container, RUNS)
            assert [(t.state, t.error) for t in finished] == [(TaskState.SUCCEEDED, None)] * RUNS
            rounds.append(await _stored(container))

        alone = await _analyze_at_once(container, 1)
        assert alone[0].state is TaskState.SUCCEEDED
        reference = await _stored(container)
        assert rounds == [reference, reference]
        found, counts = reference
        assert len(found) > 200  # the keywords do match (кот in every form): something to get wrong
        per_comment: dict[int, int] = {}
        for row in found:
            per_comment[row.comment_id] = per_comment.get(row.comment_id, 0) + 1
        assert counts == {cid: per_comment.get(cid, 0) for cid in counts}
    finally:
        await container.aclose()
