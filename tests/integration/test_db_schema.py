"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from infrastructure.db.migrate import upgrade_async
from infrastructure.db.tables import POSTGRES_ONLY_INDEXES, TEXT_SEARCH_INDEX, metadata


def _schema_diff(sync_connection) -> list:
    def include(obj, name, type_, reflected, compare_to) -> bool:
        return not (type_ == "index" and name in POSTGRES_ONLY_INDEXES)

    context = MigrationContext.configure(
        sync_connection,
        opts={"compare_type": True, "compare_server_default": True, "include_object": include},
    )
    return compare_metadata(context, metadata)


async def test_migrated_schema_matches_the_tables(migrated_db) -> None:
    engine, _ = migrated_db
    async with engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []


async def test_text_search_index_exists_on_postgresql_only(migrated_db) -> None:
    engine, _ = migrated_db
    async with engine.connect() as conn:
        indexes = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("comments")})
    assert (TEXT_SEARCH_INDEX in indexes) == (engine.dialect.name == "postgresql")


async def test_upgrade_twice_is_a_no_op(migrated_db, database_url) -> None:
    await upgrade_async(database_url)
    engine, _ = migrated_db
    async with engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == "0018"


async def test_the_review_audit_trail_refuses_updates(migrated_db, uow_factory) -> None:
    """comment_events is append-only in the database too (migration 0013's trigger): an UPDATE
    fails on both databases, whoever sends it; a removed community's events still go with it."""
    from datetime import UTC, datetime

    from sqlalchemy.exc import DBAPIError

    from domain.models import Comment, CommentEvent, Group, Post

    when = datetime(2026, 12, 7, tzinfo=UTC)
    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=5, screen_name="g5", name="G5"))
        await uow.posts.upsert_many(group.id, [Post(group.owner_id, 1, group.owner_id, "", when)])
        ids = await uow.comments.upsert_many(group.id, [Comment(group.owner_id, 1, 1, 7, "текст", when)])
        (comment_id,) = ids.values()
        await uow.comments.add_events([CommentEvent(comment_id, when, "Анна", "status", "NEW", "DONE")])
        await uow.commit()
    engine, _ = migrated_db
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE comment_events SET actor = 'someone else'"))
        raise AssertionError("an event was updated")
    except DBAPIError as e:
        assert "append-only" in str(e)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT actor FROM comment_events"))).scalars().all() == ["Анна"]
    async with uow_factory() as uow:
        await uow.groups.remove(group.id)
        await uow.commit()
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM comment_events"))).scalar_one() == 0


async def test_0014_folds_the_comments_already_stored(database_url) -> None:
    """Migration 0014 fills ``text_folded`` of the comments stored before it with the domain's
    fold, so a text search finds them at once (through the trigram index on PostgreSQL)."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from domain.queries import MAX_PAGE, CommentFilter, CommentOrder, fold_text
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.queries import SqlReadModel
    from infrastructure.db.tables import comments, groups, posts

    await upgrade_async(database_url, "0013")
    when = datetime(2026, 12, 7, tzinfo=UTC)
    texts = ["ЁЛКА и Ежик", "Straße 100%", "", "ΣΊΣΥΦΟΣ"]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(groups).values(id=1, vk_id=1, screen_name="g", name="G", created_at=when,
                                                     updated_at=when))
            await conn.execute(insert(posts).values(id=1, group_id=1, owner_id=-1, vk_id=1, text="", published_at=when))
            await conn.execute(insert(comments), [
                {"group_id": 1, "post_id": 1, "owner_id": -1, "vk_id": i + 1, "post_vk_id": 1, "from_id": 5,
                 "text": t, "published_at": when, "created_at": when}
                for i, t in enumerate(texts)
            ])
        assert await upgrade_async(database_url, "0014") == ["0014"]
        async with engine.connect() as conn:
            rows = (await conn.execute(select(comments.c.text, comments.c.text_folded).order_by(comments.c.id))).all()
        assert [tuple(r) for r in rows] == [(t, fold_text(t)) for t in texts]
        await upgrade_async(database_url)  # the read model reads the head's columns
        reads = SqlReadModel(session_factory(engine))
        page = await reads.comments_page(CommentFilter(text="елка ЕЖИК"), CommentOrder(), first=MAX_PAGE, after=None)
        assert [view.text for _, view in page.edges] == ["ЁЛКА и Ежик"]
    finally:
        await engine.dispose()
