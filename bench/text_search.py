"""The comment filter's ``text`` on PostgreSQL: what a text page and its count cost the database.

Runs ``EXPLAIN (ANALYZE, BUFFERS)`` of three statements per search, ``--runs`` times each, on a
database ``bench/api.py --fill-only`` filled (250,000 comments by default), and prints the median
execution time, the plan's top scan and the shared buffers it touched:

- a page of 100 (101 rows: one more tells whether there is a next page), newest first;
- the same page in one community (the console's usual view);
- the count (``totalCount``).

The condition is the one ``infrastructure.db.filters.text_condition`` builds, compiled with its
literals. A database from before migration 0014 has no ``comments.text_folded``: there the
script uses 0006's expression (``lower(text COLLATE "und-x-icu")`` with "ё" as "е", which its
trigram index is on), so one checkout measures both sides:

    PYTHONPATH=. python -m bench.api --comments 250000 --fill-only        # on main: before
    createdb -T <that database> <copy>; migrate the copy with this checkout  # after
    PYTHONPATH=. python -m bench.text_search --database <name> [--runs 11]

Timings are the server's own (EXPLAIN ANALYZE), one statement at a time: run it on a quiet
machine and note the load average it prints beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics

import asyncpg
from sqlalchemy.dialects import postgresql

from domain.queries import CommentFilter
from infrastructure.db.filters import text_condition

SEARCHES = ["кошка", "мост", "котенок", "КОТЁНОК", "ремонт дорога", "рыбалка грибы", "ст"]
OLD_FOLDED = """replace(lower(text COLLATE "und-x-icu"), 'ё', 'е')"""


def condition(words: str, *, stored: bool) -> str:
    found = text_condition(CommentFilter(text=words), "postgresql")
    assert found is not None
    sql = str(found.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    sql = sql.replace("comments.text_folded", "text_folded")
    return sql if stored else sql.replace("text_folded", OLD_FOLDED)


STATEMENTS = {
    "page of 100": "SELECT id FROM comments WHERE {c} ORDER BY published_at DESC, id DESC LIMIT 101",
    "group page": "SELECT id FROM comments WHERE group_id = 3 AND {c} ORDER BY published_at DESC, id DESC LIMIT 101",
    "count": "SELECT count(*) FROM comments WHERE {c}",
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="a filled database's name")
    parser.add_argument("--dsn", default=os.environ.get("VKCP_BENCH_DSN", "postgresql://127.0.0.1:5432/postgres"),
                        help="where PostgreSQL is (its database part is replaced by --database)")
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    dsn = re.sub(r"/[^/]*$", f"/{args.database}", args.dsn)
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'comments' AND column_name = 'text_folded'"
        ) == 1
        total = await conn.fetchval("SELECT count(*) FROM comments")
        print(f"database {args.database}: {total:,} comments; folded text "
              f"{'stored (comments.text_folded)' if stored else 'computed (0006 expression)'}; "
              f"load average before {os.getloadavg()[0]:.2f}")
        print(f"{'statement':12s} {'search':15s} {'median ms':>10s} {'rows':>7s} {'buffers':>8s}  top scan")
        for name, template in STATEMENTS.items():
            for words in SEARCHES:
                sql = "EXPLAIN (ANALYZE, BUFFERS) " + template.format(c=condition(words, stored=stored))
                times, plan = [], []
                for _ in range(args.runs):
                    plan = [row[0] for row in await conn.fetch(sql)]
                    timed = re.search(r"Execution Time: ([\d.]+)", plan[-1])
                    assert timed is not None, plan[-1]
                    times.append(float(timed.group(1)))
                scan = next((line.strip().lstrip("-> ").split("  (")[0] for line in plan if "Scan" in line), "?")
                rows = re.search(r"actual time=[\d.]+\.\.[\d.]+ rows=(\d+)", plan[0])
                buffers = re.search(r"shared hit=(\d+)", "\n".join(plan))
                print(f"{name:12s} {words:15s} {statistics.median(times):10.2f} {rows.group(1) if rows else '?':>7s} "
                      f"{buffers.group(1) if buffers else '?':>8s}  {scan}")
        print(f"load average after {os.getloadavg()[0]:.2f}")
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
