"""One contract for the repositories, run against the in-memory fakes (tests/fakes.py) and the
SQL repositories on SQLite and PostgreSQL: the unit tests trust the fakes to behave as the
database does, and this is what keeps them from drifting apart.

Only what the domain relies on is asserted: ids, round trips, upsert keys, filters, order,
transactions, the task lease. What the ports give no way to read back (stored matches and
their counts, review flags: the read side is SQL only) and what the fakes leave out (API
tokens) are in tests/integration/test_db_repositories.py.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from domain.models import (
    Author,
    Comment,
    Group,
    Keyword,
    Post,
    Progress,
    Task,
    TaskKind,
    TaskState,
)
from tests.conftest import postgres_database
from tests.fakes import InMemoryStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["fake", "sqlite", "postgres"])
async def uow_factory(request: pytest.FixtureRequest, tmp_path):
    if request.param == "fake":
        yield InMemoryStore().uow_factory
        return
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.migrate import upgrade_async
    from infrastructure.db.uow import SqlUnitOfWork

    async def sql(url: str):
        await upgrade_async(url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        return engine, (lambda: SqlUnitOfWork(sessions))

    if request.param == "sqlite":
        engine, factory = await sql(f"sqlite+aiosqlite:///{tmp_path / 'contract.sqlite3'}")
        try:
            yield factory
        finally:
            await engine.dispose()
        return
    async with postgres_database() as url:
        engine, factory = await sql(url)
        try:
            yield factory
        finally:
            await engine.dispose()


def group(vk_id: int, **fields) -> Group:
    return Group(vk_id=vk_id, screen_name=f"club{vk_id}", name=f"Group {vk_id}", **fields)


def post(owner_id: int, vk_id: int, comments_count: int = 0) -> Post:
    return Post(owner_id=owner_id, vk_id=vk_id, from_id=owner_id, text=f"post {vk_id}",
                published_at=T0, comments_count=comments_count)


def comment(owner_id: int, vk_id: int, text: str = "text", post_vk_id: int = 1) -> Comment:
    return Comment(owner_id=owner_id, vk_id=vk_id, post_vk_id=post_vk_id, from_id=100 + vk_id, text=text,
                   published_at=T0 + timedelta(minutes=vk_id))


async def group_with_post(uow_factory, vk_id: int = 1) -> Group:
    async with uow_factory() as uow:
        g = await uow.groups.add(group(vk_id))
        await uow.posts.upsert_many(g.id, [post(g.owner_id, 1)])
        await uow.commit()
    return g


async def test_groups_round_trip_filter_and_remove(uow_factory) -> None:
    async with uow_factory() as uow:
        a = await uow.groups.add(group(10, members_count=5, since=T0))
        b = await uow.groups.add(group(11, active=False))
        await uow.commit()
    assert a.id is not None and b.id is not None and a.id != b.id
    async with uow_factory() as uow:
        stored = await uow.groups.get(a.id)
        assert stored.vk_id == 10 and stored.members_count == 5 and stored.since == T0
        assert (await uow.groups.get_by_vk_id(11)).id == b.id
        assert await uow.groups.get_by_vk_id(12) is None and await uow.groups.get(-1) is None
        assert [g.vk_id for g in await uow.groups.list()] == [10, 11]
        assert [g.vk_id for g in await uow.groups.list(active=False)] == [11]
        stored.name = "Renamed"
        await uow.groups.save(stored)
        await uow.groups.remove(b.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert [g.name for g in await uow.groups.list()] == ["Renamed"]


async def test_nothing_is_kept_unless_committed(uow_factory) -> None:
    async with uow_factory() as uow:
        await uow.groups.add(group(1))
        await uow.keywords.add(Keyword(id=0, word="lost"))
    async with uow_factory() as uow:
        g = await uow.groups.add(group(2))
        await uow.commit()
        g.name = "changed, never saved"
    async with uow_factory() as uow:
        assert [x.vk_id for x in await uow.groups.list()] == [2]
        assert (await uow.groups.get(g.id)).name == "Group 2"
        assert await uow.keywords.list() == []


async def test_due_for_monitoring_by_priority_then_time(uow_factory) -> None:
    specs = {
        1: dict(monitor_enabled=True, monitor_priority=5, next_run_at=T0 - timedelta(minutes=1)),
        2: dict(monitor_enabled=True, monitor_priority=9, next_run_at=T0 - timedelta(minutes=1)),
        3: dict(monitor_enabled=True, monitor_priority=5, next_run_at=None),
        4: dict(monitor_enabled=True, monitor_priority=5, next_run_at=T0 - timedelta(hours=1)),
        5: dict(monitor_enabled=True, monitor_priority=10, next_run_at=T0 + timedelta(seconds=1)),
        6: dict(monitor_enabled=False, next_run_at=None),
        7: dict(monitor_enabled=True, active=False, next_run_at=None),
        8: dict(monitor_enabled=True, monitor_priority=5, next_run_at=T0),
    }
    async with uow_factory() as uow:
        for vk_id, fields in specs.items():
            await uow.groups.add(group(vk_id, **fields))
        await uow.commit()
        assert [g.vk_id for g in await uow.groups.due_for_monitoring(T0)] == [2, 3, 4, 1, 8]


async def test_posts_upsert_and_synced_counts(uow_factory) -> None:
    g = await group_with_post(uow_factory)
    async with uow_factory() as uow:
        await uow.posts.upsert_many(g.id, [post(g.owner_id, 1, comments_count=7), post(g.owner_id, 2, 3)])
        assert await uow.posts.synced_counts(g.owner_id) == {}
        await uow.posts.mark_synced(g.owner_id, {1: 7, 2: 3})
        await uow.commit()
    async with uow_factory() as uow:
        await uow.posts.upsert_many(g.id, [post(g.owner_id, 1, comments_count=9)])  # never moves synced
        await uow.posts.mark_synced(g.owner_id, {2: 4})
        await uow.commit()
        assert await uow.posts.synced_counts(g.owner_id) == {1: 7, 2: 4}
        assert await uow.posts.synced_counts(-999) == {}


async def test_comments_upsert_by_wall_and_id_keeps_row_ids(uow_factory) -> None:
    a = await group_with_post(uow_factory, 1)
    b = await group_with_post(uow_factory, 2)
    async with uow_factory() as uow:
        first = await uow.comments.upsert_many(a.id, [comment(a.owner_id, i, f"a{i}") for i in (1, 2, 3)])
        other = await uow.comments.upsert_many(b.id, [comment(b.owner_id, 1, "b1")])  # same vk_id, other wall
        await uow.commit()
    assert set(first) == {(a.owner_id, 1), (a.owner_id, 2), (a.owner_id, 3)} and len(set(first.values())) == 3
    assert other[(b.owner_id, 1)] not in first.values()
    async with uow_factory() as uow:
        again = await uow.comments.upsert_many(a.id, [comment(a.owner_id, 2, "edited"), comment(a.owner_id, 4, "a4")])
        await uow.commit()
        assert again[(a.owner_id, 2)] == first[(a.owner_id, 2)]
        assert await uow.comments.count() == 5
        assert await uow.comments.count(group_id=a.id) == 4
        texts = await uow.comments.iter_texts(group_ids=[a.id], after_id=0, limit=100)
        assert [t for _, t in texts] == ["a1", "edited", "a3", "a4"]
        assert [i for i, _ in texts] == sorted(i for i, _ in texts)
        everything = await uow.comments.iter_texts(group_ids=None, after_id=0, limit=100)
        assert sorted(t for _, t in everything) == ["a1", "a3", "a4", "b1", "edited"]
        assert await uow.comments.iter_texts(group_ids=None, after_id=everything[1][0], limit=2) == everything[2:4]
        known = first[(a.owner_id, 1)]
        assert await uow.comments.set_state([known, 10**9], viewed=True, archived=None) == [known]


async def test_authors_upsert_and_missing(uow_factory) -> None:
    async with uow_factory() as uow:
        await uow.authors.upsert_many([Author(1, "Ann"), Author(-5, "Club"), Author(1, "Ann B")])
        await uow.commit()
    async with uow_factory() as uow:
        await uow.authors.upsert_many([Author(1, "Ann C", screen_name="ann")])
        await uow.commit()
        assert await uow.authors.missing([1, 2, -5, -6]) == {2, -6}
        assert await uow.authors.missing([]) == set()


async def test_keywords_deduplicate_by_folded_word(uow_factory) -> None:
    async with uow_factory() as uow:
        added = await uow.keywords.add(Keyword(id=0, word="Ёлка", category="trees"))
        off = await uow.keywords.add(Keyword(id=0, word="off", active=False))
        assert await uow.keywords.add(Keyword(id=0, word="ЕЛКА")) is None
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.keywords.get_by_word("елка") == added
        assert await uow.keywords.get(off.id) == off and await uow.keywords.get(10**9) is None
        assert [k.word for k in await uow.keywords.list_active()] == ["Ёлка"]
        assert [k.word for k in await uow.keywords.list()] == ["Ёлка", "off"]
        assert [k.word for k in await uow.keywords.list(active=False)] == ["off"]
        await uow.keywords.save(dataclasses.replace(off, active=True))
        await uow.keywords.remove(added.id)
        await uow.commit()
        assert [k.word for k in await uow.keywords.list_active()] == ["off"]


async def test_tasks_find_list_and_parse_uniqueness(uow_factory) -> None:
    g = await group_with_post(uow_factory)
    async with uow_factory() as uow:
        assert await uow.tasks.find_active(TaskKind.PARSE, g.id) is None
        done = await uow.tasks.add(Task(kind=TaskKind.PARSE, group_id=g.id, state=TaskState.SUCCEEDED))
        export = await uow.tasks.add(Task(kind=TaskKind.EXPORT))
        parse = await uow.tasks.add_parse(Task(kind=TaskKind.PARSE, group_id=g.id, params={"maxPosts": 5}))
        assert parse is not None and await uow.tasks.add_parse(Task(kind=TaskKind.PARSE, group_id=g.id)) is None
        await uow.commit()
    async with uow_factory() as uow:
        active = await uow.tasks.find_active(TaskKind.PARSE, g.id)
        assert active.id == parse.id and active.params == {"maxPosts": 5}
        assert [t.id for t in await uow.tasks.list()] == [parse.id, export.id, done.id]  # newest first
        assert [t.id for t in await uow.tasks.list(states=[TaskState.SUCCEEDED])] == [done.id]
        assert [t.id for t in await uow.tasks.list(kinds=[TaskKind.EXPORT])] == [export.id]
        assert [t.id for t in await uow.tasks.list(limit=1)] == [parse.id]
        assert await uow.tasks.get(10**9) is None


async def test_the_task_lease(uow_factory) -> None:
    async with uow_factory() as uow:
        task = await uow.tasks.add(Task(kind=TaskKind.EXPORT))
        await uow.commit()
    stale = T0 - timedelta(minutes=1)
    async with uow_factory() as uow:
        claimed = await uow.tasks.claim(task.id, worker_id="w1", now=T0, stale_before=stale)
        assert claimed.state is TaskState.RUNNING and claimed.worker_id == "w1" and claimed.attempts == 1
        assert claimed.started_at == T0 and claimed.heartbeat_at == T0
        # Another worker cannot take a live lease; the holder's heartbeat renews it.
        assert await uow.tasks.claim(task.id, worker_id="w2", now=T0, stale_before=stale) is None
        assert await uow.tasks.heartbeat(task.id, worker_id="w2", now=T0) is None
        beat = await uow.tasks.heartbeat(task.id, worker_id="w1", now=T0 + timedelta(seconds=30))
        assert beat.heartbeat_at == T0 + timedelta(seconds=30)
        # Once the lease is stale, another worker takes it over.
        later = T0 + timedelta(minutes=5)
        taken = await uow.tasks.claim(task.id, worker_id="w2", now=later, stale_before=later - timedelta(minutes=1))
        assert taken.worker_id == "w2" and taken.attempts == 2 and taken.started_at == T0
        assert await uow.tasks.finish(task.id, worker_id="w1", state=TaskState.SUCCEEDED, now=later) is None
        cancel = await uow.tasks.request_cancel(task.id, now=later)
        assert cancel.cancel_requested
        done = await uow.tasks.finish(task.id, worker_id="w2", state=TaskState.CANCELLED, now=later)
        assert done.state is TaskState.CANCELLED and done.finished_at == later
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.tasks.get(task.id)
        assert stored.state is TaskState.CANCELLED and stored.attempts == 2
        assert await uow.tasks.claim(task.id, worker_id="w3", now=later, stale_before=later) is None


async def test_comments_edited_deleted_and_vanished_keep_their_text(uow_factory) -> None:
    """What VK shows on a re-read: a new text replaces the stored one; VK's ``deleted: true``
    placeholder (empty text, no author) keeps what was stored; a comment VK no longer has is
    marked (``mark_vanished``), once, never erased, and unmarked if VK shows it again."""
    g = await group_with_post(uow_factory)
    async with uow_factory() as uow:
        await uow.posts.upsert_many(g.id, [post(g.owner_id, 2)])
        ids = await uow.comments.upsert_many(g.id, [comment(g.owner_id, i, f"c{i}") for i in (1, 2, 3, 4)])
        other_post = await uow.comments.upsert_many(g.id, [comment(g.owner_id, 9, "c9", post_vk_id=2)])
        await uow.commit()
    row = {vk_id: ids[(g.owner_id, vk_id)] for vk_id in (1, 2, 3, 4)}

    async def texts() -> dict[int, str]:
        async with uow_factory() as uow:
            return dict(await uow.comments.iter_texts(group_ids=None, after_id=0, limit=100))

    gone = dataclasses.replace(comment(g.owner_id, 2, ""), from_id=0, deleted=True)
    async with uow_factory() as uow:
        again = await uow.comments.upsert_many(g.id, [comment(g.owner_id, 1, "c1, edited"), gone])
        await uow.commit()
    assert again == {(g.owner_id, 1): row[1], (g.owner_id, 2): row[2]}
    assert (await texts())[row[1]] == "c1, edited" and (await texts())[row[2]] == "c2"

    # Comments 3 and 4 are gone from post 1; 2 was marked deleted already, 9 is another post's.
    async with uow_factory() as uow:
        assert await uow.comments.mark_vanished(g.owner_id, 1, [1], now=T0) == sorted([row[3], row[4]])
        assert await uow.comments.mark_vanished(g.owner_id, 1, [1], now=T0) == []  # once
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.comments.mark_vanished(g.owner_id, 1, {1, 3, 4}, now=T0) == []
        assert await uow.comments.mark_vanished(g.owner_id, 404, [], now=T0) == []  # no such post
        assert await uow.comments.count() == 5  # never erased
    assert (await texts())[row[3]] == "c3"

    # VK shows comment 3 again: no longer deleted, so a later disappearance is noticed again.
    async with uow_factory() as uow:
        await uow.comments.upsert_many(g.id, [comment(g.owner_id, 3, "c3")])
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.comments.mark_vanished(g.owner_id, 1, [1, 2, 4], now=T0) == [row[3]]
        # Not committed: rolled back, as any write.
    async with uow_factory() as uow:
        assert await uow.comments.mark_vanished(g.owner_id, 1, [1, 2, 4], now=T0) == [row[3]]
        assert await uow.comments.mark_vanished(g.owner_id, 2, [], now=T0) == [other_post[(g.owner_id, 9)]]


async def test_a_task_waiting_for_vk(uow_factory) -> None:
    """Every VK token rests: the runner stores its task QUEUED until then, the lease given up.
    It is not claimed nor re-offered before that time, resumes without a new attempt, keeps
    its one-active-parse slot, and a cancel ends it at once."""
    g = await group_with_post(uow_factory)
    async with uow_factory() as uow:
        task = await uow.tasks.add_parse(Task(kind=TaskKind.PARSE, group_id=g.id, created_at=T0))
        other = await uow.tasks.add(Task(kind=TaskKind.EXPORT, created_at=T0))
        await uow.commit()
    until = T0 + timedelta(hours=6)
    message = "waiting for VK: every token is over its daily quota until 18:00 UTC"
    async with uow_factory() as uow:
        await uow.tasks.claim(task.id, worker_id="w1", now=T0, stale_before=T0)
        assert await uow.tasks.wait(task.id, worker_id="w2", now=T0, until=until, progress=Progress()) is None
        waiting = await uow.tasks.wait(task.id, worker_id="w1", now=T0, until=until, progress=Progress(3, 10, message))
        assert waiting.state is TaskState.QUEUED and waiting.waiting_until == until
        assert (waiting.worker_id, waiting.heartbeat_at, waiting.attempts, waiting.waits) == (None, None, 1, 1)
        assert (waiting.progress.done, waiting.progress.total, waiting.progress.message) == (3, 10, message)
        assert await uow.tasks.wait(task.id, worker_id="w1", now=T0, until=until, progress=Progress()) is None
        # Still the group's one active parse: a second cannot start beside it.
        assert (await uow.tasks.find_active(TaskKind.PARSE, g.id)).id == task.id
        assert await uow.tasks.add_parse(Task(kind=TaskKind.PARSE, group_id=g.id)) is None
        await uow.commit()

    def orphaned_at(now: datetime):
        return uow.tasks.list_orphaned(stale_before=now - timedelta(seconds=30), queued_before=now - timedelta(seconds=10))

    async with uow_factory() as uow:
        early = until - timedelta(seconds=1)
        assert [t.id for t in await orphaned_at(until)] == [other.id]  # not before its time (and a grace)
        assert await uow.tasks.claim(task.id, worker_id="w2", now=early, stale_before=early) is None
        later = until + timedelta(seconds=11)
        assert {t.id for t in await orphaned_at(later)} == {task.id, other.id}  # a lost deferred job
        resumed = await uow.tasks.claim(task.id, worker_id="w2", now=until, stale_before=until)
        assert resumed.state is TaskState.RUNNING and resumed.waiting_until is None
        assert (resumed.attempts, resumed.waits, resumed.progress.done) == (1, 1, 3)  # a wait is no attempt
        # It waits once more; a cancel then ends it at once.
        again = await uow.tasks.wait(task.id, worker_id="w2", now=until, until=later, progress=Progress(3, 10, message))
        assert again.waits == 2
        cancelled = await uow.tasks.request_cancel(task.id, now=until)
        assert cancelled.state is TaskState.CANCELLED and cancelled.waiting_until is None
        assert cancelled.finished_at == until
        await uow.commit()
    async with uow_factory() as uow:
        claimed = await uow.tasks.claim(other.id, worker_id="w3", now=T0, stale_before=T0)
        assert await uow.tasks.request_cancel(other.id, now=T0) is not None
        # A cancel asked while it runs: it does not start waiting, the runner ends it CANCELLED.
        assert await uow.tasks.wait(other.id, worker_id="w3", now=T0, until=until, progress=claimed.progress) is None
        stored = await uow.tasks.get(other.id)
        assert stored.state is TaskState.RUNNING and stored.waiting_until is None
        await uow.commit()
