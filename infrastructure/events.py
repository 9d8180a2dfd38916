"""Event bus adapters: in-memory for the embedded mode, Redis pub/sub across processes.

Both fan out to local subscriber queues, so a thousand WebSocket subscribers of one task cost
one Redis subscription, not a thousand connections. A subscriber's queue is registered when
``subscribe()`` returns, so "subscribe, then read the current state" has no gap in-process;
across processes ``ready()`` waits until Redis has confirmed the subscription.

Every publish also keeps the channel's last event (``last()``): in Redis under a key with a
TTL, so a subscriber arriving late (in any process) starts from the current state.

Redis outages: events mirror stored state, so they are best effort. A publish that cannot
reach Redis is dropped and logged (and further publishes are skipped for a moment, so work
that publishes is not slowed by an outage). The SUBSCRIBE connection is watched by its reader,
which reconnects with backoff and subscribes again to every channel that has local
subscribers; once Redis confirms a channel again, its subscribers get ``EventsMissed`` and
re-read what they show. A channel heartbeat keeps the connection (and so the watch) up even
when nobody subscribes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

import orjson
import structlog
from redis.asyncio.client import PubSub

from domain.bounded import BoundedDict
from domain.ports import EventsMissed
from infrastructure.redis_client import REDIS_ERRORS

log = structlog.get_logger(__name__)

SUBSCRIBER_BUFFER = 1000  # events a slow subscriber may fall behind before it is dropped
SNAPSHOT_TTL = 24 * 3600  # seconds a channel's last event is kept in Redis
LOCAL_SNAPSHOTS = 10_000  # channels whose last event the in-memory bus keeps
PUBLISH_PAUSE = 1.0  # seconds publishes are skipped after one failed: an outage costs no waits
RECONNECT_FIRST, RECONNECT_MAX = 0.2, 2.0  # seconds between SUBSCRIBE reconnects (doubling)
HEARTBEAT_CHANNEL = "_bus"  # always subscribed: the connection is watched even with no subscribers
# What reading the SUBSCRIBE connection raises when it breaks.
_READ_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, RuntimeError)
_MISSED = object()  # queued to a subscriber when events may have been lost


class Subscription:
    """Events of one channel, as an async iterator; ends when closed or when the subscriber
    fell ``SUBSCRIBER_BUFFER`` events behind (a stuck consumer must not stall everyone).
    Raises ``EventsMissed`` once after the bus lost its broker connection and got it back."""

    def __init__(self, fanout: _Fanout, channel: str, ready: asyncio.Future | None = None) -> None:
        self.channel = channel
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER + 2)  # +2: markers
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
        if event is _MISSED:
            raise EventsMissed(self.channel)
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

    def missed(self, channel: str) -> None:
        """Tell the channel's subscribers that events may have been lost (once per outage)."""
        for queue in list(self.queues.get(channel, ())):
            if not queue.full():
                queue.put_nowait(_MISSED)


class InMemoryEventBus:
    def __init__(self) -> None:
        self._fanout = _Fanout()
        self._last: BoundedDict[str, dict[str, Any]] = BoundedDict(LOCAL_SNAPSHOTS)  # the newest published kept

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        self._last[channel] = event
        self._fanout.deliver(channel, event)

    def subscribe(self, channel: str) -> Subscription:
        return Subscription(self._fanout, channel)

    async def last(self, channel: str) -> dict[str, Any] | None:
        return self._last.get(channel)

    async def aclose(self) -> None:
        pass


class RedisEventBus:
    """Publishes with PUBLISH (and SET of the snapshot); one shared SUBSCRIBE connection per
    process, owned by its reader task, feeds the local fanout."""

    def __init__(self, redis, prefix: str = "vkcp:") -> None:
        self._redis = redis
        self._prefix = prefix + "events:"
        self._snapshot_prefix = prefix + "events-last:"
        self._fanout = _Fanout(on_empty=self._schedule_sync)
        self._pubsub: PubSub | None = None  # the SUBSCRIBE connection; None while (re)connecting
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._requested: set[str] = set()  # channels SUBSCRIBEd on the current connection
        self._live: set[str] = set()  # ... and confirmed by Redis
        self._interrupted: set[str] = set()  # channels whose subscribers may have missed events
        self._confirmations: dict[str, asyncio.Future] = {}
        self._syncs: set[asyncio.Task] = set()
        self._down = False  # the last connect failed or the connection was lost
        self._publish_paused_until = 0.0
        self.dropped = 0  # events that could not be published (Redis down)
        self._closed = False

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        if time.monotonic() < self._publish_paused_until:
            self.dropped += 1
            return
        data = orjson.dumps(event)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._snapshot_prefix + channel, data, ex=SNAPSHOT_TTL)
                pipe.publish(self._prefix + channel, data)
                await pipe.execute()
        except REDIS_ERRORS as e:
            self.dropped += 1
            self._publish_paused_until = time.monotonic() + PUBLISH_PAUSE
            log.warning("events.publish_failed", channel=channel, error=type(e).__name__, dropped=self.dropped)

    async def last(self, channel: str) -> dict[str, Any] | None:
        try:
            data = await self._redis.get(self._snapshot_prefix + channel)
        except REDIS_ERRORS as e:
            log.warning("events.snapshot_unavailable", channel=channel, error=type(e).__name__)
            return None
        return orjson.loads(data) if data else None

    def subscribe(self, channel: str) -> Subscription:
        confirmed = self._confirmations.get(channel)
        if confirmed is None or (confirmed.done() and channel not in self._live):
            confirmed = self._confirmations[channel] = asyncio.get_running_loop().create_future()
        subscription = Subscription(self._fanout, channel, ready=confirmed)
        self._schedule_sync(channel)
        return subscription

    def _schedule_sync(self, channel: str) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._sync(channel))
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    def _not_live(self, channel: str) -> None:
        """Its subscribers wait without Redis for now: ``ready()`` says so, and they hear of it
        (``EventsMissed``) once the channel is live again."""
        self._interrupted.add(channel)
        future = self._confirmations.get(channel)
        if future is not None and not future.done():
            future.set_result(False)

    async def _sync(self, channel: str) -> None:
        """Make Redis's subscription match whether this process has local subscribers."""
        async with self._lock:
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="events-reader")
            wanted = channel in self._fanout.queues
            if self._pubsub is None:  # the reader subscribes every wanted channel on connecting
                if wanted and self._down:
                    self._not_live(channel)
                return
            try:
                if wanted and channel not in self._requested:
                    self._requested.add(channel)
                    await self._pubsub.subscribe(self._prefix + channel)
                elif not wanted and channel in self._requested:
                    self._requested.discard(channel)
                    self._live.discard(channel)
                    self._confirmations.pop(channel, None)
                    await self._pubsub.unsubscribe(self._prefix + channel)
            except REDIS_ERRORS as e:
                # The connection is broken: the reader notices, reconnects and subscribes again.
                log.warning("events.redis_subscribe_failed", channel=channel, error=type(e).__name__)
                if wanted:
                    self._not_live(channel)

    async def _read(self) -> None:
        attempt = 0
        while not self._closed:
            if self._pubsub is None:
                try:
                    await self._connect()
                except REDIS_ERRORS as e:
                    attempt += 1
                    self._down = True
                    for channel in list(self._fanout.queues):
                        self._not_live(channel)
                    if attempt == 1:
                        log.warning("events.redis_unavailable", error=type(e).__name__)
                    await asyncio.sleep(min(RECONNECT_MAX, RECONNECT_FIRST * 2 ** (attempt - 1)))
                    continue
                if attempt:
                    log.info("events.redis_reconnected", after_attempts=attempt)
                attempt, self._down = 0, False
            pubsub = self._pubsub
            if pubsub is None:  # disconnected meanwhile: connect again
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
            except _READ_ERRORS as e:
                log.warning("events.redis_connection_lost", error=type(e).__name__)
                await self._disconnect()
                continue
            if message is not None:
                self._handle(message)

    async def _connect(self) -> None:
        async with self._lock:
            pubsub = self._redis.pubsub()
            channels = [HEARTBEAT_CHANNEL, *self._fanout.queues]
            try:
                await pubsub.subscribe(*(self._prefix + c for c in channels))
            except BaseException:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
                raise
            self._pubsub, self._requested = pubsub, set(channels)

    async def _disconnect(self) -> None:
        async with self._lock:
            pubsub, self._pubsub, self._down = self._pubsub, None, True
            for channel in self._requested:
                if channel in self._fanout.queues:
                    self._not_live(channel)
            self._requested, self._live = set(), set()
        if pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS, RuntimeError):
                await pubsub.aclose()

    def _handle(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        channel = channel.removeprefix(self._prefix)
        if message["type"] == "subscribe":
            # A confirmation of a channel already live means redis-py reconnected underneath
            # (and subscribed again by itself): events of the gap are lost all the same.
            again = channel in self._live
            self._live.add(channel)
            future = self._confirmations.get(channel)
            if future is not None and not future.done():
                future.set_result(True)
            if again or channel in self._interrupted:
                self._interrupted.discard(channel)
                self._fanout.missed(channel)
        elif message["type"] == "message":
            self._fanout.deliver(channel, orjson.loads(message["data"]))

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._syncs):
            task.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS, RuntimeError):
                await self._pubsub.aclose()
