"""The cache port's two adapters behave alike: the Redis cache passes the in-memory cache's
tests (TTL, invalidation, no stale value after a job), and Redis trouble reads as a miss."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from infrastructure.cache import RedisCache
from tests.unit.test_cache import (  # noqa: F401  collected here, with this module's ``cache``
    Counter,
    test_a_value_computed_during_an_invalidation_is_not_kept,
    test_a_value_is_computed_once_until_it_expires,
    test_invalidate_makes_a_whole_namespace_stale,
)


@pytest.fixture
async def cache(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisCache]:
    client = Redis.from_url(redis_url)
    try:
        yield RedisCache(client, prefix=redis_prefix)
    finally:
        await client.aclose()


async def test_redis_trouble_reads_as_a_miss() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        cache = RedisCache(client, prefix="vkcp-test-down:")
        compute = Counter()
        assert await cache.get_or_compute("stats", "k", compute, ttl=60) == b"value 1"
        await cache.invalidate("stats")  # logged, not raised
    finally:
        await client.aclose()
