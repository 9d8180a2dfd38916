"""A token VK stops serving in the middle of a parse (daily quota 29, captcha 14, invalid 5),
as real VK says it inside ``execute``: ``false`` in ``response`` plus an ``execute_errors``
entry. With other tokens in the pool the parse completes, every comment stored; the token
rests (parked) or leaves (revoked); its calls went to the others. When every token rests, the
calls fail with ``VkTokensResting`` (the runner waits), never a plain failure.

The real gateway against the emulator in-process (httpx.ASGITransport).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from domain.budget import count_vk_calls
from domain.collect import CollectOptions, collect_group
from domain.errors import VkAuthFailed, VkTokensResting
from domain.vk import TokenStatus
from infrastructure.vk.emulator import VkEmulator
from infrastructure.vk.gateway import (
    HttpVkGateway,
    quota_rest_until,
    token_fingerprint,
)
from infrastructure.vk.world import generated_world
from tests.fakes import InMemoryStore, no_report

WORLD = generated_world(23, communities=1, posts_per_community=60, comments_per_post=12,
                        closed_comment_posts=0, closed_communities=0)
OWNER = WORLD.open_owner_ids()[0]
# What one parse asks: every page once, the wall listed once more to see it held still, and
# groups.getById.
ONE_PARSE = WORLD.minimal_calls(OWNER) + math.ceil(len(WORLD.walls[OWNER]) / 100) + 1
TOKENS = ["vk1.a.first", "vk1.a.second", "vk1.a.third"]


def gateway(app: VkEmulator, tokens=TOKENS, **options) -> HttpVkGateway:
    options.setdefault("backoff_factor", 0.001)
    return HttpVkGateway("http://vk/method", list(tokens), rps=1000,
                         transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), **options)


async def parse(vk: HttpVkGateway, concurrency: int = 6) -> InMemoryStore:
    store = InMemoryStore()
    async with store.uow_factory() as uow:
        group = await uow.groups.add((await vk.get_groups([-OWNER]))[0])
        await uow.commit()
    await collect_group(group, vk=vk, uow_factory=store.uow_factory, options=CollectOptions(concurrency=concurrency),
                        report=no_report, now=datetime.now(UTC))
    return store


async def states(vk: HttpVkGateway) -> dict[str, object]:
    return {s.fingerprint: s for s in await vk.token_states()}


@pytest.mark.parametrize(
    ("trouble", "code", "status", "reason"),
    [
        ({"token_quotas": {TOKENS[0]: {"wall.getComments": 3}}}, 29, TokenStatus.PARKED, "Rate limit reached"),
        ({"captcha_after": {TOKENS[0]: 4}}, 14, TokenStatus.PARKED, "Captcha needed"),
        ({"expire_after": {TOKENS[0]: 4}}, 5, TokenStatus.REVOKED, "User authorization failed"),
    ],
    ids=["quota-29", "captcha-14", "invalid-5"],
)
async def test_a_token_failing_inside_execute_rests_and_the_parse_completes(trouble, code, status, reason):
    app = VkEmulator(WORLD, **trouble)
    vk = gateway(app)
    try:
        store = await parse(vk)
        pool = await states(vk)
    finally:
        await vk.aclose()
    assert store.comment_ids(OWNER) == WORLD.expected_comments(OWNER)  # every comment, from the others
    assert app.stats()["call_errors"].get(str(code), 0) >= 1, "VK never said it inside execute"
    bad = pool[token_fingerprint(TOKENS[0])]
    assert bad.status is status and reason in bad.reason and "in execute" in bad.reason
    if status is TokenStatus.PARKED:
        assert bad.until > datetime.now(UTC) + timedelta(minutes=50)
    assert all(pool[token_fingerprint(t)].status is TokenStatus.ACTIVE for t in TOKENS[1:])
    # The calls it could not make were made by the others: VK answered each page once.
    answered = app.stats()["calls_today"]
    assert sum(sum(m.values()) for m in answered.values()) == ONE_PARSE
    assert TOKENS[0] not in repr(bad)


async def test_when_every_token_is_over_its_quota_the_calls_wait_as_resting():
    app = VkEmulator(WORLD, quotas={"wall.getComments": 4})
    vk = gateway(app)
    try:
        with pytest.raises(VkTokensResting) as resting:
            await parse(vk)
        pool = await states(vk)
    finally:
        await vk.aclose()
    assert all(s.status is TokenStatus.PARKED for s in pool.values())
    assert resting.value.until == min(s.until for s in pool.values())
    assert resting.value.until >= quota_rest_until(datetime.now(UTC), None) - timedelta(seconds=5)
    assert "Rate limit" in resting.value.message


async def test_every_token_invalid_inside_execute_is_an_authorization_failure():
    app = VkEmulator(WORLD, expire_after={t: 2 for t in TOKENS})
    vk = gateway(app)
    try:
        with pytest.raises(VkAuthFailed):
            await parse(vk)
        assert all(s.status is TokenStatus.REVOKED for s in (await states(vk)).values())
    finally:
        await vk.aclose()


def test_quota_park_is_until_the_next_utc_midnight_and_at_least_an_hour():
    assert quota_rest_until(datetime(2026, 12, 7, 5, 0, tzinfo=UTC), None) == datetime(2026, 12, 8, tzinfo=UTC)
    late = datetime(2026, 12, 7, 23, 40, tzinfo=UTC)
    assert quota_rest_until(late, None) == late + timedelta(hours=1)
    assert quota_rest_until(late, timedelta(hours=6)) == late + timedelta(hours=6)


async def test_configured_park_times_are_used():
    app = VkEmulator(WORLD, token_errors={TOKENS[0]: 29, TOKENS[1]: 14})
    vk = gateway(app, tokens=TOKENS[:2], quota_park=timedelta(hours=3), captcha_park=timedelta(minutes=10))
    try:
        with pytest.raises(VkTokensResting):
            await asyncio.gather(*(vk.resolve_screen_name("x") for _ in range(40)))
        pool = await states(vk)
    finally:
        await vk.aclose()
    now = datetime.now(UTC)
    quota, captcha = pool[token_fingerprint(TOKENS[0])].until, pool[token_fingerprint(TOKENS[1])].until
    assert timedelta(hours=2, minutes=59) < quota - now <= timedelta(hours=3)
    assert timedelta(minutes=9) < captcha - now <= timedelta(minutes=10)


async def test_calls_are_counted_per_token_and_method_and_metered_per_parse():
    app = VkEmulator(WORLD)
    vk = gateway(app)
    try:
        async def metered():
            with count_vk_calls() as calls:
                await parse(vk)
            return calls

        first, second = await asyncio.gather(metered(), metered())  # two parses share the gateway
        pool = await states(vk)
    finally:
        await vk.aclose()
    one_parse = ONE_PARSE
    assert sum(first.values()) == sum(second.values()) == one_parse
    assert first["groups.getById"] == 1 and first["wall.get"] >= 1 and first["wall.getComments"] >= 60
    counted = {fp: s.calls_today for fp, s in pool.items()}
    emulated = app.stats()["calls_today"]
    assert {fp: calls for fp, calls in counted.items() if calls} == emulated
    assert sum(sum(c.values()) for c in counted.values()) == 2 * one_parse


async def test_calls_vk_refused_as_a_whole_are_not_counted_against_the_token():
    emulator = VkEmulator(WORLD)
    refusals = [6, 9]  # too many requests per second, flood control: VK ran none of the calls

    async def app(scope, receive, send):
        if scope["type"] == "http" and refusals:
            body = orjson.dumps({"error": {"error_code": refusals.pop(0), "error_msg": "not now"}})
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await emulator(scope, receive, send)

    vk = gateway(app, tokens=TOKENS[:1])
    try:
        with count_vk_calls() as calls:
            await asyncio.gather(*(vk.resolve_screen_name("community1") for _ in range(3)), vk.wall_page(OWNER, 0))
        [state] = await vk.token_states()
    finally:
        await vk.aclose()
    assert vk.stats.retries == 2
    assert state.calls_today == emulator.stats()["calls_today"][token_fingerprint(TOKENS[0])] == dict(calls)
    assert sum(calls.values()) == 4
