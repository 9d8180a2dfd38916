"""Export time and peak memory for 10,000 and 100,000 comments in each format.

Run: ``/tmp/venv/bin/python bench/export.py [--sizes 10000 100000] [--keep DIR]``.

One SQLite database is filled once (Russian comment text, authors, keyword matches on a
quarter of the comments): community A holds the first size's comments, community B the rest,
so "10,000" exports A and "100,000" exports everything through the same EXPORT job code the
worker runs (``domain.export.run_export`` with ``infrastructure.exports.FileExportStore``).

Each export runs in a fresh subprocess, twice: once for wall time and peak RSS (the whole
process, interpreter and libraries included; on Linux the peak mark is reset after the imports,
so it is the peak while exporting), once under tracemalloc for the peak of Python allocations
during the export alone. Target: peak memory grows < 20% from 10k to 100k rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

FORMATS = ("CSV", "XLSX", "JSONL")
WORDS = (
    "кошка котёнок дорога мост велосипед новости район школа автобус остановка парк зима снег "
    "погода праздник соседи подъезд ремонт магазин цены работа город улица машина вечер утро"
).split()
FILLERS = "и в не на что я с он а как это по но все так у же вы за бы к то мы из ты о от она для".split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS if rng.random() < 0.35 else FILLERS) for _ in range(rng.randint(6, 30))]
    return " ".join(words).capitalize() + rng.choice((".", "!", "?", "..."))


async def fill(url: str, sizes: list[int]) -> None:
    from domain.models import Author, Comment, Group, Keyword, Match, Post
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.db.migrate import upgrade_async
    from infrastructure.db.uow import SqlUnitOfWork

    await upgrade_async(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    rng = random.Random(2024)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    small, large = min(sizes), max(sizes)
    async with SqlUnitOfWork(sessions) as uow:
        groups = [
            await uow.groups.add(Group(vk_id=9001, screen_name="bench_a", name="Сообщество А")),
            await uow.groups.add(Group(vk_id=9002, screen_name="bench_b", name="Сообщество Б")),
        ]
        for g in groups:
            assert g.id is not None
            posts = [Post(g.owner_id, p, g.owner_id, sentence(rng), t0) for p in range(1, 201)]
            await uow.posts.upsert_many(g.id, posts)
        await uow.authors.upsert_many(Author(i, f"Пользователь {i}", f"user{i}") for i in range(1, 5001))
        added = [await uow.keywords.add(Keyword(id=0, word=w)) for w in ("кошка", "дорога", "велосипед")]
        keywords = [k for k in added if k is not None]  # None: a duplicate word, which these are not
        await uow.commit()
    batch = 5000
    for start in range(0, large, batch):
        group = groups[0] if start < small else groups[1]
        comments = [
            Comment(group.owner_id, i + 1, 1 + i % 200, rng.randint(1, 6000), sentence(rng), t0 + timedelta(seconds=i),
                    likes=rng.randint(0, 50))
            for i in range(start, min(start + batch, large))
        ]
        assert group.id is not None
        async with SqlUnitOfWork(sessions) as uow:
            ids = await uow.comments.upsert_many(group.id, comments)
            found = [
                Match(row_id, rng.choice(keywords).id, "кошками", 0, 7, "…кошками…")
                for row_id in ids.values()
                if rng.random() < 0.25
            ]
            await uow.matches.replace_for_comments(list(ids.values()), found)
            await uow.commit()
    await engine.dispose()


async def export_once(url: str, out: Path, fmt: str, group_ids: list[int] | None) -> int:
    from domain.export import filter_to_params, run_export
    from domain.models import Task, TaskKind
    from domain.ports import Adapters
    from domain.queries import CommentFilter
    from infrastructure.db.engine import create_engine, session_factory
    from infrastructure.exports import FileExportStore

    engine = create_engine(url)
    store = FileExportStore(session_factory(engine), out, ttl_hours=1)
    # The export use case reads through the store alone: the other adapters are never touched.
    adapters = Adapters(uow_factory=None, vk=None, queue=None, events=None, clock=None, exports=store)  # type: ignore[arg-type]
    flt = CommentFilter(group_ids=tuple(group_ids) if group_ids else None)
    task = Task(kind=TaskKind.EXPORT, params={"format": fmt, "filter": filter_to_params(flt)}, id=1)

    async def report(done: int, total: int | None, message: str) -> None:
        return None

    result = await run_export(adapters, task, report)
    await engine.dispose()
    return result["rows"]


def child(args: argparse.Namespace) -> None:
    """One export in this process; prints a JSON line with the measurements."""
    import xlsxwriter  # noqa: F401

    import domain.export  # noqa: F401  # import cost is not export cost
    import infrastructure.exports  # noqa: F401

    groups = json.loads(args.groups) if args.groups else None
    baseline_mib = _reset_peak_rss()
    if args.trace:
        tracemalloc.start()
    started = time.perf_counter()
    rows = asyncio.run(export_once(args.url, Path(args.out), args.format, groups))
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] if args.trace else None
    rss_mib = _peak_rss_mib() if baseline_mib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "rss_mib": rss_mib, "traced_mib": (traced or 0) / 2**20}))


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def _reset_peak_rss() -> float | None:
    """Linux: start the peak-RSS mark (VmHWM) afresh, after the imports; None elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_mib("VmRSS")
    except OSError:
        return None


def _peak_rss_mib() -> float:
    return _status_mib("VmHWM")


def measure(url: str, out: Path, fmt: str, groups: list[int] | None, *, trace: bool) -> dict:
    command = [sys.executable, __file__, "--child", "--url", url, "--out", str(out), "--format", fmt]
    if groups:
        command += ["--groups", json.dumps(groups)]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 100_000])
    parser.add_argument("--keep", type=Path, help="keep the database and files in this directory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--format", help=argparse.SUPPRESS)
    parser.add_argument("--groups", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vkcp-bench-export-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "bench.sqlite3"
    db.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{db}"
    small, large = sorted(args.sizes)
    started = time.perf_counter()
    asyncio.run(fill(url, [small, large]))
    print(f"filled {large:,} comments in {time.perf_counter() - started:.1f}s ({db})\n")

    header = f"{'format':<6} {'rows':>8} {'seconds':>8} {'rows/s':>9} {'peak RSS MiB':>13} {'traced peak MiB':>16}"
    print(header)
    print("-" * len(header))
    growth: dict[str, list[tuple[float, float]]] = {}  # (peak RSS, traced peak) per size
    for fmt in FORMATS:
        for groups in ([1], None):  # community A (the small size), then everything
            timing = measure(url, workdir / "exports", fmt, groups, trace=False)
            traced = measure(url, workdir / "exports", fmt, groups, trace=True)
            growth.setdefault(fmt, []).append((timing["rss_mib"], traced["traced_mib"]))
            print(
                f"{fmt:<6} {timing['rows']:>8,} {timing['seconds']:>8.2f} {timing['rows'] / timing['seconds']:>9,.0f} "
                f"{timing['rss_mib']:>13.1f} {traced['traced_mib']:>16.1f}"
            )
    print(f"\ngrowth of peak memory from {small:,} to {large:,} rows (target < 20%):")
    for fmt, ((rss_small, tr_small), (rss_large, tr_large)) in growth.items():
        print(
            f"  {fmt:<6} RSS {100 * (rss_large / rss_small - 1):+6.1f}%   "
            f"Python heap {100 * (tr_large / tr_small - 1):+6.1f}%"
        )
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
