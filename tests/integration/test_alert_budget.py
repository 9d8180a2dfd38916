"""Telegram's limits (20 messages a minute per group chat, 30 a second per bot) hold across
deliverers: two workers, each with its own Redis client, and two rules sending to one chat get
the chat's 20 a minute between them (``infrastructure/alert_budget.py``), the rest folded into
digests, nothing dropped. Without Redis each process keeps its own budget and goes on."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from redis.asyncio import Redis

from domain.alerts import Deliverer
from infrastructure.alert_budget import RedisSendBudget
from tests.fakes import FakeClock
from tests.integration.test_alert_outbox import T0, TELEGRAM, RecordingSender, adapters_for, deliver_all, rule, states
from tests.integration.test_alert_outbox import store_matched as store
from tests.receivers import free_port

CHAT_BOT = TELEGRAM.split("/-")[0]


async def test_two_workers_and_two_rules_share_one_chats_20_a_minute(uow_factory, migrated_db, redis_url,
                                                                       redis_prefix) -> None:
    clock = FakeClock(T0)
    sender = RecordingSender(clock=clock)
    base = adapters_for(uow_factory, sender, clock)
    await rule(base, [TELEGRAM], name="brand")
    clients = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    try:
        first, second = (
            Deliverer(replace(base, alert_budget=RedisSendBudget(c, prefix=redis_prefix)), worker_id=f"w{i}")
            for i, c in enumerate(clients)
        )
        await store(uow_factory, 20, now=clock.now())
        await first.run_once()  # the chat's 20 for this minute, spent by the first worker
        clock.advance(seconds=10)
        await rule(base, [TELEGRAM], name="competitor")  # the same chat: one allowance for both rules
        await store(uow_factory, 30, start=21, now=clock.now())
        await second.run_once()  # its own process has sent nothing yet: the chat has, through the first
        await first.run_once()
        for _ in range(4):  # the minutes after: what waited (folded) goes out
            clock.advance(minutes=1)
            for deliverer in (second, first):
                await deliver_all(deliverer)
    finally:
        for c in clients:
            await c.aclose()
    to_chat = [(m, t) for (url, m), t in zip(sender.sent, sender.times, strict=True) if url == TELEGRAM]
    times = [t for _, t in to_chat]
    assert max(sum(1 for t in times if start <= t < start + timedelta(minutes=1)) for start in times) == 20
    assert sum(m.payload["count"] for m, _ in to_chat) == 80  # every match of both rules, none dropped
    assert {m.payload["type"] for m, _ in to_chat} == {"alert.match", "alert.digest"}
    assert await states(migrated_db) == {"SENT": 80}
    # No credential in Redis: the buckets are hashes.
    client = Redis.from_url(redis_url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"{redis_prefix}*")]
    finally:
        await client.aclose()
    assert keys and not any(CHAT_BOT.split(":")[-1] in k or "-100" in k for k in keys)


async def test_without_redis_a_worker_keeps_its_own_budget_and_goes_on(uow_factory, migrated_db) -> None:
    clock = FakeClock(T0)
    sender = RecordingSender(clock=clock)
    base = adapters_for(uow_factory, sender, clock)
    await rule(base, [TELEGRAM])
    nowhere = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        deliverer = Deliverer(replace(base, alert_budget=RedisSendBudget(nowhere)), worker_id="w1")
        await store(uow_factory, 30, now=clock.now())
        await deliver_all(deliverer)
        assert len(sender.to(TELEGRAM)) == 20  # the chat's limit, kept by this process alone
        clock.advance(minutes=1)
        await deliver_all(deliverer)
    finally:
        await nowhere.aclose()
    assert sum(m.payload["count"] for m in sender.to(TELEGRAM)) == 30
    assert await states(migrated_db) == {"SENT": 30}
