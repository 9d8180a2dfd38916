"""The aggregate-backed ``stats`` equals a full scan of the data after every kind of write.

A seeded random history goes through the repositories (as collection, analysis, review and
management do): comments collected, re-collected with changed days, threads and authors,
edited, deleted on VK and gone from it,
matches replaced whole and per keyword, comments marked viewed and archived, keywords and
groups removed, a transaction rolled back. After each step both readings must be identical,
on both databases; migration 0005's backfill is checked against the same reference.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, date, datetime, timedelta

from alembic import command
from sqlalchemy import func, select, text

from domain.models import Author, Comment, CommentStatus, Group, Keyword, Match, Post, WorkflowState
from domain.queries import CommentFilter, StatsWindow
from infrastructure.db.aggregates import rebuild
from infrastructure.db.migrate import alembic_config, upgrade_async
from infrastructure.db.queries import SqlReadModel
from infrastructure.db.tables import comments
from tests.integration.stats_by_scan import stats_by_scan

START = datetime(2026, 3, 1, tzinfo=UTC)
WINDOWS = [
    StatsWindow(since=date(2026, 2, 27), until=date(2026, 3, 12), top=1000),  # everything
    StatsWindow(since=date(2026, 3, 2), until=date(2026, 3, 4), top=3),  # cut lists, part of the days
]
AUTHORS = [0, 1, 2, 3, 4, 5, -77]  # 0: VK's deleted-comment placeholder; -77: a community


async def assert_exact(sessions) -> None:
    dialect = sessions.kw["bind"].dialect.name
    for window in WINDOWS:
        assert await SqlReadModel(sessions).stats(window) == await stats_by_scan(sessions, dialect, window)
    # Review states per day (the comment filter's counts, infrastructure/db/counts.py).
    for viewed, archived in [(None, None), (True, None), (None, True), (True, True), (False, True), (False, False)]:
        flt = CommentFilter(viewed=viewed, archived=archived, since=START + timedelta(days=2, hours=5))
        conditions = [comments.c.published_at >= flt.since]
        conditions += [comments.c.viewed == viewed] if viewed is not None else []
        conditions += [comments.c.archived == archived] if archived is not None else []
        async with sessions() as session:
            scanned = (await session.execute(select(func.count()).where(*conditions))).scalar_one()
        assert await SqlReadModel(sessions).comments_count(flt) == scanned, (viewed, archived)
    # History flags, with review states and time: counted from the comments.
    for deleted, edited, viewed in [(True, None, None), (None, True, None), (False, False, True), (True, None, False)]:
        flt = CommentFilter(deleted=deleted, edited=edited, viewed=viewed, since=START + timedelta(days=1))
        conditions = [comments.c.published_at >= flt.since]
        conditions += [comments.c.deleted == deleted] if deleted is not None else []
        conditions += [comments.c.edited_at.is_not(None) == edited] if edited is not None else []
        conditions += [comments.c.viewed == viewed] if viewed is not None else []
        async with sessions() as session:
            scanned = (await session.execute(select(func.count()).where(*conditions))).scalar_one()
        assert await SqlReadModel(sessions).comments_count(flt) == scanned, (deleted, edited, viewed)


def a_comment(rng: random.Random, owner_id: int, vk_id: int, posts: int) -> Comment:
    # Minutes around midnight too: the day is the UTC day on both databases.
    published = START + timedelta(days=rng.randrange(8), hours=rng.choice([0, 12, 23]), minutes=rng.randrange(60))
    thread = rng.choice([None, None, 1, 2]) if vk_id > 2 else None
    return Comment(
        owner_id=owner_id, vk_id=vk_id, post_vk_id=1 + rng.randrange(posts), from_id=rng.choice(AUTHORS),
        text="кошка", published_at=published, thread_vk_id=thread, parent_vk_id=thread,
    )


def some_matches(rng: random.Random, comment_ids: list[int], keyword_ids: list[int]) -> list[Match]:
    found = []
    for comment_id in comment_ids:
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            start = rng.randrange(5)  # repeats: a keyword matched twice in one comment, or not stored twice
            found.append(Match(comment_id, rng.choice(keyword_ids), "кошка", start, start + 5, "…кошка…"))
    return found


async def test_aggregates_equal_a_full_scan_after_every_write(uow_factory, migrated_db) -> None:
    _, sessions = migrated_db
    rng = random.Random(12)
    await assert_exact(sessions)  # empty

    async with uow_factory() as uow:
        groups = [await uow.groups.add(Group(vk_id=100 + i, screen_name=f"g{i}", name=f"Группа {i}")) for i in range(3)]
        keyword_ids = [(await uow.keywords.add(Keyword(0, w))).id for w in ("кошка", "собака", "мышь", "ёж")]
        await uow.authors.upsert_many(Author(vk_id=a, name=f"Автор {a}") for a in AUTHORS if a)
        for g in groups:
            await uow.posts.upsert_many(g.id, [Post(g.owner_id, p, None, "", START) for p in range(1, 4)])
        await uow.commit()

    ids: dict[int, list[int]] = {}

    async def collect(group: Group, vk_ids: range) -> list[int]:
        async with uow_factory() as uow:
            stored = await uow.comments.upsert_many(group.id, [a_comment(rng, group.owner_id, v, 3) for v in vk_ids])
            await uow.commit()
        ids[group.id] = sorted(set(ids.get(group.id, [])) | set(stored.values()))
        return list(stored.values())

    async def analyze(comment_ids: list[int], scope: list[int] | None = None) -> None:
        async with uow_factory() as uow:
            await uow.matches.replace_for_comments(
                comment_ids, some_matches(rng, comment_ids, scope or keyword_ids), keyword_ids=scope
            )
            await uow.commit()

    for g in groups:  # first collection, matched as it is written
        await analyze(await collect(g, range(1, 30)))
    await assert_exact(sessions)

    # Re-collection: the same comments with new days, threads and authors, and new ones.
    await collect(groups[0], range(10, 45))
    await collect(groups[1], range(1, 5))
    await assert_exact(sessions)

    # Re-analysis: whole comments, then only some keywords (the others' matches are kept).
    await analyze(ids[groups[0].id][::2])
    await analyze(ids[groups[1].id], scope=keyword_ids[:2])
    await analyze(ids[groups[2].id][:7], scope=[keyword_ids[3]])
    await assert_exact(sessions)

    # Review states change only their own counters, and must not disturb the others.
    async with uow_factory() as uow:
        await uow.comments.set_state(ids[groups[0].id][:20], viewed=True, archived=None)
        await uow.comments.set_state(ids[groups[2].id][5:], viewed=None, archived=True)
        await uow.commit()
    await assert_exact(sessions)
    # Review statuses (counted by status, NEW derived from the totals), in every group, so the
    # group removed below takes some worked-on comments with it.
    async with uow_factory() as uow:
        worked = [c for g in groups for c in ids[g.id][:12]]
        statuses = [CommentStatus.IN_PROGRESS, CommentStatus.DONE, CommentStatus.IGNORED, CommentStatus.NEW]
        await uow.comments.set_workflow([
            WorkflowState(id=c, viewed=False, archived=False, status=statuses[i % 4], assignee=None, tags=(), note=None)
            for i, c in enumerate(worked)
        ])
        await uow.commit()
    await assert_exact(sessions)

    # Edits and deletions seen on a re-read, matched as the collector matches them: an edited
    # comment again, a deleted one not (VK's placeholder has no text; the stored one stays).
    # The placeholders carry another day and author 0: what was stored is what counts.
    async with uow_factory() as uow:
        owner = groups[0].owner_id
        edited = [dataclasses.replace(a_comment(rng, owner, v, 3), text=f"кошка {v}") for v in range(10, 20)]
        gone = [dataclasses.replace(a_comment(rng, owner, v, 3), text="", from_id=0, deleted=True) for v in range(18, 26)]
        stored = await uow.comments.upsert_many(groups[0].id, edited + gone)
        rematched = [stored[(owner, c.vk_id)] for c in edited if c.vk_id < 18]
        await uow.matches.replace_for_comments(rematched, some_matches(rng, rematched, keyword_ids))
        await uow.commit()
    await assert_exact(sessions)
    async with uow_factory() as uow:  # a post read completely: what VK no longer has is marked
        assert await uow.comments.mark_vanished(groups[2].owner_id, 2, [], now=START)
        await uow.commit()
    await assert_exact(sessions)

    # A transaction that writes and rolls back leaves no trace; one that rolls back and then
    # writes again counts only the second part.
    async with uow_factory() as uow:
        await uow.comments.upsert_many(groups[2].id, [a_comment(rng, groups[2].owner_id, v, 3) for v in range(1, 60)])
        await uow.matches.replace_for_comments(ids[groups[2].id], [])
    async with uow_factory() as uow:
        await uow.matches.replace_for_comments(ids[groups[2].id], [])
        await uow.rollback()
        await uow.comments.upsert_many(groups[2].id, [a_comment(rng, groups[2].owner_id, v, 3) for v in range(25, 35)])
        await uow.commit()
    await assert_exact(sessions)

    async with uow_factory() as uow:
        await uow.keywords.remove(keyword_ids[0])
        await uow.commit()
    await assert_exact(sessions)

    async with uow_factory() as uow:
        await uow.groups.remove(groups[1].id)
        await uow.commit()
    await assert_exact(sessions)

    # Migration 0005's backfill (here: the same statements, rerun) gives the same numbers.
    async with sessions() as session:
        await rebuild(await session.connection())
        await session.commit()
    await assert_exact(sessions)


async def test_migration_backfills_the_aggregates_of_existing_data(uow_factory, migrated_db, database_url) -> None:
    engine, sessions = migrated_db
    rng = random.Random(5)
    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=7, screen_name="g", name="Группа"))
        keyword = await uow.keywords.add(Keyword(0, "кошка"))
        await uow.posts.upsert_many(group.id, [Post(group.owner_id, 1, None, "", START)])
        stored = await uow.comments.upsert_many(group.id, [a_comment(rng, group.owner_id, v, 1) for v in range(1, 40)])
        await uow.matches.replace_for_comments(list(stored.values()), some_matches(rng, list(stored.values()), [keyword.id]))
        await uow.commit()
    expected = await SqlReadModel(sessions).stats(WINDOWS[0])

    # Back to before 0005 (the data stays, the aggregates go), then up again: the backfills
    # of 0005 and 0007 (its downgrade on the way).
    await engine.dispose()
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0006")
    async with engine.begin() as conn:
        for table in ("stats_keywords", "stats_authors", "stats_days", "stats_groups"):
            await conn.execute(text(f"DROP TABLE {table}"))
        await conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    await engine.dispose()
    await upgrade_async(database_url)
    assert await SqlReadModel(sessions).stats(WINDOWS[0]) == expected
    await assert_exact(sessions)


async def totals(sessions):
    found = (await SqlReadModel(sessions).stats(WINDOWS[0])).totals
    return found.posts, found.authors


async def test_posts_and_authors_are_counted_once_and_leave_with_their_last_row(uow_factory, migrated_db) -> None:
    _, sessions = migrated_db

    def comment(owner_id: int, vk_id: int, author: int) -> Comment:
        return Comment(owner_id=owner_id, vk_id=vk_id, post_vk_id=1, from_id=author, text="", published_at=START)

    async with uow_factory() as uow:
        one, two = [await uow.groups.add(Group(vk_id=v, screen_name=f"g{v}", name=f"G{v}")) for v in (1, 2)]
        await uow.posts.upsert_many(one.id, [Post(one.owner_id, p, None, "", START) for p in (1, 2, 3)])
        await uow.posts.upsert_many(two.id, [Post(two.owner_id, 1, None, "", START)])
        await uow.comments.upsert_many(one.id, [comment(one.owner_id, 1, 10), comment(one.owner_id, 2, 20)])
        await uow.comments.upsert_many(two.id, [comment(two.owner_id, 1, 20), comment(two.owner_id, 2, 0)])
        await uow.commit()
    assert await totals(sessions) == (4, 2)  # author 0, VK's placeholder, is nobody

    # Posts collected again with new ones: each counted once; an author's last comment
    # rewritten to another author: one leaves, one comes.
    async with uow_factory() as uow:
        await uow.posts.upsert_many(one.id, [Post(one.owner_id, p, None, "", START) for p in (2, 3, 4, 5)])
        await uow.comments.upsert_many(one.id, [comment(one.owner_id, 1, 30)])
        await uow.commit()
    assert await totals(sessions) == (6, 2)
    await assert_exact(sessions)

    # Rolled back: a new author and new posts leave no trace.
    async with uow_factory() as uow:
        await uow.posts.upsert_many(two.id, [Post(two.owner_id, 9, None, "", START)])
        await uow.comments.upsert_many(two.id, [comment(two.owner_id, 3, 40)])
        await uow.rollback()
    assert await totals(sessions) == (6, 2)

    # A group removed: its posts go; author 20 still writes in group one, author 30 does not.
    async with uow_factory() as uow:
        await uow.comments.upsert_many(two.id, [comment(two.owner_id, 3, 30)])
        await uow.commit()
    assert await totals(sessions) == (6, 2)
    async with uow_factory() as uow:
        await uow.groups.remove(one.id)
        await uow.commit()
    assert await totals(sessions) == (1, 2)  # 20 and 30, both in group two
    await assert_exact(sessions)
