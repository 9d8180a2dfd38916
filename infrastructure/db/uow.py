"""The SQL unit of work: one AsyncSession (one transaction) per ``async with``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infrastructure.db.aggregates import StatsLedger
from infrastructure.db.engine import SQLITE_IMMEDIATE
from infrastructure.db.faults import as_unavailable, raise_if_unavailable
from infrastructure.db.repositories import (
    SqlApiTokenRepository,
    SqlAuthorRepository,
    SqlCommentRepository,
    SqlGroupRepository,
    SqlKeywordRepository,
    SqlMatchRepository,
    SqlPostRepository,
    SqlTaskRepository,
)


class SqlUnitOfWork:
    """Implements ``domain.ports.UnitOfWork``; everything not committed is rolled back on exit.

    Create one per use (``uow_factory = lambda: SqlUnitOfWork(sessions)``); entering it again
    after it has been left starts a fresh transaction.
    """

    groups: SqlGroupRepository
    posts: SqlPostRepository
    comments: SqlCommentRepository
    authors: SqlAuthorRepository
    keywords: SqlKeywordRepository
    matches: SqlMatchRepository
    tasks: SqlTaskRepository
    api_tokens: SqlApiTokenRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> SqlUnitOfWork:
        session = self._session = self._sessions()
        # On SQLite take the write lock up front (BEGIN IMMEDIATE); other databases ignore it.
        try:
            await session.connection(execution_options={SQLITE_IMMEDIATE: True})
        except Exception as e:
            await self.__aexit__(type(e), e, e.__traceback__)
            raise
        # The statistics' deltas of this transaction, applied by commit() (see aggregates.py).
        self._ledger = ledger = StatsLedger()
        self.groups = SqlGroupRepository(session, ledger)
        self.posts = SqlPostRepository(session, ledger)
        self.comments = SqlCommentRepository(session, ledger)
        self.authors = SqlAuthorRepository(session)
        self.keywords = SqlKeywordRepository(session, ledger)
        self.matches = SqlMatchRepository(session, ledger)
        self.tasks = SqlTaskRepository(session)
        self.api_tokens = SqlApiTokenRepository(session)
        return self

    async def __aexit__(self, type_: object, value: BaseException | None, traceback: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                await session.close()  # rolls back whatever was not committed
            except Exception as e:  # closing a connection that died: the pool drops it
                if value is None and as_unavailable(e) is None:
                    raise
        if value is not None:
            raise_if_unavailable(value)

    async def commit(self) -> None:
        assert self._session is not None, "commit() outside `async with`"
        try:
            await self._ledger.flush(self._session)
            await self._session.commit()
        except Exception as e:  # e.g. the connection died during COMMIT
            raise_if_unavailable(e)
            raise

    async def rollback(self) -> None:
        assert self._session is not None, "rollback() outside `async with`"
        self._ledger.clear()  # what was rolled back counts no more
        await self._session.rollback()
