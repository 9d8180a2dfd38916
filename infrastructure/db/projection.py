"""Projected reads on PostgreSQL: the database writes each item of a page as the JSON the API
answers with (``domain.queries.Projection``), so a page of 100 comments with their community,
post, author and matches is one statement and one JSON text per row, rather than five
statements and some thousands of Python objects.

Which column an attribute of a view is read from is what the read model's own row converters
say (``columns_of``: each converter is run once on a row whose every column reads as its own
name), so the two cannot drift apart. What a projection writes must be exactly what the
objects the converters make would be answered with; what cannot be written exactly is refused
(``Unprojectable``) rather than approximated:

- a non-null member read from a nullable column or from a relation that may find nothing;
- an ``INT32`` member of a BIGINT column is cast to ``integer``, so a value past 32 bits fails
  the whole statement, as it fails the normal executor (whose error the caller then answers);
- ``TIME`` and ``GLOBAL_ID`` are SQL spellings of ``datetime.isoformat`` (of an aware UTC
  time) and of ``graphql_api.ids.global_id``; ``tests/integration/test_projection.py``
  compares them with the Python functions.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Integer, String, Table, Text, literal_column

from domain.bounded import BoundedDict
from domain.queries import Member, Projection, Spelling
from infrastructure.db.tables import UtcDateTime


class Unprojectable(ValueError):
    """The projection asks for something a projected read cannot write exactly. ``kind`` is one
    of a few words, what ``/metrics`` counts refusals by (``vkcp_read_plan_fallbacks_total``)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class _Column:
    name: str


class _Recorder:
    """A row whose every column reads as its own name."""

    def __getitem__(self, name: str) -> _Column:
        return _Column(name)


def columns_of(convert: Callable[[Any], Any]) -> dict[str, str]:
    """attribute -> column, of the view ``convert`` makes of a row (attributes it computes
    rather than copies from one column are left out)."""
    made = convert(_Recorder())
    found = {}
    for f in dataclasses.fields(made):
        value = getattr(made, f.name)
        if isinstance(value, _Column):
            found[f.name] = value.name
    return found


@dataclass(frozen=True)
class View:
    table: Table
    columns: dict[str, str]  # attribute -> column name


@dataclass(frozen=True)
class Relation:
    """A related view: its rows whose ``column`` equals the parent's ``parent_column``; a list
    (``order_by``: columns of the related table) or at most one."""

    view: str
    column: str
    parent_column: str
    many: bool = False
    order_by: tuple[str, ...] = ()


_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")  # GraphQL names and ours: safe inside SQL text


def _name(value: str) -> str:
    if _NAME.fullmatch(value) is None:
        raise Unprojectable("not_a_name", repr(value))
    return value


def _time(column: str) -> str:
    """``datetime.isoformat`` of the aware UTC time the driver reads (microseconds only when
    not zero; infinities read as ``datetime.max`` and ``datetime.min``). NULL stays NULL."""
    utc = f"timezone('UTC', {column})"
    return (
        f"(CASE WHEN isfinite({column}) THEN to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" || coalesce(nullif(to_char({utc}, '.US'), '.000000'), '') || '+00:00'"
        f" WHEN {column} = 'infinity' THEN '{datetime.max.replace(tzinfo=UTC).isoformat()}'"
        f" WHEN {column} = '-infinity' THEN '{datetime.min.replace(tzinfo=UTC).isoformat()}' END)"
    )


def _global_id(kind: str, column: str) -> str:
    """``graphql_api.ids.global_id``: base64 of "<kind>:<id>" (ids are far shorter than the 57
    bytes after which PostgreSQL's base64 breaks lines)."""
    return f"encode(convert_to('{_name(kind)}:' || {column}::text, 'UTF8'), 'base64')"


class Projector:
    """Writes projections over the views and relations it is given, as SQL text: each is
    written once, and the statement around it hashes one string rather than walking a tree."""

    def __init__(self, views: dict[str, View], relations: dict[tuple[str, str], Relation]) -> None:
        self.views, self.relations = views, relations
        # Projections are few: one per distinct selection.
        self._made: BoundedDict[Projection, ColumnElement | Unprojectable] = BoundedDict(256)

    def node(self, projection: Projection) -> ColumnElement:
        """The JSON text of ``projection`` for the row of its view's table in the enclosing
        statement (which reads that table unaliased). Raises ``Unprojectable`` for what
        cannot be written exactly."""
        if projection not in self._made:
            try:
                view = self._view(projection.view)
                text = self._object(projection, f'"{view.table.name}"', iter(range(1, 1_000)))
                self._made[projection] = literal_column(text, Text)
            except Unprojectable as e:
                self._made[projection] = e.with_traceback(None)  # kept: its kind, not its frames
                raise
        found = self._made[projection]
        if isinstance(found, Unprojectable):
            raise Unprojectable(found.kind, f"refused before ({found})")
        return found

    def _view(self, name: str) -> View:
        view = self.views.get(name)
        if view is None:
            raise Unprojectable("no_view", repr(name))
        return view

    def _object(self, projection: Projection, table: str, aliases: Iterator[int]) -> str:
        """The object's JSON text, compact as orjson writes it: keys in order, each value the
        never-null JSON text of its member."""
        view = self._view(projection.view)
        if not projection.members:
            return "'{}'"
        parts = []
        for index, member in enumerate(projection.members):
            parts.append(f"""'{"{" if index == 0 else ","}"{_name(member.key)}":'""")
            parts.append(self._member(projection.view, view, member, table, aliases))
        parts.append("'}'")
        return "(" + " || ".join(parts) + ")"

    def _member(self, view_name: str, view: View, member: Member, table: str, aliases: Iterator[int]) -> str:
        if member.constant is not None:
            return f"""'"{_name(member.constant)}"'"""
        if member.related is not None:
            return self._related(view_name, member, table, aliases)
        column_name = view.columns.get(member.attribute or "")
        if column_name is None:
            raise Unprojectable("not_a_column", f"{view_name}.{member.attribute}")
        column = view.table.c[column_name]
        if member.non_null and column.nullable:
            raise Unprojectable("nullable", f"{view_name}.{member.attribute} may be null")
        sql = f'{table}."{_name(column_name)}"'
        if member.spelling is Spelling.TEXT and isinstance(column.type, String):  # Text is a String
            # PostgreSQL escapes a string as orjson does: \" \\ \b \f \n \r \t, other
            # control characters as \u00xx, everything else (DEL, non-ASCII) as it is.
            written = f"to_json({sql})::text"
        elif member.spelling is Spelling.BOOLEAN and isinstance(column.type, Boolean):
            written = f"{sql}::text"  # true, false
        elif member.spelling is Spelling.INT32 and isinstance(column.type, Integer):  # BigInteger is one
            # Past 32 bits the cast fails the statement, as the Int scalar fails the field.
            written = f"{sql}::integer::text"
        elif member.spelling is Spelling.TIME and isinstance(column.type, UtcDateTime):
            written = f"""'"' || {_time(sql)} || '"'"""  # nothing in it to escape
        elif member.spelling is Spelling.GLOBAL_ID and member.kind is not None and isinstance(column.type, Integer):
            written = f"""'"' || {_global_id(member.kind, sql)} || '"'"""
        else:
            raise Unprojectable("spelling", f"{member.spelling} of {view_name}.{member.attribute}")
        return f"coalesce({written}, 'null')" if column.nullable else f"({written})"

    def _related(self, view_name: str, member: Member, table: str, aliases: Iterator[int]) -> str:
        relation = self.relations.get((view_name, member.related or ""))
        if relation is None or member.projection is None or member.projection.view != relation.view:
            raise Unprojectable("not_a_relation", f"{view_name}.{member.related}")
        related = self._view(relation.view).table
        alias = f"projected_{next(aliases)}"
        found = self._object(member.projection, alias, aliases)
        source = (
            f'FROM "{related.name}" AS {alias}'
            f' WHERE {alias}."{_name(relation.column)}" = {table}."{_name(relation.parent_column)}"'
        )
        if relation.many:
            order = ", ".join(f'{alias}."{_name(name)}"' for name in relation.order_by)
            return f"('[' || coalesce((SELECT string_agg({found}, ',' ORDER BY {order}) {source}), '') || ']')"
        if member.non_null:
            raise Unprojectable("may_find_nothing", f"{view_name}.{member.related}")
        return f"coalesce((SELECT {found} {source}), 'null')"
