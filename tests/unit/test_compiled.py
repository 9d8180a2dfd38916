"""``infrastructure/db/compiled.py`` leans on SQLAlchemy's private cache key: these fail loudly
if an upgrade changes what it gives. (``tests/integration/test_db_queries.py`` compares every
read through it with SQLAlchemy's own execution.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import asyncpg

from infrastructure.db.compiled import DriverStatements
from infrastructure.db.tables import comments

DIALECT = asyncpg.dialect()


def _page(since: datetime, likes: int, limit: int):
    return (
        select(comments.c.id, comments.c.published_at)
        .where(comments.c.published_at >= since, comments.c.likes > likes)
        .order_by(comments.c.published_at.desc())
        .limit(limit)
    )


def test_the_private_cache_key_still_says_what_the_statement_is_and_holds_its_values() -> None:
    one, two = _page(datetime(2024, 1, 1, tzinfo=UTC), 3, 10), _page(datetime(2025, 1, 1, tzinfo=UTC), 0, 5)
    key_one, key_two = one._generate_cache_key(), two._generate_cache_key()
    assert key_one.key == key_two.key  # the same SQL with other values
    assert [b.value for b in key_two.bindparams] == [datetime(2025, 1, 1, tzinfo=UTC), 0, 5]
    compiled = one.compile(dialect=DIALECT, cache_key=key_one)
    assert compiled.construct_params(extracted_parameters=key_two.bindparams) == {
        name: value for name, value in zip(compiled.positiontup, [datetime(2025, 1, 1, tzinfo=UTC), 0, 5])
    }


def test_statements_of_one_shape_share_their_sql_and_keep_their_own_values() -> None:
    statements = DriverStatements(DIALECT)
    one = statements.compile(_page(datetime(2024, 1, 1, tzinfo=UTC), 3, 10))
    two = statements.compile(_page(datetime(2025, 1, 1, 3, tzinfo=UTC), 0, 5))
    assert one is not None and two is not None and one.sql == two.sql and "$3" in two.sql
    assert one.arguments == (datetime(2024, 1, 1, tzinfo=UTC), 3, 10)
    assert two.arguments == (datetime(2025, 1, 1, 3, tzinfo=UTC), 0, 5)
    assert len(statements._shapes) == 1


def test_what_it_cannot_run_as_it_is_is_left_to_sqlalchemy() -> None:
    statements = DriverStatements(DIALECT)
    assert statements.compile(select(comments.c.id).where(comments.c.id.in_([1, 2, 3]))) is None  # expanded at execution
    assert statements.compile(select(comments.c.id, comments.c.id.label("id"))) is None  # two columns named alike


async def test_greenlet_spawn_still_runs_what_awaits_in_sqlalchemys_sync_code() -> None:
    # ``pooled`` hands connections back through it (the pool's sync code awaits the driver).
    import asyncio

    from sqlalchemy.util import await_only, greenlet_spawn

    assert await greenlet_spawn(lambda: await_only(asyncio.sleep(0, "returned"))) == "returned"


def test_a_kept_statement_keeps_its_cache_key_and_takes_its_named_values() -> None:
    from sqlalchemy import bindparam

    statements = DriverStatements(DIALECT)
    kept = select(comments.c.text).where(comments.c.id == bindparam("pk", type_=comments.c.id.type), comments.c.likes > 2)
    one = statements.compile(kept, kept=True, pk=7)
    two = statements.compile(kept, kept=True, pk=9)
    assert one is not None and two is not None and one.sql == two.sql
    assert one.arguments == (7, 2) and two.arguments == (9, 2)
    assert [entry[:1] for entry in statements._kept.values()] == [(kept,)]  # its key, found once
    assert len(statements._shapes) == 1
    page = select(comments.c.text).where(comments.c.likes > 3).limit(10)
    first = statements.compile(page, kept=True)
    assert first is not None and statements.compile(page, kept=True) is first  # nothing bound anew: as it was
    again = select(comments.c.text).where(comments.c.likes > 5)
    assert statements.compile(again) is not None and id(again) not in statements._kept  # not kept: not remembered


class _Proxied:
    """A pooled connection whose close waits ``wait`` seconds (0: not at all) in the pool's
    sync code, as a close that must talk to the server does."""

    def __init__(self, wait: float, fail: bool = False) -> None:
        self.wait, self.fail, self.closed = wait, fail, False

    def close(self) -> None:
        from sqlalchemy.util import await_only

        if self.wait:
            await_only(asyncio.sleep(self.wait))
        if self.fail:
            raise RuntimeError("close failed")
        self.closed = True


async def test_a_close_that_waits_for_nothing_is_done_at_once_without_a_task(monkeypatch) -> None:
    from infrastructure.db import compiled

    async def no_task(work) -> None:
        raise AssertionError("a task for a close that waits for nothing")

    monkeypatch.setattr(compiled, "_run_to_completion", no_task)
    proxied = _Proxied(0)
    await compiled._returned(proxied)
    assert proxied.closed
    with pytest.raises(RuntimeError, match="close failed"):
        await compiled._returned(_Proxied(0, fail=True))


async def test_a_close_that_waits_runs_to_its_end_though_the_caller_is_cancelled() -> None:
    from infrastructure.db import compiled

    proxied = _Proxied(0.05)
    await compiled._returned(proxied)  # waited for, then done
    assert proxied.closed
    proxied = _Proxied(0.1)
    caller = asyncio.ensure_future(compiled._returned(proxied))
    await asyncio.sleep(0.02)
    caller.cancel()  # a request timeout while the connection goes back
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert proxied.closed  # the close was not interrupted: it ended before the caller saw its cancellation
    with pytest.raises(RuntimeError, match="close failed"):
        await compiled._returned(_Proxied(0.01, fail=True))
