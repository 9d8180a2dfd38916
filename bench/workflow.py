"""The review workflow at scale: Review pages filtered by status, assignee ("my queue") and tag
against the unfiltered page, their counts, ``stats``' counts by status, and a bulk
``setCommentState`` of 1,000 comments (with its 1,000s of audit events).

Run: ``python bench/workflow.py [--comments 250000] [--url postgresql+asyncpg://...]``.
Without ``--url``: a fresh PostgreSQL database on the local server (``VKCP_TEST_POSTGRES_URL``'s
admin DSN, dropped afterwards); ``--url sqlite+aiosqlite:///path`` for SQLite.

One community holds the comments; 5% of them are worked on (statuses cycling IN_PROGRESS, DONE,
IGNORED; assigned to one of five people; a third tagged), as a team's queue would be. Each read
runs ``--repeat`` times through the read model the API uses (``SqlReadModel``); the median and
the slowest are printed, in milliseconds. Nothing is asserted: this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

PEOPLE = ("Анна", "Борис", "Вера", "Глеб", "Дина")
WORDS = "кошка дорога мост велосипед новости район школа автобус парк снег ремонт магазин город".split()


async def fill(url: str, size: int) -> list[int]:
    from domain.auth import hash_token
    from domain.models import Comment, CommentStatus, Group, Post, WorkflowState
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.migrate import upgrade_async
    from infrastructure.db.uow import SqlUnitOfWork

    await upgrade_async(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    rng = random.Random(7)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    async with SqlUnitOfWork(sessions) as uow:
        group = await uow.groups.add(Group(vk_id=9001, screen_name="bench", name="Сообщество"))
        assert group.id is not None
        posts = [Post(group.owner_id, p, group.owner_id, "пост", t0) for p in range(1, 501)]
        await uow.posts.upsert_many(group.id, posts)
        for name in PEOPLE:
            await uow.api_tokens.add(name=name, role="operator", token_hash=hash_token(name))
        await uow.commit()
    ids: list[int] = []
    for start in range(0, size, 5000):
        batch = [
            Comment(group.owner_id, i + 1, 1 + i % 500, rng.randint(1, 60000),
                    " ".join(rng.choice(WORDS) for _ in range(8)), t0 + timedelta(seconds=37 * i))
            for i in range(start, min(start + 5000, size))
        ]
        async with SqlUnitOfWork(sessions) as uow:
            ids += (await uow.comments.upsert_many(group.id, batch)).values()
            await uow.commit()
    worked = rng.sample(ids, size // 20)
    statuses = (CommentStatus.IN_PROGRESS, CommentStatus.DONE, CommentStatus.IGNORED)
    async with SqlUnitOfWork(sessions) as uow:
        await uow.comments.set_workflow([
            WorkflowState(id=c, viewed=False, archived=False, status=statuses[i % 3], assignee=PEOPLE[i % 5],
                          tags=("срочно",) if i % 3 == 0 else (), note=None)
            for i, c in enumerate(worked)
        ])
        await uow.commit()
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text("ANALYZE"))
    await engine.dispose()
    return sorted(ids)


async def timed(repeat: int, run: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    await run()  # warm: plans, caches, the connection pool
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), result


async def measure(url: str, ids: list[int], repeat: int) -> None:
    from bootstrap import build_container
    from infrastructure.settings import Settings

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(_env_file=None, database_url=url, vk_sandbox=True, redis_url=None, data_dir=Path(data_dir))
        container = await build_container(settings)
        try:
            await _measure(container, ids, repeat)
        finally:
            await container.aclose()


async def _measure(container: Any, ids: list[int], repeat: int) -> None:
    from domain.models import CommentStatus
    from domain.queries import CommentFilter, CommentOrder
    from domain.review import StateChange, set_comment_state
    from domain.stats import stats_window

    reads = container.read_model
    order = CommentOrder()
    filters = {
        "every comment (no filter)": CommentFilter(),
        "statuses: [IN_PROGRESS]": CommentFilter(statuses=(CommentStatus.IN_PROGRESS,)),
        "my queue (Анна, NEW or IN_PROGRESS)": CommentFilter(
            assignees=("Анна",), statuses=(CommentStatus.NEW, CommentStatus.IN_PROGRESS)
        ),
        "tags: [срочно]": CommentFilter(tags=("срочно",)),
        "statuses: [NEW] (95% of them)": CommentFilter(statuses=(CommentStatus.NEW,)),
    }
    print(f"{'Review page of 50, newest first':45} {'median ms':>10} {'max ms':>8}   "
          f"{'count: median ms':>17} {'count':>8}")
    for name, flt in filters.items():
        page_median, page_max, _ = await timed(repeat, partial(reads.comments_page, flt, order, first=50))
        count_median, _, count = await timed(repeat, partial(reads.comments_count, flt))
        print(f"{name:45} {page_median:10.1f} {page_max:8.1f}   {count_median:17.1f} {count:8d}")

    window = stats_window(datetime.now(UTC).date(), since=None, until=None)
    stats_median, stats_max, found = await timed(repeat, lambda: reads.stats(window))
    by_status = ", ".join(f"{s.status.value} {s.comments}" for s in found.by_status)
    print(f"{'stats (all of it, byStatus included)':45} {stats_median:10.1f} {stats_max:8.1f}   ({by_status})")

    rng = random.Random(3)
    rounds = []
    for i in range(max(3, repeat // 4)):
        chosen = rng.sample(ids, 1000)
        change = StateChange(status=CommentStatus.DONE if i % 2 else CommentStatus.IN_PROGRESS,
                             assignee=PEOPLE[i % 5], add_tags=(f"партия {i}",))
        started = time.perf_counter()
        await set_comment_state(container.adapters, chosen, change, actor="bench")
        rounds.append((time.perf_counter() - started) * 1000)
    print(f"{'setCommentState of 1,000 comments (3 fields)':45} {statistics.median(rounds):10.1f} {max(rounds):8.1f}"
          "   (about 3,000 events each)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--url", help="a database URL; default: a fresh PostgreSQL database, dropped afterwards")
    args = parser.parse_args()
    if args.url:
        url, drop = args.url, None
    else:
        import asyncpg

        admin = os.environ.get("VKCP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        name = f"vkcp_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(admin)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
        drop = (admin, name)
    try:
        started = time.perf_counter()
        ids = await fill(url, args.comments)
        print(f"{url.split('+')[0]}: {len(ids):,} comments, {len(ids) // 20:,} worked on "
              f"(filled in {time.perf_counter() - started:.0f} s)")
        await measure(url, ids, args.repeat)
    finally:
        if drop:
            conn = await asyncpg.connect(drop[0])
            await conn.execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
