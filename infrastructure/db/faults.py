"""Database errors that mean "not now" rather than "never": translated into ``Unavailable``.

PostgreSQL restarting, stopped, failing over, a pooler dropping connections
(``pg_terminate_backend``), a deadlock or a serialization failure: the statement was fine, the
moment was not. The domain retries ``Unavailable`` where it happened and the API answers it as
``SERVICE_UNAVAILABLE`` (HTTP 503), never as an internal error.

Three doors let such errors in, and all are covered: statements (SQLAlchemy's ``handle_error``
event, which also invalidates the dead connection so the pool replaces it), connecting
(asyncpg raises plain ``OSError``s there, which SQLAlchemy does not wrap), caught where
sessions end (``UnavailableAware`` sessions and the unit of work), and the read model's
look-ups that run on asyncpg directly (its errors carry their SQLSTATE; the read model
invalidates the connection itself).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.errors import Unavailable

# SQLSTATEs worth another try: connection exceptions (class 08), the server shutting down or
# starting (57P01-57P03), too many connections, serialization failures and deadlocks.
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})


def _sqlstate(error: BaseException | None) -> str | None:
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return code if isinstance(code, str) else None


def as_unavailable(error: BaseException) -> Unavailable | None:
    """The ``Unavailable`` an error stands for, or None when it is not a transient database fault."""
    if isinstance(error, Unavailable):
        return error
    if isinstance(error, sa_exc.TimeoutError):  # every pooled connection busy for pool_timeout
        return Unavailable("the database is overloaded (no free connection); try again", dependency="database")
    if isinstance(error, sa_exc.DBAPIError):
        orig = error.orig
        code = _sqlstate(orig) or _sqlstate(getattr(orig, "__cause__", None))
        if error.connection_invalidated or (code is not None and (
            code in TRANSIENT_SQLSTATES or code[:2] in TRANSIENT_SQLSTATE_CLASSES
        )):
            return _unavailable(code, orig)
        if isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig):
            return _unavailable("SQLITE_BUSY", orig)
        cause = getattr(orig, "__cause__", None)
        if isinstance(cause, (OSError, ConnectionError)):
            return _unavailable(code, cause)
        return None
    if isinstance(error, (OSError, ConnectionError, TimeoutError)):  # connecting: refused, reset, timed out
        return _unavailable(None, error)
    code = _sqlstate(error)  # the driver's own error: the read model's look-ups run on asyncpg directly
    if code is not None and (code in TRANSIENT_SQLSTATES or code[:2] in TRANSIENT_SQLSTATE_CLASSES):
        return _unavailable(code, error)
    return None


def raise_if_unavailable(error: BaseException) -> None:
    """Raise the ``Unavailable`` a transient database fault stands for (from the fault itself);
    return for anything else, and for an ``Unavailable`` already, so the caller re-raises it."""
    translated = as_unavailable(error)
    if translated is not None and translated is not error:
        raise translated from error


def _unavailable(code: str | None, cause: Any) -> Unavailable:
    what = {"40001": "a serialization conflict", "40P01": "a deadlock"}.get(code or "")
    if what is not None:
        return Unavailable(f"the database reported {what}; try again", dependency="database")
    return Unavailable(f"the database is unavailable ({type(cause).__name__})", dependency="database")


def translate_errors(engine: AsyncEngine) -> None:
    """Statement errors leave SQLAlchemy as ``Unavailable`` when they are transient."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context) -> BaseException | None:
        # An asyncpg connection that died reports "connection is closed" without a SQLSTATE:
        # SQLAlchemy has already decided whether that is a disconnect (is_disconnect).
        error = context.sqlalchemy_exception
        if error is not None and context.is_disconnect:
            return Unavailable("the database connection was lost; try again", dependency="database")
        if error is not None:
            return as_unavailable(error)
        return None


class UnavailableAware(AsyncSession):
    """A session whose ``async with`` turns connect-time faults into ``Unavailable`` too."""

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await super().__aexit__(type_, value, traceback)
        if value is not None:
            raise_if_unavailable(value)
