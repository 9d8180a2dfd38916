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
    assert version == "0011"
