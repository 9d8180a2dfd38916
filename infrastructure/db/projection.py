"""Projected reads on PostgreSQL: the database writes each item of a page as the JSON the API
answers with (``domain.queries.Projection``), so a page of 100 comments with their community,
post, author and matches is one statement and one JSON text per row, rather than five
statements and some thousands of Python objects.

Which column a field is read from, which rule computes a field and how views relate is what
``domain/declaration.py`` declares, the one declaration the read model's row converters and
the API's types are made from too, so they cannot drift apart. What a projection writes must be
exactly what the objects those converters make would be answered with; what cannot be written
exactly is refused (``Unprojectable``) rather than approximated:

- a non-null member read from a nullable column or from a relation that may find nothing;
- an ``INT32`` member of a BIGINT column is cast to ``integer``, so a value past 32 bits fails
  the whole statement, as it fails the normal executor (whose error the caller then answers);
- a computed field (``declaration.Rule``) is its rule in SQL: a text made of literals and
  fields, the first branch whose condition holds; a field a branch reads must not be null
  there (a nullable one only under its own ``NON_EMPTY`` test), as Python would write "None";
- ``TIME`` and ``GLOBAL_ID`` are SQL spellings of ``datetime.isoformat`` (of an aware UTC
  time) and of ``graphql_api.ids.global_id``; ``tests/integration/test_projection.py``
  compares them with the Python functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, Column, ColumnElement, Integer, String, Table, Text, literal_column

from domain import declaration
from domain.bounded import BoundedDict
from domain.declaration import Spelling
from domain.queries import Member, Projection
from infrastructure.db.tables import UtcDateTime


class Unprojectable(ValueError):
    """The projection asks for something a projected read cannot write exactly. ``kind`` is one
    of a few words, what ``/metrics`` counts refusals by (``vkcp_read_plan_fallbacks_total``)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


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

    def __init__(self, views: dict[str, declaration.View], tables: dict[str, Table]) -> None:
        self.views, self.tables = views, tables
        # Projections are few: one per distinct selection.
        self._made: BoundedDict[Projection, ColumnElement | Unprojectable] = BoundedDict(256)

    def node(self, projection: Projection) -> ColumnElement:
        """The JSON text of ``projection`` for the row of its view's table in the enclosing
        statement (which reads that table unaliased). Raises ``Unprojectable`` for what
        cannot be written exactly."""
        if projection not in self._made:
            try:
                view = self._view(projection.view)
                text = self._object(projection, f'"{self._table(view).name}"', iter(range(1, 1_000)))
                self._made[projection] = literal_column(text, Text)
            except Unprojectable as e:
                self._made[projection] = e.with_traceback(None)  # kept: its kind, not its frames
                raise
        found = self._made[projection]
        if isinstance(found, Unprojectable):
            raise Unprojectable(found.kind, f"refused before ({found})")
        return found

    def _view(self, name: str) -> declaration.View:
        view = self.views.get(name)
        if view is None:
            raise Unprojectable("no_view", repr(name))
        return view

    def _table(self, view: declaration.View) -> Table:
        table = self.tables.get(view.table)
        if table is None:
            raise Unprojectable("no_view", repr(view.name))
        return table

    def _column(self, view: declaration.View, name: str) -> Column:
        """The column of ``view``'s stored field ``name``."""
        found = view.field(name)
        if found is None or not found.stored:
            raise Unprojectable("not_a_column", f"{view.name}.{name}")
        return self._table(view).c[found.column]

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

    def _member(
        self, view_name: str, view: declaration.View, member: Member, table: str, aliases: Iterator[int]
    ) -> str:
        if member.constant is not None:
            return f"""'"{_name(member.constant)}"'"""
        if member.related is not None:
            return self._related(view_name, member, table, aliases)
        found = view.field(member.attribute or "")
        if found is None:
            raise Unprojectable("not_a_column", f"{view_name}.{member.attribute}")
        if found.rule is not None:
            if member.spelling is not Spelling.TEXT or found.spelling is not Spelling.TEXT:
                raise Unprojectable("spelling", f"{member.spelling} of {view_name}.{member.attribute}")
            return f"to_json({self._rule(view, found.rule, table)})::text"
        column = self._column(view, found.name)
        if member.non_null and column.nullable:
            raise Unprojectable("nullable", f"{view_name}.{member.attribute} may be null")
        sql = f'{table}."{_name(column.name)}"'
        if member.spelling is Spelling.TEXT and isinstance(column.type, String):  # Text is a String
            # PostgreSQL escapes a string as orjson does: \" \\ \b \f \n \r \t, other
            # control characters as \u00xx, everything else (DEL, non-ASCII) as it is.
            written = f"to_json({sql})::text"
        elif member.spelling is Spelling.ENUM and isinstance(column.type, String):
            written = f"to_json({sql})::text"  # the member's name, as the enum answers it
        elif member.spelling is Spelling.TEXT_LIST and isinstance(column.type, JSON):
            # Each element as to_json writes a text (as orjson does), compact, in the array's order.
            elements = f"SELECT x.e FROM jsonb_array_elements_text({sql}) WITH ORDINALITY AS x(e, n) ORDER BY x.n"
            written = f"array_to_json(ARRAY({elements}))::text"
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

    def _rule(self, view: declaration.View, rule: declaration.Rule, table: str) -> str:
        """``declaration.evaluate`` in SQL: never null where Python writes a text."""
        cases = []
        for when, parts in rule.branches:
            texts = []
            for part in parts:
                if isinstance(part, str):
                    texts.append(_literal(part))
                    continue
                column = self._column(view, part.name)
                guarded = when is not None and when.test == declaration.NON_EMPTY and when.name == part.name
                if column.nullable and not guarded:
                    raise Unprojectable("nullable", f"{view.name}.{part.name} in a rule")
                sql = f'{table}."{_name(column.name)}"'
                if isinstance(column.type, Integer):
                    texts.append(f"(-{sql})::text" if part.negate else f"{sql}::text")
                elif isinstance(column.type, String) and not part.negate:
                    texts.append(sql)
                else:
                    raise Unprojectable("spelling", f"{view.name}.{part.name} in a rule")
            text = "(" + " || ".join(texts or ["''"]) + ")"
            if when is None:
                cases.append(f"ELSE {text}")
                break
            column = self._column(view, when.name)
            sql = f'{table}."{_name(column.name)}"'
            if when.test == declaration.NON_EMPTY and isinstance(column.type, String):
                cases.append(f"WHEN coalesce({sql}, '') <> '' THEN {text}")
            elif when.test == declaration.POSITIVE and isinstance(column.type, Integer) and not column.nullable:
                cases.append(f"WHEN {sql} > 0 THEN {text}")
            else:
                raise Unprojectable("rule", f"{when.test} of {view.name}.{when.name}")
        if not cases or not cases[-1].startswith("ELSE"):
            raise Unprojectable("rule", f"{view.name}: a rule that may make nothing")
        return "(CASE " + " ".join(cases) + " END)" if len(cases) > 1 else cases[0].removeprefix("ELSE ")

    def _related(self, view_name: str, member: Member, table: str, aliases: Iterator[int]) -> str:
        view = self._view(view_name)
        relation = view.relation(member.related or "")
        if relation is None or not relation.view or member.projection is None \
                or member.projection.view != relation.view:
            raise Unprojectable("not_a_relation", f"{view_name}.{member.related}")
        related = self._table(self._view(relation.view))
        alias = f"projected_{next(aliases)}"
        found = self._object(member.projection, alias, aliases)
        joined = " AND ".join(
            f'{alias}."{_name(column)}" = {table}."{_name(self._column(view, key).name)}"'
            for column, key in zip(relation.columns, relation.keys, strict=True)
        )
        source = f'FROM "{related.name}" AS {alias} WHERE {joined}'
        if relation.many:
            order = ", ".join(f'{alias}."{_name(name)}"' for name in relation.order_by)
            return f"('[' || coalesce((SELECT string_agg({found}, ',' ORDER BY {order}) {source}), '') || ']')"
        if member.non_null:
            raise Unprojectable("may_find_nothing", f"{view_name}.{member.related}")
        return f"coalesce((SELECT {found} {source}), 'null')"


def _literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
