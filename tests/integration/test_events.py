"""The event bus: Redis pub/sub across bus instances (as across processes), snapshots for late
subscribers, and subscriptions registered the moment they are made."""

from __future__ import annotations

import asyncio

import pytest

from infrastructure.events import SUBSCRIBER_BUFFER, InMemoryEventBus, RedisEventBus


@pytest.fixture
async def redis_buses(redis_url, redis_prefix):
    from redis.asyncio import Redis

    clients = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    buses = [RedisEventBus(c, prefix=redis_prefix) for c in clients]
    yield buses
    for bus, client in zip(buses, clients):
        await bus.aclose()
        await client.aclose()


async def _take(subscription, n: int) -> list[dict]:
    return [await asyncio.wait_for(anext(subscription), 5) for _ in range(n)]


async def test_events_published_by_one_process_reach_every_subscriber_of_another(redis_buses) -> None:
    publisher, listener = redis_buses
    subscribers = [listener.subscribe("task:1") for _ in range(3)]
    other = listener.subscribe("task:2")
    for s in subscribers:
        await s.ready()
    await other.ready()
    for done in range(5):
        await publisher.publish("task:1", {"done": done})
    for s in subscribers:
        assert [e["done"] for e in await _take(s, 5)] == [0, 1, 2, 3, 4]
    assert other.queue.empty()
    for s in (*subscribers, other):
        await s.aclose()


async def test_a_late_subscriber_starts_from_the_snapshot(redis_buses) -> None:
    publisher, listener = redis_buses
    assert await listener.last("task:7") is None
    await publisher.publish("task:7", {"done": 1})
    await publisher.publish("task:7", {"done": 2})
    assert await listener.last("task:7") == {"done": 2}  # any process sees the last event


async def test_a_closed_channel_can_be_subscribed_again(redis_buses) -> None:
    publisher, listener = redis_buses
    first = listener.subscribe("task:3")
    await first.ready()
    await first.aclose()
    await asyncio.sleep(0.05)  # the UNSUBSCRIBE goes out
    second = listener.subscribe("task:3")
    await second.ready()
    await publisher.publish("task:3", {"done": 9})
    assert (await _take(second, 1)) == [{"done": 9}]
    await second.aclose()


async def test_in_memory_subscription_is_registered_when_made() -> None:
    bus = InMemoryEventBus()
    subscription = bus.subscribe("task:1")  # no await, no first step: already registered
    await bus.publish("task:1", {"done": 1})
    assert await bus.last("task:1") == {"done": 1}
    assert (await _take(subscription, 1)) == [{"done": 1}]
    await subscription.aclose()
    await bus.publish("task:1", {"done": 2})
    assert subscription.queue.empty()


async def test_a_subscriber_that_falls_far_behind_is_ended_not_everyone() -> None:
    bus = InMemoryEventBus()
    slow, fast = bus.subscribe("c"), bus.subscribe("c")
    for i in range(SUBSCRIBER_BUFFER + 5):
        await bus.publish("c", {"i": i})
        if i % 100 == 0:
            while not fast.queue.empty():
                await anext(fast)
    received = [e async for e in slow]  # ends after what it had buffered
    assert len(received) == SUBSCRIBER_BUFFER
    assert fast.queue.qsize() < SUBSCRIBER_BUFFER
    await fast.aclose()
