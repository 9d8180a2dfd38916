"""What an operator sees of VK's daily quotas through the API: each token's calls today per
method against the limits (``vkTokens``), the monitoring schedule's projected calls against the
pool's budget (``vkBudget``), and the same in ``/metrics``.

VK is the emulator as its own HTTP server. Two stacks:
- embedded: one container (SQLite, in-process jobs), calls counted in memory;
- production: an API container and a worker container as ``vkcp serve`` and ``vkcp worker``
  build theirs, on PostgreSQL and Redis; the worker runs the parse, so the API's counts come
  from Redis (every process's calls together).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bootstrap import Container, build_container
from domain.auth import create_api_token
from domain.tasks import run_task
from graphql_api.app import create_app
from graphql_api.ids import NodeType, parse_id
from infrastructure.vk.gateway import token_fingerprint
from tests.conftest import REDIS_URL, _redis_problem, postgres_database, require_service
from tests.e2e.graphql_support import make_settings, start_container
from tests.processes import ROOT, free_port, spawn, stop, vk_emulator, wait_http

TOKENS = ["vk1.a.quota-token-one", "vk1.a.quota-token-two", "vk1.a.quota-token-three"]
LIMITS = "wall.get=5000,wall.getComments=20"  # 20 a token: a schedule that cannot fit
WORLD = ["--world", "generated", "--seed", "5", "--communities", "2", "--posts", "30", "--comments", "8",
         "--closed-comment-posts", "0", "--closed-communities", "0"]


@pytest.fixture
def vk_url(tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "emulator.log"
    args = ["--rps", "50", *WORLD]
    for token in TOKENS:
        args += ["--token", token]
    with vk_emulator(args, log) as url:
        yield url


@dataclass
class Stack:
    api: Container
    worker: Container | None  # None: the API runs its tasks itself
    http: httpx.AsyncClient
    roles: dict[str, str]

    async def gql(self, query: str, role: str = "operator", **variables: Any) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables},
                                        headers={"Authorization": f"Bearer {self.roles[role]}"})
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]


@pytest.fixture(params=["embedded", "production"])
async def stack(request, tmp_path: Path, vk_url: str) -> AsyncIterator[Stack]:
    common = {"vk_sandbox": False, "vk_tokens": ",".join(TOKENS), "vk_api_url": vk_url, "vk_rps": 50,
              "vk_daily_limits": LIMITS}
    async with contextlib.AsyncExitStack() as resources:
        worker = None
        if request.param == "embedded":
            api = await start_container(make_settings(tmp_path / "api", **common))
        else:
            require_service("Redis", await _redis_problem())
            prefix = f"vkcp-test-{uuid.uuid4().hex[:10]}:"
            resources.push_async_callback(forget_redis_prefix, prefix)
            common.update(database_url=await resources.enter_async_context(postgres_database()),
                          redis_url=REDIS_URL, redis_prefix=prefix)
            api = await start_container(make_settings(tmp_path / "api", **common))
            resources.push_async_callback(api.aclose)
            worker = await build_container(make_settings(tmp_path / "worker", **common))
            resources.push_async_callback(worker.aclose)
        if worker is None:
            resources.push_async_callback(api.aclose)
        roles = {}
        for role in ("viewer", "operator", "admin"):
            roles[role], _ = await create_api_token(api.adapters.uow_factory, role, role)
        http = await resources.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(api)), base_url="http://api.test"))
        yield Stack(api, worker, http, roles)


async def forget_redis_prefix(prefix: str) -> None:
    """Delete a test's keys from the shared Redis."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def emulator_calls(vk_url: str) -> dict[str, dict[str, int]]:
    async with httpx.AsyncClient() as client:
        return (await client.get(vk_url.replace("/method", "/_stats"))).json()["calls_today"]


ADD = 'mutation($ref: String!) { addGroup(ref: $ref) { group { id } errors { message } } }'
MONITOR = """mutation($id: ID!, $max: Int) { updateGroup(id: $id, input: {maxPosts: $max,
  monitoring: {enabled: true, intervalMinutes: 60}}) { errors { message } } }"""
PARSE = 'mutation($id: ID!) { startParse(input: {groupIds: [$id]}) { tasks { id } errors { message } } }'
TASK = "query($id: ID!) { task(id: $id) { state error result } }"
TOKENS_QUERY = """{ vkTokens { fingerprint state callsToday callsRemaining
  quotas { method calls limit remaining } } }"""
BUDGET = """{ vkBudget { usableTokens projectedCalls fits warning warningCode warningArgs
  methods { method limitPerToken limit projectedCalls fits }
  communities { group { id } runsPerDay callsPerRun callsPerRunByMethod { method calls } projectedCalls estimated } } }"""


async def parse(stack: Stack, group_id: str) -> dict[str, Any]:
    [task] = (await stack.gql(PARSE, id=group_id))["startParse"]["tasks"]
    if stack.worker is not None:  # the worker process takes the job
        await run_task(stack.worker.adapters, parse_id(task["id"], NodeType.TASK), worker_id="worker-test")
    for _ in range(600):
        found = (await stack.gql(TASK, id=task["id"]))["task"]
        if found["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"the parse did not finish: {found}")


async def test_calls_today_and_the_schedules_budget(stack: Stack, vk_url: str) -> None:
    parsed = (await stack.gql(ADD, ref="club100001"))["addGroup"]["group"]["id"]
    never_run = (await stack.gql(ADD, ref="club100002"))["addGroup"]["group"]["id"]
    await stack.gql(MONITOR, id=parsed, max=None)
    await stack.gql(MONITOR, id=never_run, max=50)

    before = await emulator_calls(vk_url)
    task = await parse(stack, parsed)
    assert task["state"] == "SUCCEEDED", task
    after = await emulator_calls(vk_url)
    # The task recorded exactly the calls VK answered for it, by method.
    sent: dict[str, int] = {}
    for fingerprint, methods in after.items():
        for method, n in methods.items():
            sent[method] = sent.get(method, 0) + n - before.get(fingerprint, {}).get(method, 0)
    vk_calls = task["result"]["vkCalls"]
    assert vk_calls == {m: n for m, n in sent.items() if n} and vk_calls["wall.getComments"] >= 30

    # vkTokens: every process's calls today, per token and method, against the limits (another
    # process's within a second: each adds what it counted to Redis as often as it syncs states).
    for _ in range(50):
        tokens = {t["fingerprint"]: t for t in (await stack.gql(TOKENS_QUERY, role="admin"))["vkTokens"]}
        if sum(t["callsToday"] for t in tokens.values()) == sum(sum(m.values()) for m in after.values()):
            break
        await asyncio.sleep(0.1)
    assert set(tokens) == {token_fingerprint(t) for t in TOKENS}
    for fingerprint, token in tokens.items():
        counted = after.get(fingerprint, {})
        assert token["callsToday"] == sum(counted.values())
        quotas = {q["method"]: q for q in token["quotas"]}
        assert {m: q["calls"] for m, q in quotas.items() if q["calls"]} == counted
        assert quotas["wall.get"]["limit"] == 5000 and quotas["wall.getComments"]["limit"] == 20
        for q in quotas.values():
            assert q["remaining"] == (None if q["limit"] is None else max(0, q["limit"] - q["calls"]))
        assert token["callsRemaining"] == min(q["remaining"] for q in quotas.values() if q["remaining"] is not None)
    assert sum(t["callsToday"] for t in tokens.values()) == sum(sum(m.values()) for m in after.values())
    forbidden = await stack.http.post("/graphql", json={"query": TOKENS_QUERY},
                                      headers={"Authorization": f"Bearer {stack.roles['viewer']}"})
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # vkBudget, as a viewer: 24 runs a day of what the last run cost, and an estimate for the
    # community that never ran; 3 tokens × 20 wall.getComments cannot carry that.
    budget = (await stack.gql(BUDGET, role="viewer"))["vkBudget"]
    rows = {row["group"]["id"]: row for row in budget["communities"]}
    measured, estimated = rows[parsed], rows[never_run]
    assert measured["runsPerDay"] == 24 and not measured["estimated"]
    assert {c["method"]: c["calls"] for c in measured["callsPerRunByMethod"]} == vk_calls
    assert measured["callsPerRun"] == sum(vk_calls.values())
    assert estimated["estimated"] and estimated["callsPerRun"] == 1 + 50
    methods = {m["method"]: m for m in budget["methods"]}
    comments = methods["wall.getComments"]
    assert comments["limitPerToken"] == 20 and comments["limit"] == 60 and not comments["fits"]
    assert comments["projectedCalls"] == 24 * vk_calls["wall.getComments"] + 24 * 50
    assert methods["wall.get"]["fits"] and methods["wall.get"]["limit"] == 15000
    assert budget["usableTokens"] == 3 and budget["fits"] is False
    needed = -(-comments["projectedCalls"] // 20) - 3
    assert budget["warning"] == (
        f"the schedule needs ~{comments['projectedCalls']:,} wall.getComments calls a day; 3 tokens allow 60: "
        f"add {needed} tokens or lengthen intervals"
    )
    # the same as a code with arguments, which the console words in the operator's language
    assert budget["warningCode"] == "TOKENS_SHORT"
    assert budget["warningArgs"] == {
        "short": [{"method": "wall.getComments", "calls": comments["projectedCalls"], "limit": 60}],
        "usableTokens": 3, "addTokens": needed,
    }

    # /metrics: the pool's calls by method for anyone, per token only for an admin's scrape.
    def samples(text: str) -> dict[tuple, float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    open_scrape = samples((await stack.http.get("/metrics")).text)
    total = sum(n for methods in after.values() for m, n in methods.items() if m == "wall.getComments")
    assert open_scrape[("vkcp_vk_pool_calls_today", (("method", "wall.getComments"),))] == total
    assert open_scrape[("vkcp_vk_tokens_resting", ())] == 0
    assert not any(name == "vkcp_vk_calls_today" for name, _ in open_scrape)
    admin_scrape = samples((await stack.http.get(
        "/metrics", headers={"Authorization": f"Bearer {stack.roles['admin']}"})).text)
    for fingerprint, methods in after.items():
        for method, n in methods.items():
            assert admin_scrape[("vkcp_vk_calls_today", (("method", method), ("token", fingerprint)))] == n
    for token in TOKENS:
        assert token not in str(admin_scrape)


# --- settings, and what /readyz and /metrics say while every token rests --------------------


def test_park_times_and_daily_limits_come_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    from datetime import timedelta

    from bootstrap import build_vk
    from infrastructure.settings import Settings

    monkeypatch.setenv("VKCP_VK_QUOTA_PARK_HOURS", "6")
    monkeypatch.setenv("VKCP_VK_CAPTCHA_PARK_MINUTES", "15")
    monkeypatch.setenv("VKCP_VK_DAILY_LIMITS", "wall.get=4000, wall.getComments=12000")
    settings = Settings(_env_file=None, vk_tokens="t1", vk_sandbox=False, data_dir=tmp_path)
    assert settings.vk_daily_limits == {"wall.get": 4000, "wall.getComments": 12000}
    vk = build_vk(settings)
    assert (vk.quota_park, vk.captcha_park) == (timedelta(hours=6), timedelta(minutes=15))

    for name in ("VKCP_VK_QUOTA_PARK_HOURS", "VKCP_VK_CAPTCHA_PARK_MINUTES", "VKCP_VK_DAILY_LIMITS"):
        monkeypatch.delenv(name)
    defaults = Settings(_env_file=None, vk_tokens="t1", vk_sandbox=False, data_dir=tmp_path)
    assert defaults.vk_daily_limits == {"wall.get": 5000}
    vk = build_vk(defaults)
    assert vk.quota_park is None and vk.captcha_park == timedelta(hours=1)  # None: the next 00:00 UTC
    monkeypatch.setenv("VKCP_VK_DAILY_LIMITS", "wall.get")
    with pytest.raises(ValueError, match="METHOD=CALLS"):
        Settings(_env_file=None, data_dir=tmp_path)


@pytest.fixture
def tired_vk_url(tmp_path: Path) -> Iterator[str]:
    """VK for which both tokens are over their quota of utils.resolveScreenName."""
    port = free_port()
    log = tmp_path / "tired-emulator.log"
    args = ["-m", "infrastructure.vk.emulator", "--port", str(port), "--world", "sandbox",
            "--quota", "utils.resolveScreenName=0"]
    proc = spawn(args, {**os.environ, "PYTHONPATH": str(ROOT)}, log)
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{port}/_stats", proc, log))
        yield f"http://127.0.0.1:{port}/method"
    finally:
        stop(proc)


async def test_while_every_token_rests_the_api_stays_ready_and_says_until_when(tmp_path, tired_vk_url) -> None:
    from domain.errors import VkTokensResting

    api = await start_container(make_settings(tmp_path, vk_sandbox=False, vk_tokens=",".join(TOKENS[:2]),
                                              vk_api_url=tired_vk_url))
    try:
        for _ in range(2):  # each token meets VK's 29 once, then every call waits
            with pytest.raises(VkTokensResting) as resting:
                await api.adapters.vk.resolve_screen_name("koshki_spb")
        until = resting.value.until
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(api)), base_url="http://t") as http:
            ready = await http.get("/readyz")
            metrics = (await http.get("/metrics")).text
    finally:
        await api.aclose()
    # Ready: the API still serves everything stored, and collection resumes by itself.
    assert ready.status_code == 200
    assert ready.json()["checks"]["vk"] == (
        f"resting until {until.isoformat()}: every token is parked (daily quota or captcha)"
    )
    found = {s.name: s.value for family in text_string_to_metric_families(metrics) for s in family.samples}
    assert found["vkcp_vk_tokens_resting"] == 1
    assert found["vkcp_vk_tokens_resting_until_seconds"] == until.timestamp()
