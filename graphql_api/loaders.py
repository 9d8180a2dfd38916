"""DataLoaders: every by-id lookup of one operation is batched into one ReadModel call.

A set of loaders lives for one GraphQL operation (see ``context.Context.loaders``), so a
long-lived WebSocket connection never serves one subscription's stale cache to another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from aiodataloader import DataLoader

from domain.models import Author, Group, Keyword, Match, Task
from domain.queries import CommentView, PostView, ReadModel

K = TypeVar("K")
V = TypeVar("V")


class _Loader(DataLoader[K, V], Generic[K, V]):
    """A DataLoader over one ``ReadModel.*_by_ids`` method (results aligned with the keys)."""

    def __init__(self, fetch: Callable[[Sequence[K]], Awaitable[list[V]]]) -> None:
        super().__init__()
        self._fetch = fetch

    async def batch_load_fn(self, keys: list[K]) -> list[V]:  # type: ignore[override]
        return await self._fetch(keys)


class Loaders:
    def __init__(self, read_model: ReadModel) -> None:
        self.group: DataLoader[int, Group | None] = _Loader(read_model.groups_by_ids)
        self.post: DataLoader[int, PostView | None] = _Loader(read_model.posts_by_ids)
        self.author: DataLoader[int, Author | None] = _Loader(read_model.authors_by_ids)
        self.comment: DataLoader[int, CommentView | None] = _Loader(read_model.comments_by_ids)
        self.matches: DataLoader[int, list[Match]] = _Loader(read_model.matches_by_comment_ids)
        self.keyword: DataLoader[int, Keyword | None] = _Loader(read_model.keywords_by_ids)
        self.keyword_matches_count: DataLoader[int, int] = _Loader(read_model.keyword_matches_counts)
        self.task: DataLoader[int, Task | None] = _Loader(read_model.tasks_by_ids)
