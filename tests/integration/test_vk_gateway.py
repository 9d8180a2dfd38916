"""The VK adapter against the emulator served over real HTTP (uvicorn on 127.0.0.1).

VK's per-token limit is enforced by the emulator (3 requests/s unless said otherwise), so these
tests also show the limiter keeps the gateway under it: error 6 must never be answered.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from domain.collect import CollectOptions, collect_group
from domain.errors import VkAccessDenied, VkAuthFailed, VkError, VkUnavailable
from domain.models import Group
from domain.vk import TokenStatus
from infrastructure.vk.emulator import VkEmulator
from infrastructure.vk.gateway import HttpVkGateway, token_fingerprint
from infrastructure.vk.limiter import RedisRateLimiter
from infrastructure.vk.world import VkWorld, generated_world
from tests.fakes import InMemoryStore, no_report

SECRET = "vk1.a.integration-secret-token"


@dataclass
class Emulator:
    """An emulator serving in its own process; ``stats`` is read from it as it stops."""

    url: str
    stats: dict[str, Any] = field(default_factory=dict)


def _serve_emulator(sock: socket.socket, world: VkWorld, options: dict[str, Any]) -> None:
    server = uvicorn.Server(uvicorn.Config(VkEmulator(world, **options), log_level="critical", access_log=False,
                                           lifespan="off"))
    server.run(sockets=[sock])


@contextmanager
def serve(world: VkWorld, **options: Any) -> Iterator[Emulator]:
    """Serve ``VkEmulator(world, **options)`` over HTTP from a child process.

    VK is another machine: in a thread of the test process, the emulator would share the GIL and
    the garbage collector's pauses with the gateway, stamp some arrivals late, and count error 6
    for requests the gateway spaced correctly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    child = multiprocessing.get_context("spawn").Process(target=_serve_emulator, args=(sock, world, options),
                                                         daemon=True)
    child.start()
    base = f"http://127.0.0.1:{port}"
    emulator = Emulator(f"{base}/method")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/_stats", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert child.is_alive() and time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.05)
        yield emulator
        emulator.stats = httpx.get(f"{base}/_stats", timeout=10).json()
    finally:
        child.terminate()
        child.join(10)
        sock.close()


def small_world(seed: int = 21, **options) -> VkWorld:
    options = {"communities": 2, "posts_per_community": 30, "comments_per_post": 8, "closed_comment_posts": 0,
               **options}
    return generated_world(seed, **options)


async def collect(vk, world: VkWorld, owner_id: int, store: InMemoryStore | None = None):
    store = store or InMemoryStore()
    async with store.uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=-owner_id, screen_name=f"club{-owner_id}", name="test"))
        await uow.commit()
    result = await collect_group(group, vk=vk, uow_factory=store.uow_factory, options=CollectOptions(),
                                 report=no_report, now=datetime.now(UTC))
    return store, result


async def test_collects_every_comment_and_reply_once_without_error_6():
    world = small_world()
    with serve(world, rps=3) as emulator:
        vk = HttpVkGateway(emulator.url, [SECRET], rps=3)
        try:
            for owner in world.open_owner_ids():
                store, result = await collect(vk, world, owner)
                assert store.comment_ids(owner) == world.expected_comments(owner)
                assert result.comments_seen == len(world.expected_comments(owner))
        finally:
            await vk.aclose()
    stats = emulator.stats
    assert stats["error6"] == 0
    # Each page once, and each wall listed once more to see it held still.
    assert stats["calls"] == sum(world.minimal_calls(o) + math.ceil(len(world.walls[o]) / 100) for o in world.open_owner_ids())
    assert stats["requests_total"] == vk.stats.requests


async def test_closed_community_is_denied_with_vks_reason():
    world = small_world(communities=1, closed_communities=1)
    closed_owner = -100002
    assert world.groups[100002].is_closed == 1
    with serve(world, rps=3) as emulator:
        vk = HttpVkGateway(emulator.url, [SECRET], rps=3)
        try:
            with pytest.raises(VkAccessDenied) as error:
                await collect(vk, world, closed_owner)
        finally:
            await vk.aclose()
    assert "only for community members" in error.value.message and error.value.vk_code == 15


async def test_post_with_closed_comments_is_skipped_and_reported():
    world = small_world(communities=1, closed_comment_posts=2, closed_communities=0)
    owner = -100001
    with serve(world, rps=3) as emulator:
        vk = HttpVkGateway(emulator.url, [SECRET], rps=3)
        try:
            store, result = await collect(vk, world, owner)
        finally:
            await vk.aclose()
    assert sorted(s["postId"] for s in result.skipped_posts) == sorted(world.closed_comment_posts(owner))
    assert all("212" in s["reason"] for s in result.skipped_posts)
    assert store.comment_ids(owner) == world.expected_comments(owner)


async def test_flaky_vk_still_yields_exactly_the_world():
    world = small_world(seed=5, posts_per_community=60)
    with serve(world, rps=20, fail_rate=0.1, seed=7, stall_seconds=1.0) as emulator:
        # One community through execute (inner calls fail too), one with plain calls: many requests.
        for owner, use_execute in zip(world.open_owner_ids(), (True, False), strict=True):
            vk = HttpVkGateway(emulator.url, [SECRET], rps=20, timeout=10, backoff_factor=0.2, max_retries=8,
                               use_execute=use_execute)
            try:
                store, _ = await collect(vk, world, owner)
            finally:
                await vk.aclose()
            assert store.comment_ids(owner) == world.expected_comments(owner)
    stats = emulator.stats
    assert sum(stats["failures"].values()) >= 3  # VK really was flaky
    assert stats["error6"] == 0


async def test_two_gateways_share_one_token_through_redis(redis_url, redis_prefix):
    world = small_world(seed=9)
    redis = Redis.from_url(redis_url)
    with serve(world, rps=3) as emulator:
        # The two gateways share this process's event loop: a slot granted to one may be sent
        # a little after a later slot of the other. A wider window than production's absorbs
        # that; gateways that did not share the limiter would still send 6 requests/s and be
        # refused.
        gateways = [HttpVkGateway(emulator.url, [SECRET],
                                  limiter=RedisRateLimiter(redis, 3, prefix=redis_prefix, window=1.5))
                    for _ in range(2)]
        try:
            owners = world.open_owner_ids()
            results = await asyncio.gather(*(collect(vk, world, owner) for vk, owner in zip(gateways, owners)))
        finally:
            for vk in gateways:
                await vk.aclose()
            await redis.aclose()
    for (store, _), owner in zip(results, owners):
        assert store.comment_ids(owner) == world.expected_comments(owner)
    stats = emulator.stats
    assert stats["requests_total"] >= 6  # both really worked the one token at once
    assert stats["error6"] == 0, stats


async def test_a_rejected_token_is_revoked_and_the_others_carry_on():
    world = small_world(communities=1, closed_communities=0)
    with serve(world, rps=3, tokens=["good-token"]) as emulator:
        vk = HttpVkGateway(emulator.url, [SECRET, "good-token"], rps=3)
        try:
            store, _ = await collect(vk, world, -100001)
            states = {s.fingerprint: s for s in await vk.token_states()}
        finally:
            await vk.aclose()
    assert store.comment_ids(-100001) == world.expected_comments(-100001)
    assert states[token_fingerprint(SECRET)].status is TokenStatus.REVOKED
    assert states[token_fingerprint("good-token")].status is TokenStatus.ACTIVE


async def test_vk_errors_never_contain_the_token():
    world = small_world(communities=1, closed_communities=1)
    errors: list[VkError] = []
    with serve(world, rps=3, tokens=["other"]) as emulator:
        vk = HttpVkGateway(emulator.url, [SECRET], rps=3)
        try:
            await vk.wall_page(-100001, 0)
        except VkAuthFailed as e:
            errors.append(e)
        await vk.aclose()
    with serve(world, rps=3) as emulator:
        vk = HttpVkGateway(emulator.url, [SECRET], rps=3)
        try:
            await vk.wall_page(-100002, 0)
        except VkAccessDenied as e:
            errors.append(e)
        await vk.aclose()
    # Nobody listens on this port any more: a network error, after retries.
    vk = HttpVkGateway(emulator.url, [SECRET], rps=100, max_retries=2, backoff_factor=0.01, timeout=2)
    try:
        await vk.wall_page(-100001, 0)
    except VkUnavailable as e:
        errors.append(e)
    await vk.aclose()
    assert [type(e) for e in errors] == [VkAuthFailed, VkAccessDenied, VkUnavailable]
    for error in errors:
        assert SECRET not in str(error) and SECRET not in repr(error) and SECRET not in error.message
    assert SECRET not in repr(vk) and SECRET not in repr(await vk.token_states())


async def test_redis_limiter_holds_the_rate_across_limiters(redis_url, redis_prefix):
    redis = Redis.from_url(redis_url)
    limiters = [RedisRateLimiter(redis, 10, prefix=redis_prefix) for _ in range(3)]  # as if 3 processes
    loop = asyncio.get_running_loop()
    grants: list[float] = []

    async def take(limiter: RedisRateLimiter) -> None:
        for _ in range(8):
            await limiter.acquire("fp-1234")
            grants.append(loop.time())

    try:
        await asyncio.gather(*(take(limiter) for limiter in limiters))
    finally:
        await redis.aclose()
    grants.sort()
    busiest = max(sum(1 for t in grants if start <= t < start + 1.0) for start in grants)
    assert busiest <= 10
    assert grants[-1] - grants[0] < 24 * 0.105 + 0.5  # and no slot was wasted
