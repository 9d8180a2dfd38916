"""SELECTs the read model builds with SQLAlchemy, run by asyncpg itself.

A read model statement is built per request (its filters, cursor and limit differ), and
SQLAlchemy's execution of it (checkout, execution context, cursor and result objects, row
mappings) cost as much CPU again as asyncpg's own work: a page of ten comments took twice the
CPU inside the API that the same call took on its own. Here each statement is compiled once
per *cache key*, SQLAlchemy's own notion of "the same SQL with other values" (the one its
compiled cache uses), and every later statement with that key only hands over its values.
Bound values go through their types' bind processing, rows through their columns' result
processing, exactly as SQLAlchemy would apply them.

The cache key is SQLAlchemy's private API (``ClauseElement._generate_cache_key``), and so is
``greenlet_spawn``, which hands a pooled connection back (``pooled``: a checkout without the
``AsyncConnection`` around it, half the CPU of one). This module is the one place that uses
them, and ``tests/unit/test_compiled.py`` fails loudly if an upgrade changes either.

Anything unusual (no cache key, values rendered into the SQL at execution, a statement's own
``params()``, columns sharing a name) is not handled here: ``compile`` answers None and the
caller runs the statement through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from domain.bounded import BoundedDict
from infrastructure.db.faults import as_unavailable

CACHE_SIZE = 500  # distinct statement shapes kept (pages × filters × orders × relations)


@dataclass(frozen=True)
class _Shape:
    sql: str
    names: tuple[str, ...]  # bound parameters, in positional order
    bind: tuple[Callable[[Any], Any] | None, ...]  # per position
    columns: tuple[str, ...]  # the row's keys, in order
    results: tuple[Callable[[Any], Any] | None, ...]  # per column
    compiled: Any


@dataclass(frozen=True)
class Prepared:
    """A statement ready for asyncpg: its SQL, its arguments, and how to read a record."""

    shape: _Shape
    arguments: tuple[Any, ...]

    @property
    def sql(self) -> str:
        return self.shape.sql

    def rows(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        """Records as dicts keyed by the statement's column names, each value through its
        column type's result processing (as SQLAlchemy reads it)."""
        columns, results = self.shape.columns, self.shape.results
        if not any(results):
            return [dict(zip(columns, record)) for record in records]
        rows = []
        for record in records:
            rows.append({
                name: (value if process is None or value is None else process(value))
                for name, process, value in zip(columns, results, record)
            })
        return rows


class DriverStatements:
    def __init__(self, dialect: Dialect, size: int = CACHE_SIZE) -> None:
        self.dialect = dialect
        self._shapes: BoundedDict[Any, _Shape | None] = BoundedDict(size)
        # Statements their callers keep and run again (by identity), with their cache keys and,
        # when nothing is bound anew, what they were prepared as.
        self._kept: BoundedDict[int, tuple[Select, Any, Prepared | None]] = BoundedDict(size)

    def compile(self, statement: Select, *, kept: bool = False, **values: Any) -> Prepared | None:
        """``statement`` ready for asyncpg, or None when SQLAlchemy must run it. ``kept``: the
        caller keeps this very statement and runs it again (a page asked again, a look-up by
        id), so its cache key is kept with it rather than found again, a walk of its whole
        expression (a projection's is hundreds of nodes: 0.1 ms), and without ``values`` so
        is what it was prepared as. ``values``: those of its named ``bindparam``s made without
        one (a look-up's id)."""
        cache_key = None
        if kept:
            seen = self._kept.get(id(statement))
            if seen is not None and seen[0] is statement:
                if seen[2] is not None and not values:  # nothing to bind anew: as it was
                    return seen[2]
                cache_key = seen[1]
        if cache_key is None:
            cache_key = statement._generate_cache_key()  # the one private name, see above
        if cache_key is None or getattr(cache_key, "params", None):
            return None
        shape = self._shapes.get(cache_key.key, self)
        if isinstance(shape, DriverStatements):  # self: not seen yet (None is a shape not to prepare)
            shape = self._shape(statement, cache_key)
            self._shapes[cache_key.key] = shape
        if shape is None:
            return None
        bound = shape.compiled.construct_params(params=values or None, extracted_parameters=cache_key.bindparams)
        arguments = tuple(
            bound[name] if process is None or bound[name] is None else process(bound[name])
            for name, process in zip(shape.names, shape.bind)
        )
        prepared = Prepared(shape, arguments)
        if kept:
            self._kept[id(statement)] = (statement, cache_key, None if values else prepared)
        return prepared

    def _shape(self, statement: Select, cache_key: Any) -> _Shape | None:
        compiled = statement.compile(dialect=self.dialect, cache_key=cache_key)
        positions = compiled.positiontup
        if compiled.literal_execute_params or compiled.post_compile_params or positions is None:
            return None
        keys = [c.key for c in statement.selected_columns]
        columns = tuple(key for key in keys if key is not None)
        if len(columns) != len(keys) or len(set(columns)) != len(columns):
            return None  # unnamed or repeated: SQLAlchemy would label them apart
        names = tuple(positions)
        bind = tuple(
            compiled.binds[name].type.dialect_impl(self.dialect).bind_processor(self.dialect) for name in names
        )
        results = tuple(
            c.type.dialect_impl(self.dialect).result_processor(self.dialect, None) for c in statement.selected_columns
        )
        return _Shape(compiled.string, names, bind, columns, results, compiled)


@contextlib.asynccontextmanager
async def pooled(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The driver's connection (asyncpg's) of a connection checked out of ``engine``'s pool,
    with the pool's checkout events (a connection the server closed is replaced) and its
    return. A connection that failed the way an outage fails is invalidated, as SQLAlchemy
    invalidates one, so the pool does not hand it out again."""
    proxied = await engine.raw_connection()
    try:
        yield proxied.driver_connection
    except Exception as e:
        if as_unavailable(e) is not None:
            await greenlet_spawn(proxied.invalidate)
        raise
    except asyncio.CancelledError:
        # A statement stopped by a cancellation (a request timeout, a client gone): asyncpg
        # cancels it on the server, but may still be busy with that when the connection goes
        # back, and the pool's rollback then fails ("another operation is in progress", logged
        # as "Exception closing connection"; seen with asyncpg 0.29). Such a connection is
        # terminated, never handed out again: timeouts are rare, connections cheap.
        await _run_to_completion(greenlet_spawn(proxied.invalidate))
        raise
    finally:
        # A statement stopped by a cancellation (a request timeout) is cancelled on the server
        # by asyncpg itself, and the connection stays usable. Returning it (or closing one past
        # the pool's size) runs to completion even when the request is stopped meanwhile: an
        # interrupted close logged a traceback ending in a bare CancelledError and could leave
        # the connection neither in the pool nor closed.
        await _returned(proxied)


async def _returned(proxied: Any) -> None:
    """``proxied.close()`` (back to the pool), run to its end whatever happens to the caller.

    The pool usually takes a connection back without waiting for anything (autocommit: no
    rollback to send), so the close is stepped once right here and is then done; only a close
    that does wait goes on in a task of its own (``_run_to_completion``). A task for every
    close cost an event loop turn per statement: 0.08 ms of wall time and 0.02 ms of CPU of
    a one-statement read, under uvloop."""
    closing = greenlet_spawn(proxied.close)
    try:
        waiting = closing.send(None)
    except StopIteration:
        return  # closed without waiting: nothing was left to interrupt
    await _run_to_completion(_Resumed(closing, waiting))


class _Resumed:
    """Awaiting it drives on a coroutine that was stepped by hand and is waiting on ``waiting``
    (what it yielded), exactly as the task awaiting it would have: the same futures are waited
    on, and what the task sends or throws reaches the coroutine."""

    def __init__(self, coroutine: Any, waiting: Any) -> None:
        self.coroutine, self.waiting = coroutine, waiting

    def __await__(self) -> Any:
        coroutine, waiting = self.coroutine, self.waiting
        while True:
            try:
                sent = yield waiting
            except BaseException as e:  # a cancellation of the task, thrown in as a task would
                try:
                    waiting = coroutine.throw(e)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting = coroutine.send(sent)
                except StopIteration as done:
                    return done.value


async def _run_to_completion(work: Awaitable[Any]) -> None:
    """``work`` in a task of its own, awaited to its end; a cancellation that arrived
    meanwhile is raised afterwards."""
    task = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as e:
            if task.done():
                raise
            cancelled = e
        else:
            break
    if cancelled is not None:
        raise cancelled
