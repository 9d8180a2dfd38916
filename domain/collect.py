"""How a parse works: collect one community's posts, every comment and every reply.

The collector asks for pages concurrently and never waits for one page before asking for an
unrelated one; the VK adapter packs whatever is pending into ``execute`` requests, so the more
pages are in flight, the closer collection runs to VK's rate ceiling. Pages are written by a
single writer in batches (one transaction per batch), which keeps SQLite happy and PostgreSQL
fast; a batch whose connection was lost (a restart, a failover) is written again. Storing is an upsert keyed by (owner_id, vk_id), so any run can be repeated or resumed
after a crash without duplicating anything.

Each batch is matched with the keywords active when it is written (read in its transaction),
so a keyword added or changed during a long parse applies from the next batch on, and agrees
with an analyze started after the change.

Incremental runs: a post's comments are re-read only when its ``comments.count`` differs from
the count at which they were last fully collected (or when it is within ``recent_window``, or
the run is ``full``). A post is marked collected only after all of its pages are stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.analyze import publish_matched
from domain.errors import DomainError, NotFound, VkAccessDenied, VkCommentsClosed, VkTokensResting
from domain.models import Author, Comment, Group, Keyword, Match, Post, Task, TaskKind
from domain.ports import Adapters, CommentPage, ProgressCallback, UnitOfWorkFactory, VkGateway
from domain.resilience import is_transient, retry_transient
from domain.tasks import register_handler

PAGE = 100  # VK's maximum ``count`` for wall.get and wall.getComments
WRITE_BATCH = 2000  # comments per transaction
# Pages fetched but not yet written. While the writer is slower than VK (a busy database), the
# fetchers wait instead of piling pages up: a bound on a parse's memory (64 pages ≈ 6,400
# comments) that still holds three batches, so a writer that catches up never starves.
WRITE_QUEUE = 64

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
    comments_seen: int = 0
    matches: int = 0
    skipped_posts: list[dict] = field(default_factory=list)
    authors_looked_up: int = 0

    def as_dict(self) -> dict:
        return {
            "posts": self.posts,
            "postsRead": self.posts_read,
            "commentsSeen": self.comments_seen,
            "matches": self.matches,
            "skippedPosts": self.skipped_posts,
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
) -> CollectResult:
    assert group.id is not None
    result = CollectResult()
    await report(0, None, "reading the wall")
    posts = await _collect_posts(vk, group.owner_id, options)
    result.posts = len(posts)

    async with uow_factory() as uow:
        await uow.posts.upsert_many(group.id, posts)
        synced = await uow.posts.synced_counts(group.owner_id)
        await uow.commit()

    def needs_reading(post: Post) -> bool:
        if options.full or post.vk_id not in synced:
            return True
        if synced[post.vk_id] != post.comments_count:
            return True
        return options.recent_window is not None and post.published_at >= now - options.recent_window

    todo = [p for p in posts if needs_reading(p)]
    result.posts_read = len(todo)
    writer = _Writer(group, uow_factory, matcher_factory, on_matched, result, report, total=len(todo))
    await report(0, len(todo), f"{len(posts)} posts, {len(todo)} to read")

    limit = asyncio.Semaphore(max(1, options.concurrency))

    async def read_post(post: Post) -> None:
        async with limit:
            if post.comments_count == 0:
                await writer.put(_PostDone(post.vk_id, post.comments_count))
                return
            try:
                await _read_comments(vk, post, writer)
            except (VkCommentsClosed, VkAccessDenied) as e:
                result.skipped_posts.append({"postId": post.vk_id, "reason": e.message})
                await writer.put(_PostDone(post.vk_id, None))
                return
            await writer.put(_PostDone(post.vk_id, post.comments_count))

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.run())
            async with asyncio.TaskGroup() as readers:
                for post in todo:
                    readers.create_task(read_post(post))
            await writer.close()
    except BaseExceptionGroup as group_error:
        raise _first_cause(group_error) from None

    # Those stored meanwhile (their profile came with another batch) are not missing.
    await _look_up_missing_authors(vk, uow_factory, writer.unlisted_authors, result)
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


async def _collect_posts(vk: VkGateway, owner_id: int, options: CollectOptions) -> list[Post]:
    """Newest first, up to ``max_posts`` or back to ``since``; fetches pages concurrently."""
    wanted = options.max_posts
    # Ask for as many pages as max_posts implies right away: extra empty pages cost calls,
    # not requests, because the adapter packs them into one execute.
    first_wave = 1 if wanted is None else min(10, max(1, -(-wanted // PAGE)))
    pages = await asyncio.gather(*(vk.wall_page(owner_id, i * PAGE, PAGE) for i in range(first_wave)))
    total = pages[0].total
    target = total if wanted is None else min(total, wanted)
    offset = first_wave * PAGE
    while offset < target and not _reached_since(pages, options.since):
        wave = range(offset, target, PAGE) if options.since is None else range(offset, min(target, offset + 5 * PAGE), PAGE)
        pages += await asyncio.gather(*(vk.wall_page(owner_id, o, PAGE) for o in wave))
        offset = wave[-1] + PAGE

    seen: dict[int, Post] = {}
    for page in pages:
        for post in page.posts:
            if options.since is not None and post.published_at < options.since:
                continue
            seen.setdefault(post.vk_id, post)
    posts = list(seen.values())
    if wanted is not None:
        posts = posts[:wanted]
    return posts


def _reached_since(pages: list, since: datetime | None) -> bool:
    if since is None:
        return False
    last = [p for p in pages[-1].posts if not p.is_pinned]
    return not last or last[-1].published_at < since


async def _read_comments(vk: VkGateway, post: Post, writer: _Writer) -> None:
    owner, post_id = post.owner_id, post.vk_id

    # The first page is read outside the task group so that its errors (212: comments closed)
    # reach the caller as themselves, not wrapped in an ExceptionGroup.
    first = await vk.comments_page(owner, post_id, 0, PAGE)
    async with asyncio.TaskGroup() as tg:

        async def take(page: CommentPage) -> None:
            await writer.put(page)
            for comment_id, (count, inline) in page.threads.items():
                for offset in range(inline, count, PAGE):
                    tg.create_task(_thread(comment_id, offset))

        async def _top(offset: int) -> None:
            await take(await vk.comments_page(owner, post_id, offset, PAGE))

        async def _thread(comment_id: int, offset: int) -> None:
            await writer.put(await vk.thread_page(owner, post_id, comment_id, offset, PAGE))

        for offset in range(PAGE, first.level_count, PAGE):
            tg.create_task(_top(offset))
        await take(first)


@dataclass
class _PostDone:
    post_vk_id: int
    comments_count: int | None  # None: the post could not be read, leave it unsynced


_CLOSE = object()


class _Writer:
    """Stores pages in batches, one transaction each; marks posts collected in order."""

    def __init__(self, group: Group, uow_factory, matcher_factory, on_matched, result: CollectResult, report, total: int):
        self.group_id = group.id
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
        self.total = total
        self.done = 0
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=WRITE_QUEUE)
        # Authors of stored comments whose profile did not come with their batch: the ones to
        # check at the end. Not every author of the parse: that set grew with the community
        # (hundreds of thousands of ids), and the worker's memory with it.
        self.unlisted_authors: set[int] = set()

    async def put(self, item) -> None:
        await self.queue.put(item)

    async def close(self) -> None:
        await self.queue.put(_CLOSE)

    async def run(self) -> None:
        closing = False
        while not closing:
            batch = [await self.queue.get()]
            size = len(getattr(batch[0], "comments", ()))
            while size < WRITE_BATCH and not self.queue.empty():
                item = self.queue.get_nowait()
                batch.append(item)
                size += len(getattr(item, "comments", ()))
            if batch[-1] is _CLOSE:
                closing = True
                batch.pop()
            if batch:
                await self._write(batch)

    async def _current_matcher(self, uow) -> CommentMatcher | None:
        if self.matcher_factory is None:
            return None
        keywords = await uow.keywords.list_active()
        if keywords != self.keywords:
            self.keywords = keywords
            self.matcher = self.matcher_factory(keywords) if keywords else None
        return self.matcher

    async def _write(self, batch: list) -> None:
        comments: dict[tuple[int, int], Comment] = {}
        authors: dict[int, Author] = {}
        finished: dict[int, int] = {}
        posts_done = 0
        for item in batch:
            if isinstance(item, _PostDone):
                posts_done += 1
                if item.comments_count is not None:
                    finished[item.post_vk_id] = item.comments_count
                continue
            for c in item.comments:
                comments[(c.owner_id, c.vk_id)] = c
            for a in item.authors:
                authors[a.vk_id] = a
        self.unlisted_authors.update(c.from_id for c in comments.values() if c.from_id not in authors)

        async def store() -> list[Match]:
            found: list[Match] = []
            async with self.uow_factory() as uow:
                if authors:
                    await uow.authors.upsert_many(authors.values())
                if comments:
                    ids = await uow.comments.upsert_many(self.group_id, list(comments.values()))
                    matcher = await self._current_matcher(uow)
                    if matcher is not None:
                        pairs = [(ids[key], c.text) for key, c in comments.items()]
                        found = matcher(pairs)
                        await uow.matches.replace_for_comments([i for i, _ in pairs], found)
                if finished:
                    await uow.posts.mark_synced(self.owner_id, finished)
                await uow.commit()
            return found

        # Upserts: a batch whose transaction was lost with its connection is simply written again.
        matches = await retry_transient(store, what="store comments", group_id=self.group_id)
        matched_ids = sorted({m.comment_id for m in matches})
        self.result.matches += len(matches)
        self.result.comments_seen += len(comments)
        if matched_ids and self.on_matched is not None:
            await self.on_matched(matched_ids)
        self.done += posts_done
        await self.report(self.done, self.total, f"{self.done}/{self.total} posts, {self.result.comments_seen} comments")


async def _look_up_missing_authors(vk, uow_factory, author_ids: set[int], result: CollectResult) -> None:
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
    result.authors_looked_up = len(found)
    if found:
        async with uow_factory() as uow:
            await uow.authors.upsert_many(found)
            await uow.commit()


# --- the PARSE task ---------------------------------------------------------------------


async def run_parse(adapters: Adapters, task: Task, report: ProgressCallback) -> dict:
    """The PARSE task: collect its community, matching each batch with the keywords active when it
    is written, and record the run on the group."""
    async with adapters.uow_factory() as uow:
        group = await uow.groups.get(task.group_id) if task.group_id is not None else None
    if group is None:
        raise NotFound(f"Group {task.group_id} no longer exists")
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
            on_matched=lambda comment_ids: publish_matched(adapters, comment_ids),
        )
    except DomainError as e:
        # A transient one is retried and a rest of every token waited out (``domain.tasks``):
        # neither is the community's last error.
        if not is_transient(e) and not isinstance(e, VkTokensResting):
            await _record_group_run(adapters, group.id, now, error=e.message)
        raise
    await _record_group_run(adapters, group.id, now, error=None)
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


register_handler(TaskKind.PARSE, run_parse)
