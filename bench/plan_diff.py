"""The read plan's differential test at scale: tens of thousands of random documents.

Run: ``.venv/bin/python bench/plan_diff.py [--documents 20000] [--database sqlite|postgres|both] [--seed 1]``

Each database is seeded as ``tests/e2e/test_read_plan.py`` seeds it (sandbox communities
parsed, keywords matched, some comments viewed or archived). Every document
(``tests/e2e/read_documents.py``) goes to an app with the plan and one without, with the same
role (or no token) and request id; any difference in status, media type or body bytes is
printed with the document. The counts say how many the plan answered itself, how many it
handed back at run time, and how many it never compiled (they ask for what it does not know).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import structlog

from graphql_api import plan as plan_module
from infrastructure.db.queries import SqlReadModel
from tests.conftest import postgres_database
from tests.e2e.test_read_plan import pair_over, requests, seed


class Tally:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        run, find = plan_module.Plan.run, plan_module.PlanCache.find

        async def run_counted(plan, *args):
            data = await run(plan, *args)
            self.counts["answered by the plan" if data is not None else "handed back at run time"] += 1
            return data

        def find_counted(cache, executor):
            found = find(cache, executor)
            if not isinstance(found, plan_module.Plan):  # why not: plan.Unsupported
                self.counts[f"not compiled (fields it does not know: {found.kind})"] += 1
            return found

        projected = SqlReadModel.comments_page_projected

        async def projected_counted(read_model, *args, **kwargs):
            self.counts["pages whose nodes PostgreSQL wrote"] += 1
            return await projected(read_model, *args, **kwargs)

        # Counting wrappers put on the classes for the run (a bench, not the product).
        SqlReadModel.comments_page_projected = projected_counted  # type: ignore[method-assign,assignment]
        plan_module.Plan.run = run_counted  # type: ignore[method-assign]
        plan_module.PlanCache.find = find_counted  # type: ignore[method-assign]


async def compare(kind: str, documents: int, seed_value: int, tally: Tally) -> int:
    with tempfile.TemporaryDirectory() as data_dir:
        directory = Path(data_dir)
        database = postgres_database() if kind == "postgres" else contextlib.nullcontext(
            f"sqlite+aiosqlite:///{directory / 'vkcp.sqlite3'}"
        )
        async with database as url, pair_over(url, directory) as pair:
            known = await seed(pair)
            differences = 0
            started = time.perf_counter()
            for index, query, variables, role in requests(known, seed_value, documents):
                with_plan, without = await pair.both(query, variables, role, f"diff-{index}")
                tally.counts[f"HTTP {with_plan[0]}"] += 1
                if with_plan != without:
                    differences += 1
                    print(f"DIFFERENCE ({kind}, {role}): {query} {variables}\n"
                          f"  plan:   {with_plan}\n  normal: {without}")
                if (index + 1) % 2000 == 0:
                    print(f"  {kind}: {index + 1:,} documents, {differences} differences "
                          f"({time.perf_counter() - started:.0f} s)", flush=True)
            return differences


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=20_000, help="per database")
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    logging.disable(logging.CRITICAL)
    kinds = ("sqlite", "postgres") if args.database == "both" else (args.database,)
    total = 0
    for kind in kinds:
        tally = Tally()
        differences = await compare(kind, args.documents, args.seed, tally)
        total += differences
        print(f"{kind}: {args.documents:,} documents, {differences} differences")
        for name, count in sorted(tally.counts.items()):
            print(f"  {name}: {count:,}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
