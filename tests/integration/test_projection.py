"""Projected reads (``infrastructure/db/projection.py``): PostgreSQL writes a page's nodes as the
API's JSON. Its spellings of times and ids must be the Python functions' to the byte, and what it
cannot write exactly it refuses. ``tests/e2e/test_read_plan.py`` compares whole responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import orjson
import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from domain import declaration
from domain.declaration import Spelling
from domain.models import Author, Comment, Group, Post
from domain.queries import CommentFilter, CommentOrder, Member, Projection
from graphql_api.ids import NodeType, global_id
from infrastructure.db import queries
from infrastructure.db.projection import Unprojectable, _global_id, _time
from infrastructure.db.queries import SqlReadModel
from infrastructure.db.tables import UtcDateTime
from tests.conftest import postgres_database

TIMES = [
    datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 0, 0, 100000, tzinfo=UTC),
    datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, tzinfo=UTC),
    datetime(999, 12, 31, 8, 30, 5, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 3, 31, 2, 30, 15, 5000, tzinfo=timezone(timedelta(hours=5, minutes=45))),
]


@pytest.fixture
async def connection():
    async with postgres_database() as url:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            yield connection
        finally:
            await connection.close()


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
async def test_times_are_spelled_as_isoformat_spells_the_time_the_driver_reads(connection, zone) -> None:
    await connection.execute(f"SET TimeZone = '{zone}'")  # the session's zone changes nothing
    values = [*TIMES, "infinity", "-infinity"]  # asyncpg reads these as datetime.max and .min
    for value in values:
        read, spelled = await connection.fetchrow(f"SELECT $1::timestamptz, {_time('$1::timestamptz')}", value) if (
            isinstance(value, datetime)
        ) else await connection.fetchrow(f"SELECT '{value}'::timestamptz, {_time(repr(value) + '::timestamptz')}")
        handed_over = UtcDateTime().process_result_value(read, postgresql.dialect())  # as the read model reads it
        assert spelled == handed_over.isoformat(), value
    assert await connection.fetchval(f"SELECT {_time('NULL::timestamptz')}") is None


async def test_global_ids_are_spelled_as_the_api_spells_them(connection) -> None:
    for kind in NodeType:
        for pk in (1, 9, 10, 123_456_789, 2**53 + 1, 2**63 - 1):
            assert await connection.fetchval(f"SELECT {_global_id(kind.value, '$1::bigint')}", pk) == global_id(kind, pk)


STRINGS = [
    "".join(map(chr, range(1, 128))),  # every ASCII character but NUL (no PostgreSQL text holds it)
    'кошка "Мурка" \\ / \u2028\u2029 \U0001F408 é\u00a0\ufeff',
    "",
]


async def test_strings_are_escaped_as_orjson_escapes_them(connection) -> None:
    # A projected node goes into the response as PostgreSQL wrote it, so its strings must be
    # byte for byte what orjson writes for them.
    for value in STRINGS:
        assert await connection.fetchval("SELECT to_json($1::text)::text", value) == orjson.dumps(value).decode()


def _projector():
    return queries._PROJECTOR


@pytest.mark.parametrize(
    ("projection", "kind"),
    [
        # A non-null member of a nullable column would write null where the API fails.
        (Projection("author", (Member("screenName", attribute="screen_name", non_null=True),)), "nullable"),
        # A spelling the column's type does not have: a boolean is not a string.
        (Projection("comment", (Member("deleted", attribute="deleted", spelling=Spelling.TEXT),)), "spelling"),
        (Projection("comment", (Member("text", attribute="text", spelling=Spelling.INT32),)), "spelling"),
        # An attribute no column holds as it is, a view or relation there is not.
        (Projection("comment", (Member("x", attribute="no_such_attribute"),)), "not_a_column"),
        (Projection("nothing", (Member("x", attribute="id"),)), "no_view"),
        (Projection("comment", (Member("x", related="sibling", projection=Projection("comment", ())),)), "not_a_relation"),
        # A relation that counts rather than reads objects.
        (Projection("keyword", (Member("n", related="matches_count", projection=Projection("", ())),)),
         "not_a_relation"),
        # A computed field is its rule: a text, not a number.
        (Projection("comment", (Member("url", attribute="url", spelling=Spelling.INT32),)), "spelling"),
        # A non-null relation to at most one row may find none.
        (Projection("comment", (Member("group", related="group", projection=Projection("group", ()), non_null=True),)),
         "may_find_nothing"),
        # A relation projected as another view than it reads.
        (Projection("comment", (Member("group", related="group", projection=Projection("post", ())),)), "not_a_relation"),
        # A key that is not a name would be SQL, not a key.
        (Projection("comment", (Member("a'b", attribute="text"),)), "not_a_name"),
        (Projection("comment", (Member("t", constant='Comment"'),)), "not_a_name"),
    ],
)
def test_what_cannot_be_written_exactly_is_refused_and_says_why(projection, kind) -> None:
    with pytest.raises(Unprojectable) as refused:
        _projector().node(projection)
    assert refused.value.kind == kind  # what /metrics counts a page's refusal by
    with pytest.raises(Unprojectable) as again:  # and again, from what it remembers
        _projector().node(projection)
    assert again.value.kind == kind


def test_the_row_converters_read_the_columns_the_declaration_names() -> None:
    row = {"comment_id": 1, "keyword_id": 2, "matched_text": "кот", "start_pos": 3, "end_pos": 6, "snippet": "s"}
    match = queries._match(row)
    assert (match.start, match.end, match.comment_id) == (3, 6, 1)
    author = queries._author({"vk_id": 5, "name": "A", "screen_name": None, "photo_url": "p"})
    assert (author.vk_id, author.name, author.photo_url) == (5, "A", "p")
    # What a projected page reads: the same columns, named by the same declaration.
    match_view = _projector().views["match"]
    assert [f.column for f in match_view.fields if f.name in ("start", "end")] == ["start_pos", "end_pos"]


NODE = Projection("comment", (
    Member("id", attribute="pk", spelling=Spelling.GLOBAL_ID, kind="Comment", non_null=True),
    Member("vkId", attribute="vk_id", spelling=Spelling.INT32, non_null=True),
    Member("author", related="author", projection=Projection("author", (
        Member("vkId", attribute="vk_id", spelling=Spelling.INT32, non_null=True),
        Member("name", attribute="name", non_null=True),
    ))),
    Member("t", constant="Comment"),
))


async def _comments(uow_factory, vk_ids: list[int]) -> None:
    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=1, screen_name="g1", name="G1"))
        at = datetime(2024, 5, 1, tzinfo=UTC)
        await uow.posts.upsert_many(group.id, [Post(owner_id=-1, vk_id=1, from_id=-1, text="", published_at=at)])
        await uow.comments.upsert_many(group.id, [
            Comment(owner_id=-1, vk_id=v, post_vk_id=1, from_id=7, text="t", published_at=at + timedelta(minutes=i))
            for i, v in enumerate(vk_ids)
        ])
        await uow.authors.upsert_many([Author(7, "Ann")])
        await uow.commit()


@pytest.fixture
async def postgres_reads(tmp_path):
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.migrate import upgrade_async
    from infrastructure.db.uow import SqlUnitOfWork

    async with postgres_database() as url:
        await upgrade_async(url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        try:
            yield SqlReadModel(sessions), (lambda: SqlUnitOfWork(sessions))
        finally:
            await engine.dispose()


async def test_a_projected_page_is_the_page_with_its_nodes_written(postgres_reads) -> None:
    reads, uow_factory = postgres_reads
    await _comments(uow_factory, [5, 6, 7])
    plain = await reads.comments_page(CommentFilter(), CommentOrder(), first=2)
    projected = await reads.comments_page_projected(CommentFilter(), CommentOrder(), NODE, first=2)
    assert [cursor for cursor, _ in projected.edges] == [cursor for cursor, _ in plain.edges]
    assert projected.has_next_page and plain.has_next_page
    assert all(text == orjson.dumps(orjson.loads(text)).decode() for _, text in projected.edges)  # compact
    nodes = [orjson.loads(text) for _, text in projected.edges]
    assert nodes == [
        {"id": global_id(NodeType.COMMENT, view.id), "vkId": view.vk_id, "author": {"vkId": 7, "name": "Ann"}, "t": "Comment"}
        for _, view in plain.edges
    ]


async def test_an_int_past_32_bits_fails_the_read_as_the_int_scalar_fails_the_field(postgres_reads) -> None:
    reads, uow_factory = postgres_reads
    await _comments(uow_factory, [2**31])
    # asyncpg's error (the read model runs its statements itself), or SQLAlchemy's around it
    with pytest.raises((asyncpg.NumericValueOutOfRangeError, DBAPIError), match="out of range"):
        await reads.comments_page_projected(CommentFilter(), CommentOrder(), NODE, first=2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_does_not_project(migrated_db) -> None:
    reads = SqlReadModel(migrated_db[1])
    assert not reads.projects
    with pytest.raises(NotImplementedError):
        await reads.comments_page_projected(CommentFilter(), CommentOrder(), NODE, first=2)


async def test_the_same_page_asked_again_reuses_its_statement_not_its_rows(postgres_reads) -> None:
    reads, uow_factory = postgres_reads
    await _comments(uow_factory, [5, 6])
    first = await reads.comments_page_projected(CommentFilter(), CommentOrder(), NODE, first=2)
    async with uow_factory() as uow:  # a newer comment arrives between the two reads
        group = (await uow.groups.get_by_vk_id(1))
        later = datetime(2024, 6, 1, tzinfo=UTC)
        await uow.comments.upsert_many(group.id, [Comment(owner_id=-1, vk_id=9, post_vk_id=1, from_id=7, text="t", published_at=later)])
        await uow.commit()
    again = await reads.comments_page_projected(CommentFilter(), CommentOrder(), NODE, first=2)
    assert len(reads._windows) == 1  # one statement, made once
    assert [orjson.loads(t)["vkId"] for _, t in first.edges] == [6, 5]
    assert [orjson.loads(t)["vkId"] for _, t in again.edges] == [9, 6] and again.has_next_page
    after = await reads.comments_page_projected(CommentFilter(), CommentOrder(), NODE, first=2, after=again.end_cursor)
    assert [orjson.loads(t)["vkId"] for _, t in after.edges] == [5] and len(reads._windows) == 2


def _rule(view: declaration.View, name: str, value) -> str | None:
    """What the API answers for computed field ``name`` of a domain view (``declaration.evaluate``)."""
    found = view.field(name)
    assert found is not None and found.rule is not None
    return declaration.evaluate(found.rule, lambda n: getattr(value, view.field(n).attribute))


WALL = Projection("comment", (
    Member("vkId", attribute="vk_id", spelling=Spelling.INT32, non_null=True),
    Member("url", attribute="url", non_null=True),
    Member("author", related="author", projection=Projection("author", (
        Member("vkId", attribute="vk_id", spelling=Spelling.INT32, non_null=True),
        Member("url", attribute="url", non_null=True),
    ))),
    Member("parent", related="parent", projection=Projection("comment", (
        Member("vkId", attribute="vk_id", spelling=Spelling.INT32, non_null=True),
        Member("url", attribute="url", non_null=True),
    ))),
    Member("thread", related="thread", projection=Projection("comment", (
        Member("vkId", attribute="vk_id", spelling=Spelling.INT32, non_null=True),
    ))),
))


async def test_computed_fields_and_replies_are_written_as_python_makes_them(postgres_reads) -> None:
    """The same rule (``domain/declaration.py``) in SQL and in Python: comments' and authors'
    links (a screen name, an empty one, none; a user, a community), and a reply's parent and
    thread, found by (owner_id, vk_id) on the same wall only."""
    reads, uow_factory = postgres_reads
    at = datetime(2024, 5, 1, tzinfo=UTC)
    async with uow_factory() as uow:
        for vk_id, owner_id in ((1, -1), (2, -2)):
            group = await uow.groups.add(Group(vk_id=vk_id, screen_name=f"g{vk_id}", name="G"))
            await uow.posts.upsert_many(group.id, [Post(owner_id=owner_id, vk_id=10, from_id=None, text="", published_at=at)])
            await uow.comments.upsert_many(group.id, [
                Comment(owner_id=owner_id, vk_id=5, post_vk_id=10, from_id=7, text="t", published_at=at),
                Comment(owner_id=owner_id, vk_id=6, post_vk_id=10, from_id=-3, text="t", published_at=at + timedelta(1),
                        thread_vk_id=5, parent_vk_id=5),
                Comment(owner_id=owner_id, vk_id=7, post_vk_id=10, from_id=8, text="t", published_at=at + timedelta(2),
                        thread_vk_id=5, parent_vk_id=6),
                Comment(owner_id=owner_id, vk_id=8, post_vk_id=10, from_id=9, text="t", published_at=at + timedelta(3),
                        thread_vk_id=99, parent_vk_id=99),  # a parent never collected
            ])
        await uow.authors.upsert_many([Author(7, "A", ""), Author(-3, "C", None), Author(8, "B", "o'brien\"x")])
        await uow.commit()
    plain = await reads.comments_page(CommentFilter(), CommentOrder(), first=20)
    projected = await reads.comments_page_projected(CommentFilter(), CommentOrder(), WALL, first=20)
    views = [view for _, view in plain.edges]
    authors = dict(zip([v.from_id for v in views], await reads.authors_by_ids([v.from_id for v in views])))
    on_wall = {(v.owner_id, v.vk_id): v for v in views}

    def expected(view):
        parent, thread = on_wall.get((view.owner_id, view.parent_vk_id)), on_wall.get((view.owner_id, view.thread_vk_id))
        author = authors[view.from_id]
        return {
            "vkId": view.vk_id, "url": _rule(declaration.COMMENT, "url", view),
            "author": {"vkId": author.vk_id, "url": _rule(declaration.AUTHOR, "url", author)} if author else None,
            "parent": {"vkId": parent.vk_id, "url": _rule(declaration.COMMENT, "url", parent)} if parent else None,
            "thread": {"vkId": thread.vk_id} if thread else None,
        }

    assert [orjson.loads(text) for _, text in projected.edges] == [expected(v) for v in views]
    written = [orjson.loads(text) for _, text in projected.edges]
    # What was compared: every kind of link and reply.
    assert {w["author"]["url"] for w in written if w["author"]} == {
        "https://vk.com/id7", "https://vk.com/club3", "https://vk.com/o'brien\"x"}
    assert "https://vk.com/wall-2_10?reply=7" in {w["url"] for w in written}
    assert sum(w["parent"] is not None for w in written) == 4 and sum(w["thread"] is None for w in written) == 4
