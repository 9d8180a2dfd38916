"""Each Redis adapter through a real outage: a private ``redis-server`` this test stops and
starts again (empty, as a restart without persistence leaves it), never the shared one."""

from __future__ import annotations

import asyncio
import time

import pytest

from domain.errors import Unavailable
from domain.models import Task, TaskKind
from domain.ports import EventsMissed
from infrastructure.cache import RedisCache
from infrastructure.events import RedisEventBus
from infrastructure.redis_client import connect
from infrastructure.vk.limiter import RedisRateLimiter
from tests.faults import private_redis  # noqa: F401  (fixture)


async def _next(subscription, timeout: float = 10):
    return await asyncio.wait_for(anext(subscription), timeout)


async def test_subscribers_hear_of_the_gap_after_a_restart_and_then_get_events_again(private_redis) -> None:
    publisher_client, listener_client = connect(private_redis.url()), connect(private_redis.url())
    publisher, listener = RedisEventBus(publisher_client, prefix="t:"), RedisEventBus(listener_client, prefix="t:")
    try:
        subscription = listener.subscribe("task:1")
        assert await asyncio.wait_for(subscription.ready(), 5) is True
        await publisher.publish("task:1", {"n": 1})
        assert await _next(subscription) == {"n": 1}

        await private_redis.stop()
        await publisher.publish("task:1", {"n": 2})  # dropped and logged, never raised
        assert publisher.dropped == 1
        assert await publisher.last("task:1") is None  # no snapshot to be had: None, not an error
        late = listener.subscribe("task:1")  # subscribing while Redis is down
        assert await asyncio.wait_for(late.ready(), 5) is False
        await asyncio.sleep(1.5)
        await private_redis.start()  # empty: a restart without persistence

        for sub in (subscription, late):
            with pytest.raises(EventsMissed):
                await _next(sub)
        await asyncio.sleep(1.1)  # past the publisher's pause after its failure
        await publisher.publish("task:1", {"n": 3})
        assert await _next(subscription) == {"n": 3}
        assert await _next(late) == {"n": 3}
    finally:
        await publisher.aclose()
        await listener.aclose()
        await publisher_client.aclose()
        await listener_client.aclose()


async def test_the_rate_limiter_waits_out_an_outage_and_grants_again(private_redis) -> None:
    client = connect(private_redis.url())
    limiter = RedisRateLimiter(client, 3, prefix="t:")
    try:
        await limiter.acquire("tok")
        await private_redis.stop()
        waiting = asyncio.create_task(limiter.acquire("tok"))
        await asyncio.sleep(2)
        assert not waiting.done()  # no slot without the shared clock: it waits, it does not fail
        restarted = time.monotonic()
        await private_redis.start()
        await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - restarted < 3 and limiter.outage_waits > 0
    finally:
        await client.aclose()


async def test_the_cache_is_bypassed_while_redis_is_down(private_redis) -> None:
    client = connect(private_redis.url())
    cache = RedisCache(client, prefix="t:")
    computed = []

    async def compute() -> bytes:
        computed.append(1)
        return b"value"

    try:
        assert await cache.get_or_compute("stats", "k", compute, ttl=60) == b"value"
        assert await cache.get_or_compute("stats", "k", compute, ttl=60) == b"value" and len(computed) == 1
        await private_redis.stop()
        assert await cache.get_or_compute("stats", "k", compute, ttl=60) == b"value" and len(computed) == 2
        await cache.invalidate("stats")  # logged, not raised
        await private_redis.start()
        assert await cache.get_or_compute("stats", "k", compute, ttl=60) == b"value" and len(computed) == 3
    finally:
        await client.aclose()


async def test_enqueue_says_unavailable_while_redis_is_down_and_works_after(private_redis) -> None:
    from arq import create_pool

    from infrastructure.queue import ArqJobQueue
    from infrastructure.redis_client import arq_settings

    pool = await create_pool(arq_settings(private_redis.url()), default_queue_name="t:queue")
    queue = ArqJobQueue(pool, queue_name="t:queue")
    task = Task(kind=TaskKind.ANALYZE, id=7)
    try:
        await private_redis.stop()
        with pytest.raises(Unavailable) as raised:
            await queue.enqueue(task)
        assert raised.value.dependency == "redis"
        await queue.abort(task)  # best effort: logged, not raised
        await private_redis.start()
        await queue.enqueue(task)
        assert await pool.zcard("t:queue") == 1
    finally:
        await pool.aclose()
