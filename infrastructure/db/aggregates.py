"""Statistics kept up to date as comments and matches are written, so ``stats`` never scans them.

Every repository write that changes what ``stats`` counts reports the rows' contributions to a
``StatsLedger``: minus what the rows counted before the write, plus what they count after
(a comment: its group, its UTC day, its author, whether it is a reply, its matches, its
review state; a match: its keyword; a post: its group). The unit of work applies the sums
just before it commits, in the same transaction, so the aggregates move exactly when the
data does and never otherwise.

Applying is one ``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`` per table, keys
sorted and tables in one fixed order: concurrent writers (collections of different groups
share authors) wait for each other's rows instead of deadlocking, and hold them only from
the flush to the commit.

The number of authors is a counter of its own (``stats_totals``), so ``stats`` reads one row
instead of counting ``stats_authors``, which grows with the data: the author upsert returns
each row's new count, and a row whose count equals what this transaction added is new (a
stored row always counts at least one comment); rows that reach zero are deleted, and counted
out. The single ``stats_totals`` row comes last in the order, so writers that add authors
queue on it only between their flush and their commit.

Exact as long as one comment is not written by two transactions at once (one active parse
per community, uq_tasks_one_active_parse; analyses lock the comments they replace): a row a
concurrent transaction inserts between this one's read of the stored rows and its upsert
would be counted in twice.

``rebuild`` recomputes everything from the data (what migration 0005 did once); the benchmark
uses it after filling tables with plain SQL, which bypasses the repositories.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime

from sqlalchemy import Table, delete, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from infrastructure.db.bulk import bulk_insert, in_values
from infrastructure.db.tables import stats_authors, stats_days, stats_groups, stats_keywords, stats_totals

# from_id 0: VK's placeholder author of deleted comments, not a person.
NO_AUTHOR = 0
TOTALS_ROW = 1  # stats_totals' one row


def day_of(published_at: datetime) -> date:
    return published_at.astimezone(UTC).date()


class StatsLedger:
    """Deltas of one transaction, applied by ``flush``."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every delta: applied, or rolled back with the writes that made them."""
        # group id -> [comments, replies, matched comments, matches, posts]
        self.groups: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        # (day, group id) -> [comments, matched comments, matches, viewed, archived, viewed and archived]
        self.days: defaultdict[tuple[date, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
        self.authors: defaultdict[int, int] = defaultdict(int)
        self.keywords: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])  # matches, comments

    def comment(
        self, sign: int, *, group_id: int, published_at: datetime, from_id: int, reply: bool, matches_count: int,
        viewed: bool, archived: bool,
    ) -> None:
        """Count a comment in (+1) or out (-1) with these values."""
        matched = 1 if matches_count > 0 else 0
        g = self.groups[group_id]
        g[0] += sign
        g[1] += sign * reply
        g[2] += sign * matched
        g[3] += sign * matches_count
        d = self.days[(day_of(published_at), group_id)]
        d[0] += sign
        d[1] += sign * matched
        d[2] += sign * matches_count
        d[3] += sign * viewed
        d[4] += sign * archived
        d[5] += sign * (viewed and archived)
        if from_id != NO_AUTHOR:
            self.authors[from_id] += sign

    def matches_count(self, *, group_id: int, published_at: datetime, before: int, after: int) -> None:
        """A comment's number of matches went from ``before`` to ``after``."""
        matched = (after > 0) - (before > 0)
        g = self.groups[group_id]
        g[2] += matched
        g[3] += after - before
        d = self.days[(day_of(published_at), group_id)]
        d[1] += matched
        d[2] += after - before

    def post(self, group_id: int, sign: int) -> None:
        """A post of the group stored (+1), or one it no longer holds (-1)."""
        self.groups[group_id][4] += sign

    def keyword(self, keyword_id: int, *, matches: int, comments: int) -> None:
        k = self.keywords[keyword_id]
        k[0] += matches
        k[1] += comments

    def forget_group(self, group_id: int) -> None:
        """The group is being removed: its rows go with it (ON DELETE CASCADE), nothing to add."""
        for key in [k for k in self.days if k[1] == group_id]:
            del self.days[key]
        self.groups.pop(group_id, None)

    def forget_keyword(self, keyword_id: int) -> None:
        self.keywords.pop(keyword_id, None)

    def author(self, from_id: int, comments: int) -> None:
        if from_id != NO_AUTHOR:
            self.authors[from_id] += comments

    async def flush(self, session: AsyncSession) -> None:
        dialect = session.get_bind().dialect.name
        groups = _nonzero(self.groups.items())
        days = _nonzero(self.days.items())
        authors = sorted((k, v) for k, v in self.authors.items() if v)
        keywords = _nonzero(self.keywords.items())
        self.clear()  # applied once: a second flush adds only what came after
        if groups:
            rows = [
                {"group_id": k, "comments": v[0], "replies": v[1], "matched_comments": v[2], "matches": v[3],
                 "posts": v[4]}
                for k, v in groups
            ]
            await _add(session, dialect, stats_groups, ["group_id"], rows)
        if days:
            rows = [
                {"day": day, "group_id": group_id, "comments": v[0], "matched_comments": v[1], "matches": v[2],
                 "viewed": v[3], "archived": v[4], "viewed_archived": v[5]}
                for (day, group_id), v in days
            ]
            await _add(session, dialect, stats_days, ["day", "group_id"], rows)
        new_authors = 0
        if authors:
            rows = [{"from_id": k, "comments": v} for k, v in authors]
            added = await _add(session, dialect, stats_authors, ["from_id"], rows, returning=stats_authors.c.comments)
            now = dict(added)
            new_authors += sum(1 for k, v in authors if v > 0 and now[k] == v)
            gone = [k for k, v in authors if v < 0]
            if gone:  # authors whose last comment went: no row
                deleted = await session.execute(
                    delete(stats_authors)
                    .where(in_values(dialect, stats_authors.c.from_id, gone), stats_authors.c.comments <= 0)
                    .returning(stats_authors.c.from_id)
                )
                new_authors -= len(deleted.all())
        if keywords:
            rows = [{"keyword_id": k, "matches": v[0], "comments": v[1]} for k, v in keywords]
            await _add(session, dialect, stats_keywords, ["keyword_id"], rows)
        if new_authors:
            await _add(session, dialect, stats_totals, ["id"], [{"id": TOTALS_ROW, "authors": new_authors}])


def _nonzero(items: Iterable[tuple]) -> list[tuple]:
    return sorted((k, v) for k, v in items if any(v))


async def _add(
    session: AsyncSession, dialect: str, table: Table, keys: list[str], rows: list[dict], *, returning=None
) -> list[tuple]:
    """Add the rows' counters to the stored ones; with ``returning``: (key, its new value) per row."""
    insert, params = bulk_insert(dialect, table, rows)
    counters = [name for name in rows[0] if name not in keys]
    stmt = insert.on_conflict_do_update(
        index_elements=keys, set_={name: table.c[name] + insert.excluded[name] for name in counters}
    )
    if returning is None:
        await session.execute(stmt, params)
        return []
    return [tuple(row) for row in await session.execute(stmt.returning(table.c[keys[0]], returning), params)]


def rebuild_statements(dialect: str) -> list[str]:
    """SQL that recomputes every aggregate from the data (migrations 0005 and 0007 hold copies)."""
    day = "CAST(timezone('UTC', published_at) AS DATE)" if dialect == "postgresql" else "date(published_at)"
    matched = "CASE WHEN matches_count > 0 THEN 1 ELSE 0 END"
    return [
        "DELETE FROM stats_groups",
        "DELETE FROM stats_days",
        "DELETE FROM stats_authors",
        "DELETE FROM stats_keywords",
        "DELETE FROM stats_totals",
        f"""INSERT INTO stats_groups (group_id, comments, replies, matched_comments, matches, posts)
            SELECT g.id, coalesce(c.comments, 0), coalesce(c.replies, 0), coalesce(c.matched_comments, 0),
                   coalesce(c.matches, 0), coalesce(p.posts, 0)
            FROM groups g
            LEFT JOIN (SELECT group_id, count(*) AS comments, count(thread_vk_id) AS replies,
                              sum({matched}) AS matched_comments, sum(matches_count) AS matches
                       FROM comments GROUP BY group_id) c ON c.group_id = g.id
            LEFT JOIN (SELECT group_id, count(*) AS posts FROM posts GROUP BY group_id) p ON p.group_id = g.id""",
        f"""INSERT INTO stats_days (day, group_id, comments, matched_comments, matches,
                                    viewed, archived, viewed_archived)
            SELECT {day}, group_id, count(*), sum({matched}), sum(matches_count),
                   sum(CASE WHEN viewed THEN 1 ELSE 0 END), sum(CASE WHEN archived THEN 1 ELSE 0 END),
                   sum(CASE WHEN viewed AND archived THEN 1 ELSE 0 END)
            FROM comments GROUP BY {day}, group_id""",
        f"""INSERT INTO stats_authors (from_id, comments)
            SELECT from_id, count(*) FROM comments WHERE from_id != {NO_AUTHOR} GROUP BY from_id""",
        """INSERT INTO stats_keywords (keyword_id, matches, comments)
            SELECT keyword_id, count(*), count(DISTINCT comment_id) FROM matches GROUP BY keyword_id""",
        f"INSERT INTO stats_totals (id, authors) SELECT {TOTALS_ROW}, count(*) FROM stats_authors",
    ]


async def rebuild(connection: AsyncConnection) -> None:
    for statement in rebuild_statements(connection.dialect.name):
        await connection.execute(text(statement))
