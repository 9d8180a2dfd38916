"""Alembic environment: runs the migrations over an async engine (aiosqlite or asyncpg).

The URL is taken from ``config.attributes["url"]`` (set by ``infrastructure.db.migrate``),
else ``sqlalchemy.url``, else the application's settings.
"""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy.engine import Connection

from infrastructure.db.engine import create_engine
from infrastructure.db.tables import metadata

config = context.config

# Only a hand-run `alembic` configures logging from the ini file; the application has its own.
if config.config_file_name is not None and not config.attributes.get("url"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from infrastructure.settings import Settings

    return Settings().effective_database_url


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    if connection is not None:
        dialect = connection.dialect.name
    else:
        assert url is not None, "a connection or a URL"
        dialect = url.split(":", 1)[0]
    context.configure(
        connection=connection,
        url=url,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations go through table copies.
        render_as_batch=dialect.startswith("sqlite"),
        compare_type=True,
        # infrastructure.db.migrate logs what was applied itself, in one event.
        on_version_apply=config.attributes.get("on_version_apply"),  # None: no callback
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=_database_url())
    with context.begin_transaction():
        context.run_migrations()
else:
    # infrastructure.db.migrate.upgrade never calls this from a running event loop.
    asyncio.run(_run_async(_database_url()))
