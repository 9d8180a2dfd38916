"""DataLoaders: every by-id lookup of one operation is batched into one ReadModel call.

A set of loaders lives for one GraphQL operation (see ``context.Context.loaders``), so a
long-lived WebSocket connection never serves one subscription's stale cache to another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from aiodataloader import DataLoader

from domain.models import Author, Group, Keyword, Match, Task
from domain.queries import CommentVersion, CommentView, PostView, ReadModel

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


class _Loader(DataLoader[K, V], Generic[K, V]):
    """A DataLoader over one ``ReadModel.*_by_ids`` method (results aligned with the keys).

    It also remembers what it has loaded, so a resolver can have a value *now* when the
    operation already fetched it (``now_or_later``): graphql-core then completes the field in
    place instead of scheduling an awaitable for it, which for a page of 100 comments with
    their relations was several hundred tasks.
    """

    def __init__(self, fetch: Callable[[Sequence[K]], Awaitable[list[V]]]) -> None:
        super().__init__()
        self._fetch = fetch
        self.loaded: dict[K, V] = {}

    async def batch_load_fn(self, keys: list[K]) -> list[V]:
        values = await self._fetch(keys)
        self.loaded.update(zip(keys, values))
        return values

    def clear(self, key: K) -> _Loader[K, V]:
        self.loaded.pop(key, None)
        super().clear(key)
        return self

    def clear_all(self) -> _Loader[K, V]:
        self.loaded.clear()
        super().clear_all()
        return self

    def now_or_later(self, key: K, convert: Callable[[V], R]) -> R | Awaitable[R]:
        """``convert(value)`` at once when ``key`` is loaded already, else an awaitable of it."""
        try:
            value = self.loaded[key]
        except KeyError:
            return self._load_then(key, convert)
        return convert(value)

    async def _load_then(self, key: K, convert: Callable[[V], R]) -> R:
        return convert(await self.load(key))


class Loaders:
    def __init__(self, read_model: ReadModel) -> None:
        self.group: _Loader[int, Group | None] = _Loader(read_model.groups_by_ids)
        self.post: _Loader[int, PostView | None] = _Loader(read_model.posts_by_ids)
        self.author: _Loader[int, Author | None] = _Loader(read_model.authors_by_ids)
        self.comment: _Loader[int, CommentView | None] = _Loader(read_model.comments_by_ids)
        self.comment_by_vk_id: _Loader[tuple[int, int], CommentView | None] = _Loader(read_model.comments_by_vk_ids)
        self.matches: _Loader[int, list[Match]] = _Loader(read_model.matches_by_comment_ids)
        self.versions: _Loader[int, list[CommentVersion]] = _Loader(read_model.versions_by_comment_ids)
        self.keyword: _Loader[int, Keyword | None] = _Loader(read_model.keywords_by_ids)
        self.keyword_matches_count: _Loader[int, int] = _Loader(read_model.keyword_matches_counts)
        self.task: _Loader[int, Task | None] = _Loader(read_model.tasks_by_ids)
