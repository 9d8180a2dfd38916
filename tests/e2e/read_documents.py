"""Random GraphQL documents over the read schema, for the differential test of the compiled read
plan (``tests/e2e/test_read_plan.py``, ``bench/plan_diff.py``).

A document asks one to three root fields (mostly the ones the plan answers; sometimes one it
does not, so a mixed operation falls back) with arguments as literals or variables, some of
them wrong (a page size out of range, a cursor that is no cursor, ``first`` with ``last``, an id
of another type). Selections are drawn from the schema itself, so every field of every type
reachable from those roots turns up: with aliases, repeated fields (merged), ``__typename``,
inline fragments with and without a type condition, named fragments, and ``@skip`` /
``@include`` by literal or by variable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema, get_named_type, is_leaf_type, is_non_null_type, is_object_type

ROOTS = ("comments", "comments", "comments", "comment", "groups", "group", "keywords", "keyword")
OTHER_ROOTS = ("tasks(first: 2) { edges { node { id kind state } } }", "task(id: \"1\") { id }", "stats { totals { comments } }")
MAX_DEPTH = 6  # object levels below a root (the schema's limit counts from the operation)


@dataclass
class Known:
    """Values from the database the documents pick from: ids and cursors that exist."""

    comment_ids: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    keyword_ids: list[str] = field(default_factory=list)
    post_ids: list[str] = field(default_factory=list)
    author_ids: list[int] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)  # of comments, newest first
    id_cursors: list[str] = field(default_factory=list)  # of keywords (groups page by id too)
    words: list[str] = field(default_factory=list)


class DocumentGenerator:
    def __init__(self, schema: GraphQLSchema, known: Known, seed: int) -> None:
        self.schema = schema
        self.known = known
        self.random = random.Random(seed)

    def again(self, variables: dict[str, Any]) -> dict[str, Any]:
        """Other values for a document's Boolean variables (its @skip / @include): the same
        document text, so the same parsed node and another compiled plan."""
        return {k: self.random.random() < 0.5 if isinstance(v, bool) else v for k, v in variables.items()}

    def document(self) -> tuple[str, dict[str, Any]]:
        """A query and its variables."""
        self.variables: dict[str, Any] = {}
        self.definitions: list[str] = []
        self.fragments: list[str] = []
        self.counter = 0
        r = self.random
        fields = []
        for index in range(r.choice((1, 1, 1, 2, 3))):
            if r.random() < 0.05:
                fields.append(r.choice(OTHER_ROOTS))
                continue
            name = r.choice(ROOTS)
            alias = f"r{index}: " if index or r.random() < 0.2 else ""
            fields.append(alias + name + self._root_arguments(name) + " " + self._selection(self._root_type(name), 1))
        body = "{ " + " ".join(fields) + " }"
        header = "query Q" + (f"({', '.join(self.definitions)})" if self.definitions else "")
        return " ".join([header, body, *self.fragments]), dict(self.variables)

    # --- arguments ---

    def _variable(self, type_: str, value: Any) -> str:
        self.counter += 1
        name = f"v{self.counter}"
        self.definitions.append(f"${name}: {type_}")
        self.variables[name] = value
        return f"${name}"

    def _value(self, type_: str, value: Any, literal: str) -> str:
        return self._variable(type_, value) if self.random.random() < 0.5 else literal

    def _root_arguments(self, name: str) -> str:
        r, known = self.random, self.known
        if name in ("comment", "group", "keyword"):
            pool = {"comment": known.comment_ids, "group": known.group_ids, "keyword": known.keyword_ids}[name]
            choice = r.random()
            if choice < 0.7 and pool:
                id_ = r.choice(pool)
            elif choice < 0.8:
                id_ = r.choice(known.group_ids + known.comment_ids)  # perhaps another type's: an error
            elif choice < 0.9:
                id_ = str(r.randint(1, 40))  # a row id
            else:
                id_ = r.choice(("nope", "", "Q29tbWVudDo5OTk5OTk="))
            return f"(id: {self._value('ID!', id_, _string(id_))})"
        arguments = []
        page = r.random()
        if page < 0.45:
            first = r.choice((1, 2, 3, 5, 10, 100))
            arguments.append(f"first: {self._value('Int', first, str(first))}")
        elif page < 0.65:
            last = r.choice((1, 2, 5))
            arguments.append(f"last: {self._value('Int', last, str(last))}")
        elif page < 0.7:
            arguments.append(r.choice(("first: 0", "first: 101", "first: 2, last: 2", "last: -1")))
        cursors = known.cursors if name == "comments" else known.id_cursors
        if cursors and r.random() < 0.3:
            cursor = r.choice(cursors) if r.random() < 0.9 else "bm90IGEgY3Vyc29y"
            arguments.append(f"{r.choice(('after', 'before'))}: {self._value('String', cursor, _string(cursor))}")
        if name == "comments":
            if r.random() < 0.4:
                comment_filter = self._comment_filter()
                arguments.append(f"filter: {self._value('CommentFilter', comment_filter, _literal(comment_filter))}")
            if r.random() < 0.15:  # a cursor of the default order does not fit another: mostly refused
                order = {"field": r.choice(("PUBLISHED_AT", "LIKES", "MATCHES_COUNT")), "direction": r.choice(("ASC", "DESC"))}
                arguments.append(f"orderBy: {self._value('CommentOrder', order, _literal(order, enums=True))}")
        elif name == "groups" and r.random() < 0.3:
            active = r.random() < 0.5
            arguments.append(f"active: {self._value('Boolean', active, _literal(active))}")
        elif name == "keywords" and r.random() < 0.3:
            flt: dict[str, Any] = {}
            if r.random() < 0.5:
                flt["active"] = r.random() < 0.7
            if known.words and r.random() < 0.5:
                flt["text"] = r.choice(known.words)[:3]
            arguments.append(f"filter: {self._value('KeywordFilter', flt, _literal(flt))}")
        return f"({', '.join(arguments)})" if arguments else ""

    def _comment_filter(self) -> dict[str, Any]:
        r, known = self.random, self.known
        flt: dict[str, Any] = {}
        names = ("matched", "viewed", "archived", "deleted", "edited", "groupIds", "keywordIds", "text", "authorIds", "since",
                 "postIds")
        for name in r.sample(names, r.randint(1, 3)):
            if name in ("matched", "viewed", "archived", "deleted", "edited"):
                flt[name] = r.random() < 0.5
            elif name == "groupIds":
                flt[name] = r.sample(known.group_ids, min(len(known.group_ids), r.randint(0, 2)))
            elif name == "keywordIds":
                flt[name] = r.sample(known.keyword_ids, min(len(known.keyword_ids), r.randint(1, 2)))
            elif name == "postIds":
                flt[name] = r.sample(known.post_ids, min(len(known.post_ids), r.randint(1, 3)))
            elif name == "authorIds":
                flt[name] = r.sample(known.author_ids, min(len(known.author_ids), r.randint(1, 3)))
            elif name == "text":
                flt[name] = r.choice(known.words)[:4] if known.words else "кот"
            else:
                flt[name] = r.choice(("2020-01-01T00:00:00Z", "2999-01-01T00:00:00+03:00", "yesterday"))
        return flt

    # --- selections ---

    def _root_type(self, name: str) -> GraphQLObjectType:
        return get_named_type(self.schema.query_type.fields[name].type)  # type: ignore[union-attr, return-value]

    def _selection(self, type_: GraphQLObjectType, depth: int) -> str:
        r = self.random
        candidates = [
            (name, f) for name, f in type_.fields.items()
            if not any(is_non_null_type(a.type) and a.default_value is None for a in f.args.values())
        ]
        objects = [(n, f) for n, f in candidates if not is_leaf_type(get_named_type(f.type))]
        leaves = [(n, f) for n, f in candidates if is_leaf_type(get_named_type(f.type))]
        picked = []
        for _ in range(r.randint(1, 4)):
            if leaves:
                picked.append(r.choice(leaves))
        if objects and depth < MAX_DEPTH:
            for _ in range(r.choice((0, 1, 1, 2, 2, 3))):
                picked.append(r.choice(objects))
        parts = []
        for name, f in picked:
            named = get_named_type(f.type)
            text = name
            if r.random() < 0.15:
                self.counter += 1
                text = f"a{self.counter}: {name}"
            text += self._directive()
            if is_object_type(named):
                text += " " + self._selection(named, depth + 1)
            elif not is_leaf_type(named):
                continue  # interfaces and unions: not below these roots
            parts.append(text)
        if r.random() < 0.2:
            parts.append("__typename")
        if r.random() < 0.15 and parts:
            parts.append(r.choice(parts))  # the same field again: merged
        if r.random() < 0.25 and len(parts) > 1:
            cut = r.randint(1, len(parts) - 1)
            inner = " ".join(parts[cut:])
            kind = r.random()
            if kind < 0.35:
                parts[cut:] = [f"... on {type_.name}{self._directive()} {{ {inner} }}"]
            elif kind < 0.6:
                parts[cut:] = [f"...{self._directive()} {{ {inner} }}"]
            else:
                self.counter += 1
                fragment = f"F{self.counter}"
                self.fragments.append(f"fragment {fragment} on {type_.name} {{ {inner} }}")
                parts[cut:] = [f"...{fragment}{self._directive()}"]
        return "{ " + " ".join(parts) + " }"

    def _directive(self) -> str:
        r = self.random
        if r.random() > 0.12:
            return ""
        name = r.choice(("skip", "include"))
        value = r.random() < 0.5
        condition = self._variable("Boolean!", value) if r.random() < 0.6 else _literal(value)
        return f" @{name}(if: {condition})"


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: Any, *, enums: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value if enums else _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, enums=enums) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_literal(v, enums=enums)}" for k, v in value.items()) + "}"
    raise TypeError(value)
