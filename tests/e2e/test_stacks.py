"""The whole path as a user runs it, on both stacks, with real processes.

- embedded: ``vkcp serve`` alone (SQLite, in-process jobs);
- production: ``vkcp migrate``, ``vkcp serve`` and a separate ``vkcp worker`` on PostgreSQL
  and Redis (ARQ).

VK is the project's emulator running as its own HTTP server (``VKCP_VK_API_URL``), holding a
generated world with long reply threads, a closed community and a post with comments closed.
The test adds the communities through GraphQL, parses them, and checks that the comments the
API pages through are exactly the world's comments and replies — and that a second parse
changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infrastructure.vk.world import generated_world
from tests.conftest import (
    REDIS_URL,
    _redis_problem,
    postgres_database,
    require_service,
)
from tests.processes import first_admin_token, free_port, log_events, spawn, stop, vk_emulator, wait_http

ROOT = Path(__file__).resolve().parents[2]
WORLD = {"seed": 7, "communities": 2, "posts": 12, "comments": 15, "closed_comment_posts": 1, "closed_communities": 1}
VK_TOKEN = "vk1.a.e2e-secret-token-value"


@pytest.fixture(scope="module")
def world():
    return generated_world(
        WORLD["seed"],
        communities=WORLD["communities"],
        posts_per_community=WORLD["posts"],
        comments_per_post=WORLD["comments"],
        closed_comment_posts=WORLD["closed_comment_posts"],
        closed_communities=WORLD["closed_communities"],
    )


@pytest.fixture(scope="module")
def vk_url(tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    args = ["--rps", "20", "--world", "generated",
            "--seed", str(WORLD["seed"]), "--communities", str(WORLD["communities"]), "--posts", str(WORLD["posts"]),
            "--comments", str(WORLD["comments"]), "--closed-comment-posts", str(WORLD["closed_comment_posts"]),
            "--closed-communities", str(WORLD["closed_communities"]), "--token", VK_TOKEN]
    with vk_emulator(args, log) as url:
        yield url


class Stack:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env, self.workdir = env, workdir
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.url = ""
        self.token = ""

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start(self, *args: str) -> subprocess.Popen:
        log = self.workdir / f"{args[0]}-{len(self.procs)}.log"
        proc = spawn(["-m", "entrypoints.cli", *args], self.env, log)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs)

    async def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                self.url, json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]


@contextlib.asynccontextmanager
async def running_stack(kind: str, tmp_path: Path, env: dict[str, str], *, role: str,
                        secrets: tuple[str, ...]) -> AsyncIterator[Stack]:
    """``vkcp serve`` alone (``embedded``), or ``vkcp migrate``, ``serve`` and a ``worker`` on a
    database and a Redis prefix of their own (``production``); afterwards no ``secrets`` in
    the processes' output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATA_DIR": str(tmp_path / "data"), "VKCP_VK_SANDBOX": "0",
           **env}
    for name in ("VKCP_DATABASE_URL", "VKCP_REDIS_URL", "VKCP_AUTH"):
        env.pop(name, None)
    async with contextlib.AsyncExitStack() as resources:
        if kind == "production":
            require_service("Redis", await _redis_problem())
            env["VKCP_DATABASE_URL"] = await resources.enter_async_context(postgres_database())
            env["VKCP_REDIS_URL"] = REDIS_URL
            env["VKCP_REDIS_PREFIX"] = prefix = f"vkcp-e2e-{uuid.uuid4().hex[:8]}:"
            resources.push_async_callback(_forget_redis_prefix, prefix)
        stack = Stack(env, tmp_path)
        try:
            if kind == "production":
                stack.cli("migrate")
            stack.token = stack.cli("token", "create", "--name", "e2e", "--role", role).strip().splitlines()[-1]
            port = free_port()
            server = stack.start("serve", "--port", str(port))
            stack.url = f"http://127.0.0.1:{port}/graphql"
            await wait_http(f"http://127.0.0.1:{port}/healthz", server, stack.logs[-1])
            if kind == "production":
                stack.start("worker")
            yield stack
        finally:
            for proc in stack.procs:
                stop(proc)
            for secret in secrets:
                assert secret not in stack.output(), "a VK token leaked into the logs"


async def _forget_redis_prefix(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["embedded", "production"])
async def stack(request, tmp_path: Path, vk_url: str) -> AsyncIterator[Stack]:
    env = {"VKCP_VK_API_URL": vk_url, "VKCP_VK_TOKENS": VK_TOKEN, "VKCP_VK_RPS": "20"}
    async with running_stack(request.param, tmp_path, env, role="operator", secrets=(VK_TOKEN,)) as stack:
        yield stack


ADD = """mutation($ref: String!) { addGroup(ref: $ref) {
  group { id vkId screenName isClosed } errors { code message field } } }"""
PARSE = """mutation($ids: [ID!]!) { startParse(input: {groupIds: $ids}) { tasks { id state } errors { code message } } }"""
TASK = """query($id: ID!) { task(id: $id) { id state error result progress { done total } } }"""
COMMENTS = """query($after: String) { comments(first: 100, after: $after) {
  totalCount edges { node { ownerId vkId deleted author { vkId } post { vkId } } }
  pageInfo { hasNextPage endCursor } } }"""


async def _wait_task(stack: Stack, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = (await stack.gql(TASK, id=task_id))["task"]
        if task["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return task
        await asyncio.sleep(0.3)
    raise AssertionError(f"task {task_id} did not finish: {task}\n{stack.output()[-3000:]}")


async def _all_comments(stack: Stack) -> tuple[list[tuple[int, int]], int]:
    keys: list[tuple[int, int]] = []
    after = None
    total = None
    while True:
        page = (await stack.gql(COMMENTS, after=after))["comments"]
        total = page["totalCount"]
        keys += [(int(e["node"]["ownerId"]), int(e["node"]["vkId"])) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return keys, total
        after = page["pageInfo"]["endCursor"]


async def test_collect_and_read_every_comment(stack: Stack, world) -> None:
    open_ids = world.open_owner_ids()
    closed = [g for g in world.groups.values() if g.is_closed]
    assert len(open_ids) == 2 and closed

    # Bad references come back as UserErrors, and add nothing.
    for ref in ("no_such_community_here", "https://vk.com/a/b", "https://example.com/club1"):
        result = (await stack.gql(ADD, ref=ref))["addGroup"]
        assert result["group"] is None and result["errors"][0]["code"] == "INVALID_REFERENCE", result

    group_ids = []
    for owner_id in open_ids:
        screen_name = world.groups[-owner_id].screen_name
        result = (await stack.gql(ADD, ref=f"https://vk.com/{screen_name}"))["addGroup"]
        assert result["errors"] == [] and result["group"]["vkId"] == -owner_id
        group_ids.append(result["group"]["id"])
    closed_group = (await stack.gql(ADD, ref=f"club{closed[0].id}"))["addGroup"]["group"]
    assert closed_group["isClosed"] is True

    tasks = (await stack.gql(PARSE, ids=[*group_ids, closed_group["id"]]))["startParse"]["tasks"]
    finished = [await _wait_task(stack, t["id"]) for t in tasks]
    assert [t["state"] for t in finished] == ["SUCCEEDED", "SUCCEEDED", "FAILED"], finished
    assert "Access denied" in finished[2]["error"]
    for task in finished[:2]:
        assert len(task["result"]["skippedPosts"]) == WORLD["closed_comment_posts"]

    expected = {(owner, cid) for owner in open_ids for cid in world.expected_comments(owner)}
    keys, total = await _all_comments(stack)
    assert len(keys) == len(set(keys)) == total, "a comment was paged twice"
    assert set(keys) == expected

    # A second parse stores nothing new and reads only what changed (nothing did).
    tasks = (await stack.gql(PARSE, ids=group_ids))["startParse"]["tasks"]
    again = [await _wait_task(stack, t["id"]) for t in tasks]
    assert [t["state"] for t in again] == ["SUCCEEDED", "SUCCEEDED"]
    # Only the posts whose comments are closed are tried again: they never became collected.
    assert all(t["result"]["postsRead"] == WORLD["closed_comment_posts"] for t in again), again
    keys_again, total_again = await _all_comments(stack)
    assert total_again == total and set(keys_again) == expected


async def test_quickstart_with_the_sandbox(tmp_path: Path) -> None:
    """The README's first command: `VKCP_VK_SANDBOX=1 vkcp serve` from nothing. It logs the
    GraphiQL URL and makes a one-time admin token (in the data dir: no terminal reads this
    output); the sandbox communities parse to exactly the sandbox world's comments and replies;
    the closed one fails with VK's reason."""
    from infrastructure.vk.world import sandbox_world

    env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATA_DIR": str(tmp_path / "data"), "VKCP_VK_SANDBOX": "1"}
    for name in ("VKCP_DATABASE_URL", "VKCP_REDIS_URL", "VKCP_AUTH", "VKCP_VK_TOKENS", "VKCP_VK_API_URL"):
        env.pop(name, None)
    stack = Stack(env, tmp_path)
    port = free_port()
    server = stack.start("serve", "--port", str(port))
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", server, stack.logs[-1])
        printed = stack.output()
        [starting] = [e for e in log_events(printed) if e["event"] == "serve.starting"]
        assert starting["graphiql"] == f"http://127.0.0.1:{port}/graphql"
        stack.token = first_admin_token(tmp_path / "data")
        assert stack.token not in printed
        stack.url = f"http://127.0.0.1:{port}/graphql"

        world = sandbox_world()
        group_ids, expected = [], 0
        for screen_name in ("koshki_spb", "zarechye_news"):
            group = (await stack.gql(ADD, ref=f"https://vk.com/{screen_name}"))["addGroup"]["group"]
            group_ids.append(group["id"])
            expected += len(world.expected_comments(-group["vkId"]))
        closed = (await stack.gql(ADD, ref="closed_club"))["addGroup"]["group"]
        assert closed["isClosed"] is True

        tasks = (await stack.gql(PARSE, ids=[*group_ids, closed["id"]]))["startParse"]["tasks"]
        finished = [await _wait_task(stack, t["id"]) for t in tasks]
        assert [t["state"] for t in finished] == ["SUCCEEDED", "SUCCEEDED", "FAILED"], finished
        assert "Access denied" in finished[2]["error"]
        keys, total = await _all_comments(stack)
        assert total == len(set(keys)) == expected > 1000
    finally:
        stop(server)
