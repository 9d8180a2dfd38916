"""In-memory implementations of the domain's ports, for fast tests.

``InMemoryStore`` holds the data; ``FakeUnitOfWork(store)`` is one transaction over it: every
write records how to undo itself, and leaving ``async with`` without ``commit()`` undoes them,
as a database would roll back. Objects are copied in and out, so a test that forgets
``save()`` sees the change lost, as it would be with SQL.

    store = InMemoryStore()
    uow_factory = store.uow_factory          # what use cases take
    async with uow_factory() as uow: ...
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.alert_model import AlertChannel, AlertComment, AlertRule, PendingDelivery
from domain.models import (
    ApiToken,
    Author,
    Comment,
    CommentEvent,
    CommentStatus,
    DeliveryState,
    Group,
    Keyword,
    Match,
    Post,
    Task,
    TaskKind,
    TaskState,
    WorkflowState,
)
from domain.queries import fold_text


class InMemoryStore:
    def __init__(self) -> None:
        self.groups: dict[int, Group] = {}
        self.posts: dict[tuple[int, int], tuple[int, int, Post]] = {}  # (owner, vk_id) -> (row id, group id, post)
        self.synced: dict[tuple[int, int], int] = {}  # (owner, post vk_id) -> comments_count
        self.comments: dict[tuple[int, int], tuple[int, int, Comment]] = {}  # (owner, vk_id) -> (row id, group id, c)
        # Comment history, by row id, as the SQL repository keeps it: when the comment was first
        # stored, when its text last changed, when it was seen deleted, and its earlier texts.
        self.first_seen: dict[int, datetime] = {}
        self.edited_at: dict[int, datetime] = {}
        self.deleted_at: dict[int, datetime] = {}
        self.versions: dict[int, list[tuple[str, datetime]]] = {}  # oldest first
        self.authors: dict[int, Author] = {}
        self.keywords: dict[int, Keyword] = {}
        self.matches: dict[int, list[Match]] = {}  # comment row id -> its matches
        self.tasks: dict[int, Task] = {}
        self.api_tokens: dict[int, ApiToken] = {}
        # The review workflow, by comment row id (absent: NEW, nothing set), and its audit trail.
        self.workflow: dict[int, WorkflowState] = {}
        self.events: dict[int, CommentEvent] = {}  # event id -> event, appended
        self.alert_rules: dict[int, AlertRule] = {}
        self.alert_deliveries: dict[int, dict] = {}  # row id -> the row, as the SQL outbox keeps it
        self.ids = itertools.count(1)
        self.commits = 0

    def uow_factory(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    # conveniences for tests

    def add_keyword(self, word: str, **options) -> Keyword:
        keyword = Keyword(id=next(self.ids), word=word, **options)
        self.keywords[keyword.id] = keyword
        return keyword

    def comment_ids(self, owner_id: int) -> set[int]:
        return {vk_id for (owner, vk_id) in self.comments if owner == owner_id}

    def comment(self, owner_id: int, vk_id: int) -> Comment:
        return self.comments[(owner_id, vk_id)][2]

    def all_matches(self) -> list[Match]:
        return [m for ms in self.matches.values() for m in ms]


class _Journal:
    """Undo steps of one transaction, newest last."""

    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] = []

    def put(self, table: dict, key, value) -> None:
        if key in table:
            old = table[key]
            self.undo.append(lambda: table.__setitem__(key, old))
        else:
            self.undo.append(lambda: table.pop(key, None))
        table[key] = value

    def delete(self, table: dict, key) -> None:
        if key in table:
            old = table.pop(key)
            self.undo.append(lambda: table.__setitem__(key, old))

    def rollback(self) -> None:
        while self.undo:
            self.undo.pop()()


class FakeGroupRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def get(self, group_id: int) -> Group | None:
        group = self.store.groups.get(group_id)
        return copy.copy(group) if group else None

    async def get_by_vk_id(self, vk_id: int) -> Group | None:
        return next((copy.copy(g) for g in self.store.groups.values() if g.vk_id == vk_id), None)

    async def add(self, group: Group) -> Group:
        group.id = next(self.store.ids)
        group.created_at = group.created_at or datetime.now(UTC)
        group.updated_at = group.created_at
        self.journal.put(self.store.groups, group.id, copy.copy(group))
        return group

    async def save(self, group: Group) -> None:
        assert group.id is not None
        group.updated_at = datetime.now(UTC)
        self.journal.put(self.store.groups, group.id, copy.copy(group))

    async def list(self, *, active: bool | None = None) -> list[Group]:
        return [copy.copy(g) for g in sorted(self.store.groups.values(), key=lambda g: g.id)
                if active is None or g.active == active]

    async def remove(self, group_id: int) -> None:
        self.journal.delete(self.store.groups, group_id)

    async def due_for_monitoring(self, now: datetime) -> list[Group]:
        due = [g for g in self.store.groups.values()
               if g.active and g.monitor_enabled and (g.next_run_at is None or g.next_run_at <= now)]
        # Higher priority first, then whoever has waited longest.
        due.sort(key=lambda g: (-g.monitor_priority, g.next_run_at or datetime.min.replace(tzinfo=UTC), g.id))
        return [copy.copy(g) for g in due]


class FakePostRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def upsert_many(self, group_id: int, posts: Sequence[Post]) -> None:
        for post in posts:
            key = (post.owner_id, post.vk_id)
            row_id = self.store.posts[key][0] if key in self.store.posts else next(self.store.ids)
            self.journal.put(self.store.posts, key, (row_id, group_id, copy.copy(post)))

    async def synced_counts(self, owner_id: int) -> dict[int, int]:
        return {vk_id: n for (owner, vk_id), n in self.store.synced.items() if owner == owner_id}

    async def mark_synced(self, owner_id: int, counts: dict[int, int]) -> None:
        for vk_id, n in counts.items():
            self.journal.put(self.store.synced, (owner_id, vk_id), n)


class FakeCommentRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def upsert_many(
        self, group_id: int, comments: Sequence[Comment], *, matches_counts: Mapping[tuple[int, int], int] | None = None
    ) -> dict[tuple[int, int], int]:
        # (Counts are kept by replace_for_comments here: nothing to write twice.)
        store, now = self.store, datetime.now(UTC)
        ids: dict[tuple[int, int], int] = {}
        for comment in comments:
            key = (comment.owner_id, comment.vk_id)
            comment = copy.copy(comment)
            if key not in store.comments:
                row_id = next(store.ids)
                self.journal.put(store.first_seen, row_id, now)
                if comment.deleted:
                    self.journal.put(store.deleted_at, row_id, now)
            else:
                row_id, _, before = store.comments[key]
                if comment.deleted:  # VK's placeholder: what was stored stays, only marked
                    comment.text, comment.from_id = before.text, before.from_id
                    comment.published_at, comment.likes = before.published_at, before.likes
                    if row_id not in store.deleted_at:
                        self.journal.put(store.deleted_at, row_id, now)
                else:
                    placeholder = row_id in store.deleted_at and not before.text  # first seen deleted: no text
                    self.journal.delete(store.deleted_at, row_id)
                    if comment.text != before.text and not placeholder:
                        seen = store.edited_at.get(row_id, store.first_seen[row_id])
                        self.journal.put(store.versions, row_id, [*store.versions.get(row_id, []), (before.text, seen)])
                        self.journal.put(store.edited_at, row_id, now)
            self.journal.put(store.comments, key, (row_id, group_id, comment))
            ids[key] = row_id
        return ids

    async def mark_vanished(self, owner_id: int, post_vk_id: int, present, *, now: datetime) -> list[int]:
        keep = set(present)
        marked = []
        for (owner, vk_id), (row_id, group_id, comment) in list(self.store.comments.items()):
            if owner != owner_id or comment.post_vk_id != post_vk_id or vk_id in keep:
                continue
            if row_id in self.store.deleted_at:
                continue
            self.journal.put(self.store.comments, (owner, vk_id), (row_id, group_id, dataclasses.replace(comment, deleted=True)))
            self.journal.put(self.store.deleted_at, row_id, now)
            marked.append(row_id)
        return sorted(marked)

    async def count(self, *, group_id: int | None = None) -> int:
        return sum(1 for _, g, _ in self.store.comments.values() if group_id is None or g == group_id)

    async def set_state(self, ids: Sequence[int], *, viewed: bool | None, archived: bool | None) -> list[int]:
        existing = {row_id for row_id, _, _ in self.store.comments.values()}
        found = [i for i in ids if i in existing]
        for row_id in found:
            state = self._state(row_id)
            state = dataclasses.replace(
                state, viewed=state.viewed if viewed is None else viewed,
                archived=state.archived if archived is None else archived,
            )
            self.journal.put(self.store.workflow, row_id, state)
        return found

    def _state(self, row_id: int) -> WorkflowState:
        return self.store.workflow.get(row_id) or WorkflowState(
            id=row_id, viewed=False, archived=False, status=CommentStatus.NEW, assignee=None, tags=(), note=None
        )

    async def workflow_states(self, ids: Sequence[int]) -> list[WorkflowState]:
        existing = {row_id for row_id, _, _ in self.store.comments.values()}
        return [self._state(i) for i in sorted(set(ids)) if i in existing]

    async def set_workflow(self, states: Sequence[WorkflowState]) -> None:
        for state in states:
            stored = self._state(state.id)
            self.journal.put(self.store.workflow, state.id, dataclasses.replace(
                stored, status=state.status, assignee=state.assignee, tags=state.tags, note=state.note
            ))

    async def add_events(self, events: Sequence[CommentEvent]) -> None:
        for event in events:
            event_id = next(self.store.ids)
            self.journal.put(self.store.events, event_id, dataclasses.replace(event, id=event_id))

    async def iter_texts(
        self, *, group_ids: Sequence[int] | None, after_id: int, limit: int
    ) -> list[tuple[int, str]]:
        rows = sorted((row_id, c.text) for row_id, g, c in self.store.comments.values()
                      if row_id > after_id and (group_ids is None or g in group_ids))
        return rows[:limit]


class FakeAuthorRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def upsert_many(self, authors: Iterable[Author]) -> None:
        for author in authors:
            self.journal.put(self.store.authors, author.vk_id, copy.copy(author))

    async def missing(self, vk_ids: Iterable[int]) -> set[int]:
        return {i for i in vk_ids if i not in self.store.authors}


class FakeKeywordRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def list_active(self) -> list[Keyword]:
        return [k for k in sorted(self.store.keywords.values(), key=lambda k: k.id) if k.active]

    async def list(self, *, active: bool | None = None) -> list[Keyword]:
        return [k for k in sorted(self.store.keywords.values(), key=lambda k: k.id) if active in (None, k.active)]

    async def get(self, keyword_id: int) -> Keyword | None:
        return self.store.keywords.get(keyword_id)

    async def get_by_word(self, word: str) -> Keyword | None:
        from domain.matching import keyword_key

        return next((k for k in self.store.keywords.values() if keyword_key(k.word) == keyword_key(word)), None)

    async def add(self, keyword: Keyword) -> Keyword | None:
        if await self.get_by_word(keyword.word) is not None:  # the unique key on word_key
            return None
        keyword = dataclasses.replace(keyword, id=next(self.store.ids), created_at=datetime.now(UTC))
        self.journal.put(self.store.keywords, keyword.id, keyword)
        return keyword

    async def save(self, keyword: Keyword) -> None:
        self.journal.put(self.store.keywords, keyword.id, keyword)

    async def remove(self, keyword_id: int) -> None:
        self.journal.delete(self.store.keywords, keyword_id)
        for comment_id, found in list(self.store.matches.items()):  # ON DELETE CASCADE
            kept = [m for m in found if m.keyword_id != keyword_id]
            if len(kept) != len(found):
                if kept:
                    self.journal.put(self.store.matches, comment_id, kept)
                else:
                    self.journal.delete(self.store.matches, comment_id)


class FakeMatchRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def replace_for_comments(
        self, comment_ids: Sequence[int], matches: Sequence[Match], *, keyword_ids: Sequence[int] | None = None
    ) -> None:
        new: dict[int, list[Match]] = {i: [] for i in comment_ids}
        for match in matches:
            new.setdefault(match.comment_id, []).append(match)
        for comment_id, fresh in new.items():
            if keyword_ids is not None:  # keep the other keywords' matches
                kept = [m for m in self.store.matches.get(comment_id, []) if m.keyword_id not in keyword_ids]
                fresh = kept + [m for m in fresh if m.keyword_id in keyword_ids]
            if fresh:
                self.journal.put(self.store.matches, comment_id, fresh)
            else:
                self.journal.delete(self.store.matches, comment_id)


class FakeRuleMatchRepository:
    """No saved rules are kept in memory: nothing to match, nothing stored."""

    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def compiled(self, *, unindexed_only: bool = False, skip: Any = ()) -> Any:
        from domain.compiled_rules import NO_RULES

        return NO_RULES

    async def replace_for_comments(self, comment_ids: Sequence[int], found: Sequence[tuple[int, int]]) -> None:
        return None

    async def unindexed_count(self) -> int:
        return 0

    async def last_comment_id(self) -> int:
        return max((row_id for row_id, _, _ in self.store.comments.values()), default=0)

    async def candidates(self, narrowing: Any, *, after: int, upto: int) -> list[tuple[int, str]]:
        return []

    async def generations(self, rule_ids: Sequence[int]) -> dict[int, int]:
        return {}

    async def add(self, found: Sequence[tuple[int, int]]) -> None:
        return None

    async def mark_indexed(self, rules: Sequence[tuple[int, int]], now: datetime) -> int:
        return 0

    async def invalidate(self, **refs: Any) -> list[int]:
        return []


class FakeTaskRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def add(self, task: Task) -> Task:
        task.id = next(self.store.ids)
        self.journal.put(self.store.tasks, task.id, copy.deepcopy(task))
        return task

    async def get(self, task_id: int) -> Task | None:
        task = self.store.tasks.get(task_id)
        return copy.deepcopy(task) if task else None

    async def save(self, task: Task) -> None:
        assert task.id is not None
        stored = copy.deepcopy(task)
        current = self.store.tasks.get(task.id)
        # As in SQL, a save never moves the lease or a wait: only claim/heartbeat/wait/finish do.
        stored.worker_id = current.worker_id if current else None
        stored.heartbeat_at = current.heartbeat_at if current else None
        stored.waiting_until = current.waiting_until if current else None
        stored.waits = current.waits if current else 0
        self.journal.put(self.store.tasks, task.id, stored)

    async def add_parse(self, task: Task) -> Task | None:
        if await self.find_active(TaskKind.PARSE, task.group_id) is not None:
            return None
        return await self.add(task)

    async def find_active(self, kind: TaskKind, group_id: int) -> Task | None:
        for task in sorted(self.store.tasks.values(), key=lambda t: t.id):
            if task.kind is kind and task.group_id == group_id and task.state in (TaskState.QUEUED, TaskState.RUNNING):
                return copy.deepcopy(task)
        return None

    async def list(
        self, *, states: Sequence[TaskState] | None = None, kinds: Sequence[TaskKind] | None = None, limit: int = 100
    ) -> list[Task]:
        found = [t for t in sorted(self.store.tasks.values(), key=lambda t: t.id, reverse=True)  # newest first
                 if (states is None or t.state in states) and (kinds is None or t.kind in kinds)]
        return [copy.deepcopy(t) for t in found[:limit]]

    def _put(self, task: Task) -> Task:
        self.journal.put(self.store.tasks, task.id, task)
        return copy.deepcopy(task)

    def _current(self, task_id: int) -> Task | None:
        task = self.store.tasks.get(task_id)
        return copy.deepcopy(task) if task else None

    async def claim(self, task_id: int, *, worker_id: str, now: datetime, stale_before: datetime) -> Task | None:
        task = self._current(task_id)
        if task is None:
            return None
        stale = task.heartbeat_at is None or task.heartbeat_at < stale_before or task.worker_id == worker_id
        due = task.waiting_until is None or task.waiting_until <= now
        if not ((task.state is TaskState.QUEUED and due) or (task.state is TaskState.RUNNING and stale)):
            return None
        resumed = task.waiting_until is not None  # after a wait for VK: not a new attempt
        task.state, task.attempts, task.error = TaskState.RUNNING, task.attempts + (0 if resumed else 1), None
        task.waiting_until = None
        task.started_at = task.started_at or now
        task.worker_id, task.heartbeat_at, task.updated_at, task.progress_at = worker_id, now, now, now
        return self._put(task)

    async def heartbeat(self, task_id: int, *, worker_id: str, now: datetime, progress=None) -> Task | None:
        task = self._current(task_id)
        if task is None or task.state is not TaskState.RUNNING or task.worker_id != worker_id:
            return None
        task.heartbeat_at = now
        if progress is not None:
            task.progress, task.updated_at, task.progress_at, task.stalled_at = copy.copy(progress), now, now, None
        return self._put(task)

    async def finish(self, task_id: int, *, worker_id: str | None, state: TaskState, now: datetime,
                     error=None, result=None, progress=None) -> Task | None:
        task = self._current(task_id)
        if task is None or task.state.terminal or (worker_id is not None and task.worker_id != worker_id):
            return None
        task.state, task.finished_at, task.updated_at = state, now, now
        task.error, task.result, task.heartbeat_at, task.waiting_until = error, result, None, None
        if progress is not None:
            task.progress = copy.copy(progress)
        return self._put(task)

    async def wait(self, task_id: int, *, worker_id: str, now: datetime, until: datetime, progress) -> Task | None:
        task = self._current(task_id)
        if (task is None or task.state is not TaskState.RUNNING or task.worker_id != worker_id
                or task.cancel_requested):
            return None
        task.state, task.waiting_until, task.waits = TaskState.QUEUED, until, task.waits + 1
        task.worker_id, task.heartbeat_at, task.stalled_at = None, None, None
        task.progress, task.progress_at, task.updated_at = copy.copy(progress), now, now
        return self._put(task)

    async def release(self, task_id: int, *, worker_id: str) -> None:
        task = self._current(task_id)
        if task is not None and task.state is TaskState.RUNNING and task.worker_id == worker_id:
            task.heartbeat_at = None
            self._put(task)

    async def request_cancel(self, task_id: int, *, now: datetime) -> Task | None:
        task = self._current(task_id)
        if task is None or task.state.terminal:
            return None
        task.cancel_requested, task.updated_at = True, now
        task.waiting_until = None
        if task.state is TaskState.QUEUED:
            task.state, task.finished_at = TaskState.CANCELLED, now
        return self._put(task)

    async def list_orphaned(self, *, stale_before: datetime, queued_before: datetime, limit: int = 1000) -> list[Task]:
        found = [
            t for t in self.store.tasks.values()
            if (t.state is TaskState.RUNNING and (t.heartbeat_at is None or t.heartbeat_at < stale_before))
            or (t.state is TaskState.QUEUED and t.created_at is not None and t.created_at < queued_before
                and (t.waiting_until is None or t.waiting_until < queued_before))
        ]
        found.sort(key=lambda t: (-t.priority, t.id))
        return [copy.deepcopy(t) for t in found[:limit]]

    async def list_stalled(self, *, progress_before: datetime, stale_before: datetime, limit: int = 100) -> list[Task]:
        found = [
            t for t in sorted(self.store.tasks.values(), key=lambda t: t.id)
            if t.state is TaskState.RUNNING and t.heartbeat_at is not None and t.heartbeat_at >= stale_before
            and t.progress_at is not None and t.progress_at < progress_before
        ]
        return [copy.deepcopy(t) for t in found[:limit]]

    async def mark_stalled(self, task_id: int, *, worker_id: str | None, now: datetime) -> Task | None:
        task = self._current(task_id)
        if task is None or task.state is not TaskState.RUNNING or task.worker_id != worker_id:
            return None
        task.stalled_at, task.stalls, task.updated_at = now, task.stalls + 1, now
        task.worker_id, task.heartbeat_at = None, None
        return self._put(task)


class FakeApiTokenRepository:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def add(self, *, name: str, role: str, token_hash: str) -> ApiToken:
        token = ApiToken(id=next(self.store.ids), name=name, role=role, token_hash=token_hash, created_at=datetime.now(UTC))
        self.journal.put(self.store.api_tokens, token.id, token)
        return copy.copy(token)

    async def find_by_hash(self, token_hash: str) -> ApiToken | None:
        return next((copy.copy(t) for t in self.store.api_tokens.values() if t.token_hash == token_hash), None)

    async def list(self) -> list[ApiToken]:
        return [copy.copy(t) for _, t in sorted(self.store.api_tokens.items())]

    async def revoke(self, token_id: int) -> bool:
        token = self.store.api_tokens.get(token_id)
        if token is None or token.revoked_at is not None:
            return False
        self.journal.put(self.store.api_tokens, token_id, dataclasses.replace(token, revoked_at=datetime.now(UTC)))
        return True

    async def touch(self, token_id: int, when: datetime | None = None) -> None:
        token = self.store.api_tokens.get(token_id)
        if token is not None:
            self.journal.put(self.store.api_tokens, token_id, dataclasses.replace(token, last_used_at=when or datetime.now(UTC)))


class FakeAlertRepository:
    """The outbox in memory: one row per (rule, channel, event key), as the SQL one."""

    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.store, self.journal = store, journal

    async def list_rules(self) -> list[AlertRule]:
        return [copy.deepcopy(r) for _, r in sorted(self.store.alert_rules.items())]

    async def get_rule(self, rule_id: int) -> AlertRule | None:
        rule = self.store.alert_rules.get(rule_id)
        return copy.deepcopy(rule) if rule is not None else None

    async def add_rule(self, rule: AlertRule) -> AlertRule:
        rule = copy.deepcopy(rule)
        rule.id = next(self.store.ids)
        return await self.save_rule(rule)

    async def save_rule(self, rule: AlertRule) -> AlertRule:
        rule = copy.deepcopy(rule)
        rule.channels = [c if c.id is not None else AlertChannel(id=next(self.store.ids), url=c.url) for c in rule.channels]
        self.journal.put(self.store.alert_rules, rule.id, rule)
        return copy.deepcopy(rule)

    async def remove_rule(self, rule_id: int) -> bool:
        if rule_id not in self.store.alert_rules:
            return False
        self.journal.delete(self.store.alert_rules, rule_id)
        for key in [k for k, d in self.store.alert_deliveries.items() if d["rule_id"] == rule_id]:
            self.journal.delete(self.store.alert_deliveries, key)
        return True

    def _admits(self, rule: AlertRule, comment_id: int) -> bool:
        found = [(g, c) for (rid, g, c) in self.store.comments.values() if rid == comment_id]
        found_matches = self.store.matches.get(comment_id, [])
        if not found or not found_matches:
            return False
        group_id, comment = found[0]
        flt = rule.filter
        if flt.group_ids is not None and group_id not in flt.group_ids:
            return False
        if flt.keyword_ids is not None and not any(m.keyword_id in flt.keyword_ids for m in found_matches):
            return False
        if flt.author_ids is not None and comment.from_id not in flt.author_ids:
            return False
        return all(w in fold_text(comment.text) for w in flt.text_words)

    def _add(self, rule_id: int, channel_id: int, key: str, now: datetime, **extra: object) -> int:
        if any((d["rule_id"], d["channel_id"], d["event_key"]) == (rule_id, channel_id, key)
               for d in self.store.alert_deliveries.values()):
            return 0
        row = {"id": next(self.store.ids), "rule_id": rule_id, "channel_id": channel_id, "event_key": key,
               "comment_id": None, "event": None, "state": DeliveryState.PENDING.value, "attempts": 0,
               "last_error": None, "created_at": now, "next_attempt_at": now, "sent_at": None, "message_id": None,
               "lease_until": None, **extra}
        self.journal.put(self.store.alert_deliveries, row["id"], row)
        return 1

    async def enqueue_matches(self, comment_ids: Sequence[int], *, now: datetime) -> int:
        added = 0
        for rule in self.store.alert_rules.values():
            if rule.is_system or not rule.active(now):
                continue
            for comment_id in sorted(set(comment_ids)):
                if self._admits(rule, comment_id):
                    for channel in rule.channels:
                        assert rule.id is not None and channel.id is not None
                        added += self._add(rule.id, channel.id, f"c{comment_id}", now, comment_id=comment_id)
        return added

    async def enqueue_event(self, rule: AlertRule, key: str, event: dict, *, now: datetime) -> int:
        assert rule.id is not None
        return sum(self._add(rule.id, c.id, key, now, event=event) for c in rule.channels if c.id is not None)

    def _row(self, delivery_id: int) -> dict:
        row = dict(self.store.alert_deliveries[delivery_id])
        self.journal.put(self.store.alert_deliveries, delivery_id, row)
        return row

    async def due_groups(self, *, now: datetime, limit: int) -> list[tuple[int, int]]:
        pairs: dict[tuple[int, int], None] = {}
        for _, d in sorted(self.store.alert_deliveries.items()):
            free = d["lease_until"] is None or d["lease_until"] < now
            if d["state"] == DeliveryState.PENDING.value and d["next_attempt_at"] <= now and free:
                pairs[(d["rule_id"], d["channel_id"])] = None
        return list(pairs)[:limit]

    async def claim(self, rule_id: int, channel_id: int, *, now: datetime, owner: str, lease_until: datetime,
                    limit: int, due_only: bool) -> list[PendingDelivery]:
        claimed = []
        for key, d in sorted(self.store.alert_deliveries.items()):
            if (d["rule_id"], d["channel_id"]) != (rule_id, channel_id) or d["state"] != DeliveryState.PENDING.value:
                continue
            if d["lease_until"] is not None and d["lease_until"] >= now:
                continue
            if due_only and d["next_attempt_at"] > now:
                break  # a later row never overtakes an earlier one
            row = self._row(key)
            row["lease_until"] = lease_until
            claimed.append(PendingDelivery(
                id=key, rule_id=rule_id, channel_id=channel_id, comment_id=row["comment_id"],
                event_key=row["event_key"], event=row["event"], attempts=row["attempts"],
                created_at=row["created_at"], message_id=row["message_id"]))
            if len(claimed) >= limit:
                break
        return claimed

    async def last_sent_at(self, rule_id: int, channel_id: int) -> datetime | None:
        sent = [d["sent_at"] for d in self.store.alert_deliveries.values()
                if (d["rule_id"], d["channel_id"]) == (rule_id, channel_id) and d["state"] == DeliveryState.SENT.value]
        return max(sent, default=None)

    async def assign(self, ids: Sequence[int], message_id: str) -> None:
        for i in ids:
            self._row(i)["message_id"] = message_id

    async def release(self, ids: Sequence[int], *, next_attempt_at: datetime) -> None:
        for i in ids:
            row = self._row(i)
            row["lease_until"], row["next_attempt_at"] = None, next_attempt_at

    async def settle(self, ids: Sequence[int], state: DeliveryState, *, now: datetime, attempted: bool = False) -> None:
        for i in ids:
            row = self._row(i)
            row["state"], row["lease_until"] = state.value, None
            if state is DeliveryState.SENT:
                row["sent_at"] = now
            if attempted:
                row["attempts"] += 1

    async def record_failure(self, delivery_id: int, *, error: str, next_attempt_at: datetime | None,
                             now: datetime) -> None:
        row = self._row(delivery_id)
        row["attempts"] += 1
        row["last_error"], row["lease_until"] = error, None
        if next_attempt_at is None:
            row["state"] = DeliveryState.FAILED.value
        else:
            row["next_attempt_at"] = next_attempt_at

    async def comments_for(self, comment_ids: Sequence[int]) -> dict[int, AlertComment]:
        found = {}
        words = {k.id: k.word for k in self.store.keywords.values()}
        for rid, group_id, c in self.store.comments.values():
            if rid in comment_ids:
                group = self.store.groups.get(group_id)
                found[rid] = AlertComment(
                    comment_id=rid, text=c.text, author_id=c.from_id, author_name=None, group_id=group_id,
                    group_name=group.name if group else "?", published_at=c.published_at,
                    url=f"https://vk.com/wall{c.owner_id}_{c.post_vk_id}?reply={c.vk_id}",
                    matches=tuple((words.get(m.keyword_id, "?"), m.snippet) for m in self.store.matches.get(rid, [])))
        return found

    async def failing_channels(self, *, since: datetime) -> list[tuple[int, str]]:
        ids = {d["channel_id"] for d in self.store.alert_deliveries.values()
               if d["state"] == DeliveryState.PENDING.value and d["attempts"] > 0 and d["created_at"] < since}
        channels = {c.id: c.masked for r in self.store.alert_rules.values() for c in r.channels}
        return [(i, channels[i]) for i in sorted(ids) if i in channels]

    async def state_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in DeliveryState}
        for d in self.store.alert_deliveries.values():
            counts[d["state"]] += 1
        return counts


class FakeUnitOfWork:
    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.journal = _Journal()
        self.groups = FakeGroupRepository(store, self.journal)
        self.posts = FakePostRepository(store, self.journal)
        self.comments = FakeCommentRepository(store, self.journal)
        self.authors = FakeAuthorRepository(store, self.journal)
        self.keywords = FakeKeywordRepository(store, self.journal)
        self.matches = FakeMatchRepository(store, self.journal)
        self.tasks = FakeTaskRepository(store, self.journal)
        self.api_tokens = FakeApiTokenRepository(store, self.journal)
        self.alerts = FakeAlertRepository(store, self.journal)
        self.rule_matches = FakeRuleMatchRepository(store, self.journal)
        self.committed = False

    async def __aenter__(self) -> FakeUnitOfWork:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rollback()

    async def commit(self) -> None:
        self.journal.undo.clear()
        self.committed = True
        self.store.commits += 1

    async def rollback(self) -> None:
        self.journal.rollback()


class FakeClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime(2026, 10, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


class RecordingQueue:
    """A ``JobQueue`` that only records what it was asked: jobs enqueued (task id and its
    attempts then, with the monotonic time of each in ``enqueued_at``), deferred and aborted."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[int, int]] = []
        self.enqueued_at: list[float] = []
        self.deferred: list[tuple[int, datetime]] = []
        self.aborted: list[int] = []

    async def enqueue(self, task: Task, *, defer_until: datetime | None = None) -> None:
        if defer_until is not None:
            self.deferred.append((task.id, defer_until))
            return
        self.enqueued.append((task.id, task.attempts))
        self.enqueued_at.append(time.monotonic())

    async def abort(self, task: Task) -> None:
        self.aborted.append(task.id)


async def no_report(done: int, total: int | None, message: str) -> None:
    """A ``ProgressCallback`` that ignores progress."""
