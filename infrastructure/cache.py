"""The cache port (``domain.ports.Cache``): Redis for every process of an installation, or a
dictionary in the embedded mode (one process, nothing to share).

Invalidation bumps a namespace's version instead of deleting keys: entries are stored under
``<namespace>:<version>:<key>``, so one INCR makes all of a namespace stale at once (no SCAN),
and old entries simply expire. The version is read *before* computing a missing value, so a
value computed while a job invalidated the namespace is stored under the old version, where
nobody reads it: a finished job is never followed by a stale answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.exceptions import RedisError

from domain.bounded import BoundedDict

log = structlog.get_logger(__name__)

MAX_MEMORY_ENTRIES = 1024

Compute = Callable[[], Awaitable[bytes]]


class InMemoryCache:
    def __init__(self, *, max_entries: int = MAX_MEMORY_ENTRIES) -> None:
        self._entries: BoundedDict[tuple[str, int, str], tuple[float, bytes]] = BoundedDict(max_entries)
        self._versions: dict[str, int] = {}

    async def get_or_compute(self, namespace: str, key: str, compute: Compute, *, ttl: float) -> bytes:
        entry_key = (namespace, self._versions.get(namespace, 0), key)
        entry = self._entries.get(entry_key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        value = await compute()
        if entry_key[1] == self._versions.get(namespace, 0):
            if len(self._entries) >= self._entries.size:
                self._drop_expired()  # before the oldest entry, which storing drops when still full
            self._entries[entry_key] = (time.monotonic() + ttl, value)
        return value

    async def invalidate(self, namespace: str) -> None:
        self._versions[namespace] = self._versions.get(namespace, 0) + 1
        for entry_key in [k for k in self._entries if k[0] == namespace]:
            del self._entries[entry_key]

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for entry_key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[entry_key]


class RedisCache:
    """Shared by the API processes and the workers (which invalidate after their jobs).

    A cache is never a reason to fail a request: Redis errors read as a miss and are logged.
    An invalidation that fails is logged too; the entries' TTL bounds how stale they get.
    """

    def __init__(self, redis: Any, *, prefix: str = "vkcp:") -> None:
        self._redis = redis
        self._prefix = f"{prefix}cache:"

    def _version_key(self, namespace: str) -> str:
        return f"{self._prefix}{namespace}:version"

    async def get_or_compute(self, namespace: str, key: str, compute: Compute, *, ttl: float) -> bytes:
        try:
            version = int(await self._redis.get(self._version_key(namespace)) or 0)
            entry_key = f"{self._prefix}{namespace}:{version}:{key}"
            found = await self._redis.get(entry_key)
        except (RedisError, OSError) as e:
            log.warning("cache.unavailable", operation="get", error=type(e).__name__)
            return await compute()
        if found is not None:
            return found
        value = await compute()
        try:
            await self._redis.set(entry_key, value, px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as e:
            log.warning("cache.unavailable", operation="set", error=type(e).__name__)
        return value

    async def invalidate(self, namespace: str) -> None:
        try:
            await self._redis.incr(self._version_key(namespace))
        except (RedisError, OSError) as e:
            log.warning("cache.unavailable", operation="invalidate", error=type(e).__name__)
