"""The API's object types made from ``domain/declaration.py``: what a type's fields and relations
mean is declared there once, and here becomes the Strawberry type's fields, its converter, its
relations' resolvers (through one dataloader per ``ReadModel`` look-up) and a page's prefetch.

A type is a class deriving from ``Declared`` with ``@strawberry.type`` over ``@declared(view)``::

    @strawberry.type(description="...")
    @declared(declaration.COMMENT)
    class Comment(Node, Declared): ...

``declared`` adds every declared field the class does not spell out itself (in the
declaration's order: stored fields, private keys, relations, computed fields); a class spells
one out only to place it elsewhere or resolve it otherwise (``Group.monitoring``). ``from_view``
makes an object of a domain view; ``related`` resolves a relation; ``prefetch`` loads the
relations a selection asks of many objects, one batch per relation and level.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, Self, TypeVar, cast

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from domain import declaration
from domain.declaration import Spelling
from graphql_api.context import Info

T = TypeVar("T")

_PYTHON: dict[Spelling, type] = {
    Spelling.TEXT: str, Spelling.BOOLEAN: bool, Spelling.INT32: int, Spelling.TIME: datetime, Spelling.FLOAT: float,
}

# View name -> the API's type made of it (``declared`` registers each).
TYPES: dict[str, type[Declared]] = {}
# Enum name -> the API's enum (``Spelling.ENUM`` fields; ``enum_type`` registers each).
ENUMS: dict[str, type] = {}


def enum_type(cls: type[T]) -> type[T]:
    """Apply above ``@strawberry.enum``: the enum ``Field(..., Spelling.ENUM, enum=name)`` answers
    with. Its members' values must be their names (what is stored, and what a projected page writes)."""
    assert all(m.name == m.value for m in cls), cls  # type: ignore[attr-defined]
    ENUMS[cls.__name__] = cls
    return cls


def camel(name: str) -> str:
    """A Python name as Strawberry names the field (``published_at`` -> ``publishedAt``)."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() if part else "_" for part in rest)


class Declared:
    """An object of a declared view; ``VIEW`` says which."""

    VIEW: ClassVar[declaration.View]

    @classmethod
    def from_view(cls, view: Any) -> Self:
        """The object of a domain view (``CommentView``, ``models.Author``...): every stored
        field of the declaration, read by its attribute."""
        values: dict[str, Any] = {}
        for f in cls.VIEW.fields:
            if not f.stored:
                continue
            value = getattr(view, f.attribute)
            if f.spelling is Spelling.GLOBAL_ID:
                values.update(cast(Any, cls).ids(value))  # a Node: its global id and row id
            else:
                values[f.name] = value
        return cast(Any, cls)(**values)


def converter(target: type[Declared]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return target.from_view(value) if value is not None else None

    return convert


def _many(target: type[Declared]) -> Callable[[list[Any]], list[Any]]:
    def convert(values: list[Any]) -> list[Any]:
        return [target.from_view(v) for v in values]

    return convert


def convert_of(relation: declaration.Relation) -> Callable[[Any], Any]:
    """What a relation's look-up found (never None) -> the value its resolver answers."""
    if not relation.view:  # a count
        return int
    target = TYPES[relation.view]
    return _many(target) if relation.many else (lambda value: target.from_view(value))


def related(info: Info, relation: declaration.Relation, key: Any) -> Any:
    """A relation's value for ``key``: at once when this operation loaded it already, else an
    awaitable of it (its loader batches every key asked meanwhile)."""
    if key is None:
        return [] if relation.many else None
    convert = convert_of(relation)
    loader = info.context.loaders(info).by(relation.load)
    return loader.now_or_later(key, lambda value: convert(value) if value is not None else None)


def _resolver(relation: declaration.Relation, annotation: Any) -> Any:
    def resolve(self: Any, info: Info) -> Any:
        return related(info, relation, relation.key(partial(getattr, self)))

    resolve.__annotations__ = {"info": Info, "return": annotation}
    resolve.__name__ = relation.name
    resolve.declared_relation = relation  # type: ignore[attr-defined]  # what the read plan reads it by
    return strawberry.field(resolver=resolve, description=relation.description)


def _computed(field: declaration.Field) -> Any:
    rule = field.rule
    assert rule is not None  # only computed fields come here

    def resolve(self: Any) -> Any:
        return declaration.evaluate(rule, partial(getattr, self))

    resolve.__annotations__ = {"return": _python(field)}
    resolve.__name__ = field.name
    return strawberry.field(resolver=resolve, description=field.description)


def computed(view: declaration.View, name: str) -> Any:
    """A computed field of ``view`` where a class wants it placed (else ``declared`` adds it last)."""
    found = view.field(name)
    assert found is not None and found.rule is not None, name
    return _computed(found)


def _python(field: declaration.Field) -> Any:
    if field.spelling is Spelling.ENUM:
        python: Any = ENUMS[field.enum]
    elif field.spelling is Spelling.TEXT_LIST:
        python = list[str]
    else:
        python = _PYTHON[field.spelling]
    return python | None if field.nullable else python


def declared(view: declaration.View) -> Callable[[type[Any]], type[Any]]:
    """Apply below ``@strawberry.type``: the class gets what ``view`` declares and it does not spell out."""

    def add(cls: type[Any]) -> type[Any]:
        cls.VIEW = view
        TYPES[view.name] = cls  # before the relations: a comment's parent is a comment
        if "__annotations__" not in vars(cls):
            cls.__annotations__ = {}
        annotations = cls.__annotations__
        spelled = set(vars(cls)) | set(annotations)
        for f in view.fields:
            if f.name in spelled or f.spelling is Spelling.GLOBAL_ID:  # the id: ``Node``'s
                continue
            if f.rule is not None:
                continue
            if f.exposed:
                annotations[f.name] = _python(f)
                setattr(cls, f.name, strawberry.field(description=f.description))
            else:
                annotations[f.name] = cast(Any, strawberry.Private)[_python(f)]
        for r in view.relations:
            if r.name in spelled:
                continue
            if not r.view:
                annotation: Any = int
            else:
                target = TYPES[r.view]
                annotation = list[target] if r.many else target | None  # type: ignore[valid-type]
            setattr(cls, r.name, _resolver(r, annotation))
        for f in view.fields:
            if f.rule is not None and f.name not in spelled:
                setattr(cls, f.name, _computed(f))
        return cls

    return add


# --- prefetch -----------------------------------------------------------------------------------


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    """The fields of a selection set, looking through fragments."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:
            yield from _fields(selection.selections)


def selected_under(info: Info, *path: str) -> dict[str, list[Selection]]:
    """Field name -> its sub-selections, at ``path`` below the field being resolved."""
    level: list[Selection] = [s for f in _fields(info.selected_fields) for s in f.selections]
    for name in path:
        level = [s for f in _fields(level) if f.name == name for s in f.selections]
    return _by_name(level)


def _by_name(level: Iterable[Selection]) -> dict[str, list[Selection]]:
    found: dict[str, list[Selection]] = {}
    for f in _fields(level):
        found.setdefault(f.name, []).extend(f.selections)
    return found


def _reader(view: declaration.View, value: Any) -> Callable[[str], Any]:
    """A domain view's fields by declared name."""

    def get(name: str) -> Any:
        found = view.field(name)
        assert found is not None, name
        return getattr(value, found.attribute)

    return get


async def prefetch(info: Info, view: declaration.View, values: list[Any], selected: dict[str, list[Selection]]) -> None:
    """Load the relations ``selected`` asks of these domain views (and of what they find, down
    the selection), one batch per relation and level, before their fields resolve: then every
    relation answers at once from its loader (the statements the loaders would run lazily)."""
    if not values:
        return
    loaders = info.context.loaders(info)
    asked = [(r, selected[camel(r.name)]) for r in view.relations if camel(r.name) in selected]
    batches: list[Awaitable[object]] = []
    keyed: list[tuple[declaration.Relation, list[Any], list[Selection]]] = []
    for relation, below in asked:
        keys = [relation.key(_reader(view, v)) for v in values]
        wanted = list(dict.fromkeys(k for k in keys if k is not None))
        if wanted:
            batches.append(loaders.by(relation.load).load_many(wanted))
            keyed.append((relation, wanted, below))
    await asyncio.gather(*batches)
    deeper = []
    for relation, wanted, below in keyed:
        if not relation.view:
            continue
        loader = loaders.by(relation.load)
        found = [loader.loaded.get(k) for k in wanted]
        items = [i for f in found for i in (f or ())] if relation.many else [f for f in found if f is not None]
        deeper.append(prefetch(info, declaration.VIEWS[relation.view], items, _by_name(below)))
    await asyncio.gather(*deeper)
