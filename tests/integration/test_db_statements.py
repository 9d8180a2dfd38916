"""A collection's writes use the same SQL whatever the size of a batch, on PostgreSQL.

Every distinct text is a prepared statement that each pooled connection keeps (SQLAlchemy's
asyncpg cache, 100 to 150 a connection). Multi-row ``VALUES`` lists made one per batch size, up
to 100 KB of SQL and 13,000 parameters each, and the worker's memory grew with the comments it
stored (issue #10, see ``infrastructure/db/bulk.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from domain.models import Author, Comment, Group, Keyword, Match, Post
from infrastructure.db.engine import create_engine, session_factory
from infrastructure.db.migrate import upgrade_async
from infrastructure.db.planner import RELTUPLES, TABLES
from infrastructure.db.uow import SqlUnitOfWork
from tests.conftest import postgres_database

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SIZES = [1, 7, 250, 999, 1001, 2345]  # below, at and above SQLAlchemy's 1,000-row pages


@pytest.fixture
async def engine():
    async with postgres_database() as url:
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            yield engine
        finally:
            await engine.dispose()


async def test_writes_of_any_batch_size_are_the_same_statements(engine) -> None:
    sessions = session_factory(engine)
    async with SqlUnitOfWork(sessions) as uow:
        group = await uow.groups.add(Group(vk_id=1, screen_name="club1", name="Group 1"))
        await uow.posts.upsert_many(group.id, [Post(owner_id=-1, vk_id=1, from_id=-1, text="post", published_at=T0)])
        keyword = await uow.keywords.add(Keyword(id=0, word="text"))
        await uow.commit()

    texts: dict[int, set[str]] = {}
    executed: dict[int, int] = {}
    current: list[str] = []

    # Not the batch's writes: the planner statistics' upkeep after a commit (planner.py: a
    # read of the count once per engine, an ANALYZE per tenth of growth; test_db_planner.py).
    upkeep = {str(RELTUPLES), f"ANALYZE {', '.join(TABLES)}"}

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _record(conn, cursor, statement, parameters, *args) -> None:
        if statement not in upkeep:
            current.append(statement)

    first_id = 1
    for size in SIZES:
        current.clear()
        ids = range(first_id, first_id + size)
        first_id += size
        # What the collector's writer does with a batch, then a re-parse that finds every
        # comment by another author (the old authors' statistics rows are deleted), then one
        # that finds every text edited (their history written) and every third deleted.
        for author_shift, edit in ((0, ""), (1_000_000, ""), (1_000_000, " edited")):
            batch = [
                Comment(owner_id=-1, vk_id=i, post_vk_id=1, from_id=i + author_shift, text=f"text {i}{edit}",
                        published_at=T0 + timedelta(seconds=i), deleted=bool(edit) and i % 3 == 0)
                for i in ids
            ]
            async with SqlUnitOfWork(sessions) as uow:
                await uow.authors.upsert_many(Author(vk_id=c.from_id, name=f"user {c.from_id}") for c in batch)
                stored = await uow.comments.upsert_many(group.id, batch)
                found = [Match(stored[(-1, c.vk_id)], keyword.id, "text", 0, 4, c.text) for c in batch]
                await uow.matches.replace_for_comments(list(stored.values()), found)
                await uow.posts.mark_synced(-1, {1: size})
                await uow.commit()
        texts[size], executed[size] = set(current), len(current)
        async with SqlUnitOfWork(sessions) as uow:
            assert await uow.comments.count() == first_id - 1

    first = texts[SIZES[0]]
    for size in SIZES[1:]:
        assert texts[size] == first, f"{len(texts[size] - first)} statements new at {size} rows"
    # ... and as many of them: none per comment (edits and deletions included).
    assert {executed[size] for size in SIZES[1:]} == {executed[SIZES[0]]}, executed
