"""The read side: what the API lists and filters, as plain data and one port.

Reads do not go through the unit of work: they are single SELECTs (keyset-paginated, batched
by the API's dataloaders) against ``ReadModel``, implemented in ``infrastructure/db/queries.py``.

A ``CommentFilter`` means one thing wherever it is applied: ``CommentFilter.admits`` is its
definition, which the live feed (``commentMatched``) runs as it is; the SQL adapter translates
each condition, on SQLite and PostgreSQL alike, and a differential test holds the three to the
same answers. ``text`` is literal: every word of it must occur in the comment's text, as a
substring, after both are folded (``fold_text``: lowercase, "ё" as "е"). A stem finds every
form ("кошк": кошка, кошки, кошками); word forms in general are the keywords' job (pymorphy3).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar

from domain.declaration import COMMENT, POST, Spelling, declared_view
from domain.errors import InvalidInput
from domain.models import (
    ApiToken,
    Author,
    CommentEvent,
    CommentStatus,
    DeliveryState,
    Group,
    Keyword,
    Match,
    Task,
    TaskKind,
    TaskState,
)
from domain.rules import QueryMatcher, parse
from domain.text import checked_text

T = TypeVar("T")

MAX_PAGE = 100
# A filter's id lists: more ids than this are a mistake, not a filter (and PostgreSQL takes at
# most 32,767 bind parameters per statement). Repeated ids count once.
MAX_FILTER_IDS = 1000
# Searched text: every word is a condition (one LIKE each).
MAX_FILTER_TEXT = 500


class SortDirection(enum.StrEnum):
    ASC = "ASC"
    DESC = "DESC"


class CommentSort(enum.StrEnum):
    PUBLISHED_AT = "PUBLISHED_AT"
    LIKES = "LIKES"
    MATCHES_COUNT = "MATCHES_COUNT"


@dataclass(frozen=True)
class CommentOrder:
    field: CommentSort = CommentSort.PUBLISHED_AT
    direction: SortDirection = SortDirection.DESC


@dataclass(frozen=True)
class CommentFilter:
    group_ids: tuple[int, ...] | None = None
    post_ids: tuple[int, ...] | None = None
    keyword_ids: tuple[int, ...] | None = None
    matched: bool | None = None
    text: str | None = None
    author_ids: tuple[int, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    viewed: bool | None = None
    archived: bool | None = None
    deleted: bool | None = None  # deleted on VK (turned ``deleted: true``, or gone)
    edited: bool | None = None  # seen with another text before (``CommentView.edited_at``)
    # The review workflow: any of these statuses / assignees (API token names) / tags.
    statuses: tuple[CommentStatus, ...] | None = None
    assignees: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    # The rule language (``domain.rules``): checked here for syntax; references are resolved and
    # the query compiled where the filter is applied (``QueryCompiler``).
    query: str | None = None

    def __post_init__(self) -> None:
        # Checked here, so a filter means the same to the comments query, an export and the
        # live feed, and fails the same way on both databases.
        _check_ids("groupIds", self.group_ids)
        _check_ids("postIds", self.post_ids)
        _check_ids("keywordIds", self.keyword_ids)
        _check_ids("authorIds", self.author_ids)
        if self.text is not None:
            checked_text(self.text, field="text")
            if len(self.text) > MAX_FILTER_TEXT:
                raise InvalidInput(f"`text` is longer than {MAX_FILTER_TEXT} characters", field="text")
        _check_names("assignees", self.assignees)
        _check_names("tags", self.tags)
        if self.query is not None:
            parse(self.query)

    @property
    def text_words(self) -> tuple[str, ...]:
        """The folded words of ``text``, each once: each must occur in a comment's folded text."""
        return tuple(dict.fromkeys(fold_text(self.text).split())) if self.text else ()

    def admits(self, comment: CommentView, matches: Sequence[Match], query: QueryMatcher | None = None) -> bool:
        """Whether ``comment``, with its keyword ``matches``, passes this filter; ``query`` is
        ``self.query`` compiled (``QueryCompiler.compile``), needed when it is set."""
        if self.group_ids is not None and comment.group_id not in self.group_ids:
            return False
        if self.post_ids is not None and comment.post_id not in self.post_ids:
            return False
        if self.author_ids is not None and comment.from_id not in self.author_ids:
            return False
        if self.keyword_ids is not None and not any(m.keyword_id in self.keyword_ids for m in matches):
            return False
        if self.matched is not None and bool(matches) != self.matched:
            return False
        if self.since is not None and comment.published_at < self.since:
            return False
        if self.until is not None and comment.published_at > self.until:
            return False
        if self.viewed is not None and comment.viewed != self.viewed:
            return False
        if self.archived is not None and comment.archived != self.archived:
            return False
        if self.deleted is not None and comment.deleted != self.deleted:
            return False
        if self.edited is not None and (comment.edited_at is not None) != self.edited:
            return False
        if self.statuses is not None and comment.status not in self.statuses:
            return False
        if self.assignees is not None and comment.assignee not in self.assignees:
            return False
        if self.tags is not None and not any(tag in self.tags for tag in comment.tags):
            return False
        if words := self.text_words:
            folded = fold_text(comment.text)
            if not all(word in folded for word in words):
                return False
        if self.query is not None:
            if query is None:
                raise ValueError("a filter with a query needs it compiled")
            return query.matches(comment.text)
        return True


def fold_text(text: str) -> str:
    """Text as the ``text`` filter compares it: lowercase by Unicode's full mapping (which is
    what ICU's lower() does on PostgreSQL), with "ё" read as "е"."""
    return text.lower().replace("ё", "е")


@dataclass(frozen=True)
class TaskFilter:
    kinds: tuple[TaskKind, ...] | None = None
    states: tuple[TaskState, ...] | None = None
    group_ids: tuple[int, ...] | None = None
    updated_since: datetime | None = None  # changed (state or progress) at or after this time

    def __post_init__(self) -> None:
        _check_ids("groupIds", self.group_ids)


def _check_ids(field: str, ids: tuple[int, ...] | None) -> None:
    if ids is not None and len(set(ids)) > MAX_FILTER_IDS:
        raise InvalidInput(f"At most {MAX_FILTER_IDS} ids in `{field}`", field=field)


def _check_names(field: str, names: tuple[str, ...] | None) -> None:
    if names is None:
        return
    if len(set(names)) > MAX_FILTER_IDS:
        raise InvalidInput(f"At most {MAX_FILTER_IDS} values in `{field}`", field=field)
    for name in names:
        checked_text(name, field=field)


@dataclass
@declared_view(POST)
class PostView:
    id: int
    group_id: int
    owner_id: int
    vk_id: int
    from_id: int | None
    text: str
    published_at: datetime
    comments_count: int
    likes: int
    reposts: int
    views: int
    is_pinned: bool


@dataclass
@declared_view(COMMENT)  # and every field added to the declaration (domain/declaration.py)
class CommentView:
    id: int
    group_id: int
    post_id: int  # row id of the post
    owner_id: int
    vk_id: int
    post_vk_id: int
    parent_vk_id: int | None  # VK id of the comment this one answers (on the same wall)
    thread_vk_id: int | None  # VK id of the thread's top-level comment (on the same wall)
    from_id: int
    text: str
    published_at: datetime
    likes: int
    deleted: bool
    viewed: bool
    archived: bool
    matches_count: int
    # History: when a re-read last found the text changed (None: never seen edited), and when
    # the collector noticed the comment deleted on VK (set exactly when ``deleted`` is).
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    # The review workflow (``domain.review``).
    status: CommentStatus = CommentStatus.NEW
    assignee: str | None = None
    tags: list[str] = field(default_factory=list)  # sorted, each once
    note: str | None = None


@dataclass(frozen=True)
class CommentVersion:
    """A text a comment had before its current one, and when the collector first saw it: the
    oldest when the comment was first collected, each later one when that edit was noticed. A
    version was replaced at the next one's ``seen_at`` (the last, at the comment's ``edited_at``)."""

    text: str
    seen_at: datetime


@dataclass
class Page(Generic[T]):
    """One page of a connection: ``edges`` are (cursor, node) in order, also when the page was
    read backwards (``last`` items ``before`` a cursor).

    Whether more items lie past the page on the side it was read towards comes with it (one
    row more than asked for was read): ``has_next_page`` of a forward page,
    ``has_previous_page`` of a backward one. Whether any lie on the other side, beyond the
    cursor it started from (at or before ``after``, at or after ``before``), takes one more
    query, so ``beyond_cursor`` runs it only for a caller that asks (``items_before`` /
    ``items_after``). Without a starting cursor there is nothing on that side.
    """

    edges: list[tuple[str, T]] = field(default_factory=list)
    has_next_page: bool = False
    has_previous_page: bool = False
    backward: bool = False
    beyond_cursor: Callable[[], Awaitable[bool]] | None = None
    # How many items the connection has in all, when the page's own statement counted them
    # (``comments_page_projected(counted=True)``); None: not counted with the page.
    total: int | None = None

    @property
    def start_cursor(self) -> str | None:
        return self.edges[0][0] if self.edges else None

    @property
    def end_cursor(self) -> str | None:
        return self.edges[-1][0] if self.edges else None

    async def items_before(self) -> bool:
        if self.backward or self.beyond_cursor is None:
            return self.has_previous_page
        return await self.beyond_cursor()

    async def items_after(self) -> bool:
        if not self.backward or self.beyond_cursor is None:
            return self.has_next_page
        return await self.beyond_cursor()


@dataclass(frozen=True)
class Member:
    """One member of a projected JSON object: an attribute of a view (``attribute``, written
    as ``spelling``; ``kind`` names a global id's type), a constant, or the projection of a
    related view (``related``: the relation's name, as ``Projection`` lists them)."""

    key: str
    attribute: str | None = None
    spelling: Spelling = Spelling.TEXT
    kind: str | None = None
    constant: str | None = None
    related: str | None = None
    projection: Projection | None = None
    non_null: bool = False  # the read fails rather than write null


@dataclass(frozen=True, eq=False)  # compared by identity: compiled once, looked up per read
class Projection:
    """Which members of which view a read writes as JSON, for each item, in order. The views,
    their fields and their relations are ``domain/declaration.py``'s (``VIEWS``): a member's
    ``attribute`` is a declared field's name, its ``related`` a declared relation's."""

    view: str
    members: tuple[Member, ...]


class ReadModel(Protocol):
    """Pages take ``first`` items ``after`` a cursor, or the ``last`` items ``before`` one (both
    cursors may be given: the items between them); every cursor is one of the same order's."""

    async def groups_page(
        self, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None, active: bool | None = None,
    ) -> Page[Group]: ...
    async def groups_page_projected(
        self, projection: Projection, *, first: int | None = None, after: str | None = None,
        last: int | None = None, before: str | None = None, active: bool | None = None,
    ) -> Page[str]:
        """``groups_page`` with each node written as JSON text by ``projection``; asked as
        ``comments_page_projected`` is."""
        ...

    async def groups_count(self, *, active: bool | None = None) -> int: ...
    async def groups_by_ids(self, ids: Sequence[int]) -> list[Group | None]: ...

    # The token every API request presents, by its hash (``domain.auth.authenticate``): one
    # statement, outside any transaction.
    async def api_token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    async def posts_by_ids(self, ids: Sequence[int]) -> list[PostView | None]: ...
    async def authors_by_ids(self, vk_ids: Sequence[int]) -> list[Author | None]: ...

    async def comments_page(
        self, flt: CommentFilter, order: CommentOrder, *, first: int | None = None, after: str | None = None,
        last: int | None = None, before: str | None = None,
    ) -> Page[CommentView]: ...
    async def comments_page_projected(
        self, flt: CommentFilter, order: CommentOrder, projection: Projection, *, first: int | None = None,
        after: str | None = None, last: int | None = None, before: str | None = None, counted: bool = False,
    ) -> Page[str]:
        """``comments_page`` with each node written as JSON text by ``projection``; ``counted``:
        with ``total`` (what ``comments_count`` answers) read in the same statement where it
        can be, one round trip instead of two (not for an empty page, nor for a filter with a
        rule-language query). Callers ask ``projects``, then ``projection_refusal(projection)`` first. Raises
        ``NotImplementedError`` where the database cannot write JSON, and ``ValueError`` for a
        projection it cannot write exactly."""
        ...

    async def projected_by_id(self, projection: Projection, pk: int) -> str | None:
        """The object of ``projection``'s view with row id ``pk`` written as JSON text by
        ``projection``; None when there is none. As ``comments_page_projected``: asked only
        where the read model ``projects`` and does not refuse the projection."""
        ...

    @property
    def projects(self) -> bool:
        """Whether ``comments_page_projected`` can answer at all (the database writes JSON:
        PostgreSQL). False: every page is read as objects, and nothing counts as refused."""
        ...

    def projection_refusal(self, projection: Projection) -> str | None:
        """None when ``comments_page_projected`` writes ``projection``; else why not, in a word.
        Asked only where the read model ``projects``."""
        ...

    async def comments_count(self, flt: CommentFilter) -> int: ...
    async def rule_counts(self, queries: Sequence[str]) -> list[int]:
        """Stored comments each query matches, aligned with ``queries`` (one pass for all)."""
        ...

    def queries_changed(self) -> None:
        """Keywords or saved rules changed: queries naming them are resolved again."""
        ...

    async def compiled(self, flt: CommentFilter) -> QueryMatcher | None:
        """``flt.query`` resolved against the stored keywords and saved rules and compiled;
        None without a query. Raises ``QuerySyntaxError`` for a reference to nothing."""
        ...
    async def comments_by_ids(self, ids: Sequence[int]) -> list[CommentView | None]: ...
    async def comments_by_vk_ids(self, keys: Sequence[tuple[int, int]]) -> list[CommentView | None]:
        """Comments by (owner_id, vk_id): how a reply names its parent and thread."""
        ...

    async def matches_by_comment_ids(self, ids: Sequence[int]) -> list[list[Match]]: ...
    async def versions_by_comment_ids(self, ids: Sequence[int]) -> list[list[CommentVersion]]:
        """Each comment's earlier texts, oldest first (empty for one never seen edited)."""
        ...

    async def matches_and_keywords_by_comment_ids(
        self, ids: Sequence[int]
    ) -> tuple[list[list[Match]], dict[int, Keyword | None]]: ...
    async def keywords_by_ids(self, ids: Sequence[int]) -> list[Keyword | None]: ...
    async def keywords_page(
        self, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None, active: bool | None = None, category: str | None = None, text: str | None = None,
    ) -> Page[Keyword]: ...
    async def keywords_count(
        self, *, active: bool | None = None, category: str | None = None, text: str | None = None
    ) -> int: ...
    async def keyword_matches_counts(self, ids: Sequence[int]) -> list[int]:
        """Stored matches per keyword, aligned with ``ids``."""

    async def comment_events_page(
        self, comment_id: int, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None,
    ) -> Page[CommentEvent]:
        """A comment's review changes (``domain.review``), oldest first."""
        ...
    async def comment_events_count(self, comment_id: int) -> int: ...

    async def tasks_page(
        self, flt: TaskFilter, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None,
    ) -> Page[Task]: ...
    async def tasks_count(self, flt: TaskFilter) -> int: ...
    async def tasks_by_ids(self, ids: Sequence[int]) -> list[Task | None]: ...

    async def alert_deliveries_page(
        self, flt: DeliveryFilter, *, first: int | None = None, after: str | None = None, last: int | None = None,
        before: str | None = None,
    ) -> Page[DeliveryView]: ...
    async def alert_deliveries_count(self, flt: DeliveryFilter) -> int: ...

    async def stats(self, window: StatsWindow) -> Stats:
        """Counts over everything stored, by SQL aggregates (see ``domain.stats``)."""

    async def task_stalls(self) -> tuple[int, int]:
        """(running tasks found stuck and not moving since, stalls ever recorded on tasks)."""
        ...

    async def task_counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> number of tasks: one GROUP BY, read when metrics are scraped."""

    async def recent_parse_results(self, group_ids: Sequence[int], per_group: int) -> dict[int, list[dict[str, Any]]]:
        """group id -> the ``result`` of its last ``per_group`` successful PARSE tasks, newest
        first (what ``domain.budget`` learns a run's VK calls from)."""

    async def tasks_waiting(self) -> tuple[int, datetime | None]:
        """(tasks waiting for VK, the earliest time one of them resumes)."""
        ...

    async def alert_delivery_health(self) -> AlertDeliveryHealth:
        """The alert outbox as ``/metrics`` shows it (every process's deliveries)."""
        ...

    async def alert_latencies(self, *, after_id: int, limit: int) -> tuple[int, list[float]]:
        """(the highest SENT delivery id seen, seconds from queued to sent of each SENT delivery
        with an id above ``after_id``, at most ``limit``); ``after_id`` < 0: none, just the id."""
        ...


# --- statistics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsWindow:
    """Which days the per-day series cover (inclusive, UTC) and how long the top lists are."""

    since: date
    until: date
    top: int = 10


@dataclass
class StatsTotals:
    groups: int = 0
    posts: int = 0
    comments: int = 0  # every stored comment, replies included
    replies: int = 0
    matched_comments: int = 0
    matches: int = 0
    authors: int = 0  # distinct comment authors
    keywords: int = 0


@dataclass
class GroupStats:
    group_id: int
    name: str
    comments: int
    matched_comments: int
    last_collected_at: datetime | None


@dataclass
class KeywordStats:
    keyword_id: int
    word: str
    matches: int
    comments: int  # distinct comments it matched


@dataclass
class AuthorStats:
    vk_id: int
    name: str | None
    comments: int


@dataclass
class DayStats:
    day: date
    comments: int
    matched_comments: int
    matches: int


@dataclass
class StatusStats:
    status: CommentStatus
    comments: int


@dataclass
class Stats:
    totals: StatsTotals
    groups: list[GroupStats]
    top_keywords: list[KeywordStats]
    top_authors: list[AuthorStats]
    days: list[DayStats]  # every day of the window, oldest first, zeros included
    by_status: list[StatusStats] = field(default_factory=list)  # every status, in CommentStatus order


# --- alert deliveries (the deliveries log) -------------------------------------------------


@dataclass(frozen=True)
class DeliveryFilter:
    rule_ids: tuple[int, ...] | None = None
    states: tuple[DeliveryState, ...] | None = None
    comment_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class DeliveryView:
    """An outbox row as the deliveries log shows it."""

    id: int
    rule_id: int
    comment_id: int | None
    channel: str  # masked
    state: DeliveryState
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    message_id: str | None
    event: dict[str, Any] | None


@dataclass(frozen=True)
class AlertDeliveryHealth:
    by_state: dict[str, int]  # deliveries by DeliveryState value, zeros included
    oldest_pending_at: datetime | None  # when the oldest PENDING one was queued
    failing_channels: int  # channels with a PENDING delivery whose last try failed

