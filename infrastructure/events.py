"""Event bus adapters: in-memory for the embedded mode, Redis pub/sub across processes.

Both fan out to local subscriber queues, so a thousand WebSocket subscribers of one task cost
one Redis subscription, not a thousand connections. A subscriber's queue is registered when
``subscribe()`` returns, so "subscribe, then read the current state" has no gap in-process;
across processes ``ready()`` waits until Redis has confirmed the subscription.

Every publish also keeps the channel's last event (``last()``): in Redis under a key with a
TTL, so a subscriber arriving late (in any process) starts from the current state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, defaultdict
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)

SUBSCRIBER_BUFFER = 1000  # events a slow subscriber may fall behind before it is dropped
SNAPSHOT_TTL = 24 * 3600  # seconds a channel's last event is kept in Redis
LOCAL_SNAPSHOTS = 10_000  # channels whose last event the in-memory bus keeps


class Subscription:
    """Events of one channel, as an async iterator; ends when closed or when the subscriber
    fell ``SUBSCRIBER_BUFFER`` events behind (a stuck consumer must not stall everyone)."""

    def __init__(self, fanout: _Fanout, channel: str, ready: asyncio.Future | None = None) -> None:
        self.channel = channel
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER + 1)  # +1: the end marker
        self._fanout = fanout
        self._ready = ready
        self._closed = False
        fanout.add(channel, self.queue)

    async def ready(self) -> bool:
        return True if self._ready is None else await asyncio.shield(self._ready)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._closed:
            raise StopAsyncIteration
        event = await self.queue.get()
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._fanout.remove(self.channel, self.queue)


class _Fanout:
    """Local subscriber queues per channel."""

    def __init__(self, on_empty=None) -> None:
        self.queues: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._on_empty = on_empty

    def add(self, channel: str, queue: asyncio.Queue) -> None:
        self.queues[channel].add(queue)

    def remove(self, channel: str, queue: asyncio.Queue) -> None:
        subscribers = self.queues.get(channel)
        if subscribers is None:
            return
        subscribers.discard(queue)
        if not subscribers:
            del self.queues[channel]
            if self._on_empty is not None:
                self._on_empty(channel)

    def deliver(self, channel: str, event: dict[str, Any]) -> None:
        for queue in list(self.queues.get(channel, ())):
            if queue.qsize() >= SUBSCRIBER_BUFFER:
                log.warning("events.subscriber_dropped", channel=channel)
                self.queues[channel].discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)


class InMemoryEventBus:
    def __init__(self) -> None:
        self._fanout = _Fanout()
        self._last: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        self._last[channel] = event
        self._last.move_to_end(channel)
        while len(self._last) > LOCAL_SNAPSHOTS:
            self._last.popitem(last=False)
        self._fanout.deliver(channel, event)

    def subscribe(self, channel: str) -> Subscription:
        return Subscription(self._fanout, channel)

    async def last(self, channel: str) -> dict[str, Any] | None:
        return self._last.get(channel)

    async def aclose(self) -> None:
        pass


class RedisEventBus:
    """Publishes with PUBLISH (and SET of the snapshot); one shared SUBSCRIBE connection per
    process feeds the local fanout."""

    def __init__(self, redis, prefix: str = "vkcp:") -> None:
        self._redis = redis
        self._prefix = prefix + "events:"
        self._snapshot_prefix = prefix + "events-last:"
        self._fanout = _Fanout(on_empty=self._schedule_sync)
        self._pubsub = None
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._subscribed: set[str] = set()  # channels Redis has confirmed
        self._confirmations: dict[str, asyncio.Future] = {}
        self._syncs: set[asyncio.Task] = set()

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        data = orjson.dumps(event)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._snapshot_prefix + channel, data, ex=SNAPSHOT_TTL)
            pipe.publish(self._prefix + channel, data)
            await pipe.execute()

    async def last(self, channel: str) -> dict[str, Any] | None:
        data = await self._redis.get(self._snapshot_prefix + channel)
        return orjson.loads(data) if data else None

    def subscribe(self, channel: str) -> Subscription:
        confirmed = self._confirmations.get(channel)
        if confirmed is None or (confirmed.done() and channel not in self._subscribed):
            confirmed = self._confirmations[channel] = asyncio.get_running_loop().create_future()
        subscription = Subscription(self._fanout, channel, ready=confirmed)
        self._schedule_sync(channel)
        return subscription

    def _schedule_sync(self, channel: str) -> None:
        task = asyncio.get_running_loop().create_task(self._sync(channel))
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    async def _sync(self, channel: str) -> None:
        """Make Redis's subscription match whether this process has local subscribers."""
        async with self._lock:
            wanted = channel in self._fanout.queues
            try:
                if wanted and channel not in self._subscribed:
                    if self._pubsub is None:
                        self._pubsub = self._redis.pubsub()
                    await self._pubsub.subscribe(self._prefix + channel)
                    self._subscribed.add(channel)
                    if self._reader is None:
                        self._reader = asyncio.create_task(self._read())
                elif not wanted and channel in self._subscribed:
                    self._subscribed.discard(channel)
                    self._confirmations.pop(channel, None)
                    assert self._pubsub is not None
                    await self._pubsub.unsubscribe(self._prefix + channel)
            except (ConnectionError, OSError) as e:
                log.warning("events.redis_subscribe_failed", channel=channel, error=str(e))
                future = self._confirmations.get(channel)
                if future is not None and not future.done():
                    future.set_result(False)  # subscribers fall back to snapshots and re-reads

    async def _read(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (ConnectionError, OSError, RuntimeError) as e:
                log.warning("events.redis_read_failed", error=str(e))
                await asyncio.sleep(1)
                continue
            if message is None:
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            channel = channel.removeprefix(self._prefix)
            if message["type"] == "subscribe":
                future = self._confirmations.get(channel)
                if future is not None and not future.done():
                    future.set_result(True)
            elif message["type"] == "message":
                self._fanout.deliver(channel, orjson.loads(message["data"]))

    async def aclose(self) -> None:
        for task in list(self._syncs):
            task.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
