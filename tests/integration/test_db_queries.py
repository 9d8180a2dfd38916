"""The SQL read model: keyset pages, filters and batched look-ups, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from domain.errors import InvalidInput
from domain.models import Author, Comment, Group, Keyword, Match, Post, Task, TaskKind, TaskState
from domain.queries import (
    CommentFilter,
    CommentOrder,
    CommentSort,
    Member,
    Projection,
    SortDirection,
    Spelling,
    TaskFilter,
)
from infrastructure.db.queries import SqlReadModel, encode_cursor

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TEXTS = ["Я люблю кошек", "С кошками гуляю", "Окошко открыто", "КОШКА спит", "Собака лает", "ёжик в тумане"]


@dataclass
class World:
    groups: list[Group]
    comment_ids: dict[tuple[int, int], int]
    keywords: list[Keyword]
    comments: list[Comment]


@pytest.fixture
async def world(uow_factory) -> World:
    """Two walls; 30 comments with ties in likes and time, replies, matches and review state."""
    async with uow_factory() as uow:
        groups = [await uow.groups.add(Group(vk_id=v, screen_name=f"g{v}", name=f"G{v}")) for v in (1, 2)]
        posts = [Post(owner_id=g.owner_id, vk_id=p, from_id=g.owner_id, text="", published_at=T0)
                 for g in groups for p in (1, 2)]
        for g in groups:
            await uow.posts.upsert_many(g.id, [p for p in posts if p.owner_id == g.owner_id])
        comments: list[Comment] = []
        for i in range(30):
            g = groups[i % 2]
            top = i < 20
            comments.append(Comment(
                owner_id=g.owner_id, vk_id=i + 1, post_vk_id=1 + (i // 2) % 2, from_id=1000 + i % 4,
                text=TEXTS[i % len(TEXTS)], published_at=T0 + timedelta(minutes=i // 3),  # ties in time
                likes=i % 3,  # ties in likes
                # comments 21..30 reply to comment (vk id - 20) of the same wall
                thread_vk_id=None if top else i - 19, parent_vk_id=None if top else i - 19,
            ))
        ids: dict[tuple[int, int], int] = {}
        for g in groups:
            ids |= await uow.comments.upsert_many(g.id, [c for c in comments if c.owner_id == g.owner_id])
        cat = await uow.keywords.add(Keyword(id=0, word="кошка"))
        dog = await uow.keywords.add(Keyword(id=0, word="собака"))
        found = []
        for c in comments:
            cid = ids[(c.owner_id, c.vk_id)]
            if "кошк" in c.text.lower():
                found.append(Match(cid, cat.id, c.text.split()[-2], 0, 3, c.text))
            if "Собака" in c.text:
                found += [Match(cid, dog.id, "Собака", 0, 6, c.text), Match(cid, dog.id, "Собака", 10, 16, c.text)]
        await uow.matches.replace_for_comments(list(ids.values()), found)
        await uow.authors.upsert_many([Author(1000, "Ann"), Author(1001, "Bob")])
        await uow.commit()
    return World(groups, ids, [cat, dog], comments)


@pytest.fixture
def reads(migrated_db) -> SqlReadModel:
    return SqlReadModel(migrated_db[1])


async def all_pages(reads: SqlReadModel, flt: CommentFilter, order: CommentOrder, size: int):
    nodes, after, pages = [], None, 0
    while True:
        page = await reads.comments_page(flt, order, first=size, after=after)
        pages += 1
        nodes += [node for _, node in page.edges]
        if not page.has_next_page:
            return nodes, pages
        after = page.end_cursor


@pytest.mark.parametrize("field", list(CommentSort))
@pytest.mark.parametrize("direction", list(SortDirection))
async def test_keyset_pages_return_every_row_once_in_order(world, reads, migrated_db, field, direction) -> None:
    statements = _capture_statements(migrated_db[0], reads)
    nodes, pages = await all_pages(reads, CommentFilter(), CommentOrder(field, direction), size=7)

    key = {CommentSort.PUBLISHED_AT: "published_at", CommentSort.LIKES: "likes",
           CommentSort.MATCHES_COUNT: "matches_count"}[field]
    expected = sorted(nodes, key=lambda n: (getattr(n, key), n.id), reverse=direction is SortDirection.DESC)
    assert [n.id for n in nodes] == [n.id for n in expected]
    assert sorted(n.id for n in nodes) == sorted(world.comment_ids.values())
    assert pages == 5  # 30 rows, 7 a page
    assert not any(_skips_rows(s, params) for s, params in statements)


def _skips_rows(statement: str, params) -> bool:
    """An OFFSET other than SQLite's "LIMIT ? OFFSET ?" with 0, which it always renders."""
    if "OFFSET" not in statement.upper():
        return False
    return not (statement.rstrip().endswith("OFFSET ?") and params[-1] == 0)


async def test_a_page_of_comments_is_one_statement(world, reads, migrated_db) -> None:
    statements = _capture_statements(migrated_db[0], reads)
    page = await reads.comments_page(CommentFilter(matched=True), CommentOrder(), first=10, after=None)
    assert len(page.edges) == 10
    assert len(statements) == 1, statements


async def test_a_projected_page_and_its_count_are_one_statement(world, reads, migrated_db) -> None:
    if not reads.projects:
        pytest.skip("projected pages are PostgreSQL's")
    projection = Projection("comment", (Member("id", attribute="vk_id", spelling=Spelling.INT32),))
    statements = _capture_statements(migrated_db[0], reads)
    for flt in (CommentFilter(matched=True), CommentFilter(group_ids=(world.groups[0].id,), viewed=False),
                CommentFilter(keyword_ids=(world.keywords[0].id,)), CommentFilter(text="кошк")):
        statements.clear()
        page = await reads.comments_page_projected(flt, CommentOrder(), projection, first=3, counted=True)
        assert len(statements) == 1, statements
        assert page.total == await reads.comments_count(flt) and page.total >= len(page.edges), flt
    nothing = await reads.comments_page_projected(
        CommentFilter(since=datetime(2100, 1, 1, tzinfo=UTC)), CommentOrder(), projection, first=3, counted=True
    )
    assert nothing.edges == [] and nothing.total is None  # no row carries it: counted when asked
    uncounted = await reads.comments_page_projected(CommentFilter(), CommentOrder(), projection, first=3)
    assert uncounted.total is None


def _capture_statements(engine, reads: SqlReadModel) -> list[tuple[str, object]]:
    """Every statement run: through SQLAlchemy, or (on PostgreSQL) by asyncpg itself."""
    statements: list[tuple[str, object]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _record(conn, cursor, statement, parameters, *args) -> None:
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE"):  # SQLite's own BEGIN
            statements.append((statement, parameters))

    fetch = reads._driver_fetch

    async def recorded(sql: str, *args: object):
        statements.append((sql, args))
        return await fetch(sql, *args)

    reads._driver_fetch = recorded  # type: ignore[method-assign]
    return statements


async def test_comment_view_resolves_post_parent_and_thread(world, reads) -> None:
    wall = world.groups[0].owner_id
    reply = world.comment_ids[(wall, 21)]  # answers comment 1 of the same wall
    (view,) = await reads.comments_by_ids([reply])
    assert view.parent_vk_id == view.thread_vk_id == 1
    (parent,) = await reads.comments_by_vk_ids([(wall, 1)])
    assert parent.id == world.comment_ids[(wall, 1)]
    (post,) = await reads.posts_by_ids([view.post_id])
    assert (post.owner_id, post.vk_id) == (wall, view.post_vk_id)
    (top,) = await reads.comments_by_ids([world.comment_ids[(wall, 1)]])
    assert top.parent_vk_id is None and top.thread_vk_id is None
    assert await reads.comments_by_vk_ids([(wall, 999_999), (wall, 1)]) == [None, parent]


def _expected(world: World, predicate) -> set[int]:
    return {world.comment_ids[(c.owner_id, c.vk_id)] for c in world.comments if predicate(c)}


async def _ids(reads: SqlReadModel, flt: CommentFilter) -> set[int]:
    nodes, _ = await all_pages(reads, flt, CommentOrder(), size=100)
    assert await reads.comments_count(flt) == len(nodes)
    return {n.id for n in nodes}


async def test_filters_narrow_the_comments(world, reads) -> None:
    g1, g2 = world.groups
    cat, dog = world.keywords
    assert await _ids(reads, CommentFilter(group_ids=(g1.id,))) == _expected(world, lambda c: c.owner_id == g1.owner_id)
    assert await _ids(reads, CommentFilter(keyword_ids=(dog.id,))) == _expected(world, lambda c: "Собака" in c.text)
    assert await _ids(reads, CommentFilter(matched=True)) == _expected(
        world, lambda c: "кошк" in c.text.lower() or "Собака" in c.text
    )
    assert await _ids(reads, CommentFilter(matched=False)) == _expected(
        world, lambda c: not ("кошк" in c.text.lower() or "Собака" in c.text)
    )
    assert await _ids(reads, CommentFilter(author_ids=(1000, 1003))) == _expected(world, lambda c: c.from_id in (1000, 1003))
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=4)
    assert await _ids(reads, CommentFilter(since=since, until=until)) == _expected(
        world, lambda c: since <= c.published_at <= until
    )
    # Everything at once, and empty lists meaning "none of them".
    both = CommentFilter(group_ids=(g2.id,), keyword_ids=(cat.id, dog.id), author_ids=(1001, 1003))
    assert await _ids(reads, both) == _expected(
        world,
        lambda c: c.owner_id == g2.owner_id and c.from_id in (1001, 1003)
        and ("кошк" in c.text.lower() or "Собака" in c.text),
    )
    assert await _ids(reads, CommentFilter(group_ids=())) == set()


async def test_filter_by_post(world, reads) -> None:
    wall = world.groups[0].owner_id
    (view,) = await reads.comments_by_ids([world.comment_ids[(wall, 1)]])
    got = await _ids(reads, CommentFilter(post_ids=(view.post_id,)))
    assert got == _expected(world, lambda c: c.owner_id == wall and c.post_vk_id == view.post_vk_id)


async def test_review_state_filters(world, reads, uow_factory, migrated_db) -> None:
    some = sorted(world.comment_ids.values())[:4]
    async with uow_factory() as uow:  # as reviewers do: through the repository, which keeps the counts
        await uow.comments.set_state(some[:2], viewed=True, archived=None)
        await uow.comments.set_state(some[1:3], viewed=None, archived=True)
        await uow.commit()
    assert await _ids(reads, CommentFilter(viewed=True)) == set(some[:2])
    assert await _ids(reads, CommentFilter(archived=True)) == set(some[1:3])
    assert await _ids(reads, CommentFilter(viewed=True, archived=False)) == {some[0]}
    assert len(await _ids(reads, CommentFilter(viewed=False))) == 28


async def test_text_search_finds_folded_substrings(world, reads) -> None:
    # Both databases: "кошка" finds "кошками" and "КОШКА", not "окошко" or "кошек".
    expected = _expected(world, lambda c: c.text in ("С кошками гуляю", "КОШКА спит"))
    assert await _ids(reads, CommentFilter(text="кошка")) == expected
    assert await _ids(reads, CommentFilter(text="ЁЖИК")) == _expected(world, lambda c: c.text.startswith("ёжик"))
    assert await _ids(reads, CommentFilter(text="собака лает")) == _expected(world, lambda c: c.text == "Собака лает")
    assert await _ids(reads, CommentFilter(text="100%")) == set()


async def test_a_stem_finds_every_form_and_a_longer_form_only_itself(world, reads) -> None:
    # The same on both databases: literal, so no stemming on PostgreSQL either.
    assert await _ids(reads, CommentFilter(text="кошк")) == _expected(world, lambda c: "кошк" in c.text.lower())
    assert await _ids(reads, CommentFilter(text="кошками")) == _expected(world, lambda c: c.text == "С кошками гуляю")


async def test_invalid_cursors_are_input_errors(world, reads) -> None:
    likes = CommentOrder(CommentSort.LIKES)
    date_cursor = encode_cursor(T0, 1)
    for cursor in ("garbage!", "W10", date_cursor, encode_cursor("x", "y")):
        with pytest.raises(InvalidInput) as e:
            await reads.comments_page(CommentFilter(), likes, first=5, after=cursor)
        assert e.value.field == "after"
    with pytest.raises(InvalidInput):
        await reads.tasks_page(TaskFilter(), first=5, after="bad")


async def test_page_size_is_clamped(world, reads) -> None:
    page = await reads.comments_page(CommentFilter(), CommentOrder(), first=10_000, after=None)
    assert len(page.edges) == 30 and not page.has_next_page
    empty = await reads.comments_page(CommentFilter(), CommentOrder(), first=0, after=None)
    assert empty.edges == [] and empty.has_next_page


async def test_lookups_by_id_follow_the_input_order(world, reads) -> None:
    wall = world.groups[0].owner_id
    c1, c3 = world.comment_ids[(wall, 1)], world.comment_ids[(wall, 3)]
    views = await reads.comments_by_ids([c3, 999_999, c1, c3])
    assert [v.id if v else None for v in views] == [c3, None, c1, c3]

    cat, dog = world.keywords
    assert await reads.keywords_by_ids([dog.id, 999, cat.id]) == [dog, None, cat]
    g1, g2 = world.groups
    assert [g.id if g else None for g in await reads.groups_by_ids([g2.id, g1.id, 0])] == [g2.id, g1.id, None]
    authors = await reads.authors_by_ids([1001, 5, 1000])
    assert [a.name if a else None for a in authors] == ["Bob", None, "Ann"]
    assert await reads.posts_by_ids([]) == []

    dog_comment = world.comment_ids[(world.groups[0].owner_id, 5)]  # "Собака лает": two matches
    matches = await reads.matches_by_comment_ids([dog_comment, 999, c1])
    assert [[(m.keyword_id, m.start) for m in ms] for ms in matches] == [[(dog.id, 0), (dog.id, 10)], [], []]
    assert await reads.keyword_matches_counts([dog.id, cat.id, 999]) == [
        2 * len(_expected(world, lambda c: "Собака" in c.text)),
        len(_expected(world, lambda c: "кошк" in c.text.lower())),
        0,
    ]


async def test_group_and_keyword_pages(world, reads, uow_factory) -> None:
    async with uow_factory() as uow:
        for vk_id in range(3, 8):
            await uow.groups.add(Group(vk_id=vk_id, screen_name=f"g{vk_id}", name="x", active=vk_id % 2 == 0))
        await uow.commit()
    seen, after = [], None
    while True:
        page = await reads.groups_page(first=3, after=after)
        seen += [g.vk_id for _, g in page.edges]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert await reads.groups_count() == 7
    assert await reads.groups_count(active=False) == 3
    inactive = await reads.groups_page(first=10, after=None, active=False)
    assert [g.vk_id for _, g in inactive.edges] == [3, 5, 7]

    keywords = await reads.keywords_page(first=1, after=None)
    assert [k for _, k in keywords.edges] == [world.keywords[0]] and keywords.has_next_page
    rest = await reads.keywords_page(first=5, after=keywords.end_cursor)
    assert [k for _, k in rest.edges] == [world.keywords[1]] and not rest.has_next_page
    assert await reads.keywords_count(active=True) == 2


async def test_task_pages_newest_first_with_filters(world, reads, uow_factory) -> None:
    g1, g2 = world.groups
    specs = list(itertools.product([TaskKind.PARSE, TaskKind.EXPORT], [TaskState.QUEUED, TaskState.FAILED], [g1.id, g2.id]))
    async with uow_factory() as uow:
        added = [await uow.tasks.add(Task(kind=k, state=s, group_id=g)) for k, s, g in specs]
        await uow.commit()
    flt = TaskFilter(kinds=(TaskKind.PARSE,), group_ids=(g1.id,))
    first = await reads.tasks_page(flt, first=1, after=None)
    second = await reads.tasks_page(flt, first=5, after=first.end_cursor)
    wanted = [t.id for t in reversed(added) if t.kind is TaskKind.PARSE and t.group_id == g1.id]
    assert [t.id for _, t in first.edges + second.edges] == wanted
    assert first.has_next_page and not second.has_next_page
    assert await reads.tasks_count(TaskFilter(states=(TaskState.FAILED,))) == 4
    assert await reads.tasks_count(TaskFilter()) == 8
    by_ids = await reads.tasks_by_ids([added[2].id, 0])
    assert by_ids == [added[2], None]


async def test_postgres_text_search_uses_the_trigram_index(world, migrated_db) -> None:
    engine = migrated_db[0]
    if engine.dialect.name != "postgresql":
        pytest.skip("the text search index is PostgreSQL's")
    from sqlalchemy import select, text

    from infrastructure.db.filters import text_condition
    from infrastructure.db.tables import TEXT_SEARCH_INDEX, comments

    query = select(comments.c.id).where(text_condition(CommentFilter(text="кошка"), "postgresql"))
    async with engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))  # a 30-row table would be scanned
        compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {compiled}")))
    assert TEXT_SEARCH_INDEX in plan, plan


async def _community_text_plan(engine, flt: CommentFilter) -> str:
    """The plan of ``flt``'s conditions as the read model binds them (``group_id = $1::BIGINT``),
    the community's btree indexes (by time, likes, match count) dropped for the transaction: in a
    30-row table each is cheaper than any GIN scan, and a sequential scan cheaper still."""
    from sqlalchemy import select, text

    from infrastructure.db.filters import comment_conditions
    from infrastructure.db.tables import comments

    compiled = select(comments.c.id).where(*comment_conditions(flt, "postgresql")).compile(engine.sync_engine)
    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        for index in ("published_at_id_state", "likes_id", "matches_count_id"):
            await conn.execute(text(f"DROP INDEX ix_comments_group_id_{index}"))
        arguments = tuple(compiled.params[name] for name in compiled.positiontup or ())
        plan = "\n".join(r[0] for r in await conn.exec_driver_sql(f"EXPLAIN {compiled}", arguments))
        await conn.rollback()
    return plan


def _index_cond(plan: str, index: str) -> str:
    scan = plan.split(f"Bitmap Index Scan on {index}", 1)
    assert len(scan) == 2, plan
    return scan[1].split("Index Cond:", 1)[1].splitlines()[0]


async def test_postgres_community_text_search_is_one_index_scan(world, migrated_db) -> None:
    """A community's text search (the console's usual one) is answered by the one GIN index on
    (group_id, folded text) (migration 0016): both conditions in its scan (btree_gin serves
    ``group_id = $1::BIGINT``), not the words' comments of every community filtered or ANDed
    with the community's btree index. A word of fewer than 3 letters gives pg_trgm no trigram
    (the index would read all its trigram entries): it stays out of the index's condition."""
    engine = migrated_db[0]
    if engine.dialect.name != "postgresql":
        pytest.skip("the text search index is PostgreSQL's")
    from infrastructure.db.tables import TEXT_SEARCH_INDEX

    group_id = world.groups[0].id
    cond = _index_cond(await _community_text_plan(engine, CommentFilter(group_ids=(group_id,), text="кошка")),
                       TEXT_SEARCH_INDEX)
    assert "group_id" in cond and "%кошка%" in cond, cond
    plan = await _community_text_plan(engine, CommentFilter(group_ids=(group_id,), text="кошка ко"))
    cond = _index_cond(plan, TEXT_SEARCH_INDEX)
    assert "group_id" in cond and "%кошка%" in cond and "%ко%" not in cond, plan
    assert "%ко%" in plan, plan  # still a condition: a filter on the rows



@pytest.mark.parametrize("field", [CommentSort.LIKES, CommentSort.MATCHES_COUNT])
@pytest.mark.parametrize("direction", list(SortDirection))
@pytest.mark.parametrize("words", [None, "кошка"])
async def test_postgres_community_pages_by_likes_or_matches_read_the_communitys_index(
    world, reads, migrated_db, field, direction, words
) -> None:
    """A community's page by likes or by match count, either direction, with a text filter or
    without, from the start or past a cursor, can be read in its order off the community's
    index (group_id, key, id) (migration 0018): no sort, no other community's rows. Without
    it the planner walked the whole store's (key, id) index and filtered by community: 40,000
    buffers for a common word in a small community of 1,000,000 comments (bench/group_text.py).
    Sequential scans and sorts off: in a 30-row table either would be cheaper."""
    engine = migrated_db[0]
    if engine.dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    from sqlalchemy import text

    flt = CommentFilter(group_ids=(world.groups[0].id,), text=words)
    query, keyset = reads._comments_query(flt, CommentOrder(field, direction), backward=False)
    index = {CommentSort.LIKES: "ix_comments_group_id_likes_id",
             CommentSort.MATCHES_COUNT: "ix_comments_group_id_matches_count_id"}[field]
    scan = "Index Scan Backward using" if direction is SortDirection.DESC else "Index Scan using"
    for page in (query, query.where(keyset.beyond(encode_cursor(1, 10), later=True, field="after"))):
        compiled = page.order_by(*keyset.by()).limit(11).compile(engine.sync_engine)
        async with engine.connect() as conn:
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            await conn.execute(text("SET LOCAL enable_sort = off"))
            arguments = tuple(compiled.params[name] for name in compiled.positiontup or ())
            plan = "\n".join(r[0] for r in await conn.exec_driver_sql(f"EXPLAIN {compiled}", arguments))
            await conn.rollback()
        assert f"{scan} {index}" in plan and "Sort" not in plan, plan
        cond = plan.split("Index Cond:", 1)[1].splitlines()[0]
        assert "group_id" in cond, plan

async def test_reads_are_the_same_through_the_driver_as_through_sqlalchemy(world, reads, uow_factory) -> None:
    """On PostgreSQL the read model's SELECTs go to asyncpg itself (``compiled.py``); every
    value they read must equal what SQLAlchemy reads (times as UTC, nulls, booleans, big ids,
    JSON), in the same order, for look-ups and pages with every kind of condition and cursor."""
    async with uow_factory() as uow:
        await uow.tasks.add(Task(id=0, kind=TaskKind.PARSE, state=TaskState.QUEUED, params={"groupIds": [1], "full": True}))
        await uow.commit()
    comment_ids = [*world.comment_ids.values(), 999_999]
    views = await reads.comments_by_ids(comment_ids)
    cat, dog = world.keywords
    since = T0 + timedelta(minutes=2, seconds=30)

    async def everything() -> list:
        first = await reads.comments_page(CommentFilter(), CommentOrder(), first=4)
        return [
            await reads.comments_by_ids(comment_ids),
            await reads.comments_by_vk_ids([(-1, 1), (-2, 2), (-1, 21), (-1, 999)]),
            await reads.groups_by_ids([*(g.id for g in world.groups), 0]),
            await reads.posts_by_ids([*dict.fromkeys(v.post_id for v in views if v), 0]),
            await reads.authors_by_ids([1000, 5, 1001]),
            await reads.keywords_by_ids([k.id for k in world.keywords] + [999]),
            await reads.matches_by_comment_ids(comment_ids),
            await reads.matches_and_keywords_by_comment_ids(comment_ids),
            first,
            await reads.comments_page(CommentFilter(), CommentOrder(), first=5, after=first.end_cursor),
            await reads.comments_page(CommentFilter(), CommentOrder(CommentSort.LIKES, SortDirection.ASC), last=3),
            await reads.comments_page(CommentFilter(keyword_ids=(dog.id,)), CommentOrder(), first=3),
            await reads.comments_page(
                CommentFilter(keyword_ids=(cat.id, dog.id), since=since, viewed=False, text="кош"), CommentOrder(), first=9
            ),
            await reads.comments_page(
                CommentFilter(group_ids=(world.groups[0].id,), author_ids=(1000, 1001), matched=True), CommentOrder(),
                first=2, before=first.end_cursor,
            ),
            await reads.groups_page(first=1, active=True),
            await reads.keywords_page(first=5, text="кош"),
            await reads.tasks_page(TaskFilter(), first=5),
        ]

    direct = await everything()
    driver, reads._driver = reads._driver, None  # every statement through SQLAlchemy
    try:
        through_sqlalchemy = await everything()
    finally:
        reads._driver = driver
    # Pages are compared by their edges and flags (their cursor look-ahead is a function).
    flat = [[p.edges, p.has_next_page, p.has_previous_page] if hasattr(p, "edges") else p for p in direct]
    flat_sqlalchemy = [[p.edges, p.has_next_page, p.has_previous_page] if hasattr(p, "edges") else p for p in through_sqlalchemy]
    assert repr(flat) == repr(flat_sqlalchemy)  # every field, those left out of == too
    assert any(m for m in direct[6]) and direct[2][0].created_at.tzinfo is UTC and direct[-1].edges
    assert reads._engine.sync_engine.pool.checkedout() == 0  # every connection went back
    assert all(p.edges for p in direct[8:12]) and direct[-1].edges[0][1].params == {"groupIds": [1], "full": True}


@pytest.mark.parametrize("direction", list(SortDirection))
async def test_keyword_pages_follow_the_comments_time_even_when_it_changes(world, reads, uow_factory, direction) -> None:
    # Read off the matches' own copy of the time (a comment matched twice is one row): the
    # same pages as the comments' order, backwards too, and a re-collected time moves it.
    cat, dog = world.keywords
    order = CommentOrder(CommentSort.PUBLISHED_AT, direction)

    async def expected(flt: CommentFilter) -> list[int]:
        every = sorted(world.comment_ids.values())
        views = await reads.comments_by_ids(every)
        found = await reads.matches_by_comment_ids(every)
        admitted = [v for v, m in zip(views, found) if flt.admits(v, m)]
        admitted.sort(key=lambda v: (v.published_at, v.id), reverse=direction is SortDirection.DESC)
        return [v.id for v in admitted]

    filters = [
        CommentFilter(keyword_ids=(dog.id,)),
        CommentFilter(keyword_ids=(cat.id, dog.id)),
        CommentFilter(keyword_ids=(cat.id,), group_ids=(world.groups[1].id,)),
    ]
    for flt in filters:
        want = await expected(flt)
        nodes, _ = await all_pages(reads, flt, order, size=2)
        assert [n.id for n in nodes] == want and len(want) >= 4
        fourth = await reads.comments_page(flt, order, first=4)
        back = await reads.comments_page(flt, order, last=2, before=fourth.end_cursor)
        assert [n.id for _, n in back.edges] == want[1:3] and back.has_previous_page

    dog_comment = next(c for c in world.comments if c.text == "Собака лает")
    async with uow_factory() as uow:
        await uow.comments.upsert_many(
            world.groups[0].id if dog_comment.owner_id == world.groups[0].owner_id else world.groups[1].id,
            [Comment(**{**vars(dog_comment), "published_at": T0 + timedelta(days=1)})],
        )
        await uow.commit()
    flt = CommentFilter(keyword_ids=(dog.id,))
    want = await expected(flt)
    nodes, _ = await all_pages(reads, flt, order, size=2)
    assert [n.id for n in nodes] == want
    moved = world.comment_ids[(dog_comment.owner_id, dog_comment.vk_id)]
    assert want.index(moved) == (0 if direction is SortDirection.DESC else len(want) - 1)
