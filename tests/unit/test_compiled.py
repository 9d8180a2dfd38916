"""``infrastructure/db/compiled.py`` leans on SQLAlchemy's private cache key: these fail loudly
if an upgrade changes what it gives. (``tests/integration/test_db_queries.py`` compares every
read through it with SQLAlchemy's own execution.)"""

from __future__ import annotations

from datetime import UTC, datetime

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
