"""Alert channels' send budgets shared through Redis (``domain.ports.SendBudget``).

Telegram allows a bot about 30 messages a second and a group chat 20 a minute, whichever
worker sends them: with several workers, a budget kept in each process would let each spend
the chat's 20. Here every bucket is a sorted set of the messages it took (scored by their
time), trimmed, counted and added to in one Lua script, so two deliverers reserving at once
get the allowance between them, never twice.

Bucket names are hashes of the bucket keys (which hold bot tokens and chat ids), so no
credential is written to Redis. While Redis is unreachable each process falls back to its own
budget (``LocalSendBudget``): alerts keep going out at the per-process limit, and a channel
that answers 429 is retried as any failure is.
"""

from __future__ import annotations

import hashlib
import uuid

import redis.asyncio as aioredis
import structlog

from domain.alert_model import LocalSendBudget, Reservation, rate_limits_for
from infrastructure.redis_client import REDIS_ERRORS

log = structlog.get_logger(__name__)

# KEYS: the buckets. ARGV: now (ms), wanted, the reservation's member prefix, then per bucket
# its limit and window (ms). Trims each bucket to its window, grants what every bucket allows
# (at most wanted), adds that many members to each. Returns the grant.
_RESERVE = """
local now, wanted, mark = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local granted = wanted
for i, key in ipairs(KEYS) do
    local limit, window = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local free = limit - redis.call('ZCARD', key)
    if free < granted then granted = free end
end
if granted < 0 then granted = 0 end
for i, key in ipairs(KEYS) do
    local window = tonumber(ARGV[3 + 2 * i])
    for n = 1, granted do
        redis.call('ZADD', key, now, mark .. ':' .. n)
    end
    redis.call('PEXPIRE', key, window + 1000)
end
return granted
"""

# KEYS: the buckets. ARGV: now (ms), then per bucket its limit and window (ms). Returns the
# milliseconds until every bucket has room for one more message.
_RETRY_IN = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
    local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[1 + 2 * i])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    if count >= limit then
        local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
        local w = tonumber(oldest[2]) + window - now
        if w > wait then wait = w end
    end
end
return wait
"""


class RedisSendBudget:
    def __init__(self, redis: aioredis.Redis, *, prefix: str = "vkcp:") -> None:
        self.redis = redis
        self.prefix = f"{prefix}alert-budget:"
        self._reserve = redis.register_script(_RESERVE)
        self._retry_in = redis.register_script(_RETRY_IN)
        self._local = LocalSendBudget()
        self._reachable = True

    def _buckets(self, url: str) -> tuple[list[str], list[int]]:
        keys: list[str] = []
        args: list[int] = []
        for key, limit in rate_limits_for(url):
            keys.append(self.prefix + hashlib.sha256(key.encode()).hexdigest()[:32])
            args += [limit.messages, int(limit.per_seconds * 1000)]
        return keys, args

    def _down(self, error: BaseException) -> None:
        if self._reachable:
            log.warning("alerts.budget_unavailable", error=type(error).__name__)
        self._reachable = False

    def _up(self) -> None:
        if not self._reachable:
            log.info("alerts.budget_available")
        self._reachable = True

    async def reserve(self, url: str, wanted: int, now: float) -> Reservation:
        keys, args = self._buckets(url)
        if not keys:
            return Reservation(url, None, now)
        mark = uuid.uuid4().hex
        try:
            granted = int(await self._reserve(keys=keys, args=[int(now * 1000), wanted, mark, *args]))
        except REDIS_ERRORS as e:
            self._down(e)
            return await self._local.reserve(url, wanted, now)
        self._up()
        return Reservation(url, granted, now, handle=mark)

    async def give_back(self, reservation: Reservation, unused: int) -> None:
        if not reservation.handle:  # taken from the local budget while Redis was down
            await self._local.give_back(reservation, unused)
            return
        if not unused or not reservation.granted:
            return
        keys, _ = self._buckets(reservation.url)
        first = reservation.granted - unused + 1
        members = [f"{reservation.handle}:{n}" for n in range(first, reservation.granted + 1)]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, *members)
                await pipe.execute()
        except REDIS_ERRORS as e:  # they expire with their window
            self._down(e)

    async def retry_in(self, url: str, now: float) -> float:
        keys, args = self._buckets(url)
        if not keys:
            return 0.0
        try:
            wait_ms = int(await self._retry_in(keys=keys, args=[int(now * 1000), *args]))
        except REDIS_ERRORS as e:
            self._down(e)
            return await self._local.retry_in(url, now)
        return wait_ms / 1000
