"""Memory benchmark: a worker's RSS must not grow with what it has stored.

One real ``vkcp worker`` collects a generated world of over 2,000,000 comments from the VK
emulator (its own process, a real HTTP server, a generous rate so the run takes minutes) into a
fresh PostgreSQL database, with a few keywords active so every batch is matched as in
production. The benchmark process only sets the run up (migrations, keywords, communities,
``startParse`` through the domain, so the jobs go through ARQ on Redis like the API's) and then
watches: the worker's RSS (``/proc/<pid>/status`` VmRSS, with any children) and the stored
comment count every ``SAMPLE_EVERY`` seconds.

Reported: the RSS once the first ``--first`` comments (200,000) are stored, and once ``--comments``
(2,000,000) are, their ratio, the peak, and the growth per stored comment between the two.
Target: the ratio at most ``TARGET_RATIO`` (1.15). A JSON line (``MEMORY_SUMMARY``) ends the output;
the exit status is 1 when the target is missed, 2 when the run itself broke.

Everything runs under its own names: a database ``vkcp_memory_<random>`` on the PostgreSQL of
``VKCP_TEST_POSTGRES_URL`` and a Redis key prefix of its own on ``VKCP_TEST_REDIS_URL``, both removed
at the end (``--keep`` keeps the database). The worker and the emulator run at nice 10.

    PYTHONPATH=. .venv/bin/python -m bench.memory                 # ~20 minutes
    PYTHONPATH=. .venv/bin/python -m bench.memory --comments 400000 --first 100000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from tests.processes import free_port, spawn, stop, wait_http

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("VKCP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("VKCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
VK_TOKENS = ("memory-vk-token-1", "memory-vk-token-2")
BACKGROUND_NICE = 10
TARGET_RATIO = 1.15  # RSS after --comments ÷ RSS after --first (issue #19)
SAMPLE_EVERY = 3.0  # seconds between RSS and stored-count readings
REPORT_EVERY = 30.0  # seconds between progress lines
STALL_AFTER = 180.0  # seconds without a new stored comment: the run is broken
KEYWORDS = ["кошка", "дорога", "ремонт", "борщ", "велосипед", "автобус", "приют", "бабушка"]


@dataclass
class Sample:
    t: float
    stored: int
    rss_mb: float


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)

    def first_at(self, stored: int) -> Sample | None:
        return next((s for s in self.samples if s.stored >= stored), None)


def rss_mb(pid: int) -> float:
    """VmRSS of the process and its children, in MB."""
    pids, todo, total = [], [pid], 0
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{current}/task/{tid}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total / 1024


def world_args(a: argparse.Namespace) -> list[str]:
    return ["--world", "generated", "--seed", str(a.seed), "--communities", str(a.communities),
            "--posts", str(a.posts), "--comments", str(a.per_post), "--closed-comment-posts", "0",
            "--closed-communities", "0"]


def world_size(a: argparse.Namespace) -> int:
    from infrastructure.vk.world import generated_world

    world = generated_world(a.seed, communities=a.communities, posts_per_community=a.posts,
                            comments_per_post=a.per_post, closed_comment_posts=0, closed_communities=0)
    return world.total_comments()


async def run(a: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="vkcp-memory-"))
    database = f"vkcp_memory_{uuid.uuid4().hex[:8]}"
    prefix = f"{database}:"
    dsn = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    vk_port = free_port()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    print(f"[memory] workdir {workdir}, database {database}", flush=True)
    began = time.monotonic()
    emulator = spawn(["-m", "infrastructure.vk.emulator", "--port", str(vk_port), "--rps", str(a.rps),
                      *world_args(a), *[arg for t in VK_TOKENS for arg in ("--token", t)]],
                     {**os.environ, "PYTHONPATH": str(ROOT)}, workdir / "emulator.log")
    procs["emulator"] = emulator
    os.setpriority(os.PRIO_PROCESS, emulator.pid, BACKGROUND_NICE)
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VKCP_DATA_DIR": str(workdir / "data"),
           "VKCP_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
           "VKCP_REDIS_URL": REDIS_URL, "VKCP_REDIS_PREFIX": prefix,
           "VKCP_VK_API_URL": f"http://127.0.0.1:{vk_port}/method", "VKCP_VK_TOKENS": ",".join(VK_TOKENS),
           "VKCP_VK_RPS": str(a.rps), "VKCP_VK_SANDBOX": "0", "VKCP_LOG_LEVEL": "WARNING"}
    container = None
    code = 2
    try:
        expected = await asyncio.to_thread(world_size, a)
        print(f"[memory] world: {expected:,} comments in {a.communities} communities of {a.posts} posts", flush=True)
        if expected < a.comments:
            raise SystemExit(f"the world holds {expected:,} comments, fewer than --comments {a.comments:,}")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "entrypoints.cli", "migrate", env=env,
                                                    cwd=ROOT, stdout=asyncio.subprocess.DEVNULL)
        assert await proc.wait() == 0, "vkcp migrate failed"
        await wait_http(f"http://127.0.0.1:{vk_port}/_stats", emulator, workdir / "emulator.log", 600)
        print(f"[memory] emulator up after {time.monotonic() - began:.0f}s", flush=True)

        worker = spawn(["-m", "entrypoints.cli", "worker"], env, workdir / "worker.log")
        procs["worker"] = worker
        os.setpriority(os.PRIO_PROCESS, worker.pid, BACKGROUND_NICE)

        for name, value in env.items():
            if name.startswith("VKCP_"):
                os.environ[name] = value
        from bootstrap import build_container
        from domain.groups import add_group
        from domain.keywords import KeywordInput, add_keywords
        from domain.tasks import start_parse
        from infrastructure.settings import Settings

        container = await build_container(Settings(_env_file=None))
        adapters = container.adapters
        await add_keywords(adapters, [KeywordInput(word) for word in KEYWORDS])
        groups = [await add_group(adapters.uow_factory, adapters.vk, f"https://vk.com/community{k + 1}")
                  for k in range(a.communities)]
        tasks = await start_parse(adapters, [g.id for g in groups if g.id is not None])
        print(f"[memory] {len(tasks)} parses started, worker pid {worker.pid}", flush=True)

        result = await watch(a, dsn, worker, workdir)
        code = report(a, result, time.monotonic() - began, workdir)
    finally:
        if container is not None:
            await container.aclose()
        for p in procs.values():
            stop(p)
        if not a.keep:
            with contextlib.suppress(Exception):
                admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                finally:
                    await admin.close()
        with contextlib.suppress(Exception):
            redis = Redis.from_url(REDIS_URL)
            try:
                keys = [k async for k in redis.scan_iter(match=f"*{prefix}*", count=1000)]
                for start in range(0, len(keys), 500):
                    await redis.delete(*keys[start:start + 500])
            finally:
                await redis.aclose()
    return code


async def watch(a: argparse.Namespace, dsn: str, worker, workdir: Path) -> Run:
    out = Run()
    conn = await asyncpg.connect(dsn)
    t0 = time.monotonic()
    reported = moved = t0
    try:
        while True:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}; see {workdir / 'worker.log'}")
            stored = await conn.fetchval("SELECT count(*) FROM comments")
            now = time.monotonic()
            sample = Sample(now - t0, stored, rss_mb(worker.pid))
            if out.samples and stored > out.samples[-1].stored:
                moved = now
            out.samples.append(sample)
            if now - reported >= REPORT_EVERY:
                reported = now
                rate = stored / max(1.0, now - t0)
                print(f"[memory] t={sample.t:6.0f}s stored {stored:>9,} ({rate:,.0f}/s) worker RSS "
                      f"{sample.rss_mb:7.1f} MB", flush=True)
            if stored >= a.comments:
                return out
            states = await conn.fetch("SELECT state, error FROM tasks WHERE kind = 'PARSE'")
            if states and all(r["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") for r in states):
                raise SystemExit(f"every parse ended with {stored:,} stored: {[tuple(r) for r in states]}")
            if now - moved > STALL_AFTER:
                raise SystemExit(f"nothing stored for {STALL_AFTER:.0f}s (at {stored:,}); see {workdir}")
            await asyncio.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - now)))
    finally:
        await conn.close()


def report(a: argparse.Namespace, run: Run, elapsed: float, workdir: Path) -> int:
    early, late = run.first_at(a.first), run.first_at(a.comments)
    assert early is not None and late is not None
    ratio = late.rss_mb / early.rss_mb
    per_comment = (late.rss_mb - early.rss_mb) * 1024 * 1024 / max(1, late.stored - early.stored)
    peak = max(s.rss_mb for s in run.samples)
    passed = ratio <= TARGET_RATIO
    print(f"[memory] worker RSS after {early.stored:,} stored: {early.rss_mb:.1f} MB (t={early.t:.0f}s)")
    print(f"[memory] worker RSS after {late.stored:,} stored: {late.rss_mb:.1f} MB (t={late.t:.0f}s)")
    print(f"[memory] ratio {ratio:.3f} (target <= {TARGET_RATIO}), growth {per_comment:.1f} bytes per stored "
          f"comment, peak {peak:.1f} MB, collection {late.t:.0f}s, whole run {elapsed:.0f}s: "
          f"{'PASS' if passed else 'FAIL'}")
    print("MEMORY_SUMMARY " + json.dumps({
        "first": early.stored, "first_rss_mb": round(early.rss_mb, 1), "last": late.stored,
        "last_rss_mb": round(late.rss_mb, 1), "ratio": round(ratio, 3), "target": TARGET_RATIO,
        "bytes_per_comment": round(per_comment, 1), "peak_mb": round(peak, 1), "seconds": round(late.t),
        "pass": passed, "logs": str(workdir),
        "rss_series": [
            (round(s.t), s.stored, round(s.rss_mb, 1)) for s in run.samples[:: max(1, len(run.samples) // 40)]
        ],
    }), flush=True)
    return 0 if passed else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comments", type=int, default=2_000_000, help="stored comments at the second reading")
    parser.add_argument("--first", type=int, default=200_000, help="stored comments at the first reading")
    parser.add_argument("--rps", type=float, default=40, help="VK requests per second per token (2 tokens)")
    parser.add_argument("--communities", type=int, default=2)
    parser.add_argument("--posts", type=int, default=5500, help="posts per community")
    parser.add_argument("--per-post", type=int, default=100, help="mean top-level comments per post")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
