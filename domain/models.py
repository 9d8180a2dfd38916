"""Entities of the domain: plain data, no framework.

Identity rules worth knowing:
- a community is identified by its positive VK id; its wall's ``owner_id`` is the negative id;
- a post is (owner_id, post id) and a comment is (owner_id, comment id): VK numbers comments
  per wall, so two walls can both have a comment 7.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Unset:
    """The type of ``UNSET``: a field of a change set (``GroupChanges``, ``KeywordChanges``) that
    the caller did not mention, as opposed to None, which clears it."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


@dataclass
class ApiToken:
    """A stored API token (``domain.auth``): never the token itself, only its hash."""

    id: int
    name: str
    role: str  # a Role value; adapters may store it as plain text
    token_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class CommentStatus(enum.StrEnum):
    """Where a comment is in a team's review (``domain.review``); every comment starts NEW."""

    NEW = "NEW"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    IGNORED = "IGNORED"


@dataclass(frozen=True)
class CommentEvent:
    """One change of one review field of one comment: who (an API token's name), what (``field``:
    ``status``, ``assignee``, ``tags``, ``note``, ``viewed`` or ``archived``; the values as
    ``domain.review.event_value`` spells them, None for none), when. Append-only."""

    comment_id: int
    at: datetime
    actor: str
    field: str
    old_value: str | None
    new_value: str | None
    id: int = 0  # given by the store; orders events of the same instant


@dataclass(frozen=True)
class WorkflowState:
    """A comment's review state, as ``domain.review`` reads and changes it."""

    id: int
    viewed: bool
    archived: bool
    status: CommentStatus
    assignee: str | None
    tags: tuple[str, ...]  # sorted, each once
    note: str | None


class TaskKind(enum.StrEnum):
    PARSE = "PARSE"
    ANALYZE = "ANALYZE"
    EXPORT = "EXPORT"
    INDEX_RULES = "INDEX_RULES"


class TaskState(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


@dataclass
class Group:
    vk_id: int
    screen_name: str
    name: str
    is_closed: bool = False
    members_count: int | None = None
    photo_url: str | None = None
    description: str | None = None
    deactivated: str | None = None
    id: int | None = None
    active: bool = True
    # Collection settings: how far back a parse goes.
    max_posts: int | None = None
    since: datetime | None = None
    # Monitoring settings and state.
    monitor_enabled: bool = False
    monitor_interval_minutes: int = 60
    monitor_priority: int = 5
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def owner_id(self) -> int:
        """The wall owner id VK uses for a community: its id, negated."""
        return -self.vk_id


@dataclass
class Author:
    """A comment author: a user (positive id) or a community (negative id)."""

    vk_id: int
    name: str
    screen_name: str | None = None
    photo_url: str | None = None


@dataclass
class Post:
    owner_id: int
    vk_id: int
    from_id: int | None
    text: str
    published_at: datetime
    comments_count: int = 0
    likes: int = 0
    reposts: int = 0
    views: int = 0
    is_pinned: bool = False
    comments_closed: bool = False


@dataclass
class Comment:
    owner_id: int
    vk_id: int
    post_vk_id: int
    from_id: int
    text: str
    published_at: datetime
    likes: int = 0
    deleted: bool = False
    # The top-level comment a reply belongs to (None for a top-level comment) and the
    # comment it answers (the thread root, or another reply inside the thread).
    thread_vk_id: int | None = None
    parent_vk_id: int | None = None
    reply_to_user: int | None = None


@dataclass(frozen=True)
class Keyword:
    id: int
    word: str
    category: str | None = None
    active: bool = True
    case_sensitive: bool = False
    whole_word: bool = True
    morphology: bool = True
    # Bookkeeping, not identity: two reads of one keyword compare equal whatever it says.
    created_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Match:
    comment_id: int
    keyword_id: int
    matched_text: str
    start: int
    end: int
    snippet: str


@dataclass
class Progress:
    done: int = 0
    total: int | None = None
    message: str = ""


@dataclass
class Task:
    kind: TaskKind
    state: TaskState = TaskState.QUEUED
    priority: int = 5
    params: dict[str, Any] = field(default_factory=dict)
    group_id: int | None = None
    progress: Progress = field(default_factory=Progress)
    attempts: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_requested: bool = False
    id: int | None = None
    updated_at: datetime | None = None
    # The lease: which runner holds the task and when it last said it is alive.
    worker_id: str | None = None
    heartbeat_at: datetime | None = None
    # Stalls: when progress last moved, when the task was last found stuck, how often.
    progress_at: datetime | None = None
    stalled_at: datetime | None = None
    stalls: int = 0
    # Waiting for VK (every token rests): QUEUED until then, re-offered at that time; a wait
    # is not an attempt (``waits`` counts them, so each resumed run has its own job id).
    waiting_until: datetime | None = None
    waits: int = 0


class DeliveryState(enum.StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # a threshold rule's match whose window stayed below the threshold
