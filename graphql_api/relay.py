"""Relay's conventions, shared by every area: the ``Node`` interface, connections (``first`` /
``after``, ``last`` / ``before``, ``pageInfo``, ``totalCount``) and the arguments that page them.

Each area's ``*_connection`` function (``groups.py``, ``comments.py``, ``keywords.py``) reads
its page through ``window`` and makes it a connection with ``connection``: the resolvers and the
compiled read plan (``plan.py``) both call those, so paging means the same whichever answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import strawberry
from graphql import GraphQLError

from domain.queries import MAX_PAGE, Page
from graphql_api.codes import ErrorCode
from graphql_api.ids import NodeType, find_id, global_id

T = TypeVar("T")

DEFAULT_PAGE = 20
VK = "https://vk.com"  # links to VK objects start here


@strawberry.interface(description="An object with a global id; `node(id:)` fetches any of them again (Relay's Node).")
class Node:
    NODE_TYPE: ClassVar[NodeType]
    id: strawberry.ID = strawberry.field(
        description="Global id of the object: opaque, unique across types; pass it back as given."
    )
    pk: strawberry.Private[int]

    @classmethod
    def ids(cls, pk: int | None) -> dict:
        """The id fields of an object of this type with row id ``pk``."""
        assert pk is not None, "a stored object has a row id"  # None only before an insert
        return {"id": global_id(cls.NODE_TYPE, pk), "pk": pk}


@strawberry.type(description="Where a page of a connection starts and ends, and whether there is more on either side.")
class PageInfo:
    start_cursor: str | None = strawberry.field(
        description="Cursor of the page's first item: pass as `before` for the previous page; "
        "null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the page's last item: pass as `after` for the next page; null when the page is empty."
    )
    page: strawberry.Private[Page]

    @strawberry.field(description="Whether items follow this page (with `last`: whether any follow `before`).")
    async def has_next_page(self) -> bool:
        return await self.page.items_after()

    @strawberry.field(
        description="Whether items come before this page (with `first`: whether any come before `after`)."
    )
    async def has_previous_page(self) -> bool:
        return await self.page.items_before()


@strawberry.type(description="One item of a connection with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        description="Opaque position of this item; pass as `after` (or `before`) to continue after (or before) it."
    )
    node: T = strawberry.field(description="The item.")


@strawberry.type(
    description="A page of a list, Relay style: `first` items `after` a cursor, or the `last` items `before` one."
)
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page, in order.")
    page_info: PageInfo = strawberry.field(description="Whether there is more, and where to continue.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items match in all (counted only when asked for).")
    async def total_count(self) -> int:
        return await self.count()


# --- arguments ------------------------------------------------------------------------------

First = Annotated[
    int | None,
    strawberry.argument(
        description=f"How many items to return from the start (1–100; {DEFAULT_PAGE} when `last` is not given)."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(description="Return the items after this cursor (a previous page's `pageInfo.endCursor`)."),
]
Last = Annotated[
    int | None, strawberry.argument(description="How many items to return from the end (1–100), instead of `first`.")
]
Before = Annotated[
    str | None,
    strawberry.argument(description="Return the items before this cursor (a later page's `pageInfo.startCursor`)."),
]


# --- pages ----------------------------------------------------------------------------------


def _bad_argument(message: str, field: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.BAD_USER_INPUT.value, "field": field})


def window(first: int | None, after: str | None, last: int | None, before: str | None) -> dict[str, Any]:
    """A connection's paging arguments, checked: ``first`` items after ``after`` (and before
    ``before``), or the ``last`` ones before ``before`` (and after ``after``), as the Relay
    cursor connection spec reads them. Both counts at once is refused rather than guessed at."""
    if first is not None and last is not None:
        raise _bad_argument("Pass `first` or `last`, not both", "last")
    if last is None:
        first = DEFAULT_PAGE if first is None else first
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 1 <= value <= MAX_PAGE:
            raise _bad_argument(f"`{name}` must be between 1 and {MAX_PAGE}", name)
    return {"first": first, "after": after, "last": last, "before": before}


def connection(page: Page, to_node: Callable[[Any], Any], count: Callable[[], Awaitable[int]]) -> Connection:
    return Connection(
        edges=[Edge(cursor=cursor, node=to_node(item)) for cursor, item in page.edges],
        page_info=PageInfo(start_cursor=page.start_cursor, end_cursor=page.end_cursor, page=page),
        count=count,
    )


async def by_id(id: str, kind: NodeType, load: Callable[[int], Awaitable[Any]], convert: Callable) -> Any:
    """The object of type ``kind`` an id names, converted; None when there is none."""
    pk = find_id(id, kind)
    if pk is None:
        return None
    found = await load(pk)
    return convert(found) if found is not None else None
