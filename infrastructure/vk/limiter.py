"""Requests-per-second limits per VK token, in one process or shared by many through Redis.

Both limiters space requests evenly (GCRA with no burst): a token allowed ``rps`` requests per
second gets one slot every ``window / rps`` seconds after the previous one was taken. Even
spacing keeps any 1-second window at or under ``rps`` however the slots line up, and it suits
the batching gateway: between two slots the calls that arrived meanwhile fill the next
``execute``.

The window is 1.05 s rather than 1 s because VK's clock and ours differ, and a request
that leaves a little late must not land in the same VK second as the one ``rps`` slots later.

Keys are token fingerprints, never tokens: keys show up in Redis and in logs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aioredis
import structlog

from infrastructure.redis_client import REDIS_ERRORS

log = structlog.get_logger(__name__)

WINDOW = 1.05  # seconds treated as VK's one second


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> float:
        """Wait for this key's next slot; returns the seconds waited."""


def slot_interval(rps: float, window: float = WINDOW) -> float:
    """Seconds between two slots. A fractional rps above 1 rounds down (2.5 → 2 per window),
    because ``floor(window / interval) + 1`` slots may share one window."""
    if rps <= 0:
        raise ValueError("rps must be positive")
    allowed = math.floor(rps) if rps >= 1 else rps
    return window / allowed


class InProcessRateLimiter:
    """One process's limiter: each key remembers when its next slot is free."""

    def __init__(
        self,
        rps: float,
        *,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = slot_interval(rps, window)
        self.clock = clock
        self.sleep = sleep
        self._next: dict[str, float] = {}

    async def acquire(self, key: str) -> float:
        # A slot is granted at the moment it is taken, never reserved ahead: a caller that
        # wakes up late (a busy event loop) pushes the next slot back instead of crowding it.
        start = now = self.clock()
        while (free := self._next.get(key, now)) > now:
            await self.sleep(free - now)
            now = self.clock()
        self._next[key] = now + self.interval
        return now - start


# The same rule, atomic in Redis and on Redis's clock, so every process agrees on it.
# KEYS[1]: the key; ARGV[1]: the interval in microseconds.
# Returns 0 when the slot is granted, else the microseconds until the next free slot.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
if free > now then
    return free - now
end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', now + interval), 'PX', math.ceil(interval / 1000) + 1000)
return 0
"""


class RedisRateLimiter:
    """Shared by every process using the same Redis and prefix: the limit is the token's.

    While Redis is unreachable no slot is granted: each process on its own could not keep the
    token's limit, and a few seconds of waiting cost less than a token VK blocks. ``acquire``
    keeps asking, backing off up to ``OUTAGE_RETRY_MAX``, and returns once Redis answers again
    (a restarted Redis has forgotten the last slot, which only makes the next one free at once).
    """

    OUTAGE_RETRY_FIRST, OUTAGE_RETRY_MAX = 0.1, 2.0  # seconds between asks while Redis is down

    def __init__(self, redis: aioredis.Redis, rps: float, *, prefix: str = "vkcp:", window: float = WINDOW) -> None:
        self.redis = redis
        self.interval_us = int(slot_interval(rps, window) * 1_000_000)
        self.prefix = prefix
        self._take = redis.register_script(_TAKE)
        self.outage_waits = 0  # asks that failed because Redis was unreachable

    async def acquire(self, key: str) -> float:
        start = time.monotonic()
        name = f"{self.prefix}ratelimit:{key}"
        failures = 0
        while True:
            try:
                wait_us = int(await self._take(keys=[name], args=[self.interval_us]))
            except REDIS_ERRORS as e:
                failures += 1
                self.outage_waits += 1
                if failures == 1:
                    log.warning("vk.limiter_unavailable", key=key, error=type(e).__name__)
                await asyncio.sleep(min(self.OUTAGE_RETRY_MAX, self.OUTAGE_RETRY_FIRST * 2 ** (failures - 1)))
                continue
            if not wait_us:
                if failures:
                    log.info("vk.limiter_available", key=key, waited=round(time.monotonic() - start, 2))
                return time.monotonic() - start
            await asyncio.sleep(wait_us / 1_000_000)
