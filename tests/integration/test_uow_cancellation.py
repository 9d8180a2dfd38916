"""A unit of work cancelled in the middle of a statement (a task group stopping a parse's
writer when VK's tokens all rest) gives its connection back: on SQLite, the write lock its
transaction holds must not outlive it, or every other writer waits for it and then fails."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from domain.models import Task, TaskKind
from infrastructure.db.engine import create_engine, session_factory
from infrastructure.db.migrate import upgrade_async
from infrastructure.db.uow import SqlUnitOfWork

# Long enough to be cancelled while it runs (a few hundred milliseconds on a slow machine).
SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"


async def test_a_writer_cancelled_mid_statement_leaves_the_database_writable(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cancel.sqlite3'}"
    await upgrade_async(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        for _ in range(3):
            async def write_slowly() -> None:
                async with SqlUnitOfWork(sessions) as uow:
                    await uow.tasks.add(Task(kind=TaskKind.EXPORT))
                    await uow.tasks.session.execute(text(SLOW))
                    await uow.commit()

            writer = asyncio.create_task(write_slowly())
            await asyncio.sleep(0.1)
            writer.cancel()
            started = time.monotonic()
            await asyncio.gather(writer, return_exceptions=True)
            async with SqlUnitOfWork(sessions) as uow:  # the next writer gets the lock
                await uow.tasks.add(Task(kind=TaskKind.EXPORT))
                await uow.commit()
            assert time.monotonic() - started < 10
        async with SqlUnitOfWork(sessions) as uow:
            assert len(await uow.tasks.list()) == 3  # the cancelled ones wrote nothing
    finally:
        await engine.dispose()
