"""The writer keeps PostgreSQL's planner statistics of comments and matches current
(``infrastructure/db/planner.py``): a collection analyzes them once it added a tenth of what
the last analysis counted, and not before."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from domain.models import Comment, Group, Post
from infrastructure.db.planner import planner_statistics

START = datetime(2026, 3, 1, tzinfo=UTC)


async def _store(uow_factory, group: Group, vk_ids: range) -> None:
    async with uow_factory() as uow:
        comments = [
            Comment(owner_id=group.owner_id, vk_id=v, post_vk_id=1, from_id=1, text=f"c{v}", published_at=START)
            for v in vk_ids
        ]
        await uow.comments.upsert_many(group.id, comments)
        await uow.commit()


async def _reltuples(engine) -> float:
    async with engine.connect() as conn:
        return float(await conn.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'comments'::regclass")))


async def test_a_collection_analyzes_what_it_grew(uow_factory, migrated_db) -> None:
    engine, _ = migrated_db
    tracker = planner_statistics(engine)
    assert planner_statistics(engine) is tracker  # one per engine, whatever unit of work commits
    tracker.min_rows = 50
    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=1, screen_name="g", name="g"))
        await uow.posts.upsert_many(group.id, [Post(group.owner_id, 1, None, "", START)])
        await uow.commit()
    postgres = engine.dialect.name == "postgresql"
    before = await _reltuples(engine) if postgres else None

    await _store(uow_factory, group, range(1, 41))  # 40: fewer than 50
    assert tracker.analyses == 0
    await _store(uow_factory, group, range(1, 41))  # the same again: nothing added
    assert tracker.analyses == 0
    await _store(uow_factory, group, range(41, 61))  # 60 added
    if not postgres:
        assert tracker.analyses == 0  # SQLite is left alone
        return
    assert tracker.analyses == 1 and tracker.added == 0
    assert before != 60 and await _reltuples(engine) == 60  # the server counted them
    tracker.min_rows = 5
    await _store(uow_factory, group, range(61, 66))  # 5 < a tenth of 60: not yet
    assert tracker.analyses == 1
    await _store(uow_factory, group, range(66, 68))  # 7 >= 6
    assert tracker.analyses == 2 and await _reltuples(engine) == 67
