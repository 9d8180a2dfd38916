"""``stats`` counted from the data itself, by scanning comments and matches: what the
aggregates (infrastructure/db/aggregates.py) must always equal. This was the production
implementation until migration 0005; the tests keep it as the reference.

The only dialect difference is the day of a timestamp: PostgreSQL converts the ``timestamptz``
to UTC and casts it to a date; SQLite stores naive UTC text, whose ``date()`` is the day.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Date, case, cast, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.models import CommentStatus
from domain.queries import (
    AuthorStats,
    DayStats,
    GroupStats,
    KeywordStats,
    Stats,
    StatsTotals,
    StatsWindow,
    StatusStats,
)
from infrastructure.db.tables import authors, comments, groups, keywords, matches, posts

_matched = case((comments.c.matches_count > 0, 1), else_=0)
# from_id 0: VK's placeholder author of deleted comments, not a person.
_real_author = comments.c.from_id != 0


def _day(dialect: str):
    if dialect == "postgresql":
        return cast(func.timezone("UTC", comments.c.published_at), Date)
    return func.date(comments.c.published_at)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


async def stats_by_scan(sessions: async_sessionmaker[AsyncSession], dialect: str, window: StatsWindow) -> Stats:
    # Each aggregate scans a large table: run them side by side, one session (connection) each.
    async def run(query, *args):
        async with sessions() as session:
            return await query(session, *args)

    totals, per_group, top_keywords, top_authors, days, by_status = await asyncio.gather(
        run(_totals),
        run(_per_group),
        run(_top_keywords, window.top),
        run(_top_authors, window.top),
        run(_days, dialect, window),
        run(_by_status),
    )
    return Stats(
        totals=totals, groups=per_group, top_keywords=top_keywords, top_authors=top_authors, days=days,
        by_status=by_status,
    )


async def _by_status(session: AsyncSession) -> list[StatusStats]:
    query = select(comments.c.status, func.count()).group_by(comments.c.status)
    found = {CommentStatus(status): int(n) for status, n in await session.execute(query)}
    return [StatusStats(s, found.get(s, 0)) for s in CommentStatus]


async def _totals(session: AsyncSession) -> StatsTotals:
    def count_of(table) -> object:
        return select(func.count()).select_from(table).scalar_subquery()

    query = select(
        count_of(groups).label("groups"),
        count_of(posts).label("posts"),
        func.count().label("comments"),
        func.count(comments.c.thread_vk_id).label("replies"),
        func.coalesce(func.sum(_matched), 0).label("matched_comments"),
        func.coalesce(func.sum(comments.c.matches_count), 0).label("matches"),
        func.count(distinct(case((_real_author, comments.c.from_id)))).label("authors"),
        count_of(keywords).label("keywords"),
    ).select_from(comments)
    row = (await session.execute(query)).mappings().one()
    return StatsTotals(**{name: int(row[name]) for name in StatsTotals.__dataclass_fields__})


async def _per_group(session: AsyncSession) -> list[GroupStats]:
    counts = (
        select(
            comments.c.group_id,
            func.count().label("comments"),
            func.sum(_matched).label("matched_comments"),
        )
        .group_by(comments.c.group_id)
        .subquery()
    )
    query = (
        select(groups.c.id, groups.c.name, groups.c.last_success_at, counts.c.comments, counts.c.matched_comments)
        .select_from(groups.outerjoin(counts, counts.c.group_id == groups.c.id))
        .order_by(groups.c.id)
    )
    return [
        GroupStats(
            group_id=row.id,
            name=row.name,
            comments=int(row.comments or 0),
            matched_comments=int(row.matched_comments or 0),
            last_collected_at=row.last_success_at,
        )
        for row in await session.execute(query)
    ]


async def _top_keywords(session: AsyncSession, top: int) -> list[KeywordStats]:
    hits = func.count().label("matches")
    query = (
        select(
            keywords.c.id,
            keywords.c.word,
            hits,
            func.count(distinct(matches.c.comment_id)).label("comments"),
        )
        .select_from(matches.join(keywords, keywords.c.id == matches.c.keyword_id))
        .group_by(keywords.c.id, keywords.c.word)
        .order_by(hits.desc(), keywords.c.id)
        .limit(top)
    )
    return [
        KeywordStats(keyword_id=row.id, word=row.word, matches=int(row.matches), comments=int(row.comments))
        for row in await session.execute(query)
    ]


async def _top_authors(session: AsyncSession, top: int) -> list[AuthorStats]:
    written = func.count().label("comments")
    ranked = (
        select(comments.c.from_id, written)
        .where(_real_author)
        .group_by(comments.c.from_id)
        .order_by(written.desc(), comments.c.from_id)
        .limit(top)
        .subquery()
    )
    query = (
        select(ranked.c.from_id, ranked.c.comments, authors.c.name)
        .select_from(ranked.outerjoin(authors, authors.c.vk_id == ranked.c.from_id))
        .order_by(ranked.c.comments.desc(), ranked.c.from_id)
    )
    return [
        AuthorStats(vk_id=row.from_id, name=row.name, comments=int(row.comments))
        for row in await session.execute(query)
    ]


async def _days(session: AsyncSession, dialect: str, window: StatsWindow) -> list[DayStats]:
    start = datetime.combine(window.since, time(), UTC)
    end = datetime.combine(window.until + timedelta(days=1), time(), UTC)
    day = _day(dialect).label("day")
    query = (
        select(
            day,
            func.count().label("comments"),
            func.sum(_matched).label("matched_comments"),
            func.sum(comments.c.matches_count).label("matches"),
        )
        .where(comments.c.published_at >= start, comments.c.published_at < end)
        .group_by(day)
    )
    found = {
        _as_date(row.day): DayStats(_as_date(row.day), int(row.comments), int(row.matched_comments), int(row.matches))
        for row in await session.execute(query)
    }
    # Every day of the window, so charts need no gap filling (at most MAX_DAYS entries).
    days = (window.until - window.since).days + 1
    return [
        found.get(d, DayStats(d, 0, 0, 0)) for d in (window.since + timedelta(days=i) for i in range(days))
    ]
