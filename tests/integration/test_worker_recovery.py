"""Crash safety with real processes: PostgreSQL, Redis, a VK emulator and ``vkcp worker``.

A worker is killed with -9 in the middle of a collection; another worker continues the same
task once its lease lapses (the workers' own recovery loop: the test calls nothing), its first
progress within 40 s of the kill, and every comment ends up stored exactly once. Also: the
lease is decided by the database (two claims, one winner) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from domain.models import Group, Task, TaskKind, TaskState
from infrastructure.vk.world import generated_world
from tests.conftest import POSTGRES_ADMIN_URL, _async_url, _postgres_problem, require_service
from tests.processes import free_port, spawn, stop

ROOT = Path(__file__).resolve().parents[2]
WORLD = {"seed": 11, "communities": 1, "posts": 300, "comments": 20}
VK_TOKEN = "recovery-token"


# --- the lease in SQL -----------------------------------------------------------------------


async def test_two_runners_claiming_one_task_one_wins(uow_factory) -> None:
    now = datetime.now(UTC)
    async with uow_factory() as uow:
        task = await uow.tasks.add(Task(kind=TaskKind.ANALYZE, created_at=now))
        await uow.commit()

    async def claim(worker: str, at: datetime):
        async with uow_factory() as uow:
            claimed = await uow.tasks.claim(task.id, worker_id=worker, now=at, stale_before=at - timedelta(seconds=30))
            await uow.commit()
        return claimed

    results = await asyncio.gather(claim("a", now), claim("b", now))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].attempts == 1 and winners[0].state is TaskState.RUNNING
    loser = "b" if winners[0].worker_id == "a" else "a"
    assert await claim(loser, now + timedelta(seconds=10)) is None  # the lease is fresh
    async with uow_factory() as uow:  # the winner's progress write renews it and keeps progress
        from domain.models import Progress

        beat = await uow.tasks.heartbeat(task.id, worker_id=winners[0].worker_id, now=now + timedelta(seconds=20),
                                         progress=Progress(3, 10, "3/10"))
        assert await uow.tasks.heartbeat(task.id, worker_id=loser, now=now) is None
        await uow.commit()
    assert beat.progress.done == 3
    taken = await claim(loser, now + timedelta(seconds=51))  # stale now: taken over
    assert taken is not None and taken.attempts == 2 and taken.progress.done == 3
    async with uow_factory() as uow:
        assert await uow.tasks.finish(task.id, worker_id=winners[0].worker_id, state=TaskState.SUCCEEDED, now=now) is None
        cancelled = await uow.tasks.request_cancel(task.id, now=now)
        done = await uow.tasks.finish(task.id, worker_id=loser, state=TaskState.CANCELLED, now=now)
        await uow.commit()
    assert cancelled.cancel_requested and cancelled.state is TaskState.RUNNING
    assert done.state is TaskState.CANCELLED and done.heartbeat_at is None


# --- kill -9 of a worker --------------------------------------------------------------------


@pytest.fixture
async def postgres_url():
    require_service("PostgreSQL", await _postgres_problem())
    import asyncpg

    name = f"vkcp_recovery_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield _async_url(POSTGRES_ADMIN_URL, name)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _wait_until(predicate, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


class Cluster:
    """A VK emulator (3 requests/s: a collection takes a while), PostgreSQL, Redis, the
    composition root in this process (the API's side) and ``vkcp worker`` subprocesses."""

    def __init__(self, postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.world = generated_world(WORLD["seed"], communities=WORLD["communities"],
                                     posts_per_community=WORLD["posts"], comments_per_post=WORLD["comments"],
                                     closed_communities=0)
        [self.owner_id] = self.world.open_owner_ids()
        self.port = free_port()
        self.postgres_url, self.redis_url, self.redis_prefix = postgres_url, redis_url, redis_prefix
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATABASE_URL": postgres_url,
                    "VKCP_REDIS_URL": redis_url, "VKCP_REDIS_PREFIX": redis_prefix,
                    "VKCP_VK_API_URL": f"http://127.0.0.1:{self.port}/method", "VKCP_VK_TOKENS": VK_TOKEN,
                    "VKCP_VK_RPS": "3", "VKCP_VK_SANDBOX": "0", "VKCP_DATA_DIR": str(tmp_path)}
        self.procs: list[subprocess.Popen] = []
        self.container = None

    async def __aenter__(self) -> Cluster:
        from bootstrap import build_container
        from infrastructure.db.migrate import upgrade_async
        from infrastructure.settings import Settings

        self.emulator = spawn(
            ["-m", "infrastructure.vk.emulator", "--port", str(self.port), "--rps", "3", "--world", "generated",
             "--seed", str(WORLD["seed"]), "--communities", "1", "--posts", str(WORLD["posts"]),
             "--comments", str(WORLD["comments"]), "--closed-communities", "0", "--token", VK_TOKEN],
            {**os.environ, "PYTHONPATH": str(ROOT)}, self.tmp_path / "emulator.log")
        self.procs.append(self.emulator)
        async with httpx.AsyncClient() as client:
            async def emulator_up():
                try:
                    return (await client.get(f"http://127.0.0.1:{self.port}/_stats", timeout=2)).status_code == 200
                except httpx.TransportError:
                    return False

            await _wait_until(emulator_up, 60, "the VK emulator")
        await upgrade_async(self.postgres_url)
        settings = Settings(_env_file=None, database_url=self.postgres_url, redis_url=self.redis_url,
                            redis_prefix=self.redis_prefix, vk_api_url=f"http://127.0.0.1:{self.port}/method",
                            vk_tokens=VK_TOKEN, vk_rps=3, data_dir=self.tmp_path)
        self.container = await build_container(settings)
        wg = self.world.groups[-self.owner_id]
        async with self.adapters.uow_factory() as uow:
            self.group = await uow.groups.add(Group(vk_id=wg.id, screen_name=wg.screen_name, name=wg.name))
            await uow.commit()
        return self

    async def __aexit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        if self.container is not None:
            await self.container.aclose()

    @property
    def adapters(self):
        return self.container.adapters

    def start_worker(self) -> subprocess.Popen:
        n = sum(1 for p in self.procs if p is not self.emulator) + 1
        proc = spawn(["-m", "entrypoints.cli", "worker"], self.env, self.tmp_path / f"worker-{n}.log")
        self.procs.append(proc)
        return proc

    async def task(self, task_id: int) -> Task:
        async with self.adapters.uow_factory() as uow:
            return await uow.tasks.get(task_id)

    async def stored_comments(self) -> int:
        async with self.container.engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) FROM comments"))).scalar_one()

    async def finished(self, task_id: int, timeout: float) -> Task:
        async def ended():
            current = await self.task(task_id)
            return current if current.state.terminal else None

        return await _wait_until(ended, timeout, f"task {task_id} to end", step=0.1)


TAKEOVER_BOUND = 40.0  # issue #19: seconds from a kill -9 to another worker's first progress (71 s before)


async def test_a_worker_killed_mid_collection_is_replaced_and_the_result_is_exact(
    postgres_url, redis_url, redis_prefix, tmp_path
) -> None:
    """kill -9 of the worker running a parse, with a second worker idle beside it: the
    system's own recovery (nothing called from here) hands the task over, and the second
    worker's first progress on it comes within TAKEOVER_BOUND seconds of the kill."""
    from domain.tasks import start_parse

    async with Cluster(postgres_url, redis_url, redis_prefix, tmp_path) as cluster:
        expected = cluster.world.expected_comments(cluster.owner_id)
        first = cluster.start_worker()
        [task] = await start_parse(cluster.adapters, [cluster.group.id])

        # Kill it in the middle: some comments stored, far from all.
        await _wait_until(lambda: _at_least(cluster.stored_comments, len(expected) // 5), 60,
                          "a fifth of the comments")
        middle = await cluster.task(task.id)
        assert middle.state is TaskState.RUNNING and middle.attempts == 1, middle
        second = cluster.start_worker()  # idle: it takes over, no one is started after the kill
        await _wait_until(lambda: _logged(tmp_path / "worker-2.log", "Starting worker"), 60, "worker-2")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        left = (await cluster.stored_comments(), (await cluster.task(task.id)).progress.done)
        assert left[0] < len(expected)

        async def progressed() -> tuple[float, float] | None:
            current = await cluster.task(task.id)
            if current.attempts < 2:
                return None
            moved = (await cluster.stored_comments(), current.progress.done) != left or current.state.terminal
            return (time.monotonic() - killed_at, current.attempts) if moved else None

        took, _ = await _wait_until(progressed, 90, "another worker's first progress on the task", step=0.25)
        print(f"[worker recovery] kill -9 to worker-2's first progress: {took:.1f}s (bound {TAKEOVER_BOUND:.0f}s)")
        assert took < TAKEOVER_BOUND, f"the takeover's first progress came {took:.1f}s after the kill"
        assert second.poll() is None

        done = await cluster.finished(task.id, 120)
        assert done.state is TaskState.SUCCEEDED, done
        assert done.attempts == 2 and done.progress.done == done.progress.total
        async with cluster.container.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT owner_id, vk_id FROM comments"))).all()
        keys = [(o, v) for o, v in rows]
        assert len(keys) == len(set(keys)) == len(expected)
        assert {v for o, v in keys if o == cluster.owner_id} == expected
        assert "task.started" in (tmp_path / "worker-2.log").read_text(errors="replace")


async def test_cancelling_a_running_collection_ends_it_within_seconds(
    postgres_url, redis_url, redis_prefix, tmp_path
) -> None:
    from domain.tasks import cancel_task, start_parse

    async with Cluster(postgres_url, redis_url, redis_prefix, tmp_path) as cluster:
        cluster.start_worker()
        [task] = await start_parse(cluster.adapters, [cluster.group.id])
        await _wait_until(lambda: _at_least(cluster.stored_comments, 1), 60, "the collection to be under way")
        asked = time.monotonic()
        await cancel_task(cluster.adapters, task.id)
        done = await cluster.finished(task.id, 10)
        assert done.state is TaskState.CANCELLED and time.monotonic() - asked < 3
        # What was stored stays consistent: a post is marked collected only with all its comments.
        async with cluster.container.engine.connect() as conn:
            synced = (await conn.execute(text(
                "SELECT p.vk_id, p.comments_synced_count, count(c.id) FROM posts p "
                "LEFT JOIN comments c ON c.post_id = p.id "
                "WHERE p.comments_synced_count IS NOT NULL GROUP BY p.vk_id, p.comments_synced_count"
            ))).all()
        world_posts = {p.id: p for p in cluster.world.readable_posts(cluster.owner_id)}
        for post_id, _, stored in synced:
            assert stored == world_posts[post_id].comments_count, post_id
        # A fresh worker does not pick the cancelled task up again.
        assert (await cluster.task(task.id)).state is TaskState.CANCELLED


async def _at_least(count, wanted: int) -> bool:
    return await count() >= wanted


async def _logged(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text(errors="replace")
