"""Comments and what hangs off them: ``Comment`` (with its post, author, keyword matches, earlier
texts, parent and thread), ``Post``, ``Author``, the ``comments`` and ``comment`` queries, the
review mutation ``setCommentState``, and the filter every comment list shares (the ``comments``
query, exports and ``commentMatched``).

The types' fields and relations are declared in ``domain/declaration.py`` (``graphql_api/declared.py``
makes them); related objects come through dataloaders, and a page prefetches the relations its
selection asks for (``prefetch_comment_relations``), one batch each.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Annotated, Any, cast

import orjson
import strawberry
from strawberry.tools import create_type

from domain import declaration
from domain import review as review_cases
from domain.models import CommentStatus as DomainCommentStatus
from domain.queries import CommentFilter, CommentOrder, CommentSort, CommentView, Page, Projection, ReadModel
from domain.queries import SortDirection as DomainSortDirection
from domain.review import normal_tag
from graphql_api.auth import IsOperator
from graphql_api.context import Info
from graphql_api.declared import Declared, declared, enum_type, prefetch, selected_under
from graphql_api.errors import UserError, user_errors_in
from graphql_api.groups import Group  # noqa: F401 (declared first: a comment's and a post's group)
from graphql_api.ids import NodeType, filter_ids, global_id, parse_id
from graphql_api.keywords import Keyword  # noqa: F401 (declared first: a match's keyword)
from graphql_api.relay import After, Before, Connection, First, Last, Node, by_id, connection, window

CommentId = Annotated[
    strawberry.ID, strawberry.argument(description="Id of the comment (its global id, or its row id).")
]


@strawberry.enum(description="What comments are sorted by.")
class CommentSortField(enum.Enum):
    PUBLISHED_AT = strawberry.enum_value("PUBLISHED_AT", description="When the comment was written.")
    LIKES = strawberry.enum_value("LIKES", description="The comment's likes.")
    MATCHES_COUNT = strawberry.enum_value("MATCHES_COUNT", description="How many keyword matches the comment has.")


@strawberry.enum(description="Sort direction.")
class SortDirection(enum.Enum):
    ASC = strawberry.enum_value("ASC", description="Smallest (oldest) first.")
    DESC = strawberry.enum_value("DESC", description="Largest (newest) first.")


@enum_type
@strawberry.enum(description="Where a comment is in the team's review.")
class CommentStatus(enum.Enum):
    NEW = strawberry.enum_value("NEW", description="Nobody has taken it up yet (every comment starts here).")
    IN_PROGRESS = strawberry.enum_value("IN_PROGRESS", description="Someone is working on it.")
    DONE = strawberry.enum_value("DONE", description="Dealt with.")
    IGNORED = strawberry.enum_value("IGNORED", description="Needs nothing.")


@strawberry.type(description="A wall post of a community.")
@declared(declaration.POST)  # every field and relation: domain/declaration.py
class Post(Node, Declared):
    NODE_TYPE = NodeType.POST


@strawberry.type(description="Who wrote a comment: a VK user (positive id) or a community (negative id).")
@declared(declaration.AUTHOR)
class Author(Declared):
    pass


@strawberry.type(description="One place in a comment's text where a keyword matched.")
@declared(declaration.MATCH)
class KeywordMatch(Declared):
    pass


@strawberry.type(description="One place in a comment's text where a term of a rule-language query matched.")
class QueryHighlight:
    matched_text: str = strawberry.field(description="The text as it appears in the comment.")
    start: int = strawberry.field(description="Offset of the first character in the comment text.")
    end: int = strawberry.field(description="Offset just after the last character.")
    term: str = strawberry.field(description="The term of the query that matched, as written there.")
    keyword_id: strawberry.ID | None = strawberry.field(description="The keyword, for a `kw:` term.")


@strawberry.type(
    description="A text a comment had before its current one (the current one is the comment's `text`)."
)
@declared(declaration.VERSION)
class CommentVersion(Declared):
    pass


@strawberry.type(description="A comment under a wall post, or a reply inside a comment's thread.")
@declared(declaration.COMMENT)
class Comment(Node, Declared):
    NODE_TYPE = NodeType.COMMENT

    @strawberry.field(
        description="Where the terms of a rule-language query matched in the text, in text order, when the "
        "comment matches it (terms under NOT are not shown); empty when it does not. The Review page highlights "
        "these for its `query`."
    )
    async def highlights(
        self, info: Info, query: Annotated[str, strawberry.argument(description="A rule-language query.")]
    ) -> list[QueryHighlight]:
        matcher = await info.context.read_model.compiled(CommentFilter(query=query))
        assert matcher is not None
        text: str = cast(Any, self).text  # a declared field (domain/declaration.py), set by ``from_view``
        found = matcher.highlights(text) or []
        return [
            QueryHighlight(
                start=h.start, end=h.end, matched_text=text[h.start : h.end], term=h.term,
                keyword_id=global_id(NodeType.KEYWORD, h.keyword_id) if h.keyword_id is not None else None,
            )
            for h in found
        ]


CommentConnection = Connection[Comment]


async def prefetch_comment_relations(info: Info, views: Sequence[CommentView], *path: str) -> None:
    """Load the relations the selection at ``path`` asks of these comments (and of what they
    find), one batch each, before their fields resolve (``declared.prefetch``)."""
    await prefetch(info, declaration.COMMENT, list(views), selected_under(info, *path))


# --- inputs and payloads --------------------------------------------------------------------


@strawberry.input(name="CommentFilter", description="Which comments to list. Every given condition must hold.")
class CommentFilterInput:
    group_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only from these communities (Group ids; at most 1000)."
    )
    post_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only under these posts (Post ids; at most 1000)."
    )
    keyword_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only comments matched by at least one of these keywords (Keyword ids; at most 1000)."
    )
    matched: bool | None = strawberry.field(
        default=None, description="true: only comments with a keyword match; false: only without."
    )
    text: str | None = strawberry.field(
        default=None,
        description="Only comments whose text contains every word of this, in any order, as written: "
        "case-insensitive, `ё` = `е`, a word may be part of a longer one, no stemming. So a stem finds every "
        "form (`кошк`: кошка, кошки, кошками, but also окошко) and `кошка` finds кошка and кошками, not кошки. "
        "For every word form of a word, use a keyword (`keywordIds`): keywords match Russian morphology. "
        "The same on every database, in exports and in `commentMatched`. At most 500 characters.",
    )
    author_ids: list[int] | None = strawberry.field(
        default=None, description="Only by these authors (VK ids; at most 1000)."
    )
    since: datetime | None = strawberry.field(default=None, description="Only written at or after this time.")
    until: datetime | None = strawberry.field(default=None, description="Only written at or before this time.")
    viewed: bool | None = strawberry.field(
        default=None, description="Only viewed (true) or not viewed (false) comments."
    )
    archived: bool | None = strawberry.field(
        default=None, description="Only archived (true) or not archived (false) comments."
    )
    deleted: bool | None = strawberry.field(
        default=None, description="Only comments deleted on VK (true: `deleted`, with `deletedAt`) or only those not "
        "(false)."
    )
    edited: bool | None = strawberry.field(
        default=None, description="Only comments seen edited (true: `editedAt` set, earlier texts in `versions`) or "
        "only those not (false)."
    )
    statuses: list[CommentStatus] | None = strawberry.field(
        default=None, description="Only comments in one of these review statuses."
    )
    assignees: list[str] | None = strawberry.field(
        default=None, description="Only comments assigned to one of these names (API token holders; at most 1000)."
    )
    tags: list[str] | None = strawberry.field(
        default=None, description="Only comments with at least one of these tags (compared as stored: trimmed, "
        "lowercase; at most 1000)."
    )
    query: str | None = strawberry.field(
        default=None,
        description="Only comments matching this rule-language query: terms with Russian morphology, "
        '`"phrase"`, `"phrase"~N`, `a NEAR/N b`, `prefix*`, `case:` `part:` `exact:` switches, AND, OR, NOT, '
        "`-term`, parentheses (terms side by side: AND), `kw:12` / `kw:word` (a keyword), `rule:name` (a saved "
        "rule). A syntax error or a reference to nothing is BAD_USER_INPUT with `extensions.query { line column "
        "expected }`. At most 2000 characters.",
    )


# A stored filter shown back (an alert rule's): the input's fields, declared once above.
AlertRuleFilter = create_type(
    "AlertRuleFilter",
    [copy.copy(f) for f in CommentFilterInput.__strawberry_definition__.fields],  # type: ignore[attr-defined]
    description="The comments a rule alerts: the `comments` query's filter, as it was given.",
)


@strawberry.input(name="CommentOrder", description="How to sort comments.")
class CommentOrderInput:
    field: CommentSortField = strawberry.field(default=CommentSortField.PUBLISHED_AT, description="What to sort by.")
    direction: SortDirection = strawberry.field(default=SortDirection.DESC, description="Which way.")


@strawberry.type(description="Result of setCommentState.")
class SetCommentStatePayload:
    comments: list[Comment] = strawberry.field(description="The changed comments, as they are now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


# --- queries --------------------------------------------------------------------------------


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
        statuses=tuple(DomainCommentStatus[s.name] for s in dict.fromkeys(flt.statuses))
        if flt.statuses is not None else None,
        assignees=tuple(dict.fromkeys(a.strip() for a in flt.assignees)) if flt.assignees is not None else None,
        tags=tuple(dict.fromkeys(normal_tag(t, field="tags") for t in flt.tags)) if flt.tags is not None else None,
        query=flt.query if flt.query is not None and flt.query.strip() else None,
    )


_FILTER_ID_KINDS = {"group_ids": NodeType.GROUP, "post_ids": NodeType.POST, "keyword_ids": NodeType.KEYWORD}


def comment_filter_view(flt: CommentFilter) -> Any:
    """A stored filter as the API shows it (``AlertRuleFilter``, the input's own fields): what
    ``to_comment_filter`` made of a ``CommentFilterInput``, back in the input's terms (global
    ids, enum members, lists), field by field."""
    shown: dict[str, Any] = {}
    for f in dataclasses.fields(flt):
        value = getattr(flt, f.name)
        if value is not None and f.name in _FILTER_ID_KINDS:
            value = [global_id(_FILTER_ID_KINDS[f.name], v) for v in value]
        elif value is not None and f.name == "statuses":
            value = [CommentStatus[s.name] for s in value]
        elif isinstance(value, tuple):
            value = list(value)
        shown[f.name] = value
    return AlertRuleFilter(**shown)


def to_comment_order(order: CommentOrderInput | None) -> CommentOrder:
    if order is None:
        return CommentOrder()
    # The API's enums carry the domain's member names (their values are strawberry.enum_value's).
    return CommentOrder(field=CommentSort[order.field.name], direction=DomainSortDirection[order.direction.name])


async def comments_connection(
    read_model: ReadModel, filter: CommentFilterInput | None = None, order_by: CommentOrderInput | None = None,
    first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
    projection: Projection | None = None, counted: bool = False,
) -> tuple[Page, CommentConnection]:
    """The page read and the connection made of it; with ``projection``, its nodes as the
    read model wrote them (``ReadModel.comments_page_projected``): JSON that goes into the
    response as it is (orjson writes a ``Fragment`` without parsing it). ``counted``: the
    ``totalCount`` is asked, so the read model counts in the page's statement where it can."""
    flt, order = to_comment_filter(filter), to_comment_order(order_by)
    if projection is not None:
        written = await read_model.comments_page_projected(
            flt, order, projection, counted=counted, **window(first, after, last, before)
        )
        total = written.total
        count = partial(_known, total) if total is not None else partial(read_model.comments_count, flt)
        return written, connection(written, orjson.Fragment, count)
    page = await read_model.comments_page(flt, order, **window(first, after, last, before))
    return page, connection(page, Comment.from_view, lambda: read_model.comments_count(flt))


async def _known(value: int) -> int:
    return value


@strawberry.field(description="Collected comments, filtered and sorted (newest first by default).")
async def comments(
    info: Info,
    filter: Annotated[CommentFilterInput | None, strawberry.argument(description="Which comments.")] = None,
    order_by: Annotated[CommentOrderInput | None, strawberry.argument(description="Sort order.")] = None,
    first: First = None,
    after: After = None,
    last: Last = None,
    before: Before = None,
) -> CommentConnection:
    page, found = await comments_connection(info.context.read_model, filter, order_by, first, after, last, before)
    await prefetch_comment_relations(info, [view for _, view in page.edges], "edges", "node")
    return found


@strawberry.field(description="One comment by its id; null when there is none.")
async def comment(info: Info, id: CommentId) -> Comment | None:
    return await by_id(id, NodeType.COMMENT, info.context.loaders(info).comment.load, Comment.from_view)


# --- mutations ------------------------------------------------------------------------------


@strawberry.mutation(
    description="Change the review state of comments, many at once: viewed, archived, status, assignee, tags, note. "
    "Omitted arguments leave their field as it is. Every change is recorded in `commentEvents` (who: the API "
    "token's name). Operators and admins.",
    permission_classes=[IsOperator],
)
@user_errors_in(SetCommentStatePayload, comments=[])
async def set_comment_state(
    info: Info,
    ids: Annotated[list[strawberry.ID], strawberry.argument(description="Ids of the comments (at most 1000).")],
    viewed: Annotated[bool | None, strawberry.argument(description="Mark viewed (true) or not viewed (false).")] = None,
    archived: Annotated[
        bool | None, strawberry.argument(description="Mark archived (true) or not archived (false).")
    ] = None,
    status: Annotated[CommentStatus | None, strawberry.argument(description="The new review status.")] = None,
    assignee: Annotated[
        str | None,
        strawberry.argument(description="Assign to this API token holder's name (a live token's); \"\": unassign."),
    ] = None,
    add_tags: Annotated[
        list[str] | None,
        strawberry.argument(description="Tags to add (trimmed, lowercase; at most 50 characters, no comma; "
                            "a comment has at most 20)."),
    ] = None,
    remove_tags: Annotated[list[str] | None, strawberry.argument(description="Tags to remove.")] = None,
    note: Annotated[
        str | None, strawberry.argument(description="The note (at most 4000 characters); \"\": remove it.")
    ] = None,
) -> SetCommentStatePayload:
    comment_ids = [parse_id(i, NodeType.COMMENT, field="ids") for i in ids]
    change = review_cases.StateChange(
        viewed=viewed, archived=archived, status=DomainCommentStatus[status.name] if status is not None else None,
        assignee=assignee, add_tags=tuple(add_tags or ()), remove_tags=tuple(remove_tags or ()), note=note,
    )
    token = info.context.token
    changed = await review_cases.set_comment_state(
        info.context.adapters, comment_ids, change, actor=token.name if token is not None else None
    )
    # Read back after the write, through a fresh query (the loader may hold the old state).
    views = await info.context.read_model.comments_by_ids(changed)
    return SetCommentStatePayload(comments=[Comment.from_view(v) for v in views if v is not None], errors=[])
