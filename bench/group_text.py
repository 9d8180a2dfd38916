"""A community's text search and sorted pages on PostgreSQL. Two comparisons (``--section``):

- ``text``: the combined GIN index (group_id, folded text trigrams; migration 0016) against the
  text-only trigram index it replaced (0014);
- ``sort``: a community's pages by likes and by match count, each direction, with a text filter
  and without, with the btree indexes (group_id, likes, id) and (group_id, matches_count, id)
  (migration 0018) against without them (0017's schema).

Run: ``PYTHONPATH=. .venv/bin/python bench/group_text.py [--comments 1000000] [--runs 5] [--keep]
[--section text|sort|all]`` (or ``--database NAME`` to measure a kept one again; it is migrated
to the head first). Admin DSN from ``VKCP_TEST_POSTGRES_URL``.

The database is filled as ``bench/api.py`` fills it (its ``fill``), except that the 20
communities differ in size: post ``i`` of 2,000 belongs to community ``1 + 20 (i/2000)^2``, so
the largest holds 22% of the comments and the smallest 2.5%. The indexes compared then exist side
by side (for ``text``, the text-only one as ``bench_text_only``) and each statement's ``EXPLAIN
(ANALYZE, BUFFERS)`` runs in a transaction that drops the other variant's and rolls back (for
``sort``: the variant without drops both 0018 indexes), the variants alternating run by run, so
load from elsewhere hits both alike. Statements are the read
model's own (``comment_conditions``, ``_comment_query``, the page's order and limit), with
``group_id = N::bigint`` as asyncpg binds it (``$1::BIGINT``: btree_gin serves int8 = int8,
not the int8 = int4 of a bare literal). Printed per statement: the median execution time and
the shared buffers (hit + read) of each variant, and the plan's scans where they differ.

The write cost: 20,000 comments inserted (copies of stored rows) in a rolled-back transaction,
interleaved — ``text``: with the text-only index, the combined one, or both; ``sort``: 0017's
indexes, with either 0018 index alone, with both (0018) — the time, the server process's CPU
(``/proc``: PostgreSQL on this machine) and the WAL written; then ``VACUUM comments``
(rolled-back inserts leave dead rows that would skew later plans). The indexes stay larger
(their pages split for rows that were rolled back): to measure a kept database again as
freshly filled, ``REINDEX TABLE comments`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import asyncpg
from sqlalchemy import Select, func, select
from sqlalchemy.dialects import postgresql

from domain.queries import CommentFilter, CommentOrder, CommentSort, SortDirection
from infrastructure.db.filters import comment_conditions
from infrastructure.db.migrate import upgrade_async
from infrastructure.db.queries import _comment_order, _comment_query
from infrastructure.db.tables import TEXT_SEARCH_INDEX, comments

api = importlib.import_module("api")  # bench/api.py, beside this script: its database fill
TEXT_ONLY = "bench_text_only"
TEXT_VARIANTS = {"text-only (0014)": (TEXT_SEARCH_INDEX,), "combined (0016)": (TEXT_ONLY,)}  # name -> dropped
SORT_INDEXES = ("ix_comments_group_id_likes_id", "ix_comments_group_id_matches_count_id")  # migration 0018
SORT_VARIANTS = {"without (0017)": SORT_INDEXES, "with (0018)": ()}
WORDS = ["пожар", "кошка", "ремонт дорога", "ст"]  # 2.4%, 5%, rare together, no trigram
GROUPS = [1, 8, 20]  # 224,000, 40,500 and 25,000 comments at 1,000,000
ORDERS = {"new": CommentSort.PUBLISHED_AT, "likes": CommentSort.LIKES, "matches": CommentSort.MATCHES_COUNT}
SKEWED_POSTS = f"""
    INSERT INTO posts (id, group_id, owner_id, vk_id, from_id, text, published_at, comments_count)
    SELECT i, g, -(1000 + g), i, NULL, 'Пост номер ' || i, now() - (i || ' hours')::interval, 0
    FROM generate_series(1, {api.GROUPS * api.POSTS_PER_GROUP}) i,
         LATERAL (SELECT 1 + floor({api.GROUPS} * power((i - 1) / {api.GROUPS * api.POSTS_PER_GROUP}.0, 2))::int
                  AS g) s"""
INSERT_COPIES = """
    INSERT INTO comments (group_id, post_id, owner_id, vk_id, post_vk_id, thread_vk_id, parent_vk_id, from_id, text,
                          text_folded, published_at, likes, viewed, archived, matches_count, created_at)
    SELECT group_id, post_id, owner_id, vk_id + 100000000, post_vk_id, thread_vk_id, parent_vk_id, from_id, text,
           text_folded, published_at, likes, viewed, archived, matches_count, created_at
    FROM comments WHERE id BETWEEN $1 AND $1 + 19999"""


def sql(statement: Select) -> str:
    rendered = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return re.sub(r"group_id = (\d+)", r"group_id = \1::bigint", rendered)


def page(flt: CommentFilter, sort: CommentSort, direction: SortDirection = SortDirection.DESC) -> str:
    keyset = _comment_order(CommentOrder(field=sort, direction=direction))
    return sql(_comment_query().where(*comment_conditions(flt, "postgresql")).order_by(*keyset.by()).limit(101))


def count(flt: CommentFilter) -> str:
    ids = select(comments.c.id).where(*comment_conditions(flt, "postgresql")).subquery()
    return sql(select(func.count()).select_from(ids))


def text_cases() -> list[tuple[str, str, str]]:
    found = []
    for group in GROUPS:
        for words in WORDS:
            flt = CommentFilter(group_ids=(group,), text=words)
            found += [(f"g{group}+text {name}", words, page(flt, sort)) for name, sort in ORDERS.items()]
            found.append((f"g{group}+text count", words, count(flt)))
    for words in WORDS:
        flt = CommentFilter(text=words)
        found += [(f"text {name}", words, page(flt, ORDERS[name])) for name in ("new", "likes")]
        found.append(("text count", words, count(flt)))
    for group in GROUPS:
        flt = CommentFilter(group_ids=(group,))
        found += [(f"g{group} {name}", "", page(flt, sort)) for name, sort in ORDERS.items()]
    return found


def sort_cases() -> list[tuple[str, str, str]]:
    """A community's pages by likes and by match count, most first and least first, without text
    and with each search word."""
    found = []
    for group in GROUPS:
        for words in ["", *WORDS]:
            flt = CommentFilter(group_ids=(group,), text=words or None)
            for name in ("likes", "matches"):
                for direction in (SortDirection.DESC, SortDirection.ASC):
                    label = f"g{group}{'+text' if words else ''} {name} {direction.value.lower()}"
                    found.append((label, words, page(flt, ORDERS[name], direction)))
    return found


async def explain(conn: asyncpg.Connection, dropped: tuple[str, ...], statement: str) -> tuple[float, int, str]:
    transaction = conn.transaction()
    await transaction.start()
    try:
        for index in dropped:
            await conn.execute(f'DROP INDEX "{index}"')
        plan = [row[0] for row in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement)]
    finally:
        await transaction.rollback()  # the index back
    timed = re.search(r"Execution Time: ([\d.]+)", plan[-1])
    assert timed is not None, plan
    buffers = re.search(r"shared hit=(\d+)(?: read=(\d+))?", "\n".join(plan))
    touched = int(buffers.group(1)) + int(buffers.group(2) or 0) if buffers else 0
    scans = [line.strip().lstrip("-> ").split("  (")[0].replace("ix_comments_", "")
             for line in plan if " Scan " in line or line.startswith(("Index", "Bitmap", "Seq", "Parallel"))]
    return float(timed.group(1)), touched, " / ".join(scans[:3])


async def measure(
    conn: asyncpg.Connection, runs: int, variants: Mapping[str, tuple[str, ...]], statements: list[tuple[str, str, str]]
) -> None:
    if runs == 0:
        return
    names = list(variants)
    print(f"{'statement':22s} {'search':14s} " + " ".join(f"{n:>26s}" for n in names) + "   (median ms, buffers)")
    for label, words, statement in statements:
        times: dict[str, list[float]] = {n: [] for n in names}
        seen: dict[str, tuple[int, str]] = {}
        for run in range(runs):
            for name in names if run % 2 == 0 else names[::-1]:
                ms, touched, scans = await explain(conn, variants[name], statement)
                times[name].append(ms)
                seen[name] = (touched, scans)
        cells = " ".join(f"{statistics.median(times[n]):13.2f} {seen[n][0]:9d} b" for n in names)
        plans = {seen[n][1] for n in names}
        print(f"{label:22s} {words:14s} {cells}   {' | '.join(seen[n][1] for n in names) if len(plans) > 1 else ''}",
              flush=True)


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a PostgreSQL server process on this machine; 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def write_cost(conn: asyncpg.Connection, drops: Mapping[str, tuple[str, ...]], rounds: int = 6) -> None:
    """Inserting 20,000 comments with each variant's indexes (name -> the indexes it drops).

    The WAL is the insert's own, as ``EXPLAIN (ANALYZE, WAL)`` counts it (the server is shared:
    the distance between two LSNs counts everyone's writes): its records, its bytes and how many
    full-page images are among them (those depend on how recently a checkpoint ran). Besides each variant's
    medians: the median over rounds of its ratio to the first variant in the same round (the
    variants of a round run back to back)."""
    names = list(drops)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in names}  # the server process's own CPU
    wal_bytes: dict[str, list[int]] = {name: [] for name in names}  # full-page images included
    wal_records: dict[str, list[int]] = {name: [] for name in names}
    images: dict[str, list[int]] = {name: [] for name in names}  # full-page images written
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    total = await conn.fetchval("SELECT max(id) FROM comments")
    for r in range(rounds):
        first_id = 1 + (r * 250_000) % max(1, total - 20_000)
        statement = "EXPLAIN (ANALYZE, WAL, TIMING OFF, COSTS OFF) " + INSERT_COPIES.replace("$1", str(first_id))
        for name in names if r % 2 == 0 else names[::-1]:
            transaction = conn.transaction()
            await transaction.start()
            try:
                for index in drops[name]:
                    await conn.execute(f'DROP INDEX "{index}"')
                cpu, started = backend_cpu(backend), time.perf_counter()
                plan = "\n".join(row[0] for row in await conn.fetch(statement))
                seconds[name].append(time.perf_counter() - started)
                cpu_seconds[name].append(backend_cpu(backend) - cpu)
            finally:
                await transaction.rollback()
            wal = re.search(r"WAL: records=(\d+)(?: fpi=(\d+))? bytes=(\d+)", plan)
            assert wal is not None, plan
            wal_records[name].append(int(wal.group(1)))
            images[name].append(int(wal.group(2) or 0))
            wal_bytes[name].append(int(wal.group(3)))
    first = names[0]

    def ratio(values: dict[str, list], name: str) -> str:
        pairs = [v / b for v, b in zip(values[name], values[first], strict=True) if b]
        return f"{statistics.median(pairs):.3f}x" if pairs else "-"

    for name in names:
        median = statistics.median(seconds[name])
        print(f"insert 20,000 comments, {name:16s}: median {median * 1000:6.0f} ms ({ratio(seconds, name)}), "
              f"{20_000 / median:8,.0f} rows/s, "
              f"CPU {statistics.median(cpu_seconds[name]) * 1000:.0f} ms ({ratio(cpu_seconds, name)}), "
              f"WAL {statistics.median(wal_records[name]):,.0f} records ({ratio(wal_records, name)}), "
              f"{statistics.median(wal_bytes[name]) / 2**20:.1f} MiB ({ratio(wal_bytes, name)}) "
              f"with {statistics.median(images[name]):.0f} full-page images", flush=True)
    print("  times (ms): " + "; ".join(f"{n}: {', '.join(f'{v * 1000:.0f}' for v in seconds[n])}" for n in names))
    await conn.execute("VACUUM comments")


async def print_sizes(conn: asyncpg.Connection, indexes: list[str]) -> None:
    sizes = await conn.fetch(
        "SELECT relname, pg_size_pretty(pg_relation_size(oid)) AS size FROM pg_class WHERE relname = ANY($1)", indexes
    )
    print(f"indexes {', '.join(s['relname'] + ' ' + s['size'] for s in sizes)}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="runs per statement and variant (0: the write cost only)")
    parser.add_argument("--database", metavar="NAME", help="measure this kept database (migrated, not filled)")
    parser.add_argument("--keep", action="store_true", help="keep the database (and print its name)")
    parser.add_argument("--write-rounds", type=int, default=6, help="interleaved rounds of the insert measurement")
    parser.add_argument("--section", choices=["text", "sort", "all"], default="all",
                        help="text: 0016's GIN index against 0014's; sort: 0018's btree indexes against none")
    args = parser.parse_args()
    name = args.database or f"vkcp_bench_{uuid.uuid4().hex[:10]}"
    dsn = f"{api.ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    if not args.database:
        admin = await asyncpg.connect(api.ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
    try:
        await upgrade_async(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
        if not args.database:
            api.FILL[1] = SKEWED_POSTS
            print(f"database {name}: {args.comments:,} comments filled in {await api.fill(dsn, args.comments):.1f} s",
                  flush=True)
        conn = await asyncpg.connect(dsn)
        try:
            definition = await conn.fetchval("SELECT pg_get_indexdef($1::regclass)", TEXT_SEARCH_INDEX)
            assert "group_id" in definition, f"{TEXT_SEARCH_INDEX} is not 0016's: {definition}"
            await conn.execute("SET maintenance_work_mem = '512MB'")
            groups = await conn.fetch("SELECT group_id, count(*) FROM comments GROUP BY 1 ORDER BY 1")
            print(f"{sum(g['count'] for g in groups):,} comments; "
                  f"communities {', '.join(str(g['count']) for g in groups)}", flush=True)
            if args.section in ("text", "all"):
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {TEXT_ONLY} ON comments USING gin (text_folded gin_trgm_ops)"
                )
                await print_sizes(conn, [TEXT_SEARCH_INDEX, TEXT_ONLY])
                await measure(conn, args.runs, TEXT_VARIANTS, text_cases())
                await write_cost(conn, {"text-only": (TEXT_SEARCH_INDEX,), "combined": (TEXT_ONLY,), "both": ()},
                                 args.write_rounds)
                await conn.execute(f"DROP INDEX {TEXT_ONLY}")
            if args.section in ("sort", "all"):
                await print_sizes(conn, list(SORT_INDEXES))
                await measure(conn, args.runs, SORT_VARIANTS, sort_cases())
                await write_cost(conn, {"0017": SORT_INDEXES, "0017 + likes": SORT_INDEXES[1:],
                                        "0017 + matches": SORT_INDEXES[:1], "0018 (both)": ()}, args.write_rounds)
            print(f"load average after {os.getloadavg()[0]:.2f}")
        finally:
            await conn.execute(f"DROP INDEX IF EXISTS {TEXT_ONLY}")
            await conn.close()
    finally:
        if args.keep or args.database:
            print(f"kept database {name}")
        else:
            admin = await asyncpg.connect(api.ADMIN_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
