"""Collection benchmark: how close the collector runs to VK's ceiling of 3 requests/s per token.

Starts the VK emulator as its own process (uvicorn, 3 requests/s per token enforced, error 6
beyond), over a generated world of 50,000+ comments in several communities, then collects it
with worker processes writing to one SQLite database (the real ``SqlUnitOfWork``):

  A. 1 token, 1 worker
  B. 1 token, 2 worker processes sharing it through ``RedisRateLimiter``
  C. 2 tokens, 2 workers (one token each)
  D. like A with ``fail_rate=0.1``: errors 1/10, dropped connections, 502s, 2-second stalls

and checks each run stored exactly the world. Definitions:
- minimal calls: wall pages + top-level comment pages + thread pages beyond the 10 inline
  replies (``VkWorld.minimal_calls``, of the world as it was built); minimum requests =
  ceil(minimal calls / 25);
- time ratio: wall time / (requests / (rps x tokens)): 1.00 means no slot was left unused.

``--drift RATE`` moves the walls while they are read (the emulator's ``WallDrift``: RATE
changes per request on average, ``--drift-budget`` in all): each scenario then gets a fresh
emulator, and what was stored is compared with what the emulator holds at the end (``/_world``):
comments VK held on the posts still on the wall, stored, missed, and stored ones VK no longer
has that were not marked deleted.

    PYTHONPATH=. python -m bench.collect [--quick] [--redis redis://127.0.0.1:6379/15] [--drift 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"requests": 1.05, "time": 1.15, "speedup": 1.8}


@dataclass(frozen=True)
class WorldSpec:
    seed: int = 42
    communities: int = 4
    posts: int = 250
    comments: int = 25  # mean top-level comments per post

    def build(self):
        from infrastructure.vk.world import generated_world

        return generated_world(self.seed, communities=self.communities, posts_per_community=self.posts,
                               comments_per_post=self.comments, closed_comment_posts=0, closed_communities=0)

    def cli(self) -> list[str]:
        return ["--world", "generated", "--seed", str(self.seed), "--communities", str(self.communities),
                "--posts", str(self.posts), "--comments", str(self.comments),
                "--closed-comment-posts", "0", "--closed-communities", "0"]


# --- worker process -------------------------------------------------------------------------


async def _no_report(done: int, total: int | None, message: str) -> None:
    return None


async def run_worker(args: argparse.Namespace) -> dict:
    from redis.asyncio import Redis

    from domain.collect import CollectOptions, collect_group
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.uow import SqlUnitOfWork
    from infrastructure.vk.gateway import HttpVkGateway
    from infrastructure.vk.limiter import RedisRateLimiter

    engine = create_engine(args.db)
    sessions = session_factory(engine)
    redis = Redis.from_url(args.redis) if args.redis else None
    limiter = RedisRateLimiter(redis, args.rps, prefix=args.prefix) if redis else None
    vk = HttpVkGateway(args.url, args.token, rps=args.rps, limiter=limiter, max_retries=10, timeout=15)
    groups = []
    async with SqlUnitOfWork(sessions) as uow:
        for owner in args.owners:
            group = await uow.groups.get_by_vk_id(-owner)
            if group is None:
                raise SystemExit(f"community {owner} is not stored: fill the database first")
            groups.append(group)
    await asyncio.sleep(max(0.0, args.start_at - time.time()))  # every worker starts together
    started = time.time()
    results = await asyncio.gather(*(
        collect_group(g, vk=vk, uow_factory=lambda: SqlUnitOfWork(sessions), options=CollectOptions(concurrency=64),
                      report=_no_report, now=datetime.now(UTC))
        for g in groups
    ))
    finished = time.time()
    await vk.aclose()
    if redis is not None:
        await redis.aclose()
    await engine.dispose()
    return {"started": started, "finished": finished, "comments": sum(r.comments_seen for r in results),
            "skipped": sum(len(r.skipped_posts) for r in results), "rereads": sum(r.rereads for r in results),
            "unsettled": sum(len(r.unsettled_posts) for r in results), "gateway": vk.stats.as_dict()}


# --- the benchmark --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """The emulator as a separate process, like VK is."""

    def __init__(
        self, spec: WorldSpec, rps: float, fail_rate: float = 0.0, drift: tuple[float, int, int] | None = None
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        moving = (
            ["--drift", str(drift[0]), "--drift-budget", str(drift[1]), "--drift-seed", str(drift[2])] if drift else []
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infrastructure.vk.emulator", "--port", str(self.port), "--rps", str(rps),
             "--fail-rate", str(fail_rate), *spec.cli(), *moving],
            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.base}/_stats", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.1)

    def reset(self) -> None:
        httpx.post(f"{self.base}/_reset")

    def stats(self) -> dict:
        return httpx.get(f"{self.base}/_stats").json()

    def world_now(self) -> dict:
        return httpx.get(f"{self.base}/_world", timeout=30).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


async def prepare_db(path: Path, world) -> str:
    from domain.models import Group
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.migrate import upgrade_async
    from infrastructure.db.uow import SqlUnitOfWork

    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    engine = create_engine(url)
    async with SqlUnitOfWork(session_factory(engine)) as uow:
        for owner in world.open_owner_ids():
            g = world.groups[-owner]
            await uow.groups.add(Group(vk_id=g.id, screen_name=g.screen_name, name=g.name))
        await uow.commit()
    await engine.dispose()
    return url


async def stored_comments(url: str) -> dict[tuple[int, int, int], bool]:
    """(owner_id, post vk_id, comment vk_id) -> deleted, for every stored comment."""
    from sqlalchemy import select

    from infrastructure.db.engine import create_engine
    from infrastructure.db.tables import comments

    engine = create_engine(url)
    async with engine.connect() as conn:
        c = comments.c
        rows = await conn.execute(select(c.owner_id, c.post_vk_id, c.vk_id, c.deleted))
        found = {(owner, post, vk_id): deleted for owner, post, vk_id, deleted in rows}
    await engine.dispose()
    return found


def compare(stored: dict[tuple[int, int, int], bool], expected: dict[str, dict[str, list[int]]]) -> dict:
    """What VK holds on the posts still on the walls, against what was stored of them."""
    held = {(int(o), int(p), c) for o, posts in expected.items() for p, ids in posts.items() for c in ids}
    live = {(int(o), int(p)) for o, posts in expected.items() for p in posts}
    on_live = {k: deleted for k, deleted in stored.items() if k[:2] in live}
    missed = held - on_live.keys()
    unnoticed = {k for k, deleted in on_live.items() if k not in held and not deleted}
    return {"held": len(held), "stored": len(held) - len(missed), "missed": len(missed), "unnoticed": len(unnoticed)}


@dataclass
class Scenario:
    name: str
    tokens: int
    workers: int
    shared_redis: bool = False
    fail_rate: float = 0.0


async def run_scenario(sc: Scenario, spec: WorldSpec, world, emulator: Emulator, rps: float,
                       redis_url: str | None, tmp: Path) -> dict:
    if sc.shared_redis and not redis_url:
        return {"name": sc.name, "skipped": "no Redis"}
    db = await prepare_db(tmp / f"{uuid.uuid4().hex[:8]}.sqlite3", world)
    owners = world.open_owner_ids()
    tokens = [f"bench-token-{i}" for i in range(sc.tokens)]
    prefix = f"vkcp-bench-{uuid.uuid4().hex[:8]}:"
    emulator.reset()
    start_at = time.time() + 3.0  # time for the workers to import and connect
    procs = []
    for w in range(sc.workers):
        cmd = [sys.executable, "-m", "bench.collect", "worker", "--url", f"{emulator.base}/method", "--db", db,
               "--rps", str(rps), "--start-at", str(start_at), "--owners", *map(str, owners[w::sc.workers]),
               "--token", tokens[w % len(tokens)]]
        if redis_url and sc.workers > 1:
            cmd += ["--redis", redis_url, "--prefix", prefix]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True))
    outputs = []
    for p in procs:
        out, _ = await asyncio.to_thread(p.communicate)
        if p.returncode != 0:
            raise RuntimeError(f"worker failed ({p.returncode})")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    stats = emulator.stats()
    stored = await stored_comments(db)
    if stats.get("drift"):
        end = compare(stored, emulator.world_now()["expected"])
    else:
        end = compare(stored, {
            str(o): {
                str(p.id): sorted([c.id for c in p.comments] + [r.id for c in p.comments for r in c.replies])
                for p in world.readable_posts(o)
            }
            for o in owners
        })
    exact = end["missed"] == 0 and end["unnoticed"] == 0
    total = end["held"]
    wall = max(o["finished"] for o in outputs) - min(o["started"] for o in outputs)
    minimal_calls = sum(world.minimal_calls(o) for o in owners)
    minimum = math.ceil(minimal_calls / 25)
    requests = stats["requests_total"]
    ideal = requests / (rps * sc.tokens)
    return {
        "name": sc.name, "comments": total, "wall": wall, "comments_per_s": total / wall,
        "requests": requests, "minimum": minimum, "minimal_calls": minimal_calls, "calls": stats["calls"],
        "ratio": requests / minimum, "ideal_time": ideal, "time_ratio": wall / ideal,
        "error6": stats["error6"], "errors": stats["errors"], "failures": stats["failures"], "exact": exact,
        "retries": sum(o["gateway"]["retries"] for o in outputs), "workers": outputs,
        "tightest_window": stats.get("tightest_window", {}), "end": end, "drift": stats.get("drift", {}),
        "rereads": sum(o["rereads"] for o in outputs), "unsettled": sum(o["unsettled"] for o in outputs),
    }


def report(results: list[dict]) -> bool:
    ok = True
    print(f"\n{'scenario':<34}{'comments':>9}{'wall s':>8}{'comm/s':>8}{'req':>6}{'min':>5}{'ratio':>7}"
          f"{'ideal s':>9}{'time':>6}{'err6':>6}{'exact':>7}")
    for r in results:
        if "skipped" in r:
            print(f"{r['name']:<34} skipped: {r['skipped']}")
            continue
        print(f"{r['name']:<34}{r['comments']:>9}{r['wall']:>8.1f}{r['comments_per_s']:>8.0f}{r['requests']:>6}"
              f"{r['minimum']:>5}{r['ratio']:>7.2f}{r['ideal_time']:>9.1f}{r['time_ratio']:>6.2f}{r['error6']:>6}"
              f"{'yes' if r['exact'] else 'NO':>7}")
        if r["failures"]:
            print(f"{'':<34}injected failures {r['failures']}, VK errors {r['errors']}, retries {r['retries']}")
        if r["drift"]:
            e = r["end"]
            print(f"{'':<34}moving: {sum(r['drift'].values())} changes {r['drift']}; VK held {e['held']} at the end, "
                  f"stored {e['stored']}, missed {e['missed']}, gone but unmarked {e['unnoticed']}; "
                  f"{r['rereads']} re-reads, {r['unsettled']} posts unsettled")
    by = {r["name"]: r for r in results if "skipped" not in r}
    checks = []
    for r in by.values():
        checks.append((f"{r['name']}: stored exactly the world", r["exact"]))
        if not r["failures"] and not r["drift"]:
            checks.append(
                (f"{r['name']}: requests <= {TARGETS['requests']} x minimum", r["ratio"] <= TARGETS["requests"])
            )
            checks.append(
                (f"{r['name']}: wall <= {TARGETS['time']} x requests/rps", r["time_ratio"] <= TARGETS["time"])
            )
            checks.append((f"{r['name']}: no error 6", r["error6"] == 0))
    a, c = by.get(SCENARIOS[0].name), by.get(SCENARIOS[2].name)
    if a and c:
        speedup = c["comments_per_s"] / a["comments_per_s"]
        checks.append((f"2 tokens give {speedup:.2f}x the comments/s of 1 (>= {TARGETS['speedup']})",
                       speedup >= TARGETS["speedup"]))
    print()
    for text, passed in checks:
        ok &= passed
        print(f"  [{'ok' if passed else 'FAIL'}] {text}")
    return ok


SCENARIOS = [
    Scenario("A. 1 token, 1 worker", tokens=1, workers=1),
    Scenario("B. 1 token, 2 workers (Redis)", tokens=1, workers=2, shared_redis=True),
    Scenario("C. 2 tokens, 2 workers", tokens=2, workers=2),
    Scenario("D. 1 token, 1 worker, fail 0.1", tokens=1, workers=1, fail_rate=0.1),
]


async def bench(args: argparse.Namespace) -> bool:
    spec = WorldSpec(communities=2, posts=120, comments=25) if args.quick else WorldSpec()
    world = spec.build()
    owners = world.open_owner_ids()
    print(f"world: {len(owners)} communities, {sum(len(world.walls[o]) for o in owners)} posts, "
          f"{sum(len(world.expected_comments(o)) for o in owners)} comments incl. replies; "
          f"{sum(world.minimal_calls(o) for o in owners)} minimal calls; VK limit {args.rps} requests/s per token")
    redis_url = args.redis
    if redis_url:
        from redis import Redis

        try:
            Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        except Exception as e:  # any failure means "no Redis for this run"
            print(f"Redis unavailable ({type(e).__name__}): scenario B skipped")
            redis_url = None
    results = []
    chosen = [s for s in SCENARIOS if not args.only or s.name[0] in args.only.upper()]
    drift = (args.drift, args.drift_budget, args.drift_seed) if args.drift else None
    with tempfile.TemporaryDirectory() as tmp:
        for fail_rate in sorted({s.fail_rate for s in chosen}):
            # A moving world moves once: each scenario gets its own.
            groups = [[s] for s in chosen if s.fail_rate == fail_rate] if drift else [
                [s for s in chosen if s.fail_rate == fail_rate]]
            for group in groups:
                emulator = Emulator(spec, args.rps, fail_rate, drift)
                try:
                    for sc in group:
                        print(f"running {sc.name} ...", flush=True)
                        results.append(await run_scenario(sc, spec, world, emulator, args.rps, redis_url, Path(tmp)))
                        if args.verbose:
                            for worker in results[-1].get("workers", []):
                                print("   worker:", json.dumps(worker))
                finally:
                    emulator.stop()
    return report(results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker", help="(internal) one collecting process")
    w.add_argument("--url", required=True)
    w.add_argument("--db", required=True)
    w.add_argument("--token", action="append", required=True)
    w.add_argument("--owners", type=int, nargs="+", required=True)
    w.add_argument("--rps", type=float, default=3.0)
    w.add_argument("--start-at", type=float, default=0.0)
    w.add_argument("--redis")
    w.add_argument("--prefix", default="vkcp-bench:")
    parser.add_argument("--quick", action="store_true", help="a smaller world (about 12,000 comments)")
    parser.add_argument("--rps", type=float, default=3.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--only", help="scenario letters to run, e.g. AC")
    parser.add_argument("--verbose", action="store_true", help="per-worker gateway stats")
    parser.add_argument("--drift", type=float, default=0.0, help="wall changes per request while collecting")
    parser.add_argument("--drift-budget", type=int, default=300, help="changes in all (with --drift)")
    parser.add_argument("--drift-seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "worker":
        print(json.dumps(asyncio.run(run_worker(args))))
        return
    sys.exit(0 if asyncio.run(bench(args)) else 1)


if __name__ == "__main__":
    main()
