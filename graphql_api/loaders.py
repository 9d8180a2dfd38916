"""DataLoaders: every by-id lookup of one operation is batched into one ReadModel call.

A set of loaders lives for one GraphQL operation (see ``context.Context.loaders``), so a
long-lived WebSocket connection never serves one subscription's stale cache to another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader

from domain.models import Group, Keyword, Task
from domain.queries import CommentView, PostView, ReadModel

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
    """One loader per ``ReadModel`` look-up: those the declared relations read by
    (``domain/declaration.py``: ``by(relation.load)``), and by-id look-ups of the root fields."""

    def __init__(self, read_model: ReadModel) -> None:
        self._read_model = read_model
        self._loaders: dict[str, _Loader[Any, Any]] = {}

    def clear_all(self) -> None:
        """Forget what every loader holds (a long-lived operation, before its next event)."""
        for loader in self._loaders.values():
            loader.clear_all()

    def by(self, load: str) -> _Loader[Any, Any]:
        """The loader over ``ReadModel.<load>`` (made when first asked)."""
        loader = self._loaders.get(load)
        if loader is None:
            loader = self._loaders[load] = _Loader(getattr(self._read_model, load))
        return loader

    @property
    def group(self) -> _Loader[int, Group | None]:
        return self.by("groups_by_ids")

    @property
    def post(self) -> _Loader[int, PostView | None]:
        return self.by("posts_by_ids")

    @property
    def comment(self) -> _Loader[int, CommentView | None]:
        return self.by("comments_by_ids")

    @property
    def keyword(self) -> _Loader[int, Keyword | None]:
        return self.by("keywords_by_ids")

    @property
    def task(self) -> _Loader[int, Task | None]:
        return self.by("tasks_by_ids")
