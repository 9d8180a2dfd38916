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
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.timing import TaskTiming
from infrastructure.vk.world import generated_world
from tests.e2e.test_stacks import Stack, _all_comments, running_stack
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
    env = {"VKCP_VK_API_URL": f"{vk}/method", "VKCP_VK_TOKENS": VK_TOKEN, "VKCP_VK_RPS": "20",
           "VKCP_VK_QUOTA_PARK_HOURS": str(PARK_SECONDS / 3600)}
    async with running_stack(request.param, tmp_path, env, role="admin", secrets=(VK_TOKEN,)) as stack:
        yield stack


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
