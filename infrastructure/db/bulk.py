"""Bulk writes and ``IN`` lists whose SQL text does not depend on how many rows or values they carry.

On PostgreSQL every distinct statement text is a prepared statement, and SQLAlchemy's asyncpg
adapter keeps the last 100 (pruned at 150) of each pooled connection, with their text and
parameter codecs in this process and their plans in the server. A multi-row ``INSERT ...
VALUES (...), (...)`` (SQLAlchemy's "insertmanyvalues" for a list of rows) is a new text for
every row count: the collector's batches of varying sizes filled each connection's cache with
statements of up to 13,000 parameters and 100 KB of SQL, about 25 MB a connection, and the
worker's RSS grew with the comments it stored (issue #10).

So PostgreSQL gets one array per column, ``INSERT INTO t (a, b) SELECT * FROM unnest(CAST(:a
AS T[]), CAST(:b AS U[]))``: one statement for 1 row or 10,000, and no bind-parameter limit to
page around. ``IN`` becomes ``= ANY(:array)`` for the same reason. SQLite keeps the plain forms:
nothing there is prepared per row count for long.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Table, any_, bindparam, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite


def in_values(dialect: str, column, values: Sequence[int]) -> ColumnElement[bool]:
    """``column IN values`` for integer columns: on PostgreSQL ``= ANY(:values)``, one array
    parameter and so one prepared statement whatever the length (``IN`` renders a parameter
    per value, a new statement per length); on SQLite an expanded ``IN (...)``."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(BigInteger)))
    return column.in_(values)


def one_of(dialect: str, column, values: Sequence[int]) -> ColumnElement[bool]:
    """``in_values``, but one value is ``column = :value``: a filter's one community (the usual
    case) then reads the (group_id, published_at, id) index in its order. PostgreSQL cannot walk
    an index in order for ``= ANY(:array)``, whose length it does not know when it plans: a page
    of one community newest first, as a prepared statement, read and sorted its whole
    community, or walked every comment's time index (74,000 buffers a page at 90,000 comments,
    measured with pg_stat_statements under bench/soak.py)."""
    if len(values) == 1:
        return column == values[0]
    return in_values(dialect, column, values)


def bulk_insert(dialect: str, table: Table, rows: Sequence[Mapping[str, Any]]):
    """The dialect's INSERT of ``rows`` (it knows ON CONFLICT and RETURNING) and the parameters
    to execute it with: ``session.execute(stmt, params)``. At least one row, every row with the
    same keys; rows are inserted in their order (callers sort them to lock in one global order)."""
    if dialect != "postgresql":
        return sqlite.insert(table), list(rows)
    names = list(rows[0])
    arrays = []
    for name in names:
        array_type = postgresql.ARRAY(table.c[name].type)
        # The cast names the element type, which unnest() cannot infer from a parameter.
        arrays.append(cast(bindparam(f"{name}_values", type_=array_type), array_type))
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="source")
    stmt = postgresql.insert(table).from_select(names, select(*source.c))
    return stmt, {f"{name}_values": [row[name] for row in rows] for name in names}
