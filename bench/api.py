"""API latency against PostgreSQL with a realistic amount of data.

Run: ``/tmp/venv/bin/python bench/api.py [--comments 250000] [--requests 200]``
(admin DSN from ``VKCP_TEST_POSTGRES_URL``, default the local ``postgres`` user).

It creates a fresh database ``vkcp_bench_<random>``, fills it in SQL (``generate_series``; no
Python loop over rows), and drops it at the end. Measured through the real ASGI app in-process
(httpx, auth off), sequential requests after a warm-up:

- a page of 100 comments with group, post, author and matches (with each match's keyword);
- the same page's rows fetched by one hand-written asyncpg query (json_agg for the matches)
  and serialized with orjson: the floor no GraphQL layer can beat;
- a page of 10 with the same nesting; a page deep in the list (after 150,000 rows, by cursor);
- ``stats``, uncached (every request computes it) and cached;
- SQL statements per request, counted on the engine (``before_cursor_execute``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
import structlog  # noqa: E402
from sqlalchemy import event  # noqa: E402

from graphql_api.app import create_app  # noqa: E402
from infrastructure.bootstrap import build_container, freeze_startup_objects  # noqa: E402
from infrastructure.db.aggregates import rebuild_statements  # noqa: E402
from infrastructure.db.migrate import upgrade_async  # noqa: E402
from infrastructure.db.queries import encode_cursor  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402

ADMIN_DSN = os.environ.get("VKCP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GROUPS, POSTS_PER_GROUP, AUTHORS, KEYWORDS = 20, 100, 20_000, 50
DEEP_OFFSET = 150_000

PAGE = """
query Page($first: Int!, $after: String) {
  comments(first: $first, after: $after) {
    edges {
      cursor
      node {
        id vkId text publishedAt likes deleted viewed archived
        group { id name screenName }
        post { id vkId text publishedAt }
        author { vkId name screenName }
        matches { keyword { id word } matchedText start end snippet }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

STATS = """
query Stats {
  stats(top: 10) {
    totals { groups posts comments replies matchedComments matches authors keywords }
    groups { groupId name comments matchedComments lastCollectedAt }
    topKeywords { keywordId word matches comments }
    topAuthors { vkId name comments }
    days { day comments matchedComments matches }
  }
}
"""

FLOOR = """
SELECT c.id, c.vk_id, c.text, c.published_at, c.likes, c.deleted, c.viewed, c.archived,
       g.id AS group_id, g.name AS group_name, g.screen_name AS group_screen_name,
       p.id AS post_id, p.vk_id AS post_vk_id, p.text AS post_text, p.published_at AS post_published_at,
       a.vk_id AS author_vk_id, a.name AS author_name, a.screen_name AS author_screen_name,
       COALESCE((
         SELECT json_agg(json_build_object('keywordId', k.id, 'word', k.word, 'matchedText', m.matched_text,
                                           'start', m.start_pos, 'end', m.end_pos, 'snippet', m.snippet)
                         ORDER BY m.start_pos)
         FROM matches m JOIN keywords k ON k.id = m.keyword_id WHERE m.comment_id = c.id
       ), '[]') AS matches
FROM comments c
JOIN groups g ON g.id = c.group_id
JOIN posts p ON p.id = c.post_id
LEFT JOIN authors a ON a.vk_id = c.from_id
ORDER BY c.published_at DESC, c.id DESC
LIMIT 100
"""


FILL = [
    f"""INSERT INTO groups (id, vk_id, screen_name, name, created_at, updated_at, last_success_at)
        SELECT i, 1000 + i, 'group' || i, 'Сообщество ' || i, now(), now(), now()
        FROM generate_series(1, {GROUPS}) i""",
    f"""INSERT INTO posts (id, group_id, owner_id, vk_id, from_id, text, published_at, comments_count)
        SELECT i, 1 + (i - 1) % {GROUPS}, -(1000 + 1 + (i - 1) % {GROUPS}), i, NULL,
               'Пост номер ' || i, now() - (i || ' hours')::interval, 0
        FROM generate_series(1, {GROUPS * POSTS_PER_GROUP}) i""",
    f"""INSERT INTO authors (vk_id, name, screen_name, updated_at)
        SELECT i, 'Автор ' || i, 'id' || i, now() FROM generate_series(1, {AUTHORS}) i""",
    f"""INSERT INTO keywords (id, word, word_key, created_at, updated_at)
        SELECT i, 'слово' || i, 'слово' || i, now(), now() FROM generate_series(1, {KEYWORDS}) i""",
    # Comments spread over ~a year; every third is a reply; every fifth has one or two matches.
    # i is BIGINT: i * 7919 passes int4's 2,147,483,647 at 271,000 comments.
    """INSERT INTO comments (id, group_id, post_id, owner_id, vk_id, post_vk_id, thread_vk_id, parent_vk_id,
                             from_id, text, published_at, likes, matches_count, created_at)
        SELECT i, p.group_id, p.id, p.owner_id, i, p.vk_id,
               CASE WHEN i % 3 = 0 THEN i - 1 END, CASE WHEN i % 3 = 0 THEN i - 1 END,
               1 + (i * 7919) % {authors},
               'Комментарий ' || i || ': кошки, собаки и немного текста вокруг, чтобы было похоже на жизнь',
               now() - ((i * 127) % 31536000 || ' seconds')::interval, i % 50,
               CASE WHEN i % 5 = 0 THEN 1 + (i / 5) % 2 ELSE 0 END, now()
        FROM generate_series(1::bigint, {comments}) i
        JOIN posts p ON p.id = 1 + i % {posts}""",
    f"""INSERT INTO matches (comment_id, keyword_id, matched_text, start_pos, end_pos, snippet)
        SELECT c.id, 1 + (c.id + n) % {KEYWORDS}, 'кошки', 16 + n * 8, 21 + n * 8, '…кошки, собаки и немного…'
        FROM comments c, generate_series(0, 1) n
        WHERE c.matches_count > n""",
]


async def fill(dsn: str, comments: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        for statement in FILL:
            await conn.execute(
                statement.format(authors=AUTHORS, comments=comments, posts=GROUPS * POSTS_PER_GROUP)
                if "{comments}" in statement
                else statement
            )
        for table in ("groups", "posts", "keywords", "comments"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # Plain SQL bypasses the repositories, which keep the statistics' aggregates.
        for statement in rebuild_statements("postgresql"):
            await conn.execute(statement)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


class Timing:
    def __init__(self, name: str, seconds: list[float], statements: float | None = None) -> None:
        self.name, self.seconds, self.statements = name, sorted(seconds), statements

    def p(self, q: float) -> float:
        return self.seconds[min(len(self.seconds) - 1, int(q * len(self.seconds)))] * 1000

    @property
    def rps(self) -> float:
        return len(self.seconds) / sum(self.seconds)


async def measure(name: str, call: Callable[[], Awaitable[object]], n: int, counter: list[int] | None = None) -> Timing:
    for _ in range(max(5, n // 10)):  # warm-up: connections, caches, JIT of nothing
        await call()
    seconds = []
    before = counter[0] if counter is not None else 0
    for _ in range(n):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    statements = (counter[0] - before) / n if counter is not None else None
    return Timing(name, seconds, statements)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comments", type=int, default=250_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    # One log line per request would measure the terminal, not the API.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    name = f"vkcp_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = ADMIN_DSN.rsplit("/", 1)[0]
    dsn = f"{base}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await upgrade_async(url)
        fill_seconds = await fill(dsn, args.comments)
        print(f"database {name}: {args.comments:,} comments filled in {fill_seconds:.1f} s", flush=True)
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                _env_file=None, database_url=url, data_dir=Path(data_dir), vk_sandbox=True, auth=False, redis_url=None
            )
            container = await build_container(settings)
            try:
                results = await run(container, dsn, args.requests)
            finally:
                await container.aclose()
        report(results)
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0


async def run(container, dsn: str, n: int) -> dict[str, Timing]:
    statements = [0]

    @event.listens_for(container.engine.sync_engine, "before_cursor_execute")
    def count(*_args) -> None:
        statements[0] += 1

    transport = httpx.ASGITransport(app=create_app(container))
    freeze_startup_objects()  # as `vkcp serve` does once the app is built
    results: dict[str, Timing] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

        async def gql(query: str, variables: dict | None = None) -> dict:
            response = await http.post("/graphql", json={"query": query, "variables": variables or {}})
            body = response.json()
            assert response.status_code == 200 and "errors" not in body, response.text[:500]
            return body["data"]

        first_page = await gql(PAGE, {"first": 100})
        assert len(first_page["comments"]["edges"]) == 100

        conn = await asyncpg.connect(dsn)
        try:
            key, row_id = await conn.fetchrow(
                "SELECT published_at, id FROM comments ORDER BY published_at DESC, id DESC OFFSET $1 LIMIT 1",
                DEEP_OFFSET - 1,
            )
            deep_cursor = encode_cursor(key, row_id)

            async def floor() -> bytes:
                rows = await conn.fetch(FLOOR)
                return orjson.dumps([dict(r) for r in rows])

            results["floor"] = await measure("floor: asyncpg + orjson, 100 rows", floor, n)
        finally:
            await conn.close()

        results["page100"] = await measure(
            "page of 100 (nested)", lambda: gql(PAGE, {"first": 100}), n, statements
        )
        results["page10"] = await measure("page of 10 (nested)", lambda: gql(PAGE, {"first": 10}), n, statements)
        results["deep100"] = await measure(
            f"page of 100 after {DEEP_OFFSET:,} rows", lambda: gql(PAGE, {"first": 100, "after": deep_cursor}), n, statements
        )
        cache = container.adapters.cache
        container.adapters.cache = None
        results["stats"] = await measure("stats (uncached)", lambda: gql(STATS), max(20, n // 5), statements)
        container.adapters.cache = cache
        results["stats_cached"] = await measure("stats (cached)", lambda: gql(STATS), n, statements)
    return results


def report(results: dict[str, Timing]) -> None:
    floor = results["floor"].p(0.5)
    print()
    print(f"{'request':<36} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'SQL/req':>8} {'p50/floor':>10}")
    for timing in results.values():
        statements = f"{timing.statements:.1f}" if timing.statements is not None else "1"
        print(
            f"{timing.name:<36} {timing.p(0.5):8.2f} {timing.p(0.99):8.2f} {timing.rps:8.1f} "
            f"{statements:>8} {timing.p(0.5) / floor:10.2f}"
        )
    page, page10, deep = results["page100"], results["page10"], results["deep100"]
    print()
    checks = [
        (f"SQL statements, page of 100: {page.statements:.1f} <= 6", page.statements <= 6),
        (f"SQL statements, page of 10: {page10.statements:.1f} == page of 100", page10.statements == page.statements),
        (f"p50 page of 100 / floor: {page.p(0.5) / floor:.2f} <= 4", page.p(0.5) <= 4 * floor),
        (f"p50 deep page / first page: {deep.p(0.5) / page.p(0.5):.2f} <= 1.5", deep.p(0.5) <= 1.5 * page.p(0.5)),
    ]
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
