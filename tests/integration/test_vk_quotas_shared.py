"""VK's daily quotas against the real emulator over HTTP, with two gateways as two processes
hold them (a Redis connection each, one prefix): a token over its quota inside ``execute`` is
parked in both, every call is still answered by the other token, and both count every call of
both processes, per token and method, as VK counted them. A Redis outage loses no count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from domain.vk import TokenStatus
from infrastructure.redis_client import connect
from infrastructure.vk.call_counts import DailyCallCounts
from infrastructure.vk.gateway import HttpVkGateway, token_fingerprint
from infrastructure.vk.token_pool import RedisTokenStates
from infrastructure.vk.world import generated_world
from tests.faults import PrivateRedis, private_redis  # noqa: F401
from tests.processes import vk_emulator

TIRED, FRESH = "vk1.a.tired-token-value", "vk1.a.fresh-token-value"
SEED, POSTS = 9, 40
WORLD = generated_world(SEED, communities=1, posts_per_community=POSTS, comments_per_post=6,
                        closed_comment_posts=0, closed_communities=0)
OWNER = WORLD.open_owner_ids()[0]


@pytest.fixture
def vk_url(tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "emulator.log"
    args = ["--rps", "0", "--world", "generated",
            "--seed", str(SEED), "--communities", "1", "--posts", str(POSTS), "--comments", "6",
            "--closed-comment-posts", "0", "--closed-communities", "0",
            "--token", TIRED, "--token", FRESH, "--token-quota", f"{TIRED}:wall.getComments=3"]
    with vk_emulator(args, log) as url:
        yield url
    assert TIRED not in log.read_text(errors="replace")


def process_gateway(url: str, redis: Redis, prefix: str) -> HttpVkGateway:
    """A gateway as ``build_vk`` makes one in each process that has Redis."""
    return HttpVkGateway(
        url, [TIRED, FRESH], rps=1000, backoff_factor=0.001, sync_interval=0.1,
        shared_states=RedisTokenStates(redis, prefix=prefix), call_counts=DailyCallCounts(redis, prefix=prefix),
    )


async def emulated_counts(url: str) -> dict[str, dict[str, int]]:
    async with httpx.AsyncClient() as client:
        return (await client.get(url.replace("/method", "/_stats"))).json()["calls_today"]


async def read_every_post(vk: HttpVkGateway) -> None:
    posts = (await vk.wall_page(OWNER, 0)).posts
    pages = await asyncio.gather(*(vk.comments_page(OWNER, p.vk_id, 0) for p in posts))
    for post, page in zip(posts, pages, strict=True):
        assert page.level_count == len(WORLD.posts[(OWNER, post.vk_id)].comments)


async def counts_of(vk: HttpVkGateway) -> dict[str, dict[str, int]]:
    return {s.fingerprint: s.calls_today for s in await vk.token_states() if s.calls_today}


async def test_quota_parks_in_both_processes_and_both_count_every_call(vk_url, redis_url, redis_prefix):
    worker_redis, api_redis = Redis.from_url(redis_url), Redis.from_url(redis_url)
    worker = process_gateway(vk_url, worker_redis, redis_prefix)
    other = process_gateway(vk_url, api_redis, redis_prefix)
    tired = token_fingerprint(TIRED)
    try:
        for _ in range(10):  # until the tired token took a batch of comments (the dispatchers race)
            await asyncio.gather(read_every_post(worker), read_every_post(other))
            if (await worker.token_states())[0].status is TokenStatus.PARKED:
                break
        for vk in (worker, other):
            states = {s.fingerprint: s for s in await vk.token_states()}
            assert states[tired].status is TokenStatus.PARKED and "Rate limit reached" in states[tired].reason
            assert states[tired].until > datetime.now(UTC)
            assert states[token_fingerprint(FRESH)].status is TokenStatus.ACTIVE

        emulated = await emulated_counts(vk_url)
        assert emulated[tired]["wall.getComments"] == 3  # VK served it up to its quota, not beyond
        deadline = time.monotonic() + 5
        while (await counts_of(other)) != emulated or (await counts_of(worker)) != emulated:
            assert time.monotonic() < deadline, (await counts_of(other), emulated)
            await asyncio.sleep(0.1)

        day = datetime.now(UTC).strftime("%Y%m%d")
        key = f"{redis_prefix}vk-calls:{tired}:{day}"
        assert 0 < await api_redis.pttl(key) <= 2 * 86_400_000
        for name in [k.decode() async for k in api_redis.scan_iter(match=f"{redis_prefix}*")]:
            assert TIRED not in name and FRESH not in name
            if name.startswith(f"{redis_prefix}vk-calls:"):
                assert all(TIRED.encode() not in v for v in (await api_redis.hgetall(name)).values())
    finally:
        for vk in (worker, other):
            await vk.aclose()
        for r in (worker_redis, api_redis):
            await r.aclose()


@pytest.mark.redis
async def test_calls_made_while_redis_is_down_are_added_once_it_answers(
    vk_url, private_redis: PrivateRedis,
):
    worker_redis, api_redis = connect(private_redis.url()), connect(private_redis.url())
    worker = process_gateway(vk_url, worker_redis, "pool:")
    api = process_gateway(vk_url, api_redis, "pool:")
    try:
        await read_every_post(worker)
        await private_redis.stop()
        started = time.monotonic()
        await read_every_post(worker)  # collection goes on; its calls are counted here
        assert time.monotonic() - started < 20
        emulated = await emulated_counts(vk_url)
        assert await counts_of(worker) == emulated  # its own view, without an error

        await private_redis.start()  # empty: nothing survived the restart
        deadline = time.monotonic() + 15
        while await counts_of(api) != emulated:
            assert time.monotonic() < deadline, "the calls counted during the outage never reached Redis"
            await asyncio.sleep(0.2)
    finally:
        for vk in (worker, api):
            await vk.aclose()
        for r in (worker_redis, api_redis):
            await r.aclose()
