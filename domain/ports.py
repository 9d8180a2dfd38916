"""Ports: what the domain needs from the outside world, as small Protocols.

Each has a real adapter in ``infrastructure/`` and, where unit tests need speed, a fake in
``tests/fakes.py``. The composition root (``bootstrap.py``, at the repository root) wires them.

What a port declares, every adapter implements: a capability some adapter lacks is answered
emptily there (a gateway without tokens shows an empty pool), never left for callers to probe.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from domain.models import (
    ApiToken,
    Author,
    Comment,
    CommentEvent,
    DeliveryState,
    Group,
    Keyword,
    Match,
    Post,
    Progress,
    Task,
    TaskKind,
    TaskState,
    WorkflowState,
)
from domain.queries import CommentFilter
from domain.saved_rules import RuleStore
from domain.timing import TaskTiming
from domain.vk import GatewayStats, TokenState

if TYPE_CHECKING:
    from domain.alert_model import (
        AlertComment,
        AlertMessage,
        AlertRule,
        DeliveryStats,
        PendingDelivery,
        Reservation,
        SendResult,
    )
    from domain.compiled_rules import CompiledRules

# --- VK -------------------------------------------------------------------------------------


@dataclass
class WallPage:
    total: int  # posts on the wall
    posts: list[Post]
    authors: list[Author] = field(default_factory=list)


@dataclass
class CommentPage:
    """One page of a post's comments: top level (with inline replies) or one reply thread."""

    total: int  # VK's ``count``: for a top-level page every comment of the post, replies included
    level_count: int  # comments at this level (top-level comments, or replies of the thread)
    comments: list[Comment]
    # top-level comment id -> (replies in its thread, replies that came inline)
    threads: dict[int, tuple[int, int]] = field(default_factory=dict)
    authors: list[Author] = field(default_factory=list)


class VkGateway(Protocol):
    """VK as the collector sees it.

    Calls may be made concurrently: an adapter is free to pack concurrent calls into one
    ``execute`` request. Transient failures are retried inside; what escapes is a
    ``domain.errors.VkError`` subclass. What VK answers and how: ``docs/vk-api.md``.
    """

    stats: GatewayStats  # requests, calls and errors since the process started (``/metrics``)

    async def token_states(self) -> list[TokenState]:
        """The token pool as operators may see it (fingerprints, never tokens): as every process
        sharing it knows it where they share it. Empty where there is no pool."""
        ...

    async def aclose(self) -> None:
        """Stop sending and release connections; pending calls fail with ``VkUnavailable``."""
        ...

    async def resolve_screen_name(self, screen_name: str) -> tuple[str, int] | None:
        """``(type, object_id)`` for a screen name, ``None`` when VK knows no such name."""

    async def get_groups(self, group_ids: Sequence[int]) -> list[Group]: ...

    async def wall_page(self, owner_id: int, offset: int, count: int = 100) -> WallPage: ...

    async def comments_page(
        self, owner_id: int, post_id: int, offset: int, count: int = 100, *, start_comment_id: int | None = None
    ) -> CommentPage:
        """Top-level comments, oldest first, with up to 10 replies of each inline. With
        ``start_comment_id`` the page starts at that comment (at the nearest earlier one when it
        is gone) and ``offset`` counts from there: paging that a deletion cannot shift."""

    async def thread_page(
        self, owner_id: int, post_id: int, comment_id: int, offset: int, count: int = 100,
        *, start_comment_id: int | None = None,
    ) -> CommentPage:
        """Replies of the top-level comment ``comment_id``, oldest first; ``start_comment_id``
        as for ``comments_page``."""

    async def get_users(self, user_ids: Sequence[int]) -> list[Author]: ...


# --- persistence ----------------------------------------------------------------------------
# The repositories' ``list`` methods shadow the builtin inside their class bodies, so an
# annotation below one names the type as ``builtins.list``.


class GroupRepository(Protocol):
    async def get(self, group_id: int) -> Group | None: ...
    async def get_by_vk_id(self, vk_id: int) -> Group | None: ...
    async def add(self, group: Group) -> Group: ...
    async def save(self, group: Group) -> None: ...
    async def list(self, *, active: bool | None = None) -> list[Group]: ...
    async def remove(self, group_id: int) -> None: ...
    async def due_for_monitoring(self, now: datetime) -> builtins.list[Group]: ...


class PostRepository(Protocol):
    async def upsert_many(self, group_id: int, posts: Sequence[Post]) -> None: ...

    async def synced_counts(self, owner_id: int) -> dict[int, int]:
        """post vk_id -> the ``comments_count`` its comments were last fully collected at."""

    async def mark_synced(self, owner_id: int, counts: dict[int, int]) -> None: ...


class CommentRepository(Protocol):
    async def upsert_many(
        self, group_id: int, comments: Sequence[Comment], *, matches_counts: Mapping[tuple[int, int], int] | None = None
    ) -> dict[tuple[int, int], int]:
        """Insert or update by (owner_id, vk_id); returns every given comment's row id.

        History: a changed text replaces the stored one, which is kept as an earlier version
        (``edited_at`` = now); a comment VK sends as ``deleted`` keeps its stored text, author,
        time and likes and is marked (``deleted_at`` = when first noticed); one VK sends
        undeleted again is not deleted any more.

        ``matches_counts`` (by (owner_id, vk_id)): how many matches the caller is about to
        store for each comment, which a comment not stored yet is inserted with (0 for one
        not named), so storing its matches next does not write it a second time. A stored
        comment keeps its count: ``MatchRepository.replace_for_comments`` recounts."""

    async def count(self, *, group_id: int | None = None) -> int: ...
    async def mark_vanished(
        self, owner_id: int, post_vk_id: int, present: Collection[int], *, now: datetime
    ) -> list[int]:
        """After a complete read of one post: its stored comments whose VK id is not in
        ``present`` are gone from VK. Mark them deleted (``deleted_at = now`` where not set
        yet), never erase them; returns the row ids newly marked."""

    async def set_state(self, ids: Sequence[int], *, viewed: bool | None, archived: bool | None) -> list[int]:
        """Set the review flags of many comments; returns the ids that exist."""

    async def workflow_states(self, ids: Sequence[int]) -> list[WorkflowState]:
        """The review state of those of ``ids`` that exist (in id order), locked until the
        transaction ends: a concurrent change waits, so no change is recorded against a stale
        old value."""

    async def set_workflow(self, states: Sequence[WorkflowState]) -> None:
        """Store each state's status, assignee, tags and note (the flags: ``set_state``)."""

    async def add_events(self, events: Sequence[CommentEvent]) -> None:
        """Append to the audit trail (nothing updates or deletes an event)."""

    async def iter_texts(
        self, *, group_ids: Sequence[int] | None, after_id: int, limit: int
    ) -> list[tuple[int, str]]:
        """(row id, text) in id order after ``after_id``: the analyze job's batches."""


class AuthorRepository(Protocol):
    async def upsert_many(self, authors: Iterable[Author]) -> None: ...
    async def missing(self, vk_ids: Iterable[int]) -> set[int]: ...


class KeywordRepository(Protocol):
    async def list_active(self) -> list[Keyword]: ...
    async def list(self, *, active: bool | None = None) -> list[Keyword]: ...
    async def get(self, keyword_id: int) -> Keyword | None: ...

    async def get_by_word(self, word: str) -> Keyword | None:
        """The stored keyword ``word`` would duplicate (``domain.matching.keyword_key``)."""

    async def add(self, keyword: Keyword) -> Keyword | None:
        """Store ``keyword`` (its ``id`` is ignored); returns it with its new id, or None when
        a keyword with the same key exists (one a concurrent transaction committed included)."""

    async def save(self, keyword: Keyword) -> None: ...

    async def remove(self, keyword_id: int) -> None:
        """Delete the keyword and its matches, correcting the comments' ``matches_count``."""


class RuleMatchRepository(Protocol):
    """The comments each saved rule matches (``domain.rule_index``)."""

    async def compiled(
        self, *, unindexed_only: bool = False, skip: Collection[tuple[int, int]] = ()
    ) -> CompiledRules:
        """Every saved rule (or only the unindexed ones, less those whose (id, generation) is in
        ``skip``) resolved and compiled together. Writers call it first: on PostgreSQL it holds
        the rules still (SHARE) until the transaction ends, so no rule changes under them."""
        ...

    async def replace_for_comments(self, comment_ids: Sequence[int], found: Sequence[tuple[int, int]]) -> None:
        """Make the stored rule matches of these comments exactly ``found`` (rule id, comment id)."""
        ...

    async def unindexed_count(self) -> int: ...
    async def last_comment_id(self) -> int: ...

    async def candidates(self, narrowing: Any, *, after: int, upto: int) -> list[tuple[int, str]]:
        """(id, text) of the comments with ``after < id <= upto`` whose folded text holds what
        ``narrowing`` says, locked against edits until the transaction ends."""
        ...

    async def generations(self, rule_ids: Sequence[int]) -> dict[int, int]:
        """The rules' ``index_generation`` now (gone rules absent), final until the transaction
        ends (an invalidation of one of them waits for it)."""
        ...

    async def add(self, found: Sequence[tuple[int, int]]) -> None:
        """Store these (rule id, comment id) rows; rows stored already stay."""
        ...

    async def mark_indexed(self, rules: Sequence[tuple[int, int]], now: datetime) -> int:
        """Mark these (rule id, generation) indexed, those whose generation is still that; how many."""
        ...

    async def invalidate(
        self, *, rule_ids: Iterable[int] = (), keyword_ids: Iterable[int] = (), keyword_words: Iterable[str] = (),
        rule_names: Iterable[str] = (),
    ) -> list[int]:
        """Mark unindexed, and empty, the rules whose matches depend on these
        (``rule_index.dependents``); their ids."""
        ...


class MatchRepository(Protocol):
    async def replace_for_comments(
        self, comment_ids: Sequence[int], matches: Sequence[Match], *, keyword_ids: Sequence[int] | None = None
    ) -> None:
        """Make the stored matches of these comments exactly ``matches``.

        With ``keyword_ids`` only matches of those keywords are replaced (a partial re-analysis).
        """


class TaskRepository(Protocol):
    async def add(self, task: Task) -> Task: ...
    async def get(self, task_id: int) -> Task | None: ...
    async def save(self, task: Task) -> None: ...
    async def find_active(self, kind: TaskKind, group_id: int) -> Task | None: ...
    async def add_parse(self, task: Task) -> Task | None:
        """Store the PARSE ``task`` unless its group has a queued or running parse; None then
        (one a concurrent transaction committed included: the database decides)."""
        ...

    async def list(
        self, *, states: Sequence[TaskState] | None = None, kinds: Sequence[TaskKind] | None = None, limit: int = 100
    ) -> list[Task]: ...

    # The lease. Each is one atomic conditional update; ``None`` means the condition failed.

    async def claim(self, task_id: int, *, worker_id: str, now: datetime, stale_before: datetime) -> Task | None:
        """QUEUED (a waiting one only once ``waiting_until`` <= ``now``), or RUNNING with a
        heartbeat older than ``stale_before`` (or held by this worker) → RUNNING held by
        ``worker_id``, attempts + 1, unless it resumes from a wait (then ``waiting_until`` is
        cleared and attempts stay)."""

    async def heartbeat(
        self, task_id: int, *, worker_id: str, now: datetime, progress: Progress | None = None
    ) -> Task | None:
        """Renew the lease (and store progress); ``None`` when ``worker_id`` no longer holds it."""

    async def finish(
        self, task_id: int, *, worker_id: str | None, state: TaskState, now: datetime,
        error: str | None = None, result: dict[str, Any] | None = None, progress: Progress | None = None,
    ) -> Task | None:
        """End an active task (held by ``worker_id`` unless it is None)."""

    async def wait(
        self, task_id: int, *, worker_id: str, now: datetime, until: datetime, progress: Progress
    ) -> Task | None:
        """A RUNNING task held by ``worker_id`` and not asked to cancel → QUEUED, waiting until
        ``until`` (``waiting_until``, waits + 1, ``progress`` stored), the lease given up;
        ``None`` when the condition failed."""

    async def release(self, task_id: int, *, worker_id: str) -> None:
        """Give the lease up (a graceful shutdown): any runner may claim the task at once."""

    async def request_cancel(self, task_id: int, *, now: datetime) -> Task | None:
        """Flag an active task cancelled; a QUEUED one (a waiting one too) becomes CANCELLED at once."""

    async def list_orphaned(
        self, *, stale_before: datetime, queued_before: datetime, limit: int = 1000
    ) -> builtins.list[Task]:
        """RUNNING tasks whose heartbeat is stale, and QUEUED tasks created before
        ``queued_before`` that do not wait, or whose ``waiting_until`` is before it too."""

    async def list_stalled(
        self, *, progress_before: datetime, stale_before: datetime, limit: int = 100
    ) -> builtins.list[Task]:
        """RUNNING tasks whose runner heartbeats (since ``stale_before``) but whose progress has
        not moved since ``progress_before``."""

    async def mark_stalled(self, task_id: int, *, worker_id: str | None, now: datetime) -> Task | None:
        """Record a stall (``stalled_at``, ``stalls`` + 1) and take the lease from ``worker_id``,
        so another runner may claim the task at once; ``None`` when the holder changed meanwhile."""


class ApiTokenRepository(Protocol):
    async def add(self, *, name: str, role: str, token_hash: str) -> ApiToken: ...
    async def find_by_hash(self, token_hash: str) -> ApiToken | None: ...
    async def list(self) -> list[ApiToken]: ...
    async def revoke(self, token_id: int) -> bool:
        """False when there is no such live token."""
    async def touch(self, token_id: int, when: datetime | None = None) -> None: ...


class AlertRepository(Protocol):
    """Alert rules with their channels, and the delivery outbox (``domain.alerts``)."""

    async def list_rules(self) -> builtins.list[AlertRule]: ...
    async def get_rule(self, rule_id: int) -> AlertRule | None: ...
    async def add_rule(self, rule: AlertRule) -> AlertRule: ...
    async def save_rule(self, rule: AlertRule) -> AlertRule:
        """Store the rule; channels it still has keep their ids (and deliveries), others go."""
    async def remove_rule(self, rule_id: int) -> bool: ...

    async def enqueue_matches(self, comment_ids: Sequence[int], *, now: datetime) -> int:
        """A PENDING row per active match rule, channel and comment (with matches) the rule's
        filter admits, unless one exists already; how many were added."""
    async def enqueue_event(self, rule: AlertRule, key: str, event: dict[str, Any], *, now: datetime) -> int: ...

    async def due_groups(self, *, now: datetime, limit: int) -> builtins.list[tuple[int, int]]:
        """(rule id, channel id) pairs with PENDING rows due by ``now`` and not leased."""
    async def claim(
        self, rule_id: int, channel_id: int, *, now: datetime, owner: str, lease_until: datetime, limit: int,
        due_only: bool,
    ) -> builtins.list[PendingDelivery]:
        """Lease the pair's PENDING rows, oldest first (with ``due_only``, up to the first that is
        not due yet: a later row never overtakes an earlier one); rows another worker holds are
        skipped (PostgreSQL: FOR UPDATE SKIP LOCKED)."""
    async def assign(self, ids: Sequence[int], message_id: str) -> None: ...
    async def last_sent_at(self, rule_id: int, channel_id: int) -> datetime | None:
        """When the pair's latest SENT delivery was sent; None when none was."""
    async def release(self, ids: Sequence[int], *, next_attempt_at: datetime) -> None: ...
    async def settle(
        self, ids: Sequence[int], state: DeliveryState, *, now: datetime, attempted: bool = False
    ) -> None: ...
    async def record_failure(
        self, delivery_id: int, *, error: str, next_attempt_at: datetime | None, now: datetime
    ) -> None:
        """attempts + 1, the error kept; PENDING again at ``next_attempt_at``, FAILED when None."""
    async def comments_for(self, comment_ids: Sequence[int]) -> dict[int, AlertComment]: ...
    async def failing_channels(self, *, since: datetime) -> builtins.list[tuple[int, str]]:
        """(channel id, masked URL) of channels with a row still PENDING after failed tries
        that was created before ``since``."""
    async def state_counts(self) -> dict[str, int]: ...


class AlertSender(Protocol):
    """Sends one alert message to one channel URL (a webhook or an Apprise URL)."""

    def supports(self, url: str) -> bool:
        """Whether ``url`` is a channel this sender can send to (checked when a rule is saved)."""

    async def send(self, url: str, message: AlertMessage, *, secret: str) -> SendResult:
        """Send; the result says what the channel answered. ``secret`` signs webhooks."""


class SendBudget(Protocol):
    """How many messages a channel may take now (Telegram: 20 a minute per chat, 30 a second
    per bot), shared by every deliverer that uses it. ``now`` is epoch seconds."""

    async def reserve(self, url: str, wanted: int, now: float) -> Reservation:
        """Take up to ``wanted`` messages' worth at once; ``granted`` None: no limit known."""

    async def give_back(self, reservation: Reservation, unused: int) -> None:
        """Return what a reservation took and did not use."""

    async def retry_in(self, url: str, now: float) -> float:
        """Seconds until one more message may go."""


class UnitOfWork(Protocol):
    """One transaction over every repository. ``async with uow:`` rolls back unless committed.

    The repositories are read-only here: a use case reads them, only the adapter binds them
    (to its own repository classes, which a settable attribute of the port type would forbid).
    """

    @property
    def groups(self) -> GroupRepository: ...
    @property
    def posts(self) -> PostRepository: ...
    @property
    def comments(self) -> CommentRepository: ...
    @property
    def authors(self) -> AuthorRepository: ...
    @property
    def keywords(self) -> KeywordRepository: ...
    @property
    def matches(self) -> MatchRepository: ...
    @property
    def tasks(self) -> TaskRepository: ...
    @property
    def api_tokens(self) -> ApiTokenRepository: ...
    @property
    def alerts(self) -> AlertRepository: ...
    @property
    def rule_matches(self) -> RuleMatchRepository: ...

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


# --- jobs and events ------------------------------------------------------------------------


class JobQueue(Protocol):
    async def enqueue(self, task: Task, *, defer_until: datetime | None = None) -> None:
        """Run ``task`` (already stored, state QUEUED) in the background, not before
        ``defer_until`` when given (a task waiting for VK)."""

    async def abort(self, task: Task) -> None:
        """Best effort: stop the task's job if it is running; the task state is the DB's."""


class EventsMissed(Exception):
    """Raised once by a subscription's iterator when its bus may have lost events (the broker
    connection dropped and came back). The subscriber re-reads what it shows from the database,
    then goes on iterating: the subscription itself stays live."""


class EventSubscription(Protocol):
    """Events of one channel. Registered when created: nothing published after
    ``subscribe()`` returned (and, across processes, after ``ready()``) is missed, except
    across a broker outage, which the iterator reports by raising ``EventsMissed`` once the
    subscription is live again."""

    async def ready(self) -> bool:
        """Wait until the subscription is live. False when the bus could not subscribe: then
        events may be missed, and only the channel's snapshot (``last()``) and re-reads help."""
        ...

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...
    async def __anext__(self) -> dict[str, Any]: ...
    async def aclose(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        """Deliver to every subscriber and keep it as the channel's last event (a snapshot).
        Best effort: live events mirror state that is stored, so a bus whose broker is down
        drops the event (and logs it) rather than failing the work that published it."""

    def subscribe(self, channel: str) -> EventSubscription:
        """Events published on ``channel`` from now on, until the subscription is closed."""

    async def last(self, channel: str) -> dict[str, Any] | None:
        """The last event published on ``channel`` (kept for a while), for late subscribers;
        None when there is none or the broker cannot be asked."""


ProgressCallback = Callable[[int, int | None, str], Awaitable[None]]
"""``report(done, total, message)``; raises ``TaskCancelled`` when the task was cancelled."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class Cache(Protocol):
    """Short-lived copies of expensive reads (``stats``), grouped in namespaces.

    ``invalidate(namespace)`` makes every entry of the namespace stale at once, in every
    process sharing the cache: jobs call it when they change what the entries summarise.
    """

    async def get_or_compute(
        self, namespace: str, key: str, compute: Callable[[], Awaitable[bytes]], *, ttl: float
    ) -> bytes:
        """The entry, or ``compute()``'s value, stored for ``ttl`` seconds. A value computed
        while the namespace was invalidated is not stored as fresh."""

    async def invalidate(self, namespace: str) -> None: ...


# --- exports --------------------------------------------------------------------------------
# What ``domain.export`` reads and writes through ``ExportStore``; how an export runs is there.

VK = "https://vk.com"
DEFAULT_EXPORT_TIME_ZONE = "Europe/Moscow"  # where this product's users read the times


class ExportFormat(enum.StrEnum):
    CSV = "CSV"
    XLSX = "XLSX"
    JSONL = "JSONL"


class CsvDelimiter(enum.Enum):
    """Comma for most tools; semicolon for Excel in Russian (and most European) locales, where a
    comma is the decimal separator; tab for a TSV file."""

    COMMA = ","
    SEMICOLON = ";"
    TAB = "\t"


@dataclass(frozen=True)
class ExportOptions:
    format: ExportFormat = ExportFormat.CSV
    # Times are written in this zone: XLSX as spreadsheet dates (which have no zone, so the
    # header names it), CSV and JSON Lines as ISO 8601 with the zone's offset.
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_EXPORT_TIME_ZONE))
    delimiter: CsvDelimiter = CsvDelimiter.COMMA  # CSV only


@dataclass(frozen=True)
class ExportRow:
    """One exported comment with what a reader of the file needs around it."""

    comment_id: int
    vk_id: int
    owner_id: int
    post_vk_id: int
    group_id: int
    group_name: str
    group_screen_name: str
    author_id: int
    author_name: str | None
    author_screen_name: str | None
    published_at: datetime  # aware
    text: str
    likes: int
    deleted: bool
    deleted_at: datetime | None  # aware; when the collector noticed the deletion
    edited_at: datetime | None  # aware; when a re-read last found the text changed
    reply_to_vk_id: int | None  # the comment this one answers, VK id on the same wall
    thread_vk_id: int | None
    matches_count: int
    keywords: tuple[str, ...]  # the matched keywords' words, sorted
    viewed: bool
    archived: bool
    # The review workflow (``domain.review``).
    status: str = "NEW"
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None

    @property
    def comment_url(self) -> str:
        return f"{VK}/wall{self.owner_id}_{self.post_vk_id}?reply={self.vk_id}"

    @property
    def post_url(self) -> str:
        return f"{VK}/wall{self.owner_id}_{self.post_vk_id}"

    @property
    def group_url(self) -> str:
        return f"{VK}/{self.group_screen_name}" if self.group_screen_name else f"{VK}/club{-self.owner_id}"

    @property
    def author_url(self) -> str:
        if self.author_screen_name:
            return f"{VK}/{self.author_screen_name}"
        return f"{VK}/id{self.author_id}" if self.author_id > 0 else f"{VK}/club{-self.author_id}"

    def values(self, zone: ZoneInfo) -> tuple[Any, ...]:
        """The row's values in ``EXPORT_COLUMNS`` order, its times in ``zone``."""
        deleted_at = self.deleted_at.astimezone(zone) if self.deleted_at is not None else None
        edited_at = self.edited_at.astimezone(zone) if self.edited_at is not None else None
        return (
            self.comment_id, self.vk_id, self.comment_url, self.published_at.astimezone(zone), self.text, self.likes,
            self.deleted, deleted_at, edited_at, self.reply_to_vk_id, self.thread_vk_id, self.matches_count,
            list(self.keywords),
            self.author_id, self.author_name, self.author_url,
            self.group_id, self.group_name, self.group_url, self.post_vk_id, self.post_url, self.owner_id,
            self.viewed, self.archived, self.status, self.assignee, list(self.tags), self.note,
        )  # fmt: skip


EXPORT_COLUMNS = (
    "commentId", "commentVkId", "commentUrl", "publishedAt", "text", "likes",
    "deleted", "deletedAt", "editedAt", "replyToVkId", "threadVkId", "matchesCount", "keywords",
    "authorId", "authorName", "authorUrl",
    "groupId", "groupName", "groupUrl", "postVkId", "postUrl", "ownerId",
    "viewed", "archived", "status", "assignee", "tags", "note",
)  # fmt: skip
"""Column names: CSV headers and JSON Lines keys (XLSX headers are ``domain.export.column_titles``)."""


class ExportFile(Protocol):
    """A file being written; invisible to downloads until ``finish``."""

    name: str  # the stored name, in the download URL
    download_name: str  # the name a browser saves it as

    def write(self, rows: Sequence[ExportRow]) -> None: ...

    def finish(self) -> int:
        """Complete the file and publish it under ``name``; returns its size in bytes."""

    def discard(self) -> None:
        """Remove the file, whether it was published already or not."""


class ExportStore(Protocol):
    """Rows to export (read side) and the files they go to."""

    async def count(self, flt: CommentFilter) -> int: ...

    async def rows(self, flt: CommentFilter, *, after_id: int, limit: int) -> list[ExportRow]:
        """Up to ``limit`` rows with comment id above ``after_id``, in id order."""

    def create(self, options: ExportOptions) -> ExportFile: ...

    def expires_at(self, name: str) -> datetime | None:
        """When the finished export ``name`` expires (a download link never outlives it); None
        when there is no such file."""

    def download(self, name: str) -> ExportDownload | None:
        """The finished, unexpired export ``name`` as a browser downloads it; None for anything
        else (a name this store never makes included)."""

    def purge_expired(self) -> int:
        """Delete files older than the configured lifetime; returns how many."""


@dataclass(frozen=True)
class ExportDownload:
    path: Path
    media_type: str
    filename: str  # the name a browser saves it as (``ExportFile.download_name``)


@dataclass
class Adapters:
    """Everything a use case may need, wired once by ``bootstrap.py``."""

    uow_factory: UnitOfWorkFactory
    vk: VkGateway
    queue: JobQueue
    events: EventBus
    clock: Clock
    # Builds the comment matcher from the active keywords (None when there are none).
    matcher_factory: Callable[[list[Keyword]], Callable[[Sequence[tuple[int, str]]], list[Match]] | None] | None = None
    recent_window_hours: float = 0.0
    collect_concurrency: int = 64
    # VK calls a token may make per UTC day, by method, where known (``domain.budget``).
    vk_daily_limits: dict[str, int] = field(default_factory=dict)
    # Export rows and files; None where nothing exports.
    exports: ExportStore | None = None
    export_time_zone: str = DEFAULT_EXPORT_TIME_ZONE  # for exports that name none
    # Expensive reads (``stats``); None: nothing is cached.
    cache: Cache | None = None
    # Saved rules of the rule language (``domain.saved_rules``); None where none are kept.
    rules: RuleStore | None = None
    # Leases, heartbeats, stall and retry times of the task runner and the recovery loop.
    task_timing: TaskTiming = field(default_factory=TaskTiming)
    # Alerts: the channels' sender (None: nothing is sent), the console's address for links,
    # and this process's delivery counters (``/metrics``).
    alert_sender: AlertSender | None = None
    public_url: str = "http://127.0.0.1:8000"
    alert_stats: DeliveryStats | None = None
    alert_budget: SendBudget | None = None  # None: this process's own (domain.alert_model.LocalSendBudget)
    alert_lease: timedelta = timedelta(seconds=120)  # a claimed delivery is another process's after this
