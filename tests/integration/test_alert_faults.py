"""Alerts through real faults (slow: ``-m faults``). Real receivers on loopback verify every
Standard Webhooks signature; matched comments are stored as the collector stores them (the
outbox in the matches' transaction).

- The receiver is down for 60 s, then up: everything arrives, in order per rule, once each.
- ``vkcp serve`` (its delivery loop) is killed with -9 in the middle of deliveries and started
  again: every comment arrives; a comment that arrived twice came both times with the same
  ``webhook-id`` (a receiver deduping on it sees each alert once), and none is missing.
- The private PostgreSQL cluster the serve delivers from restarts mid-delivery: the same.
- On the production stack (PostgreSQL, a private Redis, ``vkcp serve`` and a ``vkcp worker``),
  the Redis is killed mid-delivery and comes back empty: deliveries never touch Redis (the
  outbox is in the database, the loop runs in the worker), so they go on through the outage;
  ``/readyz`` says 503 meanwhile; a parse started then waits QUEUED and runs once Redis is back.
  Every matched comment arrives, once, under one webhook-id.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from domain import alerts
from domain.alert_model import RuleInput
from domain.alerts import delivery_loop, record_matched
from domain.models import Comment, Group, Keyword, Match, Post
from domain.ports import Adapters
from infrastructure.alert_channels import ChannelSender
from infrastructure.db.engine import create_engine, session_factory
from infrastructure.db.migrate import upgrade_async
from infrastructure.db.uow import SqlUnitOfWork
from tests.fakes import FakeClock
from tests.faults import private_postgres, private_redis  # noqa: F401
from tests.processes import free_port, spawn, stop, wait_http
from tests.receivers import WebhookReceiver

pytestmark = pytest.mark.faults

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class RealClock(FakeClock):
    def now(self) -> datetime:
        return datetime.now(UTC)


async def setup_world(uow_factory) -> tuple[int, int]:
    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=7, screen_name="cats", name="Кошки"))
        assert group.id is not None
        await uow.posts.upsert_many(group.id, [Post(owner_id=-7, vk_id=1, from_id=-7, text="p", published_at=T0)])
        keyword = await uow.keywords.add(Keyword(id=0, word="кошка"))
        assert keyword is not None
        await uow.commit()
    return group.id, keyword.id


async def store(uow_factory, group_id: int, keyword_id: int, numbers: range) -> list[int]:
    made = [Comment(owner_id=-7, vk_id=n, post_vk_id=1, from_id=100 + n, text=f"кошка {n}",
                    published_at=T0 + timedelta(seconds=n)) for n in numbers]
    async with uow_factory() as uow:
        ids = sorted((await uow.comments.upsert_many(group_id, made)).values())
        await uow.matches.replace_for_comments(ids, [Match(i, keyword_id, "кошка", 0, 5, "кошка") for i in ids])
        await record_matched(uow, ids, datetime.now(UTC))
        await uow.commit()
    return ids


def by_comment(receiver: WebhookReceiver) -> dict[int, set[str]]:
    """comment id -> the webhook-ids it arrived with."""
    seen: dict[int, set[str]] = defaultdict(set)
    for r in receiver.received:
        seen[r.payload["comment"]["id"]].add(r.headers["webhook-id"])
    return seen


async def wait_for_comments(receiver: WebhookReceiver, expected: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while set(by_comment(receiver)) != expected:
        assert time.monotonic() < deadline, f"{len(set(by_comment(receiver)) & expected)} of {len(expected)} arrived"
        await asyncio.sleep(0.2)


async def test_a_receiver_down_for_60_s_gets_everything_in_order_once_it_is_up(uow_factory, migrated_db) -> None:
    sender = ChannelSender(timeout=2)
    adapters = Adapters(uow_factory=uow_factory, vk=None, queue=None, events=None, clock=RealClock(),  # type: ignore[arg-type]
                        alert_sender=sender, public_url="https://vkcp.example.com")
    receiver = WebhookReceiver()
    first = await alerts.create_alert_rule(adapters, RuleInput(name="one", channels=[receiver.url]))
    second = await alerts.create_alert_rule(adapters, RuleInput(name="two", channels=[receiver.url]))
    group_id, keyword_id = await setup_world(uow_factory)
    loop = asyncio.create_task(delivery_loop(adapters, worker_id="test", idle=0.1))
    try:
        down_at = time.monotonic()
        stored = set(await store(uow_factory, group_id, keyword_id, range(1, 21)))
        await asyncio.sleep(30)
        stored |= set(await store(uow_factory, group_id, keyword_id, range(21, 41)))
        await asyncio.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
        await receiver.start()  # up again, on the same port
        deadline = time.monotonic() + 180
        while len(receiver.received) < 2 * len(stored):
            assert time.monotonic() < deadline, f"{len(receiver.received)} of {2 * len(stored)} arrived"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # nothing more comes
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await receiver.stop()
        await sender.aclose()
    assert len(receiver.received) == 2 * len(stored) and receiver.duplicates() == 0
    secrets = {first.id: Webhook(first.webhook_secret), second.id: Webhook(second.webhook_secret)}
    for r in receiver.received:  # one secret per rule: each message verifies with its rule's
        secrets[r.payload["rule"]["id"]].verify(r.body, r.headers)
    for rule in (first, second):
        arrived = [r.payload["comment"]["id"] for r in receiver.received if r.payload["rule"]["id"] == rule.id]
        assert arrived == sorted(stored), f"rule {rule.name}: out of order or incomplete"


def _verify_by_rule(receiver: WebhookReceiver, secret: str) -> None:
    hook = Webhook(secret)
    for r in receiver.received:
        hook.verify(r.body, r.headers)


async def _serve_and_fault(tmp_path: Path, database_url: str, fault, *, comments: int = 200) -> None:
    """A real ``vkcp serve`` delivering ``comments`` alerts to a slow receiver; ``fault(serve)``
    strikes once a quarter has arrived and returns the serve that runs afterwards."""
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)

    def uow_factory() -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions)

    port = free_port()
    env = {**os.environ, "VKCP_DATA_DIR": str(tmp_path / "data"), "VKCP_AUTH": "off", "VKCP_VK_SANDBOX": "1",
           "VKCP_DATABASE_URL": database_url, "VKCP_ALERT_LEASE_SECONDS": "5", "PYTHONPATH": str(Path.cwd())}
    env.pop("VKCP_REDIS_URL", None)
    log = tmp_path / "serve.log"

    def start() -> object:
        return spawn(["-m", "entrypoints.cli", "serve", "--port", str(port)], env, log)

    serve = start()
    receiver = WebhookReceiver(delay=0.02)
    await receiver.start()
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", serve, log)  # type: ignore[arg-type]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
            body = (await api.post("/graphql", json={"query": """
                mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { webhookSecret errors { code } } }""",
                "variables": {"i": {"name": "r", "channels": [receiver.url]}}})).json()
        secret = body["data"]["createAlertRule"]["webhookSecret"]
        group_id, keyword_id = await setup_world(uow_factory)
        stored = set(await store(uow_factory, group_id, keyword_id, range(1, comments + 1)))
        await receiver.wait_for(comments // 4, timeout=60)
        serve = await fault(serve, start)
        await wait_for_comments(receiver, stored, timeout=120)
        seen = by_comment(receiver)
        # At least once, never a different alert: a comment sent twice carried one webhook-id.
        assert all(len(ids) == 1 for ids in seen.values()), {c: i for c, i in seen.items() if len(i) > 1}
        _verify_by_rule(receiver, secret)
    finally:
        stop(serve)  # type: ignore[arg-type]
        await receiver.stop()
        await engine.dispose()


async def test_serve_killed_mid_delivery_sends_each_alert_under_one_id(tmp_path: Path, database_url: str) -> None:
    async def kill(serve, start):
        os.killpg(serve.pid, signal.SIGKILL)
        serve.wait()
        return start()

    await _serve_and_fault(tmp_path, database_url, kill)


async def test_postgres_restarted_mid_delivery_loses_and_doubles_nothing(tmp_path: Path, private_postgres) -> None:
    await private_postgres.create_database("vkcp_alerts")

    async def restart(serve, start):
        await private_postgres.restart()
        return serve

    await _serve_and_fault(tmp_path, private_postgres.url("vkcp_alerts"), restart)


SANDBOX = {"koshki_spb": "кошка", "zarechye_news": "автобус"}  # sandbox community -> a word its comments use


async def test_redis_restarted_mid_delivery_on_the_production_stack(tmp_path: Path, private_redis) -> None:
    """``vkcp migrate``, ``serve`` and a ``worker`` on PostgreSQL and a private Redis; a parse
    whose matches a webhook rule alerts; the Redis is killed while those deliveries go out and
    comes back empty on the same port after a few seconds.

    While it is down: deliveries go on from the database outbox (the worker's delivery loop
    needs no Redis), ``/readyz`` answers 503 with the Redis check failing and the database
    fine, and a parse started then is accepted and stays QUEUED (its ARQ job could not be
    enqueued). Once Redis is back the worker re-offers it, it runs, and its matches are alerted
    too. In the end every matched comment arrived, each under one webhook-id of its own."""
    from tests.conftest import postgres_database

    async with postgres_database() as database_url:
        await _redis_restart_scenario(tmp_path, database_url, private_redis)


async def _redis_restart_scenario(tmp_path: Path, database_url: str, redis) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "VKCP_DATA_DIR": str(tmp_path / "data"),
           "VKCP_AUTH": "off", "VKCP_VK_SANDBOX": "1", "VKCP_DATABASE_URL": database_url,
           "VKCP_REDIS_URL": redis.url(), "VKCP_REDIS_PREFIX": "vkcp-redisfault:", "VKCP_ALERT_LEASE_SECONDS": "5"}
    for name in ("VKCP_VK_TOKENS", "VKCP_VK_API_URL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "entrypoints.cli", "migrate"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    procs = []
    logs = {name: tmp_path / f"{name}.log" for name in ("serve", "worker")}
    receiver = WebhookReceiver(delay=0.05)  # slow enough that the outage falls among deliveries
    await receiver.start()
    engine = create_engine(database_url)
    try:
        procs.append(spawn(["-m", "entrypoints.cli", "serve", "--port", str(port)], env, logs["serve"]))
        await wait_http(f"http://127.0.0.1:{port}/healthz", procs[0], logs["serve"])
        procs.append(spawn(["-m", "entrypoints.cli", "worker"], env, logs["worker"]))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:

            async def gql(query: str, **variables: object) -> dict:
                body = (await api.post("/graphql", json={"query": query, "variables": variables})).json()
                assert "errors" not in body, body
                return body["data"]

            async def parse(group_id: str) -> str:
                started = (await gql("""mutation($ids: [ID!]!) { startParse(input: {groupIds: $ids}) {
                    tasks { id state } errors { code } } }""", ids=[group_id]))["startParse"]
                assert started["errors"] == [] and started["tasks"][0]["state"] == "QUEUED", started
                return started["tasks"][0]["id"]

            async def task_state(task_id: str) -> dict:
                return (await gql("query($id: ID!) { task(id: $id) { state error } }", id=task_id))["task"]

            async def finished(task_id: str) -> dict:
                deadline = time.monotonic() + 120
                while (task := await task_state(task_id))["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    assert time.monotonic() < deadline, task
                    await asyncio.sleep(0.3)
                return task

            created = (await gql("""mutation($i: AlertRuleInput!) {
                createAlertRule(input: $i) { alertRule { id } webhookSecret errors { code } } }""",
                i={"name": "words", "channels": [receiver.url]}))["createAlertRule"]
            assert created["errors"] == [], created
            added = await gql("""mutation($words: [KeywordInput!]!) { addKeywords(input: $words) { keywords { id } } }""",
                              words=[{"word": w} for w in SANDBOX.values()])
            assert len(added["addKeywords"]["keywords"]) == len(SANDBOX), added
            groups = []
            for ref in SANDBOX:
                group = await gql("""mutation($ref: String!) { addGroup(ref: $ref) { group { id } errors { code } } }""",
                                  ref=ref)
                groups.append(group["addGroup"]["group"]["id"])

            first = await parse(groups[0])
            assert (await finished(first))["state"] == "SUCCEEDED"
            await receiver.wait_for(10, timeout=90)  # its alerts are going out

            down_at = await redis.stop()
            at_stop = len(receiver.received)
            ready = await api.get("/readyz")
            assert ready.status_code == 503, ready.text
            checks = ready.json()["checks"]
            assert checks["redis"].startswith("error") and checks["database"] == "ok", checks
            second = await parse(groups[1])  # accepted while the queue is away: stored, QUEUED
            await receiver.wait_for(at_stop + 10, timeout=30)  # the outbox keeps going out
            await asyncio.sleep(max(0.0, 6 - (time.monotonic() - down_at)))
            assert (await task_state(second))["state"] == "QUEUED"  # no queue, no run
            during = len(receiver.received) - at_stop
            await redis.start()  # empty, on the same port
            assert (await api.get("/readyz")).status_code == 200
            assert (await finished(second))["state"] == "SUCCEEDED"  # re-offered by the worker

        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT DISTINCT m.comment_id, c.group_id FROM matches m JOIN comments c ON c.id = m.comment_id"
            ))).all()
            outbox = (await conn.execute(text("SELECT count(*) FROM alert_deliveries"))).scalar_one()
        matched = {comment for comment, _ in rows}
        per_group = {str(g): sum(1 for _, gid in rows if str(gid) == str(g)) for g in {gid for _, gid in rows}}
        assert len(per_group) == len(SANDBOX), per_group  # both parses matched something
        assert outbox == len(matched), (outbox, len(matched))
        await wait_for_comments(receiver, matched, timeout=120)
        await asyncio.sleep(1)  # nothing more comes
        seen = by_comment(receiver)
        assert set(seen) == matched
        assert all(len(ids) == 1 for ids in seen.values()), {c: i for c, i in seen.items() if len(i) > 1}
        assert len(set(receiver.ids())) == len(matched)  # no two comments under one id
        receiver.verify_all(created["webhookSecret"])
        print(f"\nredis restart: {len(matched)} matched comments {per_group}, {len(receiver.received)} webhooks "
              f"({receiver.duplicates()} repeated under the same id), {during} delivered while Redis was down")
    finally:
        for proc in procs:
            stop(proc)
        await receiver.stop()
        await engine.dispose()
