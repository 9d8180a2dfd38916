"""Comments and what hangs off them: ``Comment`` (with its post, author, keyword matches, earlier
texts, parent and thread), ``Post``, ``Author``, the ``comments`` and ``comment`` queries, the
review mutation ``setCommentState``, and the filter every comment list shares (the ``comments``
query, exports and ``commentMatched``).

Related objects come through dataloaders; a page prefetches the relations its selection asks
for (``prefetch_comment_relations``), one batch each.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Annotated

import orjson
import strawberry
from strawberry.types.nodes import SelectedField, Selection

from domain import models
from domain import review as review_cases
from domain.queries import CommentFilter, CommentOrder, CommentSort, CommentView, Page, PostView, Projection, ReadModel
from domain.queries import CommentVersion as CommentVersionView
from domain.queries import SortDirection as DomainSortDirection
from graphql_api.auth import IsOperator
from graphql_api.context import Info
from graphql_api.errors import UserError, user_errors_in
from graphql_api.groups import Group, load_group
from graphql_api.ids import NodeType, filter_ids, global_id, parse_id
from graphql_api.keywords import Keyword, keyword_or_none
from graphql_api.relay import VK, After, Before, Connection, First, Last, Node, by_id, connection, window

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


@strawberry.type(description="A wall post of a community.")
class Post(Node):
    NODE_TYPE = NodeType.POST
    vk_id: int = strawberry.field(description="VK's id of the post within its wall.")
    owner_id: int = strawberry.field(description="VK wall owner id (the community's id, negated).")
    author_id: int | None = strawberry.field(description="VK id of who published it (negative: the community itself).")
    text: str = strawberry.field(description="The post's text.")
    published_at: datetime = strawberry.field(description="When it was published.")
    comments_count: int = strawberry.field(description="Comments VK reports for the post, replies included.")
    likes: int = strawberry.field(description="Likes, as of the last collection.")
    reposts: int = strawberry.field(description="Reposts, as of the last collection.")
    views: int = strawberry.field(description="Views, as of the last collection.")
    is_pinned: bool = strawberry.field(description="Whether the post is pinned on the wall.")
    group_id: strawberry.Private[int]

    @strawberry.field(description="The community whose wall the post is on.")
    def group(self, info: Info) -> Group | None:
        return load_group(info, self.group_id)  # type: ignore[return-value]

    @strawberry.field(description="Link to the post on VK.")
    def url(self) -> str:
        return f"{VK}/wall{self.owner_id}_{self.vk_id}"

    @classmethod
    def from_view(cls, p: PostView) -> Post:
        return cls(
            **cls.ids(p.id),
            vk_id=p.vk_id,
            owner_id=p.owner_id,
            author_id=p.from_id,
            text=p.text,
            published_at=p.published_at,
            comments_count=p.comments_count,
            likes=p.likes,
            reposts=p.reposts,
            views=p.views,
            is_pinned=p.is_pinned,
            group_id=p.group_id,
        )


@strawberry.type(description="Who wrote a comment: a VK user (positive id) or a community (negative id).")
class Author:
    vk_id: int = strawberry.field(description="VK id: positive for a user, negative for a community.")
    name: str = strawberry.field(description="Full name of the user, or the community's name.")
    screen_name: str | None = strawberry.field(description="Short address on VK, when known.")
    photo_url: str | None = strawberry.field(description="Avatar image URL, when known.")

    @strawberry.field(description="Link to the author's VK page.")
    def url(self) -> str:
        if self.screen_name:
            return f"{VK}/{self.screen_name}"
        return f"{VK}/id{self.vk_id}" if self.vk_id > 0 else f"{VK}/club{-self.vk_id}"

    @classmethod
    def from_domain(cls, a: models.Author) -> Author:
        return cls(vk_id=a.vk_id, name=a.name, screen_name=a.screen_name, photo_url=a.photo_url)


@strawberry.type(description="One place in a comment's text where a keyword matched.")
class KeywordMatch:
    matched_text: str = strawberry.field(description="The text as it appears in the comment.")
    start: int = strawberry.field(description="Offset of the match's first character in the comment text.")
    end: int = strawberry.field(description="Offset just after the match's last character.")
    snippet: str = strawberry.field(description="The match with some text around it.")
    keyword_id: strawberry.Private[int]

    @strawberry.field(description="The keyword that matched.")
    def keyword(self, info: Info) -> Keyword | None:
        return info.context.loaders(info).keyword.now_or_later(self.keyword_id, keyword_or_none)  # type: ignore[return-value]

    @classmethod
    def from_domain(cls, m: models.Match) -> KeywordMatch:
        return cls(matched_text=m.matched_text, start=m.start, end=m.end, snippet=m.snippet, keyword_id=m.keyword_id)


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
class CommentVersion:
    text: str = strawberry.field(description="The text as it was then.")
    seen_at: datetime = strawberry.field(
        description="When the collector first saw this text: for the oldest version, when the comment was first "
        "collected; for a later one, when that edit was noticed. It was replaced at the next version's `seenAt` "
        "(the last version: at the comment's `editedAt`)."
    )

    @classmethod
    def from_domain(cls, v: CommentVersionView) -> CommentVersion:
        return cls(text=v.text, seen_at=v.seen_at)


def comment_versions(versions: list[CommentVersionView]) -> list[CommentVersion]:
    """A comment's earlier texts as the schema lists them: oldest first, as the read model reads them."""
    return [CommentVersion.from_domain(v) for v in versions]


@strawberry.type(description="A comment under a wall post, or a reply inside a comment's thread.")
class Comment(Node):
    NODE_TYPE = NodeType.COMMENT
    vk_id: int = strawberry.field(description="VK's id of the comment (unique only within one wall).")
    owner_id: int = strawberry.field(description="VK wall owner id (the community's id, negated).")
    author_id: int = strawberry.field(description="VK id of the author (negative: a community).")
    text: str = strawberry.field(
        description="The comment's text as last collected; a deleted comment keeps the text it had (VK sends none)."
    )
    published_at: datetime = strawberry.field(description="When it was written.")
    likes: int = strawberry.field(description="Likes, as of the last collection.")
    deleted: bool = strawberry.field(
        description="Whether it was deleted on VK (VK shows it as deleted, or it is gone). Kept here, never erased."
    )
    deleted_at: datetime | None = strawberry.field(
        description="When the collector noticed the deletion (a re-read of its post); null while not deleted."
    )
    edited_at: datetime | None = strawberry.field(
        description="When a re-read of its post last found the text changed; null: never seen edited. "
        "The earlier texts are in `versions`."
    )
    viewed: bool = strawberry.field(description="Marked as viewed by a reviewer.")
    archived: bool = strawberry.field(description="Marked as archived by a reviewer.")
    matches_count: int = strawberry.field(description="How many keyword matches the comment has.")
    group_id: strawberry.Private[int]
    post_id: strawberry.Private[int]
    post_vk_id: strawberry.Private[int]
    parent_vk_id: strawberry.Private[int | None]
    thread_vk_id: strawberry.Private[int | None]

    @strawberry.field(description="The community the comment was written in.")
    def group(self, info: Info) -> Group | None:
        return load_group(info, self.group_id)  # type: ignore[return-value]

    @strawberry.field(description="The post the comment is under.")
    def post(self, info: Info) -> Post | None:
        return info.context.loaders(info).post.now_or_later(self.post_id, _post)  # type: ignore[return-value]

    @strawberry.field(description="The comment this one answers; null for a top-level comment.")
    def parent(self, info: Info) -> Comment | None:
        return _load_on_wall(info, self.owner_id, self.parent_vk_id)  # type: ignore[return-value]

    @strawberry.field(description="The top-level comment whose thread this reply is in; null for a top-level comment.")
    def thread(self, info: Info) -> Comment | None:
        return _load_on_wall(info, self.owner_id, self.thread_vk_id)  # type: ignore[return-value]

    @strawberry.field(description="Who wrote it; null when VK told us nothing about the author.")
    def author(self, info: Info) -> Author | None:
        return info.context.loaders(info).author.now_or_later(self.author_id, _author)  # type: ignore[return-value]

    @strawberry.field(description="Where the keywords matched, in text order.")
    def matches(self, info: Info) -> list[KeywordMatch]:
        return info.context.loaders(info).matches.now_or_later(self.pk, keyword_matches)  # type: ignore[return-value]

    @strawberry.field(
        description="The texts it had before its current `text`, oldest first, each with when it was first seen; "
        "empty for a comment never seen edited. Edits show when a re-read of the post finds them (see the README)."
    )
    def versions(self, info: Info) -> list[CommentVersion]:
        return info.context.loaders(info).versions.now_or_later(self.pk, comment_versions)  # type: ignore[return-value]

    @strawberry.field(description="Link to the comment on VK.")
    def url(self) -> str:
        return f"{VK}/wall{self.owner_id}_{self.post_vk_id}?reply={self.vk_id}"

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
        found = matcher.highlights(self.text) or []
        return [
            QueryHighlight(
                start=h.start, end=h.end, matched_text=self.text[h.start : h.end], term=h.term,
                keyword_id=global_id(NodeType.KEYWORD, h.keyword_id) if h.keyword_id is not None else None,
            )
            for h in found
        ]

    @classmethod
    def from_view(cls, c: CommentView) -> Comment:
        return cls(
            **cls.ids(c.id),
            vk_id=c.vk_id,
            owner_id=c.owner_id,
            author_id=c.from_id,
            text=c.text,
            published_at=c.published_at,
            likes=c.likes,
            deleted=c.deleted,
            deleted_at=c.deleted_at,
            edited_at=c.edited_at,
            viewed=c.viewed,
            archived=c.archived,
            matches_count=c.matches_count,
            group_id=c.group_id,
            post_id=c.post_id,
            post_vk_id=c.post_vk_id,
            parent_vk_id=c.parent_vk_id,
            thread_vk_id=c.thread_vk_id,
        )


def _comment(comment: CommentView | None) -> Comment | None:
    return Comment.from_view(comment) if comment is not None else None


def _load_on_wall(info: Info, owner_id: int, vk_id: int | None) -> Comment | Awaitable[Comment | None] | None:
    """A reply's parent or thread root, by its VK id on the same wall: loaded (one batch per
    level) only when the selection asks, so pages never join comments to themselves."""
    if vk_id is None:
        return None
    return info.context.loaders(info).comment_by_vk_id.now_or_later((owner_id, vk_id), _comment)


def _post(post: PostView | None) -> Post | None:
    return Post.from_view(post) if post is not None else None


def _author(author: models.Author | None) -> Author | None:
    return Author.from_domain(author) if author is not None else None


def keyword_matches(matches: list[models.Match]) -> list[KeywordMatch]:
    """A comment's stored matches as the schema lists them: in text order."""
    return [KeywordMatch.from_domain(m) for m in sorted(matches, key=lambda m: (m.start, m.end))]


CommentConnection = Connection[Comment]


# --- prefetch -------------------------------------------------------------------------------


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
    found: dict[str, list[Selection]] = {}
    for f in _fields(level):
        found.setdefault(f.name, []).extend(f.selections)
    return found


async def prefetch_comment_relations(info: Info, views: Sequence[CommentView], *path: str) -> None:
    """Load the relations the selection asks of these comments, one batch each, before their
    fields resolve: then every ``group``, ``post``, ``author``, ``matches``, ``versions`` and match ``keyword``
    answers at once from its loader (the same statements the loaders would have run lazily)."""
    if not views:
        return
    node = selected_under(info, *path)
    loaders = info.context.loaders(info)
    batches: list[Awaitable[object]] = []
    if "group" in node:
        batches.append(loaders.group.load_many(list(dict.fromkeys(v.group_id for v in views))))
    if "post" in node:
        batches.append(loaders.post.load_many(list(dict.fromkeys(v.post_id for v in views))))
    if "author" in node:
        batches.append(loaders.author.load_many(list(dict.fromkeys(v.from_id for v in views))))
    if "matches" in node:
        batches.append(loaders.matches.load_many([v.id for v in views]))
    if "versions" in node:
        batches.append(loaders.versions.load_many([v.id for v in views]))
    await asyncio.gather(*batches)
    if "matches" in node and any(f.name == "keyword" for f in _fields(node["matches"])):
        keyword_ids = dict.fromkeys(m.keyword_id for v in views for m in loaders.matches.loaded.get(v.id, ()))
        if keyword_ids:
            await loaders.keyword.load_many(list(keyword_ids))


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
    query: str | None = strawberry.field(
        default=None,
        description="Only comments matching this rule-language query: terms with Russian morphology, "
        '`"phrase"`, `"phrase"~N`, `a NEAR/N b`, `prefix*`, `case:` `part:` `exact:` switches, AND, OR, NOT, '
        "`-term`, parentheses (terms side by side: AND), `kw:12` / `kw:word` (a keyword), `rule:name` (a saved "
        "rule). A syntax error or a reference to nothing is BAD_USER_INPUT with `extensions.query { line column "
        "expected }`. At most 2000 characters.",
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
        query=flt.query if flt.query is not None and flt.query.strip() else None,
    )


def to_comment_order(order: CommentOrderInput | None) -> CommentOrder:
    if order is None:
        return CommentOrder()
    # The API's enums carry the domain's member names (their values are strawberry.enum_value's).
    return CommentOrder(field=CommentSort[order.field.name], direction=DomainSortDirection[order.direction.name])


async def comments_connection(
    read_model: ReadModel, filter: CommentFilterInput | None = None, order_by: CommentOrderInput | None = None,
    first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
    projection: Projection | None = None,
) -> tuple[Page, CommentConnection]:
    """The page read and the connection made of it; with ``projection``, its nodes as the
    read model wrote them (``ReadModel.comments_page_projected``): JSON that goes into the
    response as it is (orjson writes a ``Fragment`` without parsing it)."""
    flt, order = to_comment_filter(filter), to_comment_order(order_by)
    if projection is not None:
        written = await read_model.comments_page_projected(flt, order, projection, **window(first, after, last, before))
        return written, connection(written, orjson.Fragment, lambda: read_model.comments_count(flt))
    page = await read_model.comments_page(flt, order, **window(first, after, last, before))
    return page, connection(page, Comment.from_view, lambda: read_model.comments_count(flt))


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
    description="Mark comments viewed and/or archived (or not); omitted flags stay as they are.",
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
) -> SetCommentStatePayload:
    comment_ids = [parse_id(i, NodeType.COMMENT, field="ids") for i in ids]
    changed = await review_cases.set_comment_state(info.context.adapters, comment_ids, viewed=viewed, archived=archived)
    # Read back after the write, through a fresh query (the loader may hold the old state).
    views = await info.context.read_model.comments_by_ids(changed)
    return SetCommentStatePayload(comments=[Comment.from_view(v) for v in views if v is not None], errors=[])
