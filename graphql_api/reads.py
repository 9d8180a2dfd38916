"""What the read root fields mean, in one place: the resolvers in ``schema.py`` and the
compiled read plan (``plan.py``) both call these, so arguments, checks, filters, cursors and
pages mean the same whichever answers. The resolvers then load related objects through
dataloaders; the plan loads them a level at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError

from domain import keywords as keyword_cases
from domain.queries import MAX_PAGE, CommentFilter, CommentOrder, CommentSort, Page, Projection
from domain.queries import SortDirection as DomainSortDirection
from graphql_api.codes import ErrorCode
from graphql_api.ids import NodeType, filter_ids, find_id
from graphql_api.types import (
    Comment,
    CommentConnection,
    CommentFilterInput,
    CommentOrderInput,
    Connection,
    Edge,
    Group,
    GroupConnection,
    Keyword,
    KeywordConnection,
    KeywordFilterInput,
    PageInfo,
)

DEFAULT_PAGE = 20


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


def connection(page: Page, to_node, count) -> Connection:
    return Connection(
        edges=[Edge(cursor=cursor, node=to_node(item)) for cursor, item in page.edges],
        page_info=PageInfo(start_cursor=page.start_cursor, end_cursor=page.end_cursor, page=page),
        count=count,
    )


def to_comment_filter(flt: CommentFilterInput | None) -> CommentFilter:
    if flt is None:
        return CommentFilter()
    return CommentFilter(
        group_ids=filter_ids(flt.group_ids, NodeType.GROUP, field="groupIds"),
        post_ids=filter_ids(flt.post_ids, NodeType.POST, field="postIds"),
        keyword_ids=filter_ids(flt.keyword_ids, NodeType.KEYWORD, field="keywordIds"),
        matched=flt.matched,
        text=(flt.text or "").strip() or None,
        author_ids=tuple(dict.fromkeys(flt.author_ids)) if flt.author_ids is not None else None,
        since=flt.since,
        until=flt.until,
        viewed=flt.viewed,
        archived=flt.archived,
        deleted=flt.deleted,
        edited=flt.edited,
    )


def to_comment_order(order: CommentOrderInput | None) -> CommentOrder:
    if order is None:
        return CommentOrder()
    # The API's enums carry the domain's member names (their values are strawberry.enum_value's).
    return CommentOrder(field=CommentSort[order.field.name], direction=DomainSortDirection[order.direction.name])


async def by_id(id: strawberry.ID, kind: NodeType, load: Callable[[int], Awaitable[Any]], convert: Callable) -> Any:
    """The object of type ``kind`` an id names, converted; None when there is none."""
    pk = find_id(id, kind)
    if pk is None:
        return None
    found = await load(pk)
    return convert(found) if found is not None else None


async def groups_connection(
    read_model, first: int | None = None, after: str | None = None, last: int | None = None,
    before: str | None = None, active: bool | None = None,
) -> GroupConnection:
    page = await read_model.groups_page(**window(first, after, last, before), active=active)
    return connection(page, Group.from_domain, lambda: read_model.groups_count(active=active))


async def comments_connection(
    read_model, filter: CommentFilterInput | None = None, order_by: CommentOrderInput | None = None,
    first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
    projection: Projection | None = None,
) -> tuple[Page, CommentConnection]:
    """The page read and the connection made of it; with ``projection``, its nodes as the
    read model wrote them (``ReadModel.comments_page_projected``): JSON that goes into the
    response as it is (orjson writes a ``Fragment`` without parsing it)."""
    flt, order = to_comment_filter(filter), to_comment_order(order_by)
    if projection is not None:
        page = await read_model.comments_page_projected(flt, order, projection, **window(first, after, last, before))
        return page, connection(page, orjson.Fragment, lambda: read_model.comments_count(flt))
    page = await read_model.comments_page(flt, order, **window(first, after, last, before))
    return page, connection(page, Comment.from_view, lambda: read_model.comments_count(flt))


async def keywords_connection(
    read_model, filter: KeywordFilterInput | None = None, first: int | None = None, after: str | None = None,
    last: int | None = None, before: str | None = None,
) -> KeywordConnection:
    flt = filter or KeywordFilterInput()
    conditions = keyword_cases.keyword_search(active=flt.active, category=flt.category, text=flt.text)
    page = await read_model.keywords_page(**window(first, after, last, before), **conditions)
    return connection(page, Keyword.from_domain, lambda: read_model.keywords_count(**conditions))

