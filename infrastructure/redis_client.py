"""Redis connections that ride out restarts: the one place their timeouts and retries are set.

Every Redis user (the rate limiter, the job queue, the event bus, the cache) goes through
these clients. A command that meets a dead connection (Redis restarted, a failover) reconnects
and is retried a few times with a short backoff; past that it fails fast with a
``RedisError``, which each adapter turns into its own fallback (wait, skip, ``Unavailable``).
Nothing hangs: connects and commands time out.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import Unavailable

CONNECT_TIMEOUT = 2.0  # seconds to open a connection
COMMAND_TIMEOUT = 5.0  # seconds for one command's answer
HEALTH_CHECK_INTERVAL = 10  # seconds idle before a pooled connection is pinged before use
RETRIES = 3  # reconnect-and-retry attempts per command: rides out a restart's first seconds
RETRY_CAP, RETRY_BASE = 0.5, 0.05  # seconds: exponential backoff between those attempts

# What a Redis outage raises through redis-py: its own ConnectionError/TimeoutError are not
# the built-in ones, so catching OSError alone misses them.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=RETRY_CAP, base=RETRY_BASE), RETRIES)


_RETRY_ON = [RedisConnectionError, RedisTimeoutError, ConnectionError, OSError]


def connect(url: str) -> aioredis.Redis:
    return aioredis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=_retry(),
        retry_on_error=_RETRY_ON,
    )


def arq_settings(url: str, **overrides: Any) -> RedisSettings:
    """ARQ's connection settings with the same timeouts and retries."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = int(CONNECT_TIMEOUT)
    settings.retry = _retry()
    settings.retry_on_error = _RETRY_ON
    for name, value in overrides.items():
        setattr(settings, name, value)
    return settings


def unavailable(error: BaseException, what: str) -> Unavailable:
    return Unavailable(f"Redis is unavailable ({what}: {type(error).__name__}); try again", dependency="redis")
