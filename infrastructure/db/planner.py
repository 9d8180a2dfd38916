"""PostgreSQL's planner statistics of the tables a collection fills, kept current by the writer.

The read model's statements rely on them: whether a page of one community ordered by likes
walks the likes index or sorts the community's every comment, whether a text search's page
walks the time index or sorts every candidate of the trigram index, is decided by each
column's statistics. Without any (a database created empty: the migration's ``ANALYZE`` saw no
rows) the planner takes a community, a time range and a text pattern for 0.5% of the comments
whatever they hold and sorts; measured under bench/soak.py at ~210,000 comments, ``ANALYZE``
took a community's page by likes from 75 ms to 0.3 ms and a text page from 40 ms to 1.3 ms.

Autovacuum analyzes a table once 10% of it changed, when it runs; a collection is a bulk
load, after which PostgreSQL's documentation asks for an explicit ``ANALYZE``, and a server
may run without autovacuum (this machine's test server does). So the unit of work tells this
object how many comments each commit added, and when they reach ``FRACTION`` of the comments
counted at the last analysis (at least ``MIN_ROWS``), the committing writer runs ``ANALYZE``
of ``comments`` and ``matches`` (sampled: ~30,000 rows whatever the size, a fraction of a
second). One analysis at a time per process; a writer that finds one running goes on.
SQLite is left alone: its planner did not need it (no measurement says otherwise).
"""

from __future__ import annotations

import asyncio
import weakref

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infrastructure.db.faults import as_unavailable

log = structlog.get_logger(__name__)

MIN_ROWS = 1_000  # comments added before the first analysis of an empty table
FRACTION = 0.1  # of the comments at the last analysis: autovacuum's default analyze scale factor
TABLES = ("comments", "matches")  # what the collector fills and the read model filters and sorts
RELTUPLES = text("SELECT reltuples FROM pg_class WHERE oid = 'comments'::regclass")  # as of the last analysis


class PlannerStatistics:
    """Comments added since the last ``ANALYZE``, and the analysis when they are many."""

    def __init__(self, engine: AsyncEngine, *, min_rows: int = MIN_ROWS, fraction: float = FRACTION) -> None:
        self.engine, self.min_rows, self.fraction = engine, min_rows, fraction
        self.added = 0
        self.baseline: float | None = None  # comments at the last analysis (pg_class.reltuples)
        self.analyses = 0
        self._lock = asyncio.Lock()

    def due(self) -> bool:
        return self.baseline is not None and self.added >= max(self.min_rows, self.fraction * self.baseline)

    async def added_rows(self, comments: int) -> None:
        """A commit added ``comments`` (net); analyze when that makes enough since the last time."""
        if comments <= 0 or self.engine.dialect.name != "postgresql":
            return
        self.added += comments
        if self._lock.locked():
            return
        async with self._lock:
            try:
                if self.baseline is None:  # the server's own count at its last analysis
                    async with self.engine.connect() as conn:
                        found = await conn.scalar(RELTUPLES)
                    self.baseline = max(0.0, float(found or 0))
                if not self.due():
                    return
                added, self.added = self.added, 0
                async with self.engine.connect() as conn:
                    await conn.execute(text(f"ANALYZE {', '.join(TABLES)}"))
                    await conn.commit()
                    found = await conn.scalar(RELTUPLES)
                self.baseline = max(0.0, float(found or 0))
                self.analyses += 1
                log.info("db.analyzed", tables=list(TABLES), added=added, comments=round(self.baseline))
            except Exception as e:  # the writer's own commit succeeded: statistics wait for the next one
                log.warning("db.analyze_failed", error=str(as_unavailable(e) or e))


_KEPT: weakref.WeakKeyDictionary[AsyncEngine, PlannerStatistics] = weakref.WeakKeyDictionary()


def planner_statistics(engine: AsyncEngine) -> PlannerStatistics:
    """The engine's one tracker (units of work come and go; the count must not)."""
    found = _KEPT.get(engine)
    if found is None:
        found = _KEPT[engine] = PlannerStatistics(engine)
    return found
