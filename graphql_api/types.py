"""The GraphQL types: thin views of domain objects; related objects come through dataloaders.

Objects with an id implement ``Node``: their ``id`` is a global id (see ``ids.py``), so any of
them can be fetched again with ``node(id:)``, as Relay's ``@refetchable`` does.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import ClassVar, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types.nodes import Selection, SelectedField

from domain import models, progress
from domain.queries import CommentFilter, CommentVersion as CommentVersionView, CommentView, Page, PostView
from graphql_api.codes import ErrorCode
from graphql_api.context import Info
from graphql_api.exports_route import export_link
from graphql_api.ids import NodeType, global_id

T = TypeVar("T")

VK = "https://vk.com"


# --- enums ----------------------------------------------------------------------------------


@strawberry.enum(description="What a background task does.")
class TaskKind(enum.Enum):
    PARSE = strawberry.enum_value("PARSE", description="Collect a community's posts, comments and replies from VK.")
    ANALYZE = strawberry.enum_value("ANALYZE", description="Match stored comments against the keywords again (no VK calls).")
    EXPORT = strawberry.enum_value("EXPORT", description="Write filtered comments to a downloadable file.")


@strawberry.enum(description="Where a task is in its life. SUCCEEDED, FAILED and CANCELLED are final.")
class TaskState(enum.Enum):
    QUEUED = strawberry.enum_value("QUEUED", description="Stored and waiting for a worker.")
    RUNNING = strawberry.enum_value("RUNNING", description="A worker is running it; `progress` moves.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Finished; see `result`.")
    FAILED = strawberry.enum_value("FAILED", description="Stopped by an error; see `error`.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="Cancelled by a user before it finished.")


@strawberry.enum(
    description="What a task's progress message says, for a client that words it in its own language "
    "(`Progress.messageArgs` holds its numbers and names; `Progress.message` is the English sentence)."
)
class ProgressMessageCode(enum.Enum):
    READING_WALL = strawberry.enum_value("READING_WALL", description="A parse lists the community's posts. No arguments.")
    POSTS_TO_READ = strawberry.enum_value(
        "POSTS_TO_READ", description="Posts listed: `posts` in all, `toRead` whose comments are read."
    )
    POSTS_READ = strawberry.enum_value(
        "POSTS_READ", description="`done` of `total` posts read, `comments` comments stored so far."
    )
    COMMENTS_CHECKED = strawberry.enum_value(
        "COMMENTS_CHECKED", description="An analyze checked `done` of `total` comments; `matched` of them matched "
        "(absent before the first batch)."
    )
    ROWS_WRITTEN = strawberry.enum_value("ROWS_WRITTEN", description="An export wrote `done` of `total` rows.")
    FINISHING_FILE = strawberry.enum_value("FINISHING_FILE", description="An export closes its file. No arguments.")
    FILE_WRITTEN = strawberry.enum_value(
        "FILE_WRITTEN", description="An export wrote `rows` comments to `file`, of `size` (e.g. \"1.2 MB\")."
    )
    RETRYING = strawberry.enum_value(
        "RETRYING", description="A dependency failed (`error`, in English); the task runs again from what is stored."
    )
    WAITING_FOR_VK = strawberry.enum_value(
        "WAITING_FOR_VK", description="Every VK token rests (`reason`: QUOTA, its daily quota, or CAPTCHA) until "
        "`until` (UTC, \"HH:MM\" today or \"YYYY-MM-DD HH:MM\"; `Task.waitingUntil` is exact): the task waits, QUEUED."
    )


@strawberry.enum(description="What comments are sorted by.")
class CommentSortField(enum.Enum):
    PUBLISHED_AT = strawberry.enum_value("PUBLISHED_AT", description="When the comment was written.")
    LIKES = strawberry.enum_value("LIKES", description="The comment's likes.")
    MATCHES_COUNT = strawberry.enum_value("MATCHES_COUNT", description="How many keyword matches the comment has.")


@strawberry.enum(description="Sort direction.")
class SortDirection(enum.Enum):
    ASC = strawberry.enum_value("ASC", description="Smallest (oldest) first.")
    DESC = strawberry.enum_value("DESC", description="Largest (newest) first.")


# --- errors and pages -----------------------------------------------------------------------


@strawberry.type(
    description="An expected failure of a mutation (bad reference, unknown id, invalid value). "
    "Mutations return these in `errors` instead of failing the request."
)
class UserError:
    code: ErrorCode = strawberry.field(
        description="Machine-readable reason, e.g. NOT_FOUND, BAD_USER_INPUT, INVALID_REFERENCE, DUPLICATE, "
        "VK_ACCESS_DENIED, VK_RATE_LIMITED, VK_UNAVAILABLE."
    )
    message: str = strawberry.field(description="What went wrong, for people.")
    field: str | None = strawberry.field(
        description="The input field the error is about (e.g. `ref`, `id`, `maxPosts`), when there is one."
    )


@strawberry.interface(
    description="An object with a global id; `node(id:)` fetches any of them again (Relay's Node)."
)
class Node:
    NODE_TYPE: ClassVar[NodeType]
    id: strawberry.ID = strawberry.field(
        description="Global id of the object: opaque, unique across types; pass it back as given."
    )
    pk: strawberry.Private[int]

    @classmethod
    def ids(cls, pk: int) -> dict:
        """The id fields of an object of this type with row id ``pk``."""
        return {"id": global_id(cls.NODE_TYPE, pk), "pk": pk}


@strawberry.type(description="Where a page of a connection starts and ends, and whether there is more on either side.")
class PageInfo:
    start_cursor: str | None = strawberry.field(
        description="Cursor of the page's first item: pass as `before` for the previous page; null when the page is empty."
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


# --- groups ---------------------------------------------------------------------------------


@strawberry.type(description="When and how often a community is collected automatically.")
class Monitoring:
    enabled: bool = strawberry.field(description="Whether the scheduler collects this community by itself.")
    interval_minutes: int = strawberry.field(description="Minutes between automatic runs (1–1440).")
    priority: int = strawberry.field(description="Queue priority of automatic runs (1–10, higher runs first).")
    next_run_at: datetime | None = strawberry.field(description="When the next automatic run is due.")
    last_run_at: datetime | None = strawberry.field(description="When the last run (of any kind) finished.")
    last_success_at: datetime | None = strawberry.field(description="When the last successful run finished.")
    last_error: str | None = strawberry.field(description="Why the last run failed; null after a success.")


@strawberry.type(description="A VK community (group, public page or event) whose comments are collected.")
class Group(Node):
    NODE_TYPE = NodeType.GROUP
    vk_id: int = strawberry.field(description="VK's id of the community (positive).")
    screen_name: str = strawberry.field(description="Short address, as in vk.com/<screenName>.")
    name: str = strawberry.field(description="Display name.")
    is_closed: bool = strawberry.field(description="Whether the community is closed or private on VK.")
    members_count: int | None = strawberry.field(description="Members, as of the last refresh.")
    photo_url: str | None = strawberry.field(description="Avatar image URL.")
    description: str | None = strawberry.field(description="The community's description on VK.")
    deactivated: str | None = strawberry.field(description="Why VK blocked the community (`banned`, `deleted`), if it did.")
    active: bool = strawberry.field(description="Inactive communities are kept but never collected.")
    max_posts: int | None = strawberry.field(description="How many of the newest posts a parse reads (null: all).")
    since: datetime | None = strawberry.field(description="A parse reads posts back to this date (null: no limit).")
    monitoring: Monitoring = strawberry.field(description="Automatic collection settings and state.")
    created_at: datetime | None = strawberry.field(description="When the community was added.")
    updated_at: datetime | None = strawberry.field(description="When this record last changed.")

    @strawberry.field(description="Link to the community on VK.")
    def url(self) -> str:
        return f"{VK}/{self.screen_name}" if self.screen_name else f"{VK}/club{self.vk_id}"

    @strawberry.field(description="Comments collected from this community (counted only when asked for).")
    async def comments_count(self, info: Info) -> int:
        return await info.context.read_model.comments_count(CommentFilter(group_ids=(self.pk,)))

    @classmethod
    def from_domain(cls, g: models.Group) -> Group:
        return cls(
            **cls.ids(g.id),
            vk_id=g.vk_id,
            screen_name=g.screen_name,
            name=g.name,
            is_closed=g.is_closed,
            members_count=g.members_count,
            photo_url=g.photo_url,
            description=g.description,
            deactivated=g.deactivated,
            active=g.active,
            max_posts=g.max_posts,
            since=g.since,
            monitoring=Monitoring(
                enabled=g.monitor_enabled,
                interval_minutes=g.monitor_interval_minutes,
                priority=g.monitor_priority,
                next_run_at=g.next_run_at,
                last_run_at=g.last_run_at,
                last_success_at=g.last_success_at,
                last_error=g.last_error,
            ),
            created_at=g.created_at,
            updated_at=g.updated_at,
        )


def _group(group: models.Group | None) -> Group | None:
    return Group.from_domain(group) if group is not None else None


def load_group(info: Info, group_id: int | None) -> Group | None | Awaitable[Group | None]:
    """The group now when the operation has loaded it already, else an awaitable of it."""
    if group_id is None:
        return None
    return info.context.loaders(info).group.now_or_later(group_id, _group)


# --- posts, authors, keywords, comments -----------------------------------------------------


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


@strawberry.type(description="A word or phrase comments are matched against.")
class Keyword(Node):
    NODE_TYPE = NodeType.KEYWORD
    word: str = strawberry.field(description="The word or phrase.")
    category: str | None = strawberry.field(description="A free-form group the keyword belongs to.")
    active: bool = strawberry.field(description="Inactive keywords are kept but not matched.")
    case_sensitive: bool = strawberry.field(description="Whether letter case must match.")
    whole_word: bool = strawberry.field(description="Whether only whole words match (not parts of longer words).")
    morphology: bool = strawberry.field(description="Whether every Russian word form matches (кошка → кошками).")
    created_at: datetime | None = strawberry.field(description="When the keyword was added.")

    @strawberry.field(description="How many matches of this keyword are stored (batched across keywords).")
    async def matches_count(self, info: Info) -> int:
        return await info.context.loaders(info).keyword_matches_count.load(self.pk)

    @classmethod
    def from_domain(cls, k: models.Keyword) -> Keyword:
        return cls(
            **cls.ids(k.id),
            word=k.word,
            category=k.category,
            active=k.active,
            case_sensitive=k.case_sensitive,
            whole_word=k.whole_word,
            morphology=k.morphology,
            created_at=k.created_at,
        )


@strawberry.type(description="One place in a comment's text where a keyword matched.")
class KeywordMatch:
    matched_text: str = strawberry.field(description="The text as it appears in the comment.")
    start: int = strawberry.field(description="Offset of the match's first character in the comment text.")
    end: int = strawberry.field(description="Offset just after the match's last character.")
    snippet: str = strawberry.field(description="The match with some text around it.")
    keyword_id: strawberry.Private[int]

    @strawberry.field(description="The keyword that matched.")
    def keyword(self, info: Info) -> Keyword | None:
        return info.context.loaders(info).keyword.now_or_later(self.keyword_id, _keyword)  # type: ignore[return-value]

    @classmethod
    def from_domain(cls, m: models.Match) -> KeywordMatch:
        return cls(matched_text=m.matched_text, start=m.start, end=m.end, snippet=m.snippet, keyword_id=m.keyword_id)


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


def _load_on_wall(info: Info, owner_id: int, vk_id: int | None) -> Comment | None | Awaitable[Comment | None]:
    """A reply's parent or thread root, by its VK id on the same wall: loaded (one batch per
    level) only when the selection asks, so pages never join comments to themselves."""
    if vk_id is None:
        return None
    return info.context.loaders(info).comment_by_vk_id.now_or_later((owner_id, vk_id), _comment)


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


def _post(post: PostView | None) -> Post | None:
    return Post.from_view(post) if post is not None else None


def _author(author: models.Author | None) -> Author | None:
    return Author.from_domain(author) if author is not None else None


def _keyword(keyword: models.Keyword | None) -> Keyword | None:
    return Keyword.from_domain(keyword) if keyword is not None else None


def keyword_matches(matches: list[models.Match]) -> list[KeywordMatch]:
    """A comment's stored matches as the schema lists them: in text order."""
    return [KeywordMatch.from_domain(m) for m in sorted(matches, key=lambda m: (m.start, m.end))]


# --- tasks ----------------------------------------------------------------------------------


@strawberry.type(description="How far a task has got.")
class Progress:
    done: int = strawberry.field(description="Units of work done (posts, comments, rows: see `message`).")
    total: int | None = strawberry.field(description="Units of work in all, when known.")
    message: str = strawberry.field(description="What the task is doing now, for people (in English).")
    message_code: ProgressMessageCode | None = strawberry.field(
        description="What `message` says, as a code to word in another language; null for a message without one."
    )
    message_args: JSON | None = strawberry.field(
        description="The numbers and names `message` holds, by name (see `messageCode`); null with no code."
    )

    @classmethod
    def from_domain(cls, p: models.Progress) -> Progress:
        said = progress.read(p.message)
        return cls(
            done=p.done, total=p.total, message=p.message,
            message_code=ProgressMessageCode[said.code.value] if said else None,
            message_args=dict(said.args) if said else None,
        )  # fmt: skip


@strawberry.type(description="The file a successful export wrote, and a link that downloads it.")
class ExportResult:
    file_name: str = strawberry.field(description="The name a browser saves the file as.")
    format: ExportFormat = strawberry.field(description="The file format.")
    rows: int = strawberry.field(description="Comments written to the file.")
    bytes: float = strawberry.field(
        description="Size of the file in bytes (a Float because GraphQL's Int ends at 2 GiB)."
    )
    url: str | None = strawberry.field(
        description="Absolute download link that needs no Authorization header (an `<a href>` works): it "
        "carries its own signature, valid until `expiresAt`. Null once the file has expired."
    )
    expires_at: datetime | None = strawberry.field(
        description="When `url` stops working (a download then answers 403 LINK_EXPIRED); read the task "
        "again for a fresh link, until `fileExpiresAt`."
    )
    file_expires_at: datetime | None = strawberry.field(
        description="When the file is deleted; null once it has been (start a new export)."
    )

    @classmethod
    def of(cls, result: object, info: Info) -> ExportResult | None:
        """The typed view of an EXPORT task's ``result``; None for a result that lacks the fields
        (written by an older version)."""
        if not isinstance(result, dict) or not {"file", "fileName", "rows", "format", "bytes"} <= result.keys():
            return None
        link = export_link(info.context.container, info.context.base_url, result["file"])
        url, expires_at, file_expires_at = link if link is not None else (None, None, None)
        return cls(
            file_name=result["fileName"], format=ExportFormat(result["format"]), rows=result["rows"],
            bytes=result["bytes"], url=url, expires_at=expires_at, file_expires_at=file_expires_at,
        )  # fmt: skip


@strawberry.type(description="A background job (parse, analyze, export) and its durable record.")
class Task(Node):
    NODE_TYPE = NodeType.TASK
    kind: TaskKind = strawberry.field(description="What the task does.")
    state: TaskState = strawberry.field(description="Where the task is in its life.")
    priority: int = strawberry.field(description="Queue priority (1–10, higher runs first).")
    progress: Progress = strawberry.field(description="How far it has got.")
    attempts: int = strawberry.field(description="How many times a worker has started it (more than 1 after a retry).")
    cancel_requested: bool = strawberry.field(description="A cancel was asked for; a running task stops at its next step.")
    created_at: datetime | None = strawberry.field(description="When it was queued.")
    started_at: datetime | None = strawberry.field(description="When a worker first started it.")
    finished_at: datetime | None = strawberry.field(description="When it reached a final state.")
    updated_at: datetime | None = strawberry.field(
        description="When the task (state or progress) last changed; subscribers can measure delivery delay."
    )
    error: str | None = strawberry.field(description="Why it failed (state FAILED).")
    result: JSON | None = strawberry.field(description="What it produced (state SUCCEEDED); the shape depends on `kind`.")
    params: JSON = strawberry.field(description="The options it was started with.")
    stalled_at: datetime | None = strawberry.field(
        description="When the running task was last found stuck (no progress for the stall timeout) and handed "
        "to another runner; null again once its progress moves."
    )
    stalls: int = strawberry.field(description="How many times it was found stuck; at 3 it ends FAILED.")
    waiting_until: datetime | None = strawberry.field(
        description="While every VK token rests (daily quota, captcha), a running task waits instead of failing: "
        "it is QUEUED with this time, when the first token comes back and it resumes by itself (its progress "
        "message says why). Null unless waiting."
    )
    group_id: strawberry.Private[int | None]

    @strawberry.field(description="The community a PARSE task collects; null for other kinds.")
    def group(self, info: Info) -> Group | None:
        return load_group(info, self.group_id)  # type: ignore[return-value]

    @strawberry.field(
        description="What a SUCCEEDED EXPORT task wrote, with a short-lived download link; null for other tasks."
    )
    def export(self, info: Info) -> ExportResult | None:
        if self.kind is not TaskKind.EXPORT or self.state is not TaskState.SUCCEEDED:
            return None
        return ExportResult.of(self.result, info)

    @classmethod
    def from_domain(cls, t: models.Task) -> Task:
        return cls(
            **cls.ids(t.id),
            kind=TaskKind(t.kind.value),
            state=TaskState(t.state.value),
            priority=t.priority,
            progress=Progress.from_domain(t.progress),
            attempts=t.attempts,
            cancel_requested=t.cancel_requested,
            created_at=t.created_at,
            started_at=t.started_at,
            finished_at=t.finished_at,
            updated_at=t.updated_at,
            error=t.error,
            result=t.result,
            params=t.params or {},
            stalled_at=t.stalled_at,
            stalls=t.stalls,
            waiting_until=t.waiting_until if t.state is models.TaskState.QUEUED else None,
            group_id=t.group_id,
        )


GroupConnection = Connection[Group]
CommentConnection = Connection[Comment]
TaskConnection = Connection[Task]


# --- inputs ---------------------------------------------------------------------------------


@strawberry.input(name="CommentFilter", description="Which comments to list. Every given condition must hold.")
class CommentFilterInput:
    group_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Only from these communities (Group ids; at most 1000).")
    post_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Only under these posts (Post ids; at most 1000).")
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
    author_ids: list[int] | None = strawberry.field(default=None, description="Only by these authors (VK ids; at most 1000).")
    since: datetime | None = strawberry.field(default=None, description="Only written at or after this time.")
    until: datetime | None = strawberry.field(default=None, description="Only written at or before this time.")
    viewed: bool | None = strawberry.field(default=None, description="Only viewed (true) or not viewed (false) comments.")
    archived: bool | None = strawberry.field(default=None, description="Only archived (true) or not archived (false) comments.")
    deleted: bool | None = strawberry.field(
        default=None, description="Only comments deleted on VK (true: `deleted`, with `deletedAt`) or only those not (false)."
    )
    edited: bool | None = strawberry.field(
        default=None, description="Only comments seen edited (true: `editedAt` set, earlier texts in `versions`) or only those not (false)."
    )


@strawberry.input(name="CommentOrder", description="How to sort comments.")
class CommentOrderInput:
    field: CommentSortField = strawberry.field(default=CommentSortField.PUBLISHED_AT, description="What to sort by.")
    direction: SortDirection = strawberry.field(default=SortDirection.DESC, description="Which way.")


@strawberry.input(name="TaskFilter", description="Which tasks to list. Every given condition must hold.")
class TaskFilterInput:
    kinds: list[TaskKind] | None = strawberry.field(default=None, description="Only tasks of these kinds.")
    states: list[TaskState] | None = strawberry.field(default=None, description="Only tasks in these states.")
    group_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Only tasks of these communities (Group ids; at most 1000).")
    updated_since: datetime | None = strawberry.field(
        default=None,
        description="Only tasks whose state or progress changed at or after this time: what a client "
        "missed while it was disconnected.",
    )


@strawberry.input(description="Automatic collection settings; omitted fields stay as they are.")
class MonitoringInput:
    enabled: bool | None = strawberry.field(default=strawberry.UNSET, description="Collect the community automatically.")
    interval_minutes: int | None = strawberry.field(default=strawberry.UNSET, description="Minutes between runs (1–1440).")
    priority: int | None = strawberry.field(default=strawberry.UNSET, description="Queue priority of the runs (1–10).")


@strawberry.input(description="Changes to a community's settings; omitted fields stay as they are, null clears.")
class UpdateGroupInput:
    active: bool | None = strawberry.field(default=strawberry.UNSET, description="Whether the community is collected at all.")
    max_posts: int | None = strawberry.field(
        default=strawberry.UNSET, description="How many of the newest posts a parse reads; null: all."
    )
    since: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="A parse reads posts back to this date; null: no limit."
    )
    monitoring: MonitoringInput | None = strawberry.field(default=strawberry.UNSET, description="Automatic collection settings.")


@strawberry.input(description="What to collect.")
class StartParseInput:
    group_ids: list[strawberry.ID] = strawberry.field(description="Communities to collect (Group ids); one task each.")
    max_posts: int | None = strawberry.field(
        default=None, description="Read at most this many of the newest posts (default: the community's setting)."
    )
    since: datetime | None = strawberry.field(
        default=None, description="Read posts back to this date (default: the community's setting)."
    )
    priority: int = strawberry.field(default=5, description="Queue priority (1–10, higher runs first).")
    full: bool = strawberry.field(
        default=False, description="Re-read every post's comments, not only those of posts that changed."
    )


# --- payloads -------------------------------------------------------------------------------


@strawberry.type(description="Result of addGroup.")
class AddGroupPayload:
    group: Group | None = strawberry.field(description="The community, added or (if it was already tracked) refreshed.")
    errors: list[UserError] = strawberry.field(description="Why it could not be added; empty on success.")


@strawberry.type(description="The outcome for one line of addGroups.")
class AddGroupResult:
    ref: str = strawberry.field(description="The reference as given.")
    group: Group | None = strawberry.field(description="The community, when this line succeeded.")
    errors: list[UserError] = strawberry.field(description="Why this line failed; empty on success.")


@strawberry.type(description="Result of addGroups: one result per given reference, in order.")
class AddGroupsPayload:
    results: list[AddGroupResult] = strawberry.field(description="Per-reference outcomes, in the order given.")
    groups: list[Group] = strawberry.field(description="Every community that was added or refreshed.")
    errors: list[UserError] = strawberry.field(
        description="Errors about the request as a whole (per-line errors are in `results`)."
    )


@strawberry.type(description="Result of updateGroup, refreshGroup.")
class GroupPayload:
    group: Group | None = strawberry.field(description="The community as it is now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of removeGroup.")
class RemoveGroupPayload:
    removed_group_id: strawberry.ID | None = strawberry.field(description="Id of the removed community.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of startParse.")
class StartParsePayload:
    tasks: list[Task] = strawberry.field(
        description="One PARSE task per community; a community already being collected gets its running task."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was started; empty on success.")


@strawberry.type(description="Result of cancelTask.")
class TaskPayload:
    task: Task | None = strawberry.field(description="The task as it is now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of setCommentState.")
class SetCommentStatePayload:
    comments: list[Comment] = strawberry.field(description="The changed comments, as they are now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


# --- keywords, analyze, export --------------------------------------------------------------

KeywordConnection = Connection[Keyword]


@strawberry.input(name="KeywordFilter", description="Which keywords to list. Every given condition must hold.")
class KeywordFilterInput:
    category: str | None = strawberry.field(default=None, description="Only keywords of this category (exact).")
    active: bool | None = strawberry.field(default=None, description="Only active (true) or inactive (false) keywords.")
    text: str | None = strawberry.field(
        default=None, description="Only keywords whose word contains this (case-insensitive, ё = е)."
    )


@strawberry.input(description="A keyword to add.")
class KeywordInput:
    word: str = strawberry.field(description="The word or phrase (1–200 characters).")
    category: str | None = strawberry.field(default=None, description="A free-form group for the keyword.")
    active: bool = strawberry.field(default=True, description="Whether it is matched.")
    case_sensitive: bool = strawberry.field(default=False, description="Whether letter case must match.")
    whole_word: bool = strawberry.field(default=True, description="Whether only whole words match.")
    morphology: bool | None = strawberry.field(
        default=None,
        description="Whether every Russian word form matches; default: on when the word has Cyrillic letters.",
    )


@strawberry.input(description="Changes to a keyword; omitted fields stay as they are. Run startAnalyze to re-match.")
class UpdateKeywordInput:
    word: str | None = strawberry.field(default=strawberry.UNSET, description="The new word or phrase.")
    category: str | None = strawberry.field(default=strawberry.UNSET, description="The new category; null clears it.")
    active: bool | None = strawberry.field(default=strawberry.UNSET, description="Whether it is matched.")
    case_sensitive: bool | None = strawberry.field(default=strawberry.UNSET, description="Whether letter case must match.")
    whole_word: bool | None = strawberry.field(default=strawberry.UNSET, description="Whether only whole words match.")
    morphology: bool | None = strawberry.field(default=strawberry.UNSET, description="Whether every word form matches.")


@strawberry.type(description="The outcome for one item of addKeywords.")
class AddKeywordResult:
    word: str = strawberry.field(description="The word as given.")
    keyword: Keyword | None = strawberry.field(
        description="The added keyword; for a duplicate (error DUPLICATE) the keyword it duplicates."
    )
    errors: list[UserError] = strawberry.field(description="Why this item was not added; empty on success.")


@strawberry.type(description="Result of addKeywords: one result per given keyword, in order.")
class AddKeywordsPayload:
    results: list[AddKeywordResult] = strawberry.field(description="Per-item outcomes, in the order given.")
    keywords: list[Keyword] = strawberry.field(description="The keywords that were added.")
    errors: list[UserError] = strawberry.field(
        description="Errors about the request as a whole (per-item errors are in `results`)."
    )


@strawberry.type(description="Result of updateKeyword.")
class KeywordPayload:
    keyword: Keyword | None = strawberry.field(description="The keyword as it is now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of removeKeyword.")
class RemoveKeywordPayload:
    removed_keyword_id: strawberry.ID | None = strawberry.field(description="Id of the removed keyword.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.input(description="What to match again.")
class StartAnalyzeInput:
    group_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only comments of these communities (Group ids); default: all."
    )
    keyword_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Only these keywords' matches are redone (Keyword ids); default: all keywords, "
        "which also drops matches of inactive keywords.",
    )
    priority: int = strawberry.field(default=5, description="Queue priority (1–10, higher runs first).")


@strawberry.enum(description="File format of an export.")
class ExportFormat(enum.Enum):
    CSV = strawberry.enum_value("CSV", description="Comma-separated values, UTF-8 with BOM (opens in Excel).")
    XLSX = strawberry.enum_value("XLSX", description="An Excel workbook.")
    JSONL = strawberry.enum_value("JSONL", description="JSON Lines: one JSON object per comment.")


@strawberry.enum(description="What separates the values of a CSV export's rows.")
class CsvDelimiter(enum.Enum):
    COMMA = strawberry.enum_value("COMMA", description="`,` — most tools, and Excel in English locales.")
    SEMICOLON = strawberry.enum_value(
        "SEMICOLON", description="`;` — Excel in Russian and most European locales, which use a decimal comma."
    )
    TAB = strawberry.enum_value("TAB", description="A tab: a tab-separated `.tsv` file.")


@strawberry.input(description="What to export, and how.")
class StartExportInput:
    filter: CommentFilterInput | None = strawberry.field(
        default=None, description="Which comments (as in the `comments` query); default: all."
    )
    format: ExportFormat = strawberry.field(default=ExportFormat.CSV, description="The file format.")
    time_zone: str | None = strawberry.field(
        default=None,
        description="The IANA time zone the file's times are written in, e.g. `Europe/Moscow`, `Asia/Yekaterinburg`, "
        "`UTC`; default: the server's setting (VKCP_EXPORT_TIME_ZONE, Europe/Moscow unless set). XLSX names it in "
        "the time's column header; CSV and JSONL write ISO 8601 times with its offset.",
    )
    delimiter: CsvDelimiter | None = strawberry.field(
        default=None, description="CSV only: what separates the values; default: COMMA."
    )
    priority: int = strawberry.field(default=5, description="Queue priority (1–10, higher runs first).")
