"""The SQL unit of work and repositories, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from domain.models import Author, Comment, Group, Keyword, Match, Post, Task, TaskKind, TaskState
from infrastructure.db.tables import comments as comments_table

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def group(vk_id: int, **fields) -> Group:
    return Group(vk_id=vk_id, screen_name=f"club{vk_id}", name=f"Group {vk_id}", **fields)


def post(owner_id: int, vk_id: int, comments_count: int = 0) -> Post:
    return Post(owner_id=owner_id, vk_id=vk_id, from_id=owner_id, text=f"post {vk_id}",
                published_at=T0, comments_count=comments_count)


def comment(owner_id: int, vk_id: int, text: str = "text", post_vk_id: int = 1, **fields) -> Comment:
    return Comment(owner_id=owner_id, vk_id=vk_id, post_vk_id=post_vk_id, from_id=100 + vk_id, text=text,
                   published_at=T0 + timedelta(minutes=vk_id), **fields)


async def add_group_with_post(uow_factory, vk_id: int = 1, posts: int = 1) -> Group:
    async with uow_factory() as uow:
        g = await uow.groups.add(group(vk_id))
        await uow.posts.upsert_many(g.id, [post(g.owner_id, i) for i in range(1, posts + 1)])
        await uow.commit()
    return g


async def test_group_round_trip_keeps_every_field(uow_factory) -> None:
    g = group(10, members_count=5, since=T0, monitor_enabled=True, monitor_priority=8, next_run_at=T0)
    async with uow_factory() as uow:
        added = await uow.groups.add(g)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.groups.get(added.id)
        by_vk = await uow.groups.get_by_vk_id(10)
    assert stored == added == by_vk
    assert stored.since == T0 and stored.since.tzinfo is not None
    assert stored.created_at is not None


async def test_unit_of_work_rolls_back_unless_committed(uow_factory) -> None:
    async with uow_factory() as uow:
        await uow.groups.add(group(1))
    async with uow_factory() as uow:
        assert await uow.groups.list() == []


async def test_comment_upsert_twice_keeps_ids_and_review_state(uow_factory, migrated_db) -> None:
    engine, _ = migrated_db
    g = await add_group_with_post(uow_factory)
    batch = [comment(g.owner_id, i) for i in range(1, 6)]
    async with uow_factory() as uow:
        first = await uow.comments.upsert_many(g.id, batch)
        kw = await uow.keywords.add(Keyword(id=0, word="text"))
        c1 = first[(g.owner_id, 1)]
        await uow.matches.replace_for_comments([c1], [Match(c1, kw.id, "text", 0, 4, "text")])
        await uow.commit()
    async with uow_factory() as uow:  # a reviewer marks the first comment
        await uow.comments.set_state([c1], viewed=True, archived=True)
        await uow.commit()

    changed = [comment(g.owner_id, i, text="edited", likes=7) for i in range(1, 6)]
    async with uow_factory() as uow:
        second = await uow.comments.upsert_many(g.id, changed + changed[:1])  # a duplicate in one batch
        await uow.commit()
        assert await uow.comments.count() == 5

    assert second == first
    async with engine.connect() as conn:
        rows = (await conn.execute(select(comments_table).order_by(comments_table.c.id))).mappings().all()
    assert [r["text"] for r in rows] == ["edited"] * 5
    assert [r["likes"] for r in rows] == [7] * 5
    assert (rows[0]["viewed"], rows[0]["archived"], rows[0]["matches_count"]) == (True, True, 1)
    assert all(not r["viewed"] and not r["archived"] and r["matches_count"] == 0 for r in rows[1:])


async def test_same_comment_id_on_two_walls_is_two_comments(uow_factory) -> None:
    a = await add_group_with_post(uow_factory, vk_id=1)
    b = await add_group_with_post(uow_factory, vk_id=2)
    async with uow_factory() as uow:
        ids_a = await uow.comments.upsert_many(a.id, [comment(a.owner_id, 7)])
        ids_b = await uow.comments.upsert_many(b.id, [comment(b.owner_id, 7)])
        await uow.commit()
        assert await uow.comments.count() == 2
        assert await uow.comments.count(group_id=a.id) == 1
    assert ids_a[(-1, 7)] != ids_b[(-2, 7)]


async def test_comments_need_their_post(uow_factory) -> None:
    g = await add_group_with_post(uow_factory)
    async with uow_factory() as uow:
        try:
            await uow.comments.upsert_many(g.id, [comment(g.owner_id, 1, post_vk_id=999)])
        except LookupError as e:
            assert "999" in str(e)
        else:
            raise AssertionError("a comment of an unknown post was stored")


async def test_large_batches_stay_below_bind_parameter_limits(uow_factory) -> None:
    g = await add_group_with_post(uow_factory)
    batch = [comment(g.owner_id, i) for i in range(1, 5001)]  # 65,000 values: several statements
    async with uow_factory() as uow:
        ids = await uow.comments.upsert_many(g.id, batch)
        await uow.matches.replace_for_comments(list(ids.values()), [])
        assert await uow.authors.missing(range(20_000)) == set(range(20_000))
        await uow.commit()
    assert len(ids) == 5000 and len(set(ids.values())) == 5000


async def test_post_upsert_never_touches_synced_count(uow_factory) -> None:
    g = await add_group_with_post(uow_factory, posts=3)
    async with uow_factory() as uow:
        assert await uow.posts.synced_counts(g.owner_id) == {}
        await uow.posts.mark_synced(g.owner_id, {1: 10, 2: 0})
        await uow.commit()
    async with uow_factory() as uow:
        await uow.posts.upsert_many(g.id, [post(g.owner_id, 1, comments_count=12), post(g.owner_id, 2)])
        await uow.commit()
        assert await uow.posts.synced_counts(g.owner_id) == {1: 10, 2: 0}


async def test_match_replacement_keeps_counts_in_step(uow_factory, migrated_db) -> None:
    engine, _ = migrated_db
    g = await add_group_with_post(uow_factory)
    async with uow_factory() as uow:
        ids = await uow.comments.upsert_many(g.id, [comment(g.owner_id, i) for i in (1, 2)])
        cat = await uow.keywords.add(Keyword(id=0, word="кошка"))
        dog = await uow.keywords.add(Keyword(id=0, word="собака"))
        c1, c2 = ids[(g.owner_id, 1)], ids[(g.owner_id, 2)]
        await uow.matches.replace_for_comments(
            [c1, c2],
            [Match(c1, cat.id, "кошка", 0, 5, "кошка"), Match(c1, cat.id, "кошкой", 10, 16, "..."),
             Match(c1, dog.id, "собака", 20, 26, "..."), Match(c2, dog.id, "собаки", 0, 6, "...")],
        )
        await uow.commit()
    assert await _counts(engine, c1, c2) == (3, 1)

    async with uow_factory() as uow:  # re-analysis of one keyword only
        await uow.matches.replace_for_comments([c1, c2], [Match(c2, cat.id, "кошки", 0, 5, "...")], keyword_ids=[cat.id])
        await uow.commit()
    assert await _counts(engine, c1, c2) == (1, 2)

    async with uow_factory() as uow:  # removing a keyword removes its matches from the counts
        await uow.keywords.remove(dog.id)
        await uow.commit()
    assert await _counts(engine, c1, c2) == (0, 1)

    async with uow_factory() as uow:
        await uow.matches.replace_for_comments([c1, c2], [])
        await uow.commit()
    assert await _counts(engine, c1, c2) == (0, 0)


async def _counts(engine, *ids: int) -> tuple[int, ...]:
    query = select(comments_table.c.id, comments_table.c.matches_count).where(comments_table.c.id.in_(ids))
    async with engine.connect() as conn:
        counts = dict((await conn.execute(query)).all())
    return tuple(counts[i] for i in ids)


async def test_keywords_deduplicate_by_folded_word(uow_factory) -> None:
    async with uow_factory() as uow:
        added = await uow.keywords.add(Keyword(id=0, word="Ёлка", category="trees"))
        await uow.keywords.add(Keyword(id=0, word="off", active=False))
        await uow.commit()
        assert await uow.keywords.get_by_word("ЕЛКА") == added
        assert [k.word for k in await uow.keywords.list_active()] == ["Ёлка"]


async def test_authors_upsert_and_missing(uow_factory) -> None:
    async with uow_factory() as uow:
        await uow.authors.upsert_many([Author(1, "Ann"), Author(-5, "Club"), Author(1, "Ann B")])
        await uow.commit()
    async with uow_factory() as uow:
        await uow.authors.upsert_many([Author(1, "Ann C", screen_name="ann")])
        await uow.commit()
        assert await uow.authors.missing([1, 2, -5, -6]) == {2, -6}


async def test_authors_stored_as_they_are_are_not_written(uow_factory, migrated_db) -> None:
    """Upserting known, unchanged authors writes nothing: their ``updated_at`` (when the row
    last changed) stays, and on PostgreSQL neither a new version nor a lock is taken, so two
    collections naming the same authors do not wait for each other's commit."""
    from infrastructure.db.tables import authors as authors_table

    engine, _ = migrated_db
    async with uow_factory() as uow:
        await uow.authors.upsert_many([Author(1, "Ann"), Author(2, "Bob", photo_url="p")])
        await uow.commit()

    async def stored() -> dict[int, tuple]:
        async with engine.connect() as conn:
            query = select(authors_table.c.vk_id, authors_table.c.name, authors_table.c.updated_at)
            return {r.vk_id: (r.name, r.updated_at) for r in await conn.execute(query)}

    before = await stored()
    async with uow_factory() as uow:
        await uow.authors.upsert_many([Author(1, "Ann"), Author(2, "Bob B", photo_url="p"), Author(3, "Cy")])
        await uow.commit()
    after = await stored()
    assert after[1] == before[1]
    assert after[2][0] == "Bob B" and after[2][1] > before[2][1]
    assert after[3][0] == "Cy"
    if engine.dialect.name != "postgresql":
        return  # SQLite's writers take turns anyway (BEGIN IMMEDIATE)
    async with uow_factory() as first:
        await first.authors.upsert_many([Author(1, "Ann"), Author(3, "Cy")])  # open, not committed
        async with uow_factory() as second:
            await asyncio.wait_for(second.authors.upsert_many([Author(3, "Cy"), Author(1, "Ann")]), 5)
            await second.commit()
        await first.commit()
    assert await stored() == after


async def test_find_active_task_sees_queued_and_running_only(uow_factory) -> None:
    g = await add_group_with_post(uow_factory)
    async with uow_factory() as uow:
        assert await uow.tasks.find_active(TaskKind.PARSE, g.id) is None
        done = await uow.tasks.add(Task(kind=TaskKind.PARSE, group_id=g.id, state=TaskState.SUCCEEDED))
        await uow.tasks.add(Task(kind=TaskKind.EXPORT, group_id=g.id))
        running = await uow.tasks.add(Task(kind=TaskKind.PARSE, group_id=g.id, params={"maxPosts": 5}))
        await uow.commit()
    async with uow_factory() as uow:
        running.state = TaskState.RUNNING
        running.progress.done, running.progress.total, running.progress.message = 3, 10, "3/10"
        running.result = {"posts": [1, 2]}
        await uow.tasks.save(running)
        await uow.commit()
    async with uow_factory() as uow:
        active = await uow.tasks.find_active(TaskKind.PARSE, g.id)
        assert active == running
        assert await uow.tasks.get(done.id) == done
        assert [t.id for t in await uow.tasks.list(states=[TaskState.SUCCEEDED, TaskState.RUNNING])] == [running.id, done.id]
        assert [t.kind for t in await uow.tasks.list(kinds=[TaskKind.EXPORT])] == [TaskKind.EXPORT]
        await uow.groups.remove(g.id)
        await uow.commit()
        assert (await uow.tasks.get(running.id)).group_id is None


async def test_due_for_monitoring_by_priority_then_time(uow_factory) -> None:
    now = T0
    specs = {
        1: dict(monitor_enabled=True, monitor_priority=5, next_run_at=now - timedelta(minutes=1)),
        2: dict(monitor_enabled=True, monitor_priority=9, next_run_at=now - timedelta(minutes=1)),
        3: dict(monitor_enabled=True, monitor_priority=5, next_run_at=None),
        4: dict(monitor_enabled=True, monitor_priority=5, next_run_at=now - timedelta(hours=1)),
        5: dict(monitor_enabled=True, monitor_priority=10, next_run_at=now + timedelta(seconds=1)),  # not yet
        6: dict(monitor_enabled=False, next_run_at=None),  # monitoring off
        7: dict(monitor_enabled=True, active=False, next_run_at=None),  # group deactivated
        8: dict(monitor_enabled=True, monitor_priority=5, next_run_at=now),  # due exactly now
    }
    async with uow_factory() as uow:
        for vk_id, fields in specs.items():
            await uow.groups.add(group(vk_id, **fields))
        await uow.commit()
        due = await uow.groups.due_for_monitoring(now)
    assert [g.vk_id for g in due] == [2, 3, 4, 1, 8]


async def test_api_tokens(uow_factory) -> None:
    async with uow_factory() as uow:
        token = await uow.api_tokens.add(name="ci", role="viewer", token_hash="h1")
        await uow.commit()
    async with uow_factory() as uow:
        await uow.api_tokens.touch(token.id)
        assert await uow.api_tokens.revoke(token.id)
        assert not await uow.api_tokens.revoke(token.id)
        await uow.commit()
        found = await uow.api_tokens.find_by_hash("h1")
        assert found.revoked_at is not None and found.last_used_at is not None
        assert await uow.api_tokens.find_by_hash("nope") is None
        assert [t.name for t in await uow.api_tokens.list()] == ["ci"]


async def test_iter_texts_walks_comments_in_id_order(uow_factory) -> None:
    a = await add_group_with_post(uow_factory, vk_id=1)
    b = await add_group_with_post(uow_factory, vk_id=2)
    async with uow_factory() as uow:
        ids_a = await uow.comments.upsert_many(a.id, [comment(a.owner_id, i, text=f"a{i}") for i in range(1, 6)])
        await uow.comments.upsert_many(b.id, [comment(b.owner_id, 1, text="b1")])
        await uow.commit()
        seen, after = [], 0
        while batch := await uow.comments.iter_texts(group_ids=[a.id], after_id=after, limit=2):
            seen += batch
            after = batch[-1][0]
    assert seen == sorted((i, f"a{vk}") for (_, vk), i in ids_a.items())


async def test_concurrent_units_of_work_do_not_trip_over_locks(uow_factory) -> None:
    g = await add_group_with_post(uow_factory)

    async def read_then_write(n: int) -> None:
        async with uow_factory() as uow:
            await uow.tasks.find_active(TaskKind.PARSE, g.id)
            await asyncio.sleep(0.01)
            await uow.tasks.add(Task(kind=TaskKind.ANALYZE, params={"n": n}))
            await uow.commit()

    await asyncio.gather(*(read_then_write(n) for n in range(10)))
    async with uow_factory() as uow:
        assert len(await uow.tasks.list()) == 10


async def test_vk_ids_past_int4_are_stored_and_read_back(uow_factory, migrated_db) -> None:
    """VK numbers comments per wall and users globally; ids beyond 2,147,483,647 must fit
    every column that holds one (BIGINT on PostgreSQL; SQLite's integers are 64-bit)."""
    from infrastructure.db.queries import SqlReadModel

    big = 3_000_000_000
    g = await add_group_with_post(uow_factory, vk_id=big)
    async with uow_factory() as uow:
        await uow.posts.upsert_many(g.id, [post(g.owner_id, big + 1)])
        await uow.authors.upsert_many([Author(vk_id=big + 2, name="A")])
        reply = Comment(owner_id=g.owner_id, vk_id=big + 4, post_vk_id=big + 1, from_id=big + 2, text="x",
                        published_at=T0, thread_vk_id=big + 3, parent_vk_id=big + 3)
        stored = await uow.comments.upsert_many(g.id, [reply])
        await uow.commit()
    _, sessions = migrated_db
    reads = SqlReadModel(sessions)
    (view,) = await reads.comments_by_ids(list(stored.values()))
    assert (view.owner_id, view.vk_id, view.post_vk_id, view.from_id, view.parent_vk_id) == (
        -big, big + 4, big + 1, big + 2, big + 3
    )
    (author,) = await reads.authors_by_ids([big + 2])
    assert author is not None and author.vk_id == big + 2


async def test_comment_history_as_the_read_model_shows_it(uow_factory, migrated_db) -> None:
    """Each edit a re-read finds keeps the text before it (``versions``, oldest first, each
    with when it was first seen) and moves ``edited_at``; a deletion keeps the text, author and
    likes and sets ``deleted_at`` once; a comment VK shows again is not deleted any more."""
    from infrastructure.db.queries import SqlReadModel

    reads = SqlReadModel(migrated_db[1])
    g = await add_group_with_post(uow_factory)

    async def write(*batch: Comment) -> int:
        async with uow_factory() as uow:
            ids = await uow.comments.upsert_many(g.id, list(batch))
            await uow.commit()
        return ids[(g.owner_id, batch[0].vk_id)]

    async def view(comment_id: int):
        (found,) = await reads.comments_by_ids([comment_id])
        (versions,) = await reads.versions_by_comment_ids([comment_id])
        return found, versions

    one = await write(comment(g.owner_id, 1, "first", likes=3))
    found, versions = await view(one)
    assert (found.edited_at, found.deleted_at, versions) == (None, None, [])

    await write(comment(g.owner_id, 1, "first", likes=4))  # likes move: not an edit
    assert (await view(one))[0].edited_at is None
    await write(comment(g.owner_id, 1, "second"))
    found, versions = await view(one)
    assert found.text == "second" and found.edited_at is not None
    assert [v.text for v in versions] == ["first"]
    first_seen = versions[0].seen_at
    assert first_seen < found.edited_at
    await write(comment(g.owner_id, 1, "third", likes=5))
    found, versions = await view(one)
    assert found.text == "third" and [v.text for v in versions] == ["first", "second"]
    assert versions[0].seen_at == first_seen and versions[1].seen_at < found.edited_at

    # VK's placeholder of a deleted comment: empty text, no author, no likes.
    edited_at = found.edited_at
    placeholder = Comment(owner_id=g.owner_id, vk_id=1, post_vk_id=1, from_id=0, text="", published_at=T0,
                          deleted=True)
    await write(placeholder)
    found, versions = await view(one)
    assert (found.text, found.from_id, found.likes, found.deleted) == ("third", 101, 5, True)
    assert found.published_at == T0 + timedelta(minutes=1)
    assert found.deleted_at is not None and found.edited_at == edited_at and len(versions) == 2
    deleted_at = found.deleted_at
    await write(placeholder)  # seen deleted again: still the time it was first noticed
    assert (await view(one))[0].deleted_at == deleted_at
    await write(comment(g.owner_id, 1, "third"))  # the deletion undone
    found, versions = await view(one)
    assert (found.deleted, found.deleted_at, found.edited_at, len(versions)) == (False, None, edited_at, 2)

    # First seen deleted: marked from the start, with what VK sent.
    two = await write(dataclasses.replace(placeholder, vk_id=2))
    found, _ = await view(two)
    assert found.deleted and found.deleted_at is not None and found.text == ""
    # ... and shown again (a deletion undone): its text is no edit of VK's empty placeholder.
    await write(comment(g.owner_id, 2, "back"))
    found, versions = await view(two)
    assert (found.text, found.deleted, found.edited_at, versions) == ("back", False, None, [])
    # Versions go with their comment's group (ON DELETE CASCADE).
    async with uow_factory() as uow:
        await uow.groups.remove(g.id)
        await uow.commit()
    assert await reads.versions_by_comment_ids([one, 999]) == [[], []]


async def test_rewrites_leave_unchanged_comments_unwritten(uow_factory, migrated_db) -> None:
    """A re-read that finds a comment as it was, and a re-match that leaves its count as it was,
    write no new version of it (PostgreSQL: its ``ctid`` stays): every version is an entry in
    each index of comments, and the readers walk the dead ones until a vacuum."""
    engine, _ = migrated_db
    if engine.dialect.name != "postgresql":
        pytest.skip("row versions are PostgreSQL's")
    g = await add_group_with_post(uow_factory)
    batch = [comment(g.owner_id, i) for i in range(1, 6)]
    async with uow_factory() as uow:
        ids = await uow.comments.upsert_many(g.id, batch)
        kw = await uow.keywords.add(Keyword(id=0, word="text"))
        await uow.commit()
    every = sorted(ids.values())

    async def versions() -> dict[int, str]:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, ctid::text FROM comments ORDER BY id"))
            return dict(rows.all())

    stored = await versions()
    async with uow_factory() as uow:  # matches for the first only; the others stay at 0
        await uow.matches.replace_for_comments(every, [Match(every[0], kw.id, "text", 0, 4, "text")])
        await uow.commit()
    after_match = await versions()
    assert after_match[every[0]] != stored[every[0]]
    assert {i: after_match[i] for i in every[1:]} == {i: stored[i] for i in every[1:]}

    edited = [*batch[:4], dataclasses.replace(batch[4], text="edited")]
    async with uow_factory() as uow:  # the same again, one edited: only that one is written
        again = await uow.comments.upsert_many(g.id, edited)
        await uow.matches.replace_for_comments(every, [Match(every[0], kw.id, "text", 0, 4, "text")])
        await uow.commit()
    assert again == ids
    after_reread = await versions()
    assert {i: after_reread[i] for i in every[:4]} == {i: after_match[i] for i in every[:4]}
    assert after_reread[every[4]] != after_match[every[4]]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(comments_table).order_by(comments_table.c.id))).mappings().all()
    assert [r["text"] for r in rows] == ["text"] * 4 + ["edited"]
    assert [r["matches_count"] for r in rows] == [1, 0, 0, 0, 0]
    assert rows[4]["edited_at"] is not None


async def test_new_comments_are_inserted_with_their_match_count(uow_factory, migrated_db) -> None:
    """The collector matches a batch before storing it: a new comment is inserted with its
    count (``matches_counts``), so storing its matches writes no second version of it
    (PostgreSQL: its ``ctid`` stays); a stored comment keeps its count whatever is passed, a
    count that disagrees with the matches stored is corrected by the recount, and the
    statistics stay those of a full scan."""
    from tests.integration.test_stats_aggregates import assert_exact

    engine, sessions = migrated_db
    g = await add_group_with_post(uow_factory)
    async with uow_factory() as uow:
        kw = await uow.keywords.add(Keyword(id=0, word="text"))
        old = await uow.comments.upsert_many(g.id, [comment(g.owner_id, 1)])
        await uow.commit()
    keys = [(g.owner_id, i) for i in (1, 2, 3, 4)]
    claimed = {keys[0]: 5, keys[1]: 2, keys[3]: 3}  # the stored one's and the last one's are wrong
    async with uow_factory() as uow:
        ids = await uow.comments.upsert_many(
            g.id, [comment(g.owner_id, i) for i in (1, 2, 3, 4)], matches_counts=claimed
        )
        assert ids[keys[0]] == old[keys[0]]
        await uow.commit()

    async def rows() -> dict[int, tuple[str, int]]:
        async with engine.connect() as conn:
            found = await conn.execute(select(comments_table.c.id, comments_table.c.matches_count))
            counts = dict(found.all())
            if engine.dialect.name != "postgresql":
                return {i: ("", n) for i, n in counts.items()}
            versions = dict((await conn.execute(text("SELECT id, ctid::text FROM comments"))).all())
            return {i: (versions[i], n) for i, n in counts.items()}

    inserted = await rows()
    assert [inserted[ids[k]][1] for k in keys] == [0, 2, 0, 3]
    found = [Match(ids[keys[0]], kw.id, "text", 0, 4, "text")]
    found += [Match(ids[keys[1]], kw.id, "text", at, at + 4, "text") for at in (0, 5)]
    found += [Match(ids[keys[3]], kw.id, "text", 0, 4, "text")]
    async with uow_factory() as uow:
        await uow.matches.replace_for_comments([ids[k] for k in keys], found)
        await uow.commit()
    matched = await rows()
    assert [matched[ids[k]][1] for k in keys] == [1, 2, 0, 1]
    assert matched[ids[keys[1]]] == inserted[ids[keys[1]]]  # written once
    assert matched[ids[keys[2]]] == inserted[ids[keys[2]]]
    await assert_exact(sessions)


async def test_the_read_model_finds_api_tokens_as_the_repository_does(uow_factory, migrated_db) -> None:
    from infrastructure.db.engine import read_session_factory
    from infrastructure.db.queries import SqlReadModel

    engine, _ = migrated_db
    async with uow_factory() as uow:
        added = await uow.api_tokens.add(name="ci", role="operator", token_hash="h" * 64)
        await uow.commit()
    reads = SqlReadModel(read_session_factory(engine))
    async with uow_factory() as uow:
        assert await reads.api_token_by_hash("h" * 64) == await uow.api_tokens.find_by_hash("h" * 64) == added
    assert await reads.api_token_by_hash("x" * 64) is None
