"""The compiled read plan: query operations answered a level at a time, not a field at a time.

A page of 100 comments with their group, post, author and matches is about 2,600 fields, and
graphql-core with Strawberry spends most of a request resolving them one by one. Here a
validated query is compiled once — per document, operation and the values of the variables
its ``@skip`` / ``@include`` read — into the selections it asks of each object type. Running
it reads each root field through the functions its resolver calls (each area's ``*_connection``
and ``relay.by_id``: same arguments, checks, filters and cursors), then every relation of a level
with one batched ``ReadModel`` call, and writes every value with the scalar the schema serializes
it with.

What each field and relation means (a column, a computed rule, the keys a relation joins on)
is ``domain/declaration.py``'s: the relations the plan reads level by level and the projections
it makes come from there, as the types' resolvers and the read model's statements do.

A ``comments`` connection whose nodes ask only for what PostgreSQL can write goes further: the
node selection becomes a ``Projection`` (``_projection``: each field as declared), and the read
model writes each node's JSON in the page's own statement (``infrastructure/db/projection.py``):
one statement, no objects per field. ``node(id:)`` (Relay's refetch) completes the object with
the selection of its own type.

The plan answers only what it answers exactly as the normal executor would. Whatever it does
not know makes the whole operation run on the normal executor, unchanged: at compile time a
field it has no rule for (an argument below the root, a resolver that wants ``info``, a
permission, a union, introspection, ``@defer``); at run time anything unexpected (an
exception, a null where the schema forbids one, a value a scalar refuses), counted in
``/metrics`` by why (``UNKNOWN_SHAPE`` and the others below). So every error response still
comes from the normal executor but one: a database outage (``Unavailable``), which the plan
answers as the normal executor does, as running the query again would meet it a second time.
Parsing, validation, limits, auth, error masking and the request log happen around execution
and are the same either way.
``tests/e2e/test_read_plan.py`` and ``bench/plan_diff.py`` compare the two on random documents.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from functools import cache
from operator import attrgetter
from typing import Any

import orjson
import strawberry
from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    ExecutionResult,
    FieldNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_named_type,
    is_leaf_type,
    located_error,
)
from graphql.execution.values import get_argument_values

from domain import declaration
from domain.bounded import BoundedDict
from domain.declaration import Spelling
from domain.errors import InvalidInput, Unavailable
from domain.queries import Member, Projection, ReadModel
from graphql_api import declared
from graphql_api.comments import Comment, comments_connection
from graphql_api.graphql_core_compat import collect_fields, collect_subfields
from graphql_api.groups import Group, groups_connection
from graphql_api.ids import NodeType, decode_id, find_id
from graphql_api.keywords import Keyword, keywords_connection
from graphql_api.relay import by_id
from graphql_api.strawberry_compat import python_arguments, reads_attribute, strawberry_field

PLAN_CACHE_SIZE = 512  # compiled plans kept (documents × operations × @skip/@include values)
ARGUMENTS_KEPT = 64  # per root field of a plan: its arguments converted, by their values


# Why a query operation did not run the fastest way the plan knows, as ``/metrics`` counts it
# (``vkcp_read_plan_fallbacks_total{reason, kind}``; ``graphql_api.executor`` reports them):
UNKNOWN_SHAPE = "unknown_shape"  # compiling met what it has no rule for: the normal executor ran it
HANDED_BACK = "handed_back"  # running met a value it cannot answer exactly: the normal executor ran it
PROJECTION_REFUSED = "projection_refused"  # a comments page read as objects, not written by the database
ERROR = "error"  # running raised (a bad argument, a bug): the normal executor ran it and reports it
# An outage (``Unavailable``) is none of these: it is answered at once, by the plan.


class Unsupported(Exception):
    """The document asks for something the plan has no rule for: the normal executor runs it.
    ``kind`` is one of a few words (a metric's label: never a field's name)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


# --- what the plan knows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    """A field whose resolver loads by key through a dataloader: here one ``ReadModel`` call
    (``load``, aligned with its keys) per level for every object's key; ``convert`` makes the
    value the resolver returns of what was found (never called with None)."""

    load: str
    key: Callable[[Any], Any]
    convert: Callable[[Any], Any]
    # ``load`` returns (found, {key: value}) with the values of the relation loaded by ``fills``
    # for what it found, read in the same statement: one round trip less.
    fills: str | None = None
    joined: Relation | None = None  # the one to use when the selection asks for what it ``fills``


@cache
def _relation(type_name: str, python_name: str) -> Relation | None:
    """How the resolver of a declared relation (``domain/declaration.py``; ``declared.py`` makes
    the resolver) loads it; None for a field that is not one."""
    view = declaration.BY_TYPE.get(type_name)
    declared_relation = view.relation(python_name) if view is not None else None
    if declared_relation is None:
        return None
    keys = declared_relation.keys
    get = attrgetter(*keys)
    key: Callable[[Any], Any] = get
    if len(keys) > 1:

        def key(value: Any) -> Any:
            found = get(value)
            return None if None in found else found

    load = declared_relation.load
    convert = declared.convert_of(declared_relation)
    joined = _JOINED.get(load)
    if joined is not None:
        return Relation(load, key, convert, joined=Relation(joined[0], key, convert, fills=joined[1]))
    return Relation(load, key, convert)


# A look-up -> the one that also reads, in the same statement, what the look-up named second
# loads for what it found (a page's matches with their keywords: one round trip less).
_JOINED = {"matches_by_comment_ids": ("matches_and_keywords_by_comment_ids", "keywords_by_ids")}


def _one(by_ids: Callable[[list[int]], Awaitable[list[Any]]]) -> Callable[[int], Awaitable[Any]]:
    async def load(pk: int) -> Any:
        return (await by_ids([pk]))[0]

    return load


async def _comments(read_model: ReadModel, **arguments: Any) -> Any:
    _, found = await comments_connection(read_model, **arguments)
    return found


# --- projected reads: the database writes a page's nodes -------------------------------------

# A GraphQL scalar -> how a projected read writes a declared field answered with it.
_SPELLINGS: dict[str, Spelling] = {
    GraphQLString.name: Spelling.TEXT, GraphQLBoolean.name: Spelling.BOOLEAN, GraphQLInt.name: Spelling.INT32,
    GraphQLFloat.name: Spelling.FLOAT, "DateTime": Spelling.TIME,  # scalars.DateTime
}


def _projection(selection: _Selection) -> Projection:
    """What a projected read must write for ``selection``, exactly as the plan would complete
    the objects of its type: each field as ``domain/declaration.py`` declares it (a column,
    a rule, a relation); ``Unsupported`` for anything else (a field not declared, an argument,
    a list of scalars, a relation that is not a view's, a scalar the declaration spells otherwise)."""
    view = declaration.BY_TYPE.get(selection.type_name)
    if view is None:
        raise Unsupported("type", selection.type_name)
    members = []
    for key, field in zip(selection.keys, selection.fields):
        if field.kind == _TYPENAME:
            members.append(Member(key, constant=selection.type_name))
            continue
        non_null = isinstance(field.type, GraphQLNonNull)
        if field.kind == _RELATION:
            related = view.relation(field.python_name)
            if related is None or not related.view or field.selection is None:
                raise Unsupported("relation", f"{selection.type_name}.{field.name}")
            projection = _projection(field.selection)
            members.append(Member(key, related=related.name, projection=projection, non_null=non_null))
            continue
        if not field.leaf:  # a list of scalars: written only as a declared list of texts
            members.append(_list_member(view, key, field, non_null))
            continue
        members.append(_member(view, key, field, non_null))
    return Projection(view.name, tuple(members))


def _member(view: declaration.View, key: str, field: _Field, non_null: bool) -> Member:
    named = get_named_type(field.type)
    assert named is not None  # only __typename has no type
    if field.python_name == "id" and named is GraphQLID:
        pk = view.field("pk")
        if pk is None:
            raise Unsupported("id", f"{field.name} of {view.type_name}")
        return Member(key, attribute=pk.name, spelling=Spelling.GLOBAL_ID, kind=view.type_name, non_null=non_null)
    declared = view.field(field.python_name)
    if declared is None or not declared.exposed:
        raise Unsupported("computed", f"{field.name} of {view.type_name}")
    spelling = _SPELLINGS.get(named.name)
    if isinstance(named, GraphQLEnumType) and declared.spelling is Spelling.ENUM and named.name == declared.enum:
        spelling = Spelling.ENUM  # stored as the member's name, which is what the enum answers
    if spelling is None or spelling is not declared.spelling or spelling is Spelling.FLOAT:
        raise Unsupported("scalar", f"{field.name} of {view.type_name}")
    return Member(key, attribute=declared.name, spelling=spelling, non_null=non_null)


def _list_member(view: declaration.View, key: str, field: _Field, non_null: bool) -> Member:
    """A ``[String!]`` field declared ``TEXT_LIST``: the stored JSON array, element by element."""
    declared = view.field(field.python_name)
    inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    element = inner.of_type if isinstance(inner, GraphQLList) else None
    if (
        declared is None or not declared.exposed or declared.spelling is not Spelling.TEXT_LIST
        or not isinstance(element, GraphQLNonNull) or element.of_type is not GraphQLString
    ):
        raise Unsupported("computed", f"{field.name} of {view.type_name}")
    return Member(key, attribute=declared.name, spelling=Spelling.TEXT_LIST, non_null=non_null)


def _projected_connection(selection: _Selection) -> tuple[Projection, _Selection] | None:
    """A connection (``_WRITTEN``) whose one ``edges { node }`` a projected read writes: its
    projection, and the connection's selection taking the written nodes as they are. None
    without one ``edges { node }``; ``Unsupported`` when the nodes ask what is not written."""
    paths = [
        (i, j)
        for i, edges in enumerate(selection.fields)
        if edges.name == "edges" and edges.selection is not None
        for j, node in enumerate(edges.selection.fields)
        if node.name == "node"
    ]
    if len(paths) != 1:
        return None
    i, j = paths[0]
    edges = selection.fields[i]
    assert edges.selection is not None  # paths has only edges with a selection
    node = edges.selection.fields[j]
    assert node.selection is not None  # a node is an object: fields are asked of it
    projection = _projection(node.selection)
    written = _Field(_VERBATIM, node.type, None, get=node.get, name=node.name, python_name=node.python_name)
    edges_selection = replace(edges.selection, fields=_replaced(edges.selection.fields, j, written))
    edges = replace(edges, selection=edges_selection)
    return projection, replace(selection, fields=_replaced(selection.fields, i, edges))


async def _written_comments(read_model: ReadModel, projection: Projection, counted: bool, arguments: dict) -> Any:
    _, found = await comments_connection(read_model, projection=projection, counted=counted, **arguments)
    return found


async def _written_groups(read_model: ReadModel, projection: Projection, counted: bool, arguments: dict) -> Any:
    return await groups_connection(read_model, projection=projection, **arguments)


# A connection root whose nodes a projected read writes -> that read (the projection, whether
# ``totalCount`` is asked, the root's arguments).
_WRITTEN: dict[str, Callable[[ReadModel, Projection, bool, dict], Awaitable[Any]]] = {
    "comments": _written_comments, "groups": _written_groups,
}
# Whether a page of the root read as objects is a fallback ``/metrics`` counts
# (``PROJECTION_REFUSED``): comments pages, which the console reads; a groups page is small,
# read as objects as it always was when its nodes ask what is not written (a count, a link).
_REPORTED = {"comments": True, "groups": False}


def _replaced(fields: tuple[_Field, ...], index: int, field: _Field) -> tuple[_Field, ...]:
    return (*fields[:index], field, *fields[index + 1 :])


async def _comment(read_model: ReadModel, id: strawberry.ID) -> Comment | None:
    return await by_id(id, NodeType.COMMENT, _one(read_model.comments_by_ids), Comment.from_view)


async def _group(read_model: ReadModel, id: strawberry.ID) -> Group | None:
    return await by_id(id, NodeType.GROUP, _one(read_model.groups_by_ids), Group.from_domain)


async def _keyword(read_model: ReadModel, id: strawberry.ID) -> Keyword | None:
    return await by_id(id, NodeType.KEYWORD, _one(read_model.keywords_by_ids), Keyword.from_view)


# What ``node(id:)`` reads (``nodes.py``'s ``load_node``) for the declared types: the look-up, the view.
_NODES = {
    NodeType.GROUP: ("groups_by_ids", "group"), NodeType.POST: ("posts_by_ids", "post"),
    NodeType.COMMENT: ("comments_by_ids", "comment"), NodeType.KEYWORD: ("keywords_by_ids", "keyword"),
}


async def _node(read_model: ReadModel, id: strawberry.ID) -> Any:
    """``node(id:)``, Relay's refetch, of a declared type; any other (a task, an API token and
    its permission, a row id and its error) is the normal executor's."""
    decoded = decode_id(id)
    if decoded is None:
        return None
    kind, pk = decoded
    if kind not in _NODES:
        raise _Fallback("node")
    load, view = _NODES[kind]
    found = (await getattr(read_model, load)([pk]))[0]
    return declared.TYPES[view].from_view(found) if found is not None else None


# A root of one object by id -> the type its id names (None: the type the id says, ``node``).
_BY_ID = {"node": None, "comment": NodeType.COMMENT, "group": NodeType.GROUP, "keyword": NodeType.KEYWORD}
_UNWRITTEN = object()


def _projected_by_id(selection: _Selection) -> dict[str, Projection]:
    """The projections of the types a root of one object may return (those the plan can write)."""
    selections = selection.by_type or {selection.type_name: selection}
    found = {}
    for type_name, chosen in selections.items():
        if isinstance(chosen, _Selection) and type_name in declaration.BY_TYPE:
            try:
                found[type_name] = _projection(chosen)
            except Unsupported:
                continue
    return found


async def _written_by_id(read_model: ReadModel, root: str, projections: dict[str, Projection], arguments: dict) -> Any:
    """The object the root's id names, as the read model writes it (``orjson.Fragment``), None
    when there is none; ``_UNWRITTEN`` when it is read as an object instead (a type not
    projected, an id the normal path must judge)."""
    kind = _BY_ID[root]
    id = arguments["id"]
    pk: int | None
    if kind is None:
        decoded = decode_id(id)
        if decoded is None or decoded[0] is None:
            return _UNWRITTEN
        kind, pk = decoded[0], decoded[1]
    else:
        try:
            pk = find_id(id, kind)
        except InvalidInput:
            return _UNWRITTEN  # the normal path's error
        if pk is None:
            return _UNWRITTEN
    projection = projections.get(kind.value)
    if projection is None or read_model.projection_refusal(projection) is not None:
        return _UNWRITTEN
    text = await read_model.projected_by_id(projection, pk)
    return orjson.Fragment(text) if text is not None else None


# Query field -> the read its resolver makes.
ROOTS: dict[str, Callable[..., Awaitable[Any]]] = {
    "node": _node,
    "comments": _comments,
    "comment": _comment,
    "groups": groups_connection,
    "group": _group,
    "keywords": keywords_connection,
    "keyword": _keyword,
}


# --- the compiled plan -----------------------------------------------------------------------

_TYPENAME, _ATTRIBUTE, _METHOD, _RELATION, _VERBATIM = range(5)  # _VERBATIM: already as answered


class _Fallback(Exception):
    """Something the plan cannot answer exactly turned up while running it (``kind``: what)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(eq=False)
class _Field:
    kind: int
    type: GraphQLOutputType | None  # None for __typename
    selection: _Selection | None  # what is asked of the object(s) it returns
    get: Callable[[Any], Any] | None = None
    is_async: bool = False
    relation: Relation | None = None
    name: str = "__typename"  # the field's name in the schema
    python_name: str = ""
    leaf: bool = False  # a scalar or enum, not a list: serialized in place

    def __post_init__(self) -> None:
        type_ = self.type.of_type if isinstance(self.type, GraphQLNonNull) else self.type
        self.leaf = self.selection is None and type_ is not None and not isinstance(type_, GraphQLList)


@dataclass(eq=False)
class _Selection:
    type_name: str
    keys: tuple[str, ...]  # response keys, in response order
    fields: tuple[_Field, ...]
    # Of an interface (``node``'s ``Node``): the selection of each type an object may be, or why
    # it has none (met only if such an object turns up).
    by_type: dict[str, _Selection | Unsupported] | None = None


@dataclass(eq=False)
class _Root:
    key: str
    field_def: GraphQLField | None  # None for __typename
    node: FieldNode | str | None  # for __typename, the query type's name
    arguments: Any  # the Strawberry field, for its arguments' conversion
    read: Callable[..., Awaitable[Any]] | None
    type: GraphQLOutputType | None
    selection: _Selection | None
    # A connection whose nodes a projected read writes (``_WRITTEN``): the projection, and the
    # selection with those nodes taken as written (where the read model can: PostgreSQL).
    projected: tuple[Projection, _Selection] | None = None
    unprojected: str | None = None  # else why its nodes cannot be written (``Unsupported.kind``)
    nodes: tuple[FieldNode, ...] = ()  # where the field is in the document, for its errors
    # One object by id (``node``, ``comment``, ``group``, ``keyword``): the projection of each type
    # it may be that a projected read can write (the object's JSON in one statement).
    by_id: dict[str, Projection] | None = None
    # A projected connection whose ``totalCount`` is asked: counted in the page's statement.
    counted: bool = False
    # The arguments as the read receives them, by graphql-core's values (``_frozen``): Strawberry
    # converts an input object field by field (a comments filter: 0.17 ms a request), and a
    # client sends the same few values again and again. The reads only read them.
    converted: BoundedDict[Any, dict[str, Any]] = dataclass_field(default_factory=lambda: BoundedDict(ARGUMENTS_KEPT))


# Told (reason, kind) whenever an operation does not run the fastest way the plan knows.
Report = Callable[[str, str], None]


def unreported(reason: str, kind: str) -> None:
    """A ``Report`` for a caller with nowhere to count fallbacks."""


class Plan:
    def __init__(self, schema: GraphQLSchema, roots: list[_Root]) -> None:
        self.schema = schema
        self.roots = roots

    async def run(
        self, read_model: ReadModel, variable_values: Any, report: Report = unreported
    ) -> ExecutionResult | None:
        """The operation's result; None when the normal executor must answer instead (why is
        told to ``report``).

        An outage is answered here, not handed over: a root field whose reads met
        ``Unavailable`` is null with that error, as the normal executor answers it. Handing
        it over would read the database a second time, in an outage, for the same error. (A
        read below the root that fails, the database going away mid-query, fails the root
        here, where the normal executor would null the field below it: either way a retry.)"""
        run = _Run(read_model, report)
        try:
            values = await _together([_outage_or(self._root(r, run, variable_values)) for r in self.roots])
        except Exception as e:  # the normal executor runs it again and reports it exactly
            report(*_why(e))
            return None
        data = dict(zip((r.key for r in self.roots), values))
        failed = [(root, value) for root, value in zip(self.roots, values) if isinstance(value, Unavailable)]
        if not failed:
            return ExecutionResult(data, None)
        # As graphql-core answers: a non-null root's error nulls the whole data and is the only
        # error reported; a nullable root's error nulls that root.
        non_null = [(root, value) for root, value in failed if isinstance(root.type, GraphQLNonNull)]
        errors = [located_error(value, list(root.nodes), [root.key]) for root, value in non_null[:1] or failed]
        if non_null:
            return ExecutionResult(None, errors)
        return ExecutionResult({**data, **{root.key: None for root, _ in failed}}, errors)

    async def _root(self, root: _Root, run: _Run, variable_values: Any) -> Any:
        if root.read is None:
            return root.node  # __typename: the query type's name
        # Every root but __typename has its field, its node and its type.
        assert root.field_def is not None and isinstance(root.node, FieldNode) and root.type is not None
        values = get_argument_values(root.field_def, root.node, variable_values)
        arguments = self._arguments(root, values)
        # A read model that never writes pages (SQLite) refuses nothing: there is no fast path to miss.
        if (root.projected is not None or root.unprojected is not None) and run.read_model.projects:
            refused = root.unprojected
            if refused is None:
                assert root.projected is not None  # a root has the one or the other
                refused = run.read_model.projection_refusal(root.projected[0])
                if refused is None:
                    projection, selection = root.projected
                    found = await _WRITTEN[root.node.name.value](run.read_model, projection, root.counted, arguments)
                    return (await run.complete([found], root.type, selection))[0]
            if root.unprojected is not None or _REPORTED[root.node.name.value]:
                run.report(PROJECTION_REFUSED, refused)
        if root.by_id is not None and run.read_model.projects:
            written = await _written_by_id(run.read_model, root.node.name.value, root.by_id, arguments)
            if written is not _UNWRITTEN:
                return written
        found = await root.read(run.read_model, **arguments)
        return (await run.complete([found], root.type, root.selection))[0]


    def _arguments(self, root: _Root, values: dict[str, Any]) -> dict[str, Any]:
        """``python_arguments`` of the root's field, converted once per distinct ``values``."""
        try:
            key = _frozen(values)
        except TypeError:  # a value that cannot be a key: converted every time
            return python_arguments(self.schema, root.arguments, values)
        arguments = root.converted.get(key)
        if arguments is None:
            arguments = python_arguments(self.schema, root.arguments, values)
            root.converted[key] = arguments
        return arguments


def _frozen(value: Any) -> Any:
    """A key equal for equal argument values alone: each value with its type (``True`` is not
    ``1``), lists and input objects (their fields in order) as tuples; TypeError for a value
    that has no hash."""
    if type(value) is dict:
        return dict, tuple((name, _frozen(item)) for name, item in value.items())
    if type(value) is list:
        return list, tuple(_frozen(item) for item in value)
    hash(value)
    return type(value), value


def _leaves(error: BaseException) -> Iterator[BaseException]:
    """The exceptions in ``error``: itself, or those of a task group's, however nested."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


async def _outage_or(work: Awaitable[Any]) -> Any:
    """``work``'s value, or the ``Unavailable`` it failed with."""
    try:
        return await work
    except Exception as e:
        outage = next((leaf for leaf in _leaves(e) if isinstance(leaf, Unavailable)), None)
        if outage is None:
            raise
        return outage


def _why(error: BaseException) -> tuple[str, str]:
    """(reason, kind) of a run that failed with ``error``."""
    first = next(_leaves(error), error)
    if isinstance(first, _Fallback):
        return HANDED_BACK, first.kind
    return ERROR, type(first).__name__  # the class's name: a bounded set, unlike messages


class _Run:
    """One execution of a plan: values completed a whole level at a time. What it has read by
    key is kept for the rest of the operation, as the dataloaders keep it: a page's
    ``post { group }`` finds the groups its comments' ``group`` read."""

    __slots__ = ("loaded", "read_model", "report")

    def __init__(self, read_model: ReadModel, report: Report) -> None:
        self.read_model = read_model
        self.report = report
        self.loaded: dict[str, dict[Any, Any]] = {}

    async def complete(self, values: list, type_: GraphQLOutputType, selection: _Selection | None) -> list:
        """``values`` of a field of ``type_`` as the response holds them (graphql-core's
        ``complete_value`` for many values at once)."""
        if isinstance(type_, GraphQLNonNull):
            if None in values:
                raise _Fallback("null")
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            flat: list = []
            sizes: list[int | None] = []
            for value in values:
                if value is None:
                    sizes.append(None)
                else:
                    items = list(value)
                    sizes.append(len(items))
                    flat += items
            done = await self.complete(flat, type_.of_type, selection)
            out: list = []
            at = 0
            for size in sizes:
                if size is None:
                    out.append(None)
                else:
                    out.append(done[at : at + size])
                    at += size
            return out
        if selection is None:  # a leaf: a scalar or an enum
            return _serialized(values, type_)
        if selection.by_type is not None:
            return await self._abstract(values, selection.by_type)
        present = [v for v in values if v is not None]
        if not present:
            return values
        distinct = list({id(v): v for v in present}.values())
        if len(distinct) == len(present):
            objects = iter(await self.objects(present, selection))
            return [None if v is None else next(objects) for v in values]
        # The same object more than once (a page's 100 comments in 20 groups): completed once.
        completed = dict(zip(map(id, distinct), await self.objects(distinct, selection)))
        return [None if v is None else dict(completed[id(v)]) for v in values]

    async def _abstract(self, values: list, by_type: dict[str, _Selection | Unsupported]) -> list:
        """Objects of an interface, each completed with the selection of its own type."""
        at: dict[str, list[int]] = {}
        for index, value in enumerate(values):
            if value is not None:
                node_type = getattr(type(value), "NODE_TYPE", None)
                at.setdefault(node_type.value if node_type is not None else "", []).append(index)
        out = list(values)
        for type_name, indexes in at.items():
            selection = by_type.get(type_name)
            if not isinstance(selection, _Selection):
                raise _Fallback("abstract_type")
            for index, done in zip(indexes, await self.objects([values[i] for i in indexes], selection)):
                out[index] = done
        return out

    async def objects(self, objects: list, selection: _Selection) -> list[dict[str, Any]]:
        columns: list[Any] = []
        later: list[tuple[int, Coroutine[Any, Any, list[Any]]]] = []
        try:
            for index, field in enumerate(selection.fields):
                kind = field.kind
                if kind == _TYPENAME:
                    columns.append([selection.type_name] * len(objects))
                    continue
                get = field.get
                if kind == _VERBATIM:
                    assert get is not None
                    columns.append([get(o) for o in objects])
                    continue
                if kind == _RELATION:
                    columns.append(None)
                    later.append((index, self._related(objects, field)))
                    continue
                if field.is_async:
                    columns.append(None)
                    later.append((index, self._awaited(objects, field)))
                    continue
                # Past __typename (and relations, which _related reads): a getter and a type.
                assert get is not None and field.type is not None
                values = [get(o) for o in objects]
                if field.leaf:
                    columns.append(_leaf_column(values, field.type))
                else:
                    columns.append(None)
                    later.append((index, self.complete(values, field.type, field.selection)))
        except BaseException:
            for _, work in later:  # never started: closed, so none is left unawaited
                work.close()
            raise
        if later:
            done = await _together([work for _, work in later])
            for (index, _), column in zip(later, done):
                columns[index] = column
        keys = selection.keys
        if not keys:  # every field skipped
            return [{} for _ in objects]
        return [dict(zip(keys, row)) for row in zip(*columns)]

    async def _awaited(self, objects: list, field: _Field) -> list:
        """A coroutine method's results for ``objects``, completed."""
        get, type_ = field.get, field.type
        assert get is not None and type_ is not None  # a method's field
        results = await _together([get(o) for o in objects])
        for value in results:
            if isinstance(value, Exception):
                raise _Fallback("method_error")
        return await self.complete(list(results), type_, field.selection)

    async def _related(self, objects: list, field: _Field) -> list:
        relation, type_ = field.relation, field.type
        assert relation is not None and type_ is not None  # a relation's field
        keys = [relation.key(o) for o in objects]
        found = self.loaded.setdefault(relation.load, {})
        wanted = [k for k in dict.fromkeys(keys) if k is not None and k not in found]
        if wanted:
            read = await getattr(self.read_model, relation.load)(wanted)
            if relation.fills is not None:
                read, along = read
                filled = self.loaded.setdefault(relation.fills, {})
                for key, value in along.items():
                    filled.setdefault(key, value)  # what was read first is kept, as a dataloader keeps it
            found.update(zip(wanted, read))
        convert = relation.convert
        converted: dict[Any, Any] = {}  # once per key: the same object wherever it recurs
        values: list[Any] = []
        for key in keys:
            if key is None:
                values.append(None)
                continue
            if key not in converted:
                value = found.get(key)
                converted[key] = convert(value) if value is not None else None
            values.append(converted[key])
        return await self.complete(values, type_, field.selection)


# graphql-core's own scalars hand back a value of exactly these types unchanged (an Int within
# 32 bits): reading it as it is answers exactly what ``serialize`` would, without the call.
_UNCHANGED: dict[str, type[Any]] = {
    GraphQLString.name: str, GraphQLID.name: str, GraphQLBoolean.name: bool, GraphQLInt.name: int
}


async def _together(awaitables: list[Awaitable[Any]]) -> list[Any]:
    """The results of ``awaitables``, run concurrently; the first failure cancels the rest (the
    normal executor will answer), so nothing is left running or failing unobserved.

    Not an ``asyncio.TaskGroup``: on Python 3.11 one whose child fails leaves the request's task
    counted as being cancelled, and the request timeout (``asyncio.timeout``) then no longer
    recognised its own cancellation: a timeout in the normal executor's reads that followed
    ended the request with a bare ``CancelledError`` (HTTP 500)."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)  # every one ended (its error seen here) before the caller goes on
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: none is reported as never retrieved
        raise


def _serialized(values: list, type_: Any) -> list:
    serialize = type_.serialize
    unchanged = _UNCHANGED.get(type_.name) if type_ in _BUILT_IN else None
    is_int = unchanged is int
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        if type(value) is unchanged and (not is_int or GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT):
            out.append(value)
            continue
        serialized = serialize(value)  # as graphql-core's complete_leaf_value
        if serialized is None or serialized is Undefined:
            raise _Fallback("scalar")
        out.append(serialized)
    return out


_BUILT_IN = (GraphQLString, GraphQLID, GraphQLBoolean, GraphQLInt)


def _leaf_column(values: list, type_: GraphQLOutputType) -> list:
    if isinstance(type_, GraphQLNonNull):
        if None in values:
            raise _Fallback("null")
        type_ = type_.of_type
    return _serialized(values, type_)


# --- compiling -------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, schema: GraphQLSchema, fragments: Any, variable_values: Any, operation: OperationDefinitionNode):
        self.schema, self.fragments = schema, fragments
        self.variable_values, self.operation = variable_values, operation

    def plan(self) -> Plan:
        query = self.schema.query_type
        assert query is not None
        collected = collect_fields(self.schema, self.fragments, self.variable_values, query, self.operation)
        if collected.new_defer_usages:
            raise Unsupported("defer")
        roots = []
        for key, details in collected.grouped_field_set.items():
            node = self._node(details)
            name = node.name.value
            if name == "__typename":
                roots.append(_Root(key, None, query.name, None, None, None, None))
                continue
            read = ROOTS.get(name)
            if read is None:
                raise Unsupported("root", name)
            field_def = query.fields[name]
            field = self._strawberry_field(query.name, name)
            selection = self._selection(field_def.type, details)
            projected, unprojected = None, None
            if name in _WRITTEN and selection is not None:
                try:
                    projected = _projected_connection(selection)
                except Unsupported as e:
                    unprojected = e.kind if _REPORTED[name] else None
            nodes = tuple(d.node for d in details)
            by_id = _projected_by_id(selection) if name in _BY_ID and selection is not None else None
            counted = projected is not None and any(f.python_name == "total_count" for f in projected[1].fields)
            roots.append(_Root(
                key, field_def, node, field, read, field_def.type, selection, projected, unprojected, nodes, by_id,
                counted,
            ))
        return Plan(self.schema, roots)

    @staticmethod
    def _node(details: Any) -> FieldNode:
        if any(d.fragment_variable_values is not None or d.defer_usage is not None for d in details):
            raise Unsupported("defer", "fragment arguments or @defer")
        return details[0].node

    def _strawberry_field(self, type_name: str, field_name: str) -> Any:
        field = strawberry_field(self.schema, type_name, field_name)
        if field is None or field.extensions or field.permission_classes:
            raise Unsupported("extension", f"{type_name}.{field_name}")  # permissions run as field extensions
        return field

    def _selection(self, type_: GraphQLOutputType, details: Any) -> _Selection | None:
        named = get_named_type(type_)
        if is_leaf_type(named):
            return None
        if isinstance(named, GraphQLInterfaceType):
            by_type: dict[str, _Selection | Unsupported] = {}
            for possible in self.schema.get_possible_types(named):
                try:
                    by_type[possible.name] = self._selection(possible, details)  # type: ignore[assignment]
                except Unsupported as e:
                    by_type[possible.name] = e.with_traceback(None)
            return _Selection(named.name, (), (), by_type)
        if not isinstance(named, GraphQLObjectType):
            raise Unsupported("abstract_type", str(named))
        collected = collect_subfields(self.schema, self.fragments, self.variable_values, self.operation, named, details)
        if collected.new_defer_usages:
            raise Unsupported("defer")
        keys, fields = [], []
        for key, sub in collected.grouped_field_set.items():
            keys.append(key)
            fields.append(self._field(named, sub))
        return _Selection(named.name, tuple(keys), tuple(fields))

    def _field(self, parent: GraphQLObjectType, details: Any) -> _Field:
        name = self._node(details).name.value
        if name == "__typename":
            return _Field(_TYPENAME, None, None)
        field_def = parent.fields[name]
        if field_def.args:
            raise Unsupported("arguments", f"{parent.name}.{name}")
        return self._made(parent, name, self._selection(field_def.type, details))

    def _made(self, parent: GraphQLObjectType, name: str, selection: _Selection | None) -> _Field:
        """How field ``name`` of ``parent`` is answered, ``selection`` asked of what it returns."""
        field_def = parent.fields[name]
        field = self._strawberry_field(parent.name, name)
        relation = _relation(parent.name, field.python_name) if _declares(field) else None
        if relation is not None:
            joined = relation.joined
            if joined is not None and selection is not None and any(
                f.relation is not None and f.relation.load == joined.fills for f in selection.fields
            ):
                relation = joined
            names = {"name": name, "python_name": field.python_name}
            return _Field(_RELATION, field_def.type, selection, relation=relation, **names)
        names = {"name": name, "python_name": field.python_name}
        if reads_attribute(self.schema, field):
            return _Field(_ATTRIBUTE, field_def.type, selection, get=attrgetter(field.python_name), **names)
        function = field.base_resolver.wrapped_func if field.base_resolver is not None else None
        if function is not None and list(inspect.signature(function).parameters) == ["self"]:
            # A method of the object alone (a link, a page's hasNextPage, a total count).
            is_async = inspect.iscoroutinefunction(function)
            return _Field(_METHOD, field_def.type, selection, get=function, is_async=is_async, **names)
        raise Unsupported("resolver", f"{parent.name}.{name}")  # it wants arguments or ``info``


def projection_of_field(schema: GraphQLSchema, type_name: str, field_name: str) -> Projection:
    """The projection of a page whose nodes of type ``type_name`` ask only ``field_name`` (of
    an object: its ``__typename``), as the plan makes it; ``Unsupported`` when the plan would
    not project it. What ``tests/unit/test_declaration.py`` asks of every field of every
    declared type."""
    parent = schema.type_map[type_name]
    assert isinstance(parent, GraphQLObjectType)
    if parent.fields[field_name].args:
        raise Unsupported("arguments", f"{type_name}.{field_name}")
    named = get_named_type(parent.fields[field_name].type)
    below = None
    if isinstance(named, GraphQLObjectType):
        below = _Selection(named.name, ("__typename",), (_Field(_TYPENAME, None, None),))
    elif not is_leaf_type(named):
        raise Unsupported("abstract_type", str(named))
    field = _Compiler(schema, {}, None, None)._made(parent, field_name, below)  # type: ignore[arg-type]
    return _projection(_Selection(type_name, (field_name,), (field,)))


def _declares(field: Any) -> bool:
    """Whether a Strawberry field's resolver is a declared relation's (``declared.py``)."""
    resolver = field.base_resolver
    return resolver is not None and getattr(resolver.wrapped_func, "declared_relation", None) is not None


def _directive_variables(operation: OperationDefinitionNode, fragment_definitions: dict[str, Any]) -> tuple[str, ...]:
    """The variables that ``@skip`` / ``@include`` read anywhere in the document."""
    names: set[str] = set()

    def walk(selection_set: SelectionSetNode | None) -> None:
        for selection in selection_set.selections if selection_set is not None else ():
            for directive in selection.directives or ():
                if directive.name.value in ("skip", "include"):
                    arguments = directive.arguments or ()
                    names.update(a.value.name.value for a in arguments if isinstance(a.value, VariableNode))
            walk(getattr(selection, "selection_set", None))

    walk(operation.selection_set)
    for fragment in fragment_definitions.values():
        walk(fragment.selection_set)
    return tuple(sorted(names))


class PlanCache:
    """Compiled plans by (schema, operation node, values of @skip/@include variables); an
    ``Unsupported`` remembers why an operation has none. The parser cache hands out one node
    per distinct document, and each entry holds its node and schema, so an id is never mistaken
    for a reused one."""

    def __init__(self, size: int = PLAN_CACHE_SIZE) -> None:
        self._directives: BoundedDict[int, tuple[OperationDefinitionNode, tuple[str, ...]]] = BoundedDict(size)
        self._plans: BoundedDict[tuple, tuple[OperationDefinitionNode, GraphQLSchema, Plan | Unsupported]] = (
            BoundedDict(size)
        )

    def find(self, executor: Any) -> Plan | Unsupported:
        """The plan of the operation a graphql-core executor runs, or why it has none."""
        return self.find_for(
            executor.schema, executor.operation, executor.fragment_definitions, executor.fragments,
            executor.variable_values,
        )

    def find_for(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode, fragment_definitions: Any, fragments: Any,
        variable_values: Any,
    ) -> Plan | Unsupported:
        """The operation's plan with these (coerced) variables, or why it has none."""
        seen = self._directives.get(id(operation))
        if seen is None or seen[0] is not operation:
            seen = (operation, _directive_variables(operation, fragment_definitions))
            self._directives[id(operation)] = seen
        coerced = variable_values.coerced
        key = (id(schema), id(operation), tuple(coerced.get(n) for n in seen[1]))
        entry = self._plans.get(key)
        if entry is None or entry[0] is not operation or entry[1] is not schema:
            plan: Plan | Unsupported
            try:
                plan = _Compiler(schema, fragments, variable_values, operation).plan()
            except Unsupported as e:
                plan = e.with_traceback(None)  # kept: not the compiler's frames with it
            entry = (operation, schema, plan)
            self._plans[key] = entry
        return entry[2]


plans = PlanCache()
