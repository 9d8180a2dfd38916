"""When every VK token meets its daily quota mid-parse, the parse waits and then finishes: on
both stacks, with real processes (``vkcp serve`` alone; ``vkcp serve`` and ``vkcp worker`` on
PostgreSQL and Redis).

VK is the emulator as its own process, with a switch that makes every token answer error 29
(``tests/quota_emulator.py``). The gateway parks the token for ``VKCP_VK_QUOTA_PARK_HOURS``
(seconds here); the task goes QUEUED with ``waitingUntil`` and a message, VK hears nothing
while it waits, and it resumes by itself and stores every comment once. A waiting task is
cancelled at once.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.timing import TaskTiming
from infrastructure.vk.world import generated_world
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    _async_url,
    _postgres_problem,
    _redis_problem,
    require_service,
)
from tests.e2e.test_stacks import Stack, _all_comments
from tests.processes import ROOT, free_port, spawn, stop, wait_http

WORLD = {"seed": 3, "communities": 1, "posts": 80, "comments": 20}
VK_TOKEN = "vk1.a.the-token-whose-quota-ends"
PARK_SECONDS = 6  # VKCP_VK_QUOTA_PARK_HOURS, in seconds: how long the gateway rests the token
QUOTA_SECONDS = 1.0  # how long the emulator answers 29: less than the park, so the resumed run works

TASK = """query($id: ID!) { task(id: $id) {
  state waitingUntil attempts error progress { done total message } group { monitoring { lastError } } } }"""
ADD = "mutation($ref: String!) { addGroup(ref: $ref) { group { id } errors { code message } } }"
PARSE = "mutation($ids: [ID!]!) { startParse(input: {groupIds: $ids}) { tasks { id state } errors { message } } }"
CANCEL = "mutation($id: ID!) { cancelTask(id: $id) { task { state waitingUntil finishedAt } errors { code message } } }"


@pytest.fixture(scope="module")
def world():
    return generated_world(WORLD["seed"], communities=WORLD["communities"], posts_per_community=WORLD["posts"],
                           comments_per_post=WORLD["comments"], closed_comment_posts=0, closed_communities=0)


@pytest.fixture(scope="module")
def vk(tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("quota-emulator") / "emulator.log"
    args = ["-m", "tests.quota_emulator", "--port", str(port), "--rps", "20", "--seed", str(WORLD["seed"]),
            "--communities", str(WORLD["communities"]), "--posts", str(WORLD["posts"]),
            "--comments", str(WORLD["comments"]), "--token", VK_TOKEN]
    proc = spawn(args, {**os.environ, "PYTHONPATH": str(ROOT)}, log)
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{port}/_stats", proc, log))
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


async def vk_requests(vk: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{vk}/_stats")).json()["requests_total"]


async def spend_the_quota(vk: str, *, after: int) -> None:
    """Every token answers error 29 after ``after`` more requests, for QUOTA_SECONDS."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{vk}/_quota", json={"after": after, "seconds": QUOTA_SECONDS})
        assert response.status_code == 200


@pytest.fixture(params=["embedded", "production"])
async def stack(request, tmp_path: Path, vk: str) -> AsyncIterator[Stack]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATA_DIR": str(tmp_path / "data"),
           "VKCP_VK_API_URL": f"{vk}/method", "VKCP_VK_TOKENS": VK_TOKEN, "VKCP_VK_RPS": "20",
           "VKCP_VK_SANDBOX": "0", "VKCP_VK_QUOTA_PARK_HOURS": str(PARK_SECONDS / 3600)}
    for name in ("VKCP_DATABASE_URL", "VKCP_REDIS_URL", "VKCP_AUTH"):
        env.pop(name, None)
    database = None
    if request.param == "production":
        require_service("PostgreSQL", await _postgres_problem())
        require_service("Redis", await _redis_problem())
        import asyncpg

        database = f"vkcp_wait_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        env["VKCP_DATABASE_URL"] = _async_url(POSTGRES_ADMIN_URL, database)
        env["VKCP_REDIS_URL"] = "redis://127.0.0.1:6379/9"
        env["VKCP_REDIS_PREFIX"] = f"vkcp-wait-{uuid.uuid4().hex[:8]}:"
    stack = Stack(env, tmp_path)
    try:
        if request.param == "production":
            stack.cli("migrate")
        stack.token = stack.cli("token", "create", "--name", "e2e", "--role", "admin").strip().splitlines()[-1]
        port = free_port()
        server = stack.start("serve", "--port", str(port))
        stack.url = f"http://127.0.0.1:{port}/graphql"
        await wait_http(f"http://127.0.0.1:{port}/healthz", server, stack.logs[-1])
        if request.param == "production":
            stack.start("worker")
        yield stack
    finally:
        for proc in stack.procs:
            stop(proc)
        assert VK_TOKEN not in stack.output(), "a VK token leaked into the logs"
        if database is not None:
            import asyncpg

            admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.close()
        if request.param == "production":
            from redis.asyncio import Redis

            client = Redis.from_url(env["VKCP_REDIS_URL"])
            keys = [k async for k in client.scan_iter(match=env["VKCP_REDIS_PREFIX"] + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def add_and_parse(stack: Stack, world) -> str:
    [group] = world.groups.values()
    added = (await stack.gql(ADD, ref=group.screen_name))["addGroup"]
    assert added["errors"] == [], added
    [task] = (await stack.gql(PARSE, ids=[added["group"]["id"]]))["startParse"]["tasks"]
    return task["id"]


async def until_waiting(stack: Stack, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = (await stack.gql(TASK, id=task_id))["task"]
        if task["waitingUntil"] is not None:
            return task
        assert task["state"] in ("QUEUED", "RUNNING") and time.monotonic() < deadline, (task, stack.output()[-3000:])
        await asyncio.sleep(0.1)


async def test_a_parse_waits_out_every_tokens_quota_and_resumes_by_itself(stack: Stack, vk: str, world) -> None:
    [group] = world.groups.values()
    expected = {(-group.id, vk_id) for vk_id in world.expected_comments(-group.id)}
    # addGroup's two requests, then four of the parse's (it needs a few more): mid-parse.
    await spend_the_quota(vk, after=6)
    task_id = await add_and_parse(stack, world)

    waiting = await until_waiting(stack, task_id)
    assert waiting["state"] == "QUEUED" and waiting["error"] is None
    message = waiting["progress"]["message"]
    assert message.startswith("waiting for VK: every token is over its daily quota until "), message
    assert message.endswith(" UTC")
    until = datetime.fromisoformat(waiting["waitingUntil"])
    assert 0 < (until - datetime.now(UTC)).total_seconds() <= PARK_SECONDS + 1
    assert waiting["group"]["monitoring"]["lastError"] is None
    progress = waiting["progress"]
    assert progress["total"] == WORLD["posts"] and progress["done"] < progress["total"]  # mid-parse

    base = stack.url.removesuffix("/graphql")
    async with httpx.AsyncClient() as client:
        ready = (await client.get(f"{base}/readyz", headers={"Authorization": f"Bearer {stack.token}"})).json()
        metrics = (await client.get(f"{base}/metrics")).text
    assert ready["status"] == "ok" and ready["tasksWaiting"].startswith("1 task waiting for VK until "), ready
    assert "vkcp_tasks_waiting_for_vk 1.0" in metrics

    await asyncio.sleep(0.3)  # requests already on the wire when the quota hit have landed
    heard = await vk_requests(vk)
    deadline = time.monotonic() + PARK_SECONDS + 60
    while True:
        count = await vk_requests(vk)  # read first: if the task still waits below, it waited then
        task = (await stack.gql(TASK, id=task_id))["task"]
        if task["waitingUntil"] is None:
            break
        assert count == heard, "VK was called while every token rested"
        assert time.monotonic() < deadline, stack.output()[-3000:]
        await asyncio.sleep(0.2)
    resumed_after = (datetime.now(UTC) - until).total_seconds()
    # Not before its time, and by its deferred job: the recovery loop's re-offer (in case that
    # job was lost) would come only ``queued_grace`` later.
    assert 0 <= resumed_after < TaskTiming().queued_grace.total_seconds() - 2, resumed_after

    while task["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
        assert time.monotonic() < deadline, (task, stack.output()[-3000:])
        await asyncio.sleep(0.2)
        task = (await stack.gql(TASK, id=task_id))["task"]
    assert task["state"] == "SUCCEEDED", (task, stack.output()[-3000:])
    assert task["attempts"] == 1 and task["waitingUntil"] is None  # a wait is not a retry
    assert task["group"]["monitoring"]["lastError"] is None
    keys, total = await _all_comments(stack)
    assert len(keys) == len(set(keys)) == total, "a comment was stored twice"
    assert set(keys) == expected


async def test_a_waiting_task_is_cancelled_at_once(stack: Stack, vk: str, world) -> None:
    await spend_the_quota(vk, after=2)  # addGroup's two requests, then the parse's first
    task_id = await add_and_parse(stack, world)
    waiting = await until_waiting(stack, task_id)
    until = datetime.fromisoformat(waiting["waitingUntil"])

    cancelled = (await stack.gql(CANCEL, id=task_id))["cancelTask"]
    assert cancelled["errors"] == [] and cancelled["task"]["state"] == "CANCELLED"
    assert cancelled["task"]["waitingUntil"] is None and cancelled["task"]["finishedAt"]
    heard = await vk_requests(vk)
    # Past the time it would have resumed: it stays cancelled, and VK hears nothing of it.
    await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 3)
    task = (await stack.gql(TASK, id=task_id))["task"]
    assert task["state"] == "CANCELLED" and await vk_requests(vk) == heard
