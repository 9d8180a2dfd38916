"""Alert latency benchmark: from a comment stored to its webhook received, INSTANT mode.

A real ``vkcp serve`` (embedded: jobs and the alert delivery loop in-process; SQLite in a fresh
data dir, or ``--postgres`` for a fresh PostgreSQL database) with one INSTANT rule pointed at a webhook
receiver in this process (a real HTTP server on loopback that verifies every Standard Webhooks
signature). This process stores matched comments the way the collector does (comments, matches
and the outbox in one transaction) at ``--rate`` a minute, evenly spaced, and notes when each
commit returned; the receiver notes when each comment's webhook arrived.

Reported: p50, p99 and max of (received - stored), deliveries, duplicates (a webhook-id twice),
bad signatures, and the server's RSS (``/proc/<pid>/status`` VmRSS) at the start, the end and its
peak, sampled every 5 s. Target: p99 <= 2 s. A JSON line (``ALERTS_SUMMARY``) ends the output;
exit status 1 when the target is missed or something was lost or duplicated.

    PYTHONPATH=. .venv/bin/python -m bench.alerts                  # 2 minutes, 1,000 a minute
    PYTHONPATH=. .venv/bin/python -m bench.alerts --minutes 5 --postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from domain.alerts import record_matched
from domain.models import Comment, Group, Keyword, Match, Post
from infrastructure.db.engine import create_engine, session_factory
from infrastructure.db.uow import SqlUnitOfWork
from tests.processes import free_port, spawn, stop, wait_http
from tests.receivers import WebhookReceiver

TARGET_P99 = 2.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB (0 once it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="vkcp-bench-alerts-"))
    port = free_port()
    env = {**os.environ, "VKCP_DATA_DIR": str(data_dir), "VKCP_AUTH": "off", "VKCP_VK_SANDBOX": "1",
           "VKCP_PUBLIC_URL": "https://vkcp.example.com", "PYTHONPATH": str(Path.cwd())}
    env.pop("VKCP_REDIS_URL", None)
    if args.database_url:
        env["VKCP_DATABASE_URL"] = args.database_url
        from infrastructure.db.migrate import upgrade_async

        await upgrade_async(args.database_url)
    database_url = args.database_url or f"sqlite+aiosqlite:///{(data_dir / 'vkcp.sqlite3').resolve()}"
    log = data_dir / "serve.log"
    server = spawn(["-m", "entrypoints.cli", "serve", "--port", str(port)], env, log)
    engine = None
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", server, log)
        async with WebhookReceiver() as receiver, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
            created = (await api.post("/graphql", json={"query": """
                mutation($input: AlertRuleInput!) {
                  createAlertRule(input: $input) { alertRule { id } webhookSecret errors { code message } }
                }""", "variables": {"input": {"name": "bench", "channels": [receiver.url]}}})).json()
            payload = created["data"]["createAlertRule"]
            assert payload["errors"] == [], payload
            secret = payload["webhookSecret"]

            engine = create_engine(database_url)
            sessions = session_factory(engine)

            def uow() -> SqlUnitOfWork:
                return SqlUnitOfWork(sessions)

            async with uow() as u:
                group = await u.groups.add(Group(vk_id=10**9, screen_name="bench", name="Bench"))
                assert group.id is not None
                group_id = group.id
                await u.posts.upsert_many(group_id, [Post(owner_id=-(10**9), vk_id=1, from_id=-1, text="p",
                                                          published_at=T0)])
                keyword = await u.keywords.add(Keyword(id=0, word="кошка"))
                assert keyword is not None
                await u.commit()

            stored_at: dict[int, float] = {}
            rss: list[float] = [rss_mb(server.pid)]
            total = int(args.rate * args.minutes)
            interval = 60.0 / args.rate
            started = time.monotonic()
            last_sample = started
            for n in range(1, total + 1):
                due = started + (n - 1) * interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                comment = Comment(owner_id=-(10**9), vk_id=n, post_vk_id=1, from_id=100 + n,
                                  text=f"кошка номер {n}", published_at=T0 + timedelta(seconds=n))
                async with uow() as u:
                    ids = await u.comments.upsert_many(group_id, [comment])
                    [cid] = ids.values()
                    await u.matches.replace_for_comments([cid], [Match(cid, keyword.id, "кошка", 0, 5, "кошка")])
                    await record_matched(u, [cid], datetime.now(UTC))
                    await u.commit()
                stored_at[cid] = time.time()
                if time.monotonic() - last_sample >= 5:
                    rss.append(rss_mb(server.pid))
                    last_sample = time.monotonic()
            with contextlib.suppress(AssertionError):
                await receiver.wait_for(total, timeout=60)
            rss.append(rss_mb(server.pid))

            arrived: dict[int, float] = {}
            for r in receiver.received:
                cid = r.payload["comment"]["id"]
                arrived.setdefault(cid, r.at)
            latencies = [arrived[c] - stored_at[c] for c in stored_at if c in arrived]
            bad = 0
            from standardwebhooks.webhooks import Webhook, WebhookVerificationError

            hook = Webhook(secret)
            for r in receiver.received:
                try:
                    hook.verify(r.body, r.headers)
                except WebhookVerificationError:
                    bad += 1
            summary = {
                "mode": "INSTANT", "database": "postgresql" if args.database_url else "sqlite",
                "rate_per_minute": args.rate, "stored": len(stored_at), "delivered": len(arrived),
                "duplicates": receiver.duplicates(), "bad_signatures": bad,
                "p50_s": round(statistics.median(latencies), 3) if latencies else None,
                "p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
                "max_s": round(max(latencies), 3) if latencies else None,
                "serve_rss_mb": {"start": round(rss[0], 1), "end": round(rss[-1], 1), "peak": round(max(rss), 1)},
                "target_p99_s": TARGET_P99,
            }
    finally:
        if engine is not None:
            await engine.dispose()
        stop(server)
    print(f"stored {summary['stored']} matched comments at {args.rate}/min; delivered {summary['delivered']}, "
          f"duplicates {summary['duplicates']}, bad signatures {bad}")
    print(f"stored -> webhook received: p50 {summary['p50_s']} s, p99 {summary['p99_s']} s, max {summary['max_s']} s "
          f"(target p99 <= {TARGET_P99} s)")
    print(f"serve RSS: start {summary['serve_rss_mb']['start']} MB, end {summary['serve_rss_mb']['end']} MB, "
          f"peak {summary['serve_rss_mb']['peak']} MB")
    print("ALERTS_SUMMARY " + json.dumps(summary))
    ok = (summary["delivered"] == summary["stored"] and summary["duplicates"] == 0 and bad == 0
          and summary["p99_s"] is not None and summary["p99_s"] <= TARGET_P99)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0, help="how long to store matches (default 2)")
    parser.add_argument("--rate", type=float, default=1000.0, help="matched comments a minute (default 1000)")
    parser.add_argument("--postgres", action="store_true",
                        help="a fresh PostgreSQL database (VKCP_TEST_POSTGRES_URL's server) instead of SQLite")
    args = parser.parse_args()
    return asyncio.run(with_database(args))


async def with_database(args: argparse.Namespace) -> int:
    args.database_url = None
    if not args.postgres:
        return await run(args)
    from tests.conftest import postgres_database

    async with postgres_database() as url:
        args.database_url = url
        return await run(args)


if __name__ == "__main__":
    sys.exit(main())
