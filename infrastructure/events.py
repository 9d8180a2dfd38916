"""Event bus adapters: in-memory for the embedded mode, Redis pub/sub across processes.

Both fan out to local subscriber queues, so a thousand WebSocket subscribers of one task cost
one Redis subscription, not a thousand connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)

SUBSCRIBER_BUFFER = 1000  # events a slow subscriber may fall behind before it is dropped


class _Fanout:
    """Local subscribers per channel."""

    def __init__(self) -> None:
        self.queues: dict[str, set[asyncio.Queue]] = defaultdict(set)

    def deliver(self, channel: str, event: dict[str, Any]) -> None:
        for queue in list(self.queues.get(channel, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A stuck consumer must not stall everyone else; it gets an end marker.
                log.warning("events.subscriber_dropped", channel=channel)
                self.queues[channel].discard(queue)
                queue.put_nowait(None) if not queue.full() else None

    async def listen(self, channel: str, on_first=None, on_last=None) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        first = not self.queues.get(channel)
        self.queues[channel].add(queue)
        try:
            if first and on_first is not None:
                await on_first(channel)
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield event
        finally:
            subscribers = self.queues.get(channel)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self.queues[channel]
                    if on_last is not None:
                        await on_last(channel)


class InMemoryEventBus:
    def __init__(self) -> None:
        self._fanout = _Fanout()

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        self._fanout.deliver(channel, event)

    def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        return self._fanout.listen(channel)

    async def aclose(self) -> None:
        pass


class RedisEventBus:
    """Publishes with PUBLISH; one shared SUBSCRIBE connection per process feeds the fanout."""

    def __init__(self, redis, prefix: str = "vkcp:") -> None:
        self._redis = redis
        self._prefix = prefix + "events:"
        self._fanout = _Fanout()
        self._pubsub = None
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        await self._redis.publish(self._prefix + channel, orjson.dumps(event))

    def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        return self._fanout.listen(channel, on_first=self._subscribe, on_last=self._unsubscribe)

    async def _subscribe(self, channel: str) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self._prefix + channel)
                self._reader = asyncio.create_task(self._read())
            else:
                await self._pubsub.subscribe(self._prefix + channel)

    async def _unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if self._pubsub is not None:
                await self._pubsub.unsubscribe(self._prefix + channel)

    async def _read(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (ConnectionError, OSError, RuntimeError) as e:
                log.warning("events.redis_read_failed", error=str(e))
                await asyncio.sleep(1)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            self._fanout.deliver(channel.removeprefix(self._prefix), orjson.loads(message["data"]))

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
