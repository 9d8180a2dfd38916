"""How a parse works: collect one community's posts, every comment and every reply.

The collector asks for pages concurrently and never waits for one page before asking for an
unrelated one; the VK adapter packs whatever is pending into ``execute`` requests, so the more
pages are in flight, the closer collection runs to VK's rate ceiling. Comments of the first
wall page's posts are asked for while the rest of the wall is still being listed. Pages are
written by a single writer in batches (one transaction per batch), which keeps SQLite happy and
PostgreSQL fast; a batch whose connection was lost (a restart, a failover) is written again.
Storing is an upsert keyed by (owner_id, vk_id), so any run can be repeated or resumed after a
crash without duplicating anything.

The wall moves while it is read: moderators delete comments and posts, people write new ones,
and offset paging then skips or repeats what shifted. So a read of a post counts as complete
only when every answer it got reported the same ``count`` / ``current_level_count`` (and each
thread the same reply count) and it saw exactly that many distinct comments. A read that saw
the post move is repeated, still all pages at once, each page anchored on a comment the last
read saw (``start_comment_id``: VK starts at that comment, or at the nearest earlier one when it
is gone, so a deletion cannot shift a comment out of the read). When every post was read, the
wall is listed again: a post whose ``comments.count`` differs from the count its complete read
saw, or that was published meanwhile, is read again, until a listing finds the wall as it was
read (``ROUNDS`` at most). That listing is the run's last look at VK: on a still wall it costs
a page per 100 posts, and every comment that exists when the run ends is stored. A post still
moving after ``ROUNDS`` is left for the next run and named in the result (``unsettledPosts``).
What no count shows escapes: a deletion and an addition on one post between two looks at it.

After a complete read of a post, its stored comments that read did not see are gone from VK:
they are marked deleted, never erased (``CommentRepository.mark_vanished``). A partial read (a
post skipped for 212 or 15, a post that never settled, a cancelled run) marks nothing.

Each batch is matched with the keywords active when it is written (read in its transaction),
so a keyword added or changed during a long parse applies from the next batch on, and agrees
with an analyze started after the change.

Incremental runs: a post's comments are re-read only when its ``comments.count`` differs from
the count at which they were last completely read (or when it is within ``recent_window``, or
the run is ``full``). A post is marked collected only after all of its pages are stored.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from domain.alerts import record_matched
from domain.analyze import publish_matched
from domain.budget import count_vk_calls
from domain.errors import (
    DomainError,
    NotFound,
    VkAccessDenied,
    VkCommentsClosed,
    VkNotFound,
    VkTokensResting,
)
from domain.models import Author, Comment, Group, Keyword, Match, Post, Task, TaskKind
from domain.ports import (
    Adapters,
    Clock,
    CommentPage,
    ProgressCallback,
    UnitOfWork,
    UnitOfWorkFactory,
    VkGateway,
    WallPage,
)
from domain.progress import Say
from domain.resilience import is_transient, retry_transient
from domain.rule_index import index_comments
from domain.tasks import register_handler

PAGE = 100  # VK's maximum ``count`` for wall.get and wall.getComments
THREAD_INLINE = 10  # replies that come inline with their top-level comment
WRITE_BATCH = 2000  # comments per transaction
# Pages fetched but not yet written. While the writer is slower than VK (a busy database), the
# fetchers wait instead of piling pages up: a bound on a parse's memory (64 pages ≈ 6,400
# comments) that still holds three batches, so a writer that catches up never starves.
WRITE_QUEUE = 64
# Reads of one post within a round before it waits for the next round: a post that moves
# under three reads in a row is busy; the next listing says whether it calmed down.
READ_ATTEMPTS = 3
# Listings of the wall in one run: the first, then one per round of re-reading what moved.
# On a still wall the second finds nothing to do; a burst of moderation settles in a round or two.
ROUNDS = 5

CommentMatcher = Callable[[Sequence[tuple[int, str]]], list[Match]]
"""Matches (comment id, text) pairs against the active keywords."""
MatcherFactory = Callable[[list[Keyword]], CommentMatcher | None]
"""The active keywords → their matcher (None when nothing can match)."""


@dataclass
class CollectOptions:
    max_posts: int | None = None
    since: datetime | None = None
    full: bool = False
    recent_window: timedelta | None = None
    concurrency: int = 64  # posts whose comments are being fetched at once


@dataclass
class CollectResult:
    posts: int = 0
    posts_read: int = 0  # posts whose comments were (re)read in this run
    rereads: int = 0  # reads repeated because the post moved while (or after) it was read
    comments_seen: int = 0
    vanished: int = 0  # stored comments found gone from VK, now marked deleted
    matches: int = 0
    skipped_posts: list[dict[str, Any]] = field(default_factory=list)  # {postId, reason}
    unsettled_posts: list[int] = field(default_factory=list)  # still moving after ROUNDS listings
    authors_looked_up: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "postsRead": self.posts_read,
            "rereads": self.rereads,
            "commentsSeen": self.comments_seen,
            "vanished": self.vanished,
            "matches": self.matches,
            "skippedPosts": self.skipped_posts,
            "unsettledPosts": self.unsettled_posts,
            "authorsLookedUp": self.authors_looked_up,
        }


async def collect_group(
    group: Group,
    *,
    vk: VkGateway,
    uow_factory: UnitOfWorkFactory,
    options: CollectOptions,
    report: ProgressCallback,
    now: datetime,
    matcher_factory: MatcherFactory | None = None,
    on_matched: Callable[[list[int]], Awaitable[None]] | None = None,
    clock: Clock | None = None,
) -> CollectResult:
    assert group.id is not None
    group_id = group.id
    result = CollectResult()
    await report(0, None, Say.reading_wall())
    async with uow_factory() as uow:
        synced = await uow.posts.synced_counts(group.owner_id)
    writer = _Writer(group, uow_factory, matcher_factory, on_matched, result, report, now, clock)
    limit = asyncio.Semaphore(max(1, options.concurrency))
    listed: set[int] = set()  # every post id a listing of this run showed in range
    read: set[int] = set()  # posts read at least once in this run
    # post id -> the comments.count values at which its comments are known complete (a complete
    # read in this run, or the stored sync when it needed no reading); a listing compares.
    settled: dict[int, int] = {}
    listing = _ListingCounts()
    skipped: set[int] = set()

    def needs_reading(post: Post, first_round: bool) -> bool:
        if post.vk_id in skipped:
            return False
        if not first_round:
            return settled.get(post.vk_id) != post.comments_count
        if options.full or post.vk_id not in synced or synced[post.vk_id] != post.comments_count:
            return True
        return options.recent_window is not None and post.published_at >= now - options.recent_window

    async def read_post(post: Post) -> None:
        async with limit:
            if post.vk_id in read:
                result.rereads += 1
            read.add(post.vk_id)
            if post.comments_count == 0:
                # VK says it has none: nothing to ask. What an earlier run stored has vanished.
                settled[post.vk_id] = 0
                await writer.put(_PostDone(post.vk_id, 0, set() if synced.get(post.vk_id) else None))
                return
            try:
                complete = await _read_post(vk, post, writer, result)
            except (VkCommentsClosed, VkAccessDenied) as e:  # 212, or 15: the post was deleted meanwhile
                skipped.add(post.vk_id)
                settled.pop(post.vk_id, None)
                result.skipped_posts.append({"postId": post.vk_id, "reason": e.message})
                await writer.put(_PostDone(post.vk_id, None, None))
                return
            if complete is None:  # it kept moving: the next listing decides
                settled.pop(post.vk_id, None)
                await writer.put(_PostDone(post.vk_id, None, None))
                return
            # The count the listing shows for what this read saw, as the next listing and the
            # next run compare it.
            count = listing.count_of(complete, post.comments_count)
            settled[post.vk_id] = count
            await writer.put(_PostDone(post.vk_id, count, complete.present))

    wall_pages = 1  # pages the last listing took: the next asks for them all at once

    async def one_round(first_round: bool) -> tuple[bool, set[int]]:
        """One listing of the wall, reading what it shows must be read; returns whether the wall
        held still while it was listed, and the posts (re)read."""
        nonlocal wall_pages
        started: set[int] = set()
        async with asyncio.TaskGroup() as readers:

            async def take(posts: list[Post]) -> None:
                async with uow_factory() as uow:
                    await uow.posts.upsert_many(group_id, posts)
                    await uow.commit()
                for post in posts:
                    listed.add(post.vk_id)
                    if needs_reading(post, first_round):
                        started.add(post.vk_id)
                        writer.total += 1
                        readers.create_task(read_post(post))
                    elif first_round:
                        settled[post.vk_id] = post.comments_count
                await report(writer.done, writer.total, writer.message())

            still, pages = await _list_wall(vk, group.owner_id, options, take, pages_hint=wall_pages)
        wall_pages = pages
        return still, started

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.run())
            for round_number in range(ROUNDS):
                still, started = await one_round(first_round=round_number == 0)
                if round_number == 0:
                    result.posts = len(listed)
                    result.posts_read = len(started)
                if still and not started:
                    break
                # Before the next listing, so that a listing that finds nothing to do is the
                # run's last look at VK: what changes after it is the next run's.
                await writer.flush()
                await _look_up_missing_authors(vk, uow_factory, writer.unlisted_authors, result)
                writer.unlisted_authors.clear()
            else:  # no listing came after the last reads: they may have moved since
                result.unsettled_posts = sorted((listed - settled.keys() - skipped) | (started - skipped))
            await writer.close()
    except BaseExceptionGroup as group_error:
        raise _first_cause(group_error) from None

    result.posts = max(result.posts, len(listed))
    return result


def _first_cause(error: BaseException) -> BaseException:
    """The error that stopped the collection, out of (nested) task-group wrappers; a domain
    error or a cancellation wins over the CancelledErrors it caused in sibling tasks."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)
        else:
            leaves.append(e)

    walk(error)
    for leaf in leaves:
        if isinstance(leaf, DomainError):
            return leaf
    return next((leaf for leaf in leaves if not isinstance(leaf, asyncio.CancelledError)), leaves[0])


async def _list_wall(
    vk: VkGateway, owner_id: int, options: CollectOptions, take: Callable[[list[Post]], Awaitable[None]],
    *, pages_hint: int = 1,
) -> tuple[bool, int]:
    """Pages the wall newest first, up to ``max_posts`` or back to ``since``, handing each
    page's posts in range to ``take`` as soon as the page comes (so their comments are asked
    for while the rest of the wall is listed). The first ``pages_hint`` pages (what the last
    listing took) are asked for at once. Returns whether every page reported the same total
    (when not, posts shifted between pages, and one may have been skipped) and the pages read."""
    wanted = options.max_posts
    totals: set[int] = set()
    shown: set[int] = set()

    async def page_at(offset: int) -> WallPage:
        page = await vk.wall_page(owner_id, offset, PAGE)
        totals.add(page.total)
        posts = []
        for index, post in enumerate(page.posts, start=offset):
            if wanted is not None and index >= wanted:
                break
            if options.since is not None and post.published_at < options.since:
                continue  # the pinned post may be older than the bound: it comes first anyway
            if post.vk_id not in shown:  # a post published meanwhile shifts one into the next page
                shown.add(post.vk_id)
                posts.append(post)
        if posts:
            await take(posts)
        return page

    # Ask for as many pages as max_posts implies right away: extra empty pages cost calls,
    # not requests, because the adapter packs them into one execute.
    first_wave = max(pages_hint, 1 if wanted is None else min(10, max(1, -(-wanted // PAGE))))
    pages = list(await asyncio.gather(*(page_at(i * PAGE) for i in range(first_wave))))
    total = pages[0].total
    target = total if wanted is None else min(total, wanted)
    offset = first_wave * PAGE
    while offset < target and not _reached_since(pages[-1], options.since):
        end = target if options.since is None else min(target, offset + 5 * PAGE)
        wave = range(offset, end, PAGE)
        pages += await asyncio.gather(*(page_at(o) for o in wave))
        offset = wave[-1] + PAGE
    return len(totals) == 1, len(pages)


def _reached_since(page: WallPage, since: datetime | None) -> bool:
    if since is None:
        return False
    last = [p for p in page.posts if not p.is_pinned]
    return not last or last[-1].published_at < since


class _Seen:
    """What one read of a post saw: the distinct comments, and every count VK reported."""

    def __init__(self) -> None:
        self.top: set[int] = set()
        self.replies: dict[int, set[int]] = {}  # thread root -> its replies
        self.totals: set[int] = set()  # ``count`` of each top-level answer
        self.levels: set[int] = set()  # ``current_level_count`` of each top-level answer
        self.threads: dict[int, set[int]] = {}  # thread root -> each reply count reported
        self.lost_thread = False  # a thread's root went (with all its replies) while it was read
        self.placeholders: set[int] = set()  # deleted top-level comments kept for their replies

    def take(self, page: CommentPage, thread_of: int | None = None) -> None:
        if thread_of is not None:
            self.threads.setdefault(thread_of, set()).add(page.level_count)
            self.replies.setdefault(thread_of, set()).update(c.vk_id for c in page.comments)
            return
        self.totals.add(page.total)
        self.levels.add(page.level_count)
        for c in page.comments:
            if c.thread_vk_id is None:
                self.top.add(c.vk_id)
                if c.deleted:
                    self.placeholders.add(c.vk_id)
            else:
                self.replies.setdefault(c.thread_vk_id, set()).add(c.vk_id)
        for root, (count, _inline) in page.threads.items():
            self.threads.setdefault(root, set()).add(count)

    @property
    def present(self) -> set[int]:
        return self.top.union(*self.replies.values())

    @property
    def total(self) -> int:
        return next(iter(self.totals))

    @property
    def complete(self) -> bool:
        """Nothing moved while the post was read: one count everywhere, and exactly that many
        seen (VK's counts may leave out the deleted comments kept for their replies)."""
        if self.lost_thread or len(self.totals) != 1 or len(self.levels) != 1:
            return False
        for root, counts in self.threads.items():
            if len(counts) != 1 or len(self.replies.get(root, ())) != next(iter(counts)):
                return False
        level, total, seen = next(iter(self.levels)), next(iter(self.totals)), len(self.present)
        placeholders = len(self.placeholders)
        return (len(self.top), seen) in ((level, total), (level + placeholders, total + placeholders))


class _ListingCounts:
    """Whether the wall's ``comments.count`` counts the deleted comments VK keeps for their
    replies (its documentation does not say), by a vote of the complete reads of posts that
    have some: a read agrees with one way or the other unless the post moved in between, which
    a few do. Until a vote, it is assumed it does."""

    def __init__(self) -> None:
        self.votes = [0, 0]  # without, with

    def count_of(self, read: _Seen, listed: int) -> int:
        kept = len(read.placeholders)
        if kept and listed in (read.total, read.total - kept):
            self.votes[listed == read.total] += 1
        return read.total if self.votes[1] >= self.votes[0] else read.total - kept


async def _read_post(vk: VkGateway, post: Post, writer: _Writer, result: CollectResult) -> _Seen | None:
    """Reads every comment of the post, storing each page; the read that found the post still
    (None when it moved under each of ``READ_ATTEMPTS`` reads)."""
    seen: _Seen | None = None
    for attempt in range(READ_ATTEMPTS):
        if attempt:
            result.rereads += 1
        try:
            reading = _read_by_offsets(vk, post, writer) if seen is None else _read_anchored(vk, post, writer, seen)
            seen = await reading
        except BaseExceptionGroup as group_error:  # 212 or 15 met by a later page
            raise _first_cause(group_error) from None
        if seen.complete:
            return seen
    return None


async def _read_by_offsets(vk: VkGateway, post: Post, writer: _Writer) -> _Seen:
    """Every page at once by ``offset``: the fast read, exact when the post holds still."""
    owner, post_id = post.owner_id, post.vk_id
    seen = _Seen()
    # The first page is read outside the task group so that its errors (212: comments closed)
    # reach the caller as themselves, not wrapped in an ExceptionGroup.
    first = await vk.comments_page(owner, post_id, 0, PAGE)
    async with asyncio.TaskGroup() as tg:

        async def take(page: CommentPage) -> None:
            seen.take(page)
            await writer.put(page)
            for comment_id, (count, inline) in page.threads.items():
                for offset in range(inline, count, PAGE):
                    tg.create_task(_thread(comment_id, offset))

        async def _top(offset: int) -> None:
            await take(await vk.comments_page(owner, post_id, offset, PAGE))

        async def _thread(comment_id: int, offset: int) -> None:
            try:
                page = await vk.thread_page(owner, post_id, comment_id, offset, PAGE)
            except VkNotFound:
                seen.lost_thread = True
                return
            seen.take(page, thread_of=comment_id)
            await writer.put(page)

        for offset in range(PAGE, first.level_count, PAGE):
            tg.create_task(_top(offset))
        await take(first)
    return seen


def _anchors(ids: set[int], first: int) -> list[int]:
    """Where the pages of a read again start: every 99th comment the last read saw from
    ``first`` on. A page of 100 from one anchor reaches the next, and deletions only bring
    them closer (additions come at the end), so no comment falls between two pages."""
    return sorted(ids)[first::PAGE - 1]


async def _read_anchored(vk: VkGateway, post: Post, writer: _Writer, before: _Seen) -> _Seen:
    """The post again after a read that saw it move, every page at once as the fast read, but
    each page starting at a comment the last read saw (``start_comment_id``): VK starts at that
    comment, or at the nearest earlier one when it was deleted, so a deletion cannot shift a
    comment out of the read. A full last page is followed by more, for what was added."""
    owner, post_id = post.owner_id, post.vk_id
    seen = _Seen()
    threads: set[int] = set()
    async with asyncio.TaskGroup() as tg:

        async def top(start: int | None, last: bool) -> None:
            while True:
                page = await vk.comments_page(owner, post_id, 0, PAGE, start_comment_id=start)
                seen.take(page)
                await writer.put(page)
                for root, (count, inline) in page.threads.items():
                    if count > inline and root not in threads:
                        threads.add(root)
                        replies = [c.vk_id for c in page.comments if c.thread_vk_id == root]
                        known = _anchors(before.replies.get(root, set()), THREAD_INLINE - 1)
                        starts: list[int | None] = [*known] or [replies[-1] if replies else None]
                        for i, at in enumerate(starts):
                            tg.create_task(thread(root, at, last=i == len(starts) - 1))
                level = [c.vk_id for c in page.comments if c.thread_vk_id is None]
                if not last or len(level) < PAGE:
                    return
                start = level[-1]

        async def thread(root: int, start: int | None, last: bool) -> None:
            while True:
                try:
                    page = await vk.thread_page(owner, post_id, root, 0, PAGE, start_comment_id=start)
                except VkNotFound:
                    seen.lost_thread = True
                    return
                seen.take(page, thread_of=root)
                await writer.put(page)
                if not last or len(page.comments) < PAGE:
                    return
                start = page.comments[-1].vk_id

        starts: list[int | None] = [None, *_anchors(before.top, PAGE - 1)]
        for i, at in enumerate(starts):
            tg.create_task(top(at, last=i == len(starts) - 1))
    return seen


@dataclass
class _PostDone:
    post_vk_id: int
    comments_count: int | None  # None: the post could not be read completely, leave it unsynced
    present: set[int] | None = None  # after a complete read: every comment VK has on the post


class _Close:
    """What ``_Writer.close`` puts last on the queue."""


_CLOSE = _Close()
_Queued = CommentPage | _PostDone | asyncio.Event | _Close  # an Event: ``flush`` waits for it


class _Writer:
    """Stores pages in batches, one transaction each; marks posts collected in order."""

    def __init__(
        self, group: Group, uow_factory: UnitOfWorkFactory, matcher_factory: MatcherFactory | None,
        on_matched: Callable[[list[int]], Awaitable[None]] | None, result: CollectResult, report: ProgressCallback,
        now: datetime, clock: Clock | None = None,
    ) -> None:
        assert group.id is not None
        self.group_id = group.id
        self.now = now
        self.clock = clock  # when each batch is stored (an alert's queued time); else ``now``
        self.owner_id = group.owner_id
        self.uow_factory = uow_factory
        self.matcher_factory = matcher_factory
        # The keywords the matcher was built from: each batch reads the active ones in its own
        # transaction and rebuilds the matcher only when they changed. A parse lasts hours; a
        # keyword added meanwhile must match from the next batch on, and a re-collected comment
        # must not get its matches replaced by an older keyword list than the one an analyze
        # started after the change has already applied.
        self.keywords: list[Keyword] | None = None
        self.matcher: CommentMatcher | None = None
        self.on_matched = on_matched
        self.result = result
        self.report = report
        self.total = 0  # grows as listings find posts to read
        self.done = 0
        self.queue: asyncio.Queue[_Queued] = asyncio.Queue(maxsize=WRITE_QUEUE)
        # Authors of stored comments whose profile did not come with their batch: the ones to
        # check at the end. Not every author of the parse: that set grew with the community
        # (hundreds of thousands of ids), and the worker's memory with it.
        self.unlisted_authors: set[int] = set()

    def message(self) -> Say:
        return Say.posts_read(self.done, self.total, self.result.comments_seen)

    async def put(self, item: CommentPage | _PostDone) -> None:
        await self.queue.put(item)

    async def close(self) -> None:
        await self.queue.put(_CLOSE)

    async def flush(self) -> None:
        """Until everything put before is stored."""
        done = asyncio.Event()
        await self.queue.put(done)
        await done.wait()

    async def run(self) -> None:
        closing = False
        while not closing:
            batch: list[_Queued] = [await self.queue.get()]
            size = len(getattr(batch[0], "comments", ()))
            while size < WRITE_BATCH and not self.queue.empty() and not isinstance(batch[-1], asyncio.Event):
                item = self.queue.get_nowait()
                batch.append(item)
                size += len(getattr(item, "comments", ()))
            flushed = batch[-1] if isinstance(batch[-1], asyncio.Event) else None
            if flushed is not None:
                batch.pop()
            if batch and batch[-1] is _CLOSE:
                closing = True
                batch.pop()
            if batch:  # an Event or the close mark can only come last, and both are off now
                await self._write(cast(list[CommentPage | _PostDone], batch))
            if flushed is not None:
                flushed.set()

    async def _current_matcher(self, uow: UnitOfWork) -> CommentMatcher | None:
        if self.matcher_factory is None:
            return None
        keywords = await uow.keywords.list_active()
        if keywords != self.keywords:
            self.keywords = keywords
            self.matcher = self.matcher_factory(keywords) if keywords else None
        return self.matcher

    async def _write(self, batch: list[CommentPage | _PostDone]) -> None:
        comments: dict[tuple[int, int], Comment] = {}
        authors: dict[int, Author] = {}
        finished: dict[int, int] = {}
        present: dict[int, set[int]] = {}
        posts_done = 0
        for item in batch:
            if isinstance(item, _PostDone):
                posts_done += 1
                if item.comments_count is not None:
                    finished[item.post_vk_id] = item.comments_count
                if item.present is not None:
                    present[item.post_vk_id] = item.present
                continue
            for c in item.comments:
                comments[(c.owner_id, c.vk_id)] = c
            for a in item.authors:
                authors[a.vk_id] = a
        self.unlisted_authors.update(c.from_id for c in comments.values() if c.from_id not in authors)

        async def store() -> tuple[list[Match], int]:
            found: list[Match] = []
            vanished = 0
            async with self.uow_factory() as uow:
                if authors:
                    await uow.authors.upsert_many(authors.values())
                if comments:
                    matcher = await self._current_matcher(uow)
                    # A comment VK marks deleted comes without its text; the stored text
                    # stays (a deletion is not an edit), and so do its matches.
                    matched_keys = [key for key, c in comments.items() if not c.deleted]
                    # Matched before they are stored (by position in ``matched_keys``), so a new
                    # comment is inserted with its count, not written again to set it.
                    by_position = matcher([(n, comments[key].text) for n, key in enumerate(matched_keys)]) \
                        if matcher is not None else []
                    counts = Counter(matched_keys[m.comment_id] for m in by_position)
                    ids = await uow.comments.upsert_many(self.group_id, list(comments.values()), matches_counts=counts)
                    pairs = [(ids[key], comments[key].text) for key in matched_keys]
                    if matcher is not None:
                        found = [replace(m, comment_id=ids[matched_keys[m.comment_id]]) for m in by_position]
                        await uow.matches.replace_for_comments([i for i, _ in pairs], found)
                    # The saved rules' matches too, after the keywords' (their locks' order).
                    await index_comments(uow, pairs)
                    if matcher is not None:
                        # The alerts' outbox, in the same transaction: stored matches are alerted.
                        stored_at = self.clock.now() if self.clock is not None else self.now
                        await record_matched(uow, sorted({m.comment_id for m in found}), stored_at)
                # After the comments: a complete read's own comments are stored by now.
                for post_vk_id, vk_ids in present.items():
                    vanished += len(await uow.comments.mark_vanished(self.owner_id, post_vk_id, vk_ids, now=self.now))
                if finished:
                    await uow.posts.mark_synced(self.owner_id, finished)
                await uow.commit()
            return found, vanished

        # Upserts: a batch whose transaction was lost with its connection is simply written again.
        matches, vanished = await retry_transient(store, what="store comments", group_id=self.group_id)
        self.result.vanished += vanished
        matched_ids = sorted({m.comment_id for m in matches})
        self.result.matches += len(matches)
        self.result.comments_seen += len(comments)
        if matched_ids and self.on_matched is not None:
            await self.on_matched(matched_ids)
        self.done += posts_done
        await self.report(self.done, self.total, self.message())


async def _look_up_missing_authors(
    vk: VkGateway, uow_factory: UnitOfWorkFactory, author_ids: set[int], result: CollectResult
) -> None:
    """VK leaves some authors out of ``profiles``; ask for those only, 1000 at a time."""
    async with uow_factory() as uow:
        missing = await uow.authors.missing(author_ids)
    users = sorted(i for i in missing if i > 0)
    found: list[Author] = []
    for start in range(0, len(users), 1000):
        found += await vk.get_users(users[start : start + 1000])
    communities = sorted(-i for i in missing if i < 0)
    for start in range(0, len(communities), 500):
        found += [
            Author(vk_id=-g.vk_id, name=g.name, screen_name=g.screen_name, photo_url=g.photo_url)
            for g in await vk.get_groups(communities[start : start + 500])
        ]
    result.authors_looked_up += len(found)
    if found:
        async with uow_factory() as uow:
            await uow.authors.upsert_many(found)
            await uow.commit()


# --- the PARSE task ---------------------------------------------------------------------


async def run_parse(adapters: Adapters, task: Task, report: ProgressCallback) -> dict[str, Any]:
    """The PARSE task: collect its community, matching each batch with the keywords active when it
    is written, and record the run on the group."""
    async with adapters.uow_factory() as uow:
        group = await uow.groups.get(task.group_id) if task.group_id is not None else None
    if group is None:
        raise NotFound(f"Group {task.group_id} no longer exists")
    assert group.id is not None
    group_id = group.id
    since = task.params.get("since")
    options = CollectOptions(
        max_posts=task.params.get("maxPosts"),
        since=datetime.fromisoformat(since) if since else None,
        full=bool(task.params.get("full")),
        recent_window=timedelta(hours=adapters.recent_window_hours) if adapters.recent_window_hours else None,
        concurrency=adapters.collect_concurrency,
    )
    now = adapters.clock.now()
    try:
        result = await collect_group(
            group, vk=adapters.vk, uow_factory=adapters.uow_factory, options=options,
            report=report, now=now, matcher_factory=adapters.matcher_factory,
            on_matched=lambda comment_ids: publish_matched(adapters, comment_ids), clock=adapters.clock,
        )
    except DomainError as e:
        # A transient one is retried and a rest of every token waited out (``domain.tasks``):
        # neither is the community's last error.
        if not is_transient(e) and not isinstance(e, VkTokensResting):
            await _record_group_run(adapters, group_id, now, error=e.message)
        raise
    await _record_group_run(adapters, group_id, now, error=None)
    return result.as_dict()


async def _record_group_run(adapters: Adapters, group_id: int, now: datetime, *, error: str | None) -> None:
    async with adapters.uow_factory() as uow:
        group = await uow.groups.get(group_id)
        if group is None:
            return
        group.last_run_at = now
        group.last_error = error
        if error is None:
            group.last_success_at = now
        await uow.groups.save(group)
        await uow.commit()


async def run_metered_parse(adapters: Adapters, task: Task, report: ProgressCallback) -> dict[str, Any]:
    """``run_parse``, its result saying what the run cost in VK calls per method (``vkCalls``,
    from which ``domain.budget`` projects the monitoring schedule)."""
    with count_vk_calls() as vk_calls:
        result = await run_parse(adapters, task, report)
    return {**result, "vkCalls": {m: n for m, n in sorted(vk_calls.items()) if n > 0}}


register_handler(TaskKind.PARSE, run_metered_parse)
