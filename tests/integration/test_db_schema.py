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
    assert version == "0013"


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
