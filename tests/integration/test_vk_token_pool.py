"""The VK token pool's states, shared through a real Redis by gateways as separate processes
hold them (two ``HttpVkGateway`` instances, one Redis connection each), against the emulator
answering with real token errors."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from domain.errors import VkAuthFailed
from domain.vk import TokenStatus
from infrastructure.redis_client import connect
from infrastructure.vk.emulator import VkEmulator
from infrastructure.vk.gateway import HttpVkGateway, token_fingerprint
from infrastructure.vk.token_pool import RedisTokenStates
from infrastructure.vk.world import sandbox_world
from tests.faults import PrivateRedis, private_redis  # noqa: F401

WORLD = sandbox_world()


def process_gateway(app, tokens, redis: Redis, prefix: str) -> HttpVkGateway:
    """A gateway as `build_vk` makes one in each process that has Redis."""
    return HttpVkGateway(
        "http://vk/method", list(tokens), rps=1000, backoff_factor=0.001,
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        shared_states=RedisTokenStates(redis, prefix=prefix), sync_interval=0.1,
    )


async def states_of(vk: HttpVkGateway) -> dict[str, object]:
    return {s.fingerprint: s for s in await vk.token_states()}


async def work_until_retired(vk: HttpVkGateway, fingerprint: str) -> None:
    """Calls until the pool has sent one with that token (which token takes a batch is the
    dispatchers' race); every call must still be answered, by the other token."""
    for _ in range(10):
        answers = await asyncio.gather(*(vk.resolve_screen_name("koshki_spb") for _ in range(40)))
        assert set(answers) == {("page", 11001)}
        if (await states_of(vk))[fingerprint].status is not TokenStatus.ACTIVE:
            return
    raise AssertionError("the pool never used the token")


async def test_a_token_revoked_in_one_process_is_revoked_in_the_other(redis_url, redis_prefix):
    app = VkEmulator(WORLD, tokens=["good"])  # VK rejects "expired" with error 5
    worker_redis, api_redis = Redis.from_url(redis_url), Redis.from_url(redis_url)
    worker = process_gateway(app, ["expired"], worker_redis, redis_prefix)
    api = process_gateway(app, ["expired"], api_redis, redis_prefix)
    fingerprint = token_fingerprint("expired")
    try:
        assert (await states_of(api))[fingerprint].status is TokenStatus.ACTIVE
        with pytest.raises(VkAuthFailed):
            await worker.resolve_screen_name("koshki_spb")

        seen = (await states_of(api))[fingerprint]
        assert seen.status is TokenStatus.REVOKED and "authorization failed" in seen.reason
        assert seen.requests == 0  # the API never used it: it learned it from the worker
        # The API does not try the token itself: it fails at once, without a request.
        with pytest.raises(VkAuthFailed):
            await api.resolve_screen_name("koshki_spb")
        assert api.stats.requests == 0
        # Keyed by fingerprint; the token itself is nowhere in Redis.
        keys = [k.decode() for k in await api_redis.keys(f"{redis_prefix}*")]
        assert f"{redis_prefix}vk-token:{fingerprint}" in keys
        for key in keys:
            assert "expired" not in key and b"expired" not in (await api_redis.dump(key) or b"")
    finally:
        for vk in (worker, api):
            await vk.aclose()
        for r in (worker_redis, api_redis):
            await r.aclose()


async def test_a_token_parked_in_one_process_rests_in_the_other_until_it_expires(redis_url, redis_prefix):
    app = VkEmulator(WORLD, token_errors={"tired": 29})  # "tired" is over its daily quota
    worker_redis, api_redis = Redis.from_url(redis_url), Redis.from_url(redis_url)
    worker = process_gateway(app, ["tired", "fresh"], worker_redis, redis_prefix)
    worker.quota_park = timedelta(seconds=3)
    other = process_gateway(app, ["tired", "fresh"], api_redis, redis_prefix)
    tired = token_fingerprint("tired")
    try:
        await work_until_retired(worker, tired)
        parked = (await states_of(worker))[tired]
        assert parked.status is TokenStatus.PARKED

        seen = (await states_of(other))[tired]
        assert seen.status is TokenStatus.PARKED and "Rate limit" in seen.reason
        assert abs((seen.until - parked.until).total_seconds()) < 0.01
        # The other process sends nothing with the parked token while it rests.
        answers = await asyncio.gather(*(other.resolve_screen_name("koshki_spb") for _ in range(40)))
        assert set(answers) == {("page", 11001)}
        assert (await states_of(other))[tired].requests == 0
        ttl = await api_redis.pttl(f"{redis_prefix}vk-token:{tired}")
        assert 0 < ttl <= 3000

        await asyncio.sleep(max(0.0, (parked.until - datetime.now(UTC)).total_seconds()) + 0.1)
        assert (await states_of(other))[tired].status is TokenStatus.ACTIVE
        assert await api_redis.exists(f"{redis_prefix}vk-token:{tired}") == 0
    finally:
        for vk in (worker, other):
            await vk.aclose()
        for r in (worker_redis, api_redis):
            await r.aclose()


@pytest.mark.redis
async def test_while_redis_is_down_collection_goes_on_and_each_process_shows_its_own_view(
    private_redis: PrivateRedis,
):
    app = VkEmulator(WORLD, tokens=["good"])
    worker_redis, api_redis = connect(private_redis.url()), connect(private_redis.url())
    worker = process_gateway(app, ["expired", "good"], worker_redis, "pool:")
    api = process_gateway(app, ["expired", "good"], api_redis, "pool:")
    expired = token_fingerprint("expired")
    try:
        await private_redis.stop()
        started = time.monotonic()
        await work_until_retired(worker, expired)  # the other token carries on
        assert time.monotonic() - started < 20  # no waiting for Redis to come back
        # Each process reports what it knows itself, without an error.
        assert (await states_of(worker))[expired].status is TokenStatus.REVOKED
        assert (await states_of(api))[expired].status is TokenStatus.ACTIVE

        await private_redis.start()  # empty: nothing survived the restart
        deadline = time.monotonic() + 15
        while (await states_of(api))[expired].status is not TokenStatus.REVOKED:
            assert time.monotonic() < deadline, "the worker never told the API what it learned during the outage"
            await asyncio.sleep(0.2)
        assert (await states_of(api))[expired].reason.startswith("VK error 5")
    finally:
        for vk in (worker, api):
            await vk.aclose()
        for r in (worker_redis, api_redis):
            await r.aclose()
