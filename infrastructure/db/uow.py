"""The SQL unit of work: one AsyncSession (one transaction) per ``async with``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infrastructure.db.aggregates import StatsLedger
from infrastructure.db.alerts import SqlAlertRepository
from infrastructure.db.engine import SQLITE_IMMEDIATE
from infrastructure.db.faults import (
    UnavailableAware,
    as_unavailable,
    raise_if_unavailable,
)
from infrastructure.db.planner import planner_statistics
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
from infrastructure.db.rule_matches import SqlRuleMatchRepository
from infrastructure.sealed import Sealer

T = TypeVar("T")


async def _to_the_end(operation: Awaitable[T]) -> T:
    """A statement, once sent, runs to its end even when its caller is cancelled meanwhile (a
    task group stopping a parse's writer); then the cancellation goes on. Interrupted
    mid-statement, SQLAlchemy drops the connection without closing it: on SQLite its
    transaction keeps the database's write lock until the garbage collector finds it, and
    every other writer waits for it, then fails."""
    running = asyncio.ensure_future(operation)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        if not running.done():
            await asyncio.wait([running])
        if not running.cancelled():
            running.exception()  # retrieved: the cancellation is what the caller gets
        raise


class _WriteSession(UnavailableAware):
    """The unit of work's session: its statements are not interrupted half-way (``_to_the_end``)."""

    async def connection(self, *args: Any, **kwargs: Any) -> Any:
        return await _to_the_end(super().connection(*args, **kwargs))

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await _to_the_end(super().execute(*args, **kwargs))

    async def commit(self) -> None:
        await _to_the_end(super().commit())


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
    alerts: SqlAlertRepository
    rule_matches: SqlRuleMatchRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession], sealer: Sealer | None = None) -> None:
        self._sessions = sessions
        self._sealer = sealer  # alert credentials at rest; without one, alerts' credentials are refused
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> SqlUnitOfWork:
        session = self._session = _WriteSession(**self._sessions.kw)
        # On SQLite take the write lock up front (BEGIN IMMEDIATE); other databases ignore it.
        try:
            await session.connection(execution_options={SQLITE_IMMEDIATE: True})
        except BaseException as e:  # a cancellation too: the session must not keep the connection
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
        self.alerts = SqlAlertRepository(session, self._sealer)
        self.rule_matches = SqlRuleMatchRepository(session)
        return self

    async def __aexit__(self, type_: object, value: BaseException | None, traceback: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                await _to_the_end(session.close())  # rolls back whatever was not committed
            except Exception as e:  # closing a connection that died: the pool drops it
                if value is None and as_unavailable(e) is None:
                    raise
        if value is not None:
            raise_if_unavailable(value)

    async def commit(self) -> None:
        assert self._session is not None, "commit() outside `async with`"
        added = sum(counts[0] for counts in self._ledger.groups.values())  # comments, net
        try:
            await self._ledger.flush(self._session)
            await self._session.commit()
        except Exception as e:  # e.g. the connection died during COMMIT
            raise_if_unavailable(e)
            raise
        if added > 0:  # the planner's statistics follow a collection (planner.py)
            await _to_the_end(planner_statistics(self._sessions.kw["bind"]).added_rows(added))

    async def rollback(self) -> None:
        assert self._session is not None, "rollback() outside `async with`"
        self._ledger.clear()  # what was rolled back counts no more
        await self._session.rollback()
