"""``ReadModel.stats`` from the aggregate tables (see aggregates.py): a few small reads whose
cost depends on the number of groups, keywords, authors and days, not of comments.

Groups and keywords are counted in their own tables (a few hundred rows); posts, authors and
everything about comments and matches come from ``stats_*``, which the repositories keep exact
in the writing transactions.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Table, func, select
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
from infrastructure.db.tables import (
    authors,
    comments,
    groups,
    keywords,
    stats_authors,
    stats_days,
    stats_groups,
    stats_keywords,
    stats_totals,
)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


async def read_stats(sessions: async_sessionmaker[AsyncSession], window: StatsWindow) -> Stats:
    # Each read touches a few hundred rows at most: one session, one after the other.
    async with sessions() as session:
        totals = await _totals(session)
        return Stats(
            totals=totals,
            groups=await _per_group(session),
            top_keywords=await _top_keywords(session, window.top),
            top_authors=await _top_authors(session, window.top),
            days=await _days(session, window),
            by_status=await _by_status(session, totals.comments),
        )


_WORKED = [s.value for s in CommentStatus if s is not CommentStatus.NEW]


async def _by_status(session: AsyncSession, total: int) -> list[StatusStats]:
    """Comments per review status. Those a team has touched are counted (the status index's
    ranges: as many rows as were worked on, not every comment); NEW is the rest of ``total``."""
    query = select(comments.c.status, func.count()).where(comments.c.status.in_(_WORKED)).group_by(comments.c.status)
    found = {CommentStatus(status): int(n) for status, n in await session.execute(query)}
    new = max(total - sum(found.values()), 0)
    return [StatusStats(s, new if s is CommentStatus.NEW else found.get(s, 0)) for s in CommentStatus]


async def _totals(session: AsyncSession) -> StatsTotals:
    def count_of(table: Table) -> ScalarSelect[Any]:
        return select(func.count()).select_from(table).scalar_subquery()

    def total(column: ColumnElement[Any]) -> ScalarSelect[Any]:
        return select(func.coalesce(func.sum(column), 0)).scalar_subquery()

    s = stats_groups.c
    query = select(
        count_of(groups).label("groups"),
        total(s.posts).label("posts"),
        total(s.comments).label("comments"),
        total(s.replies).label("replies"),
        total(s.matched_comments).label("matched_comments"),
        total(s.matches).label("matches"),
        total(stats_totals.c.authors).label("authors"),
        count_of(keywords).label("keywords"),
    )
    row = (await session.execute(query)).mappings().one()
    return StatsTotals(**{name: int(row[name]) for name in StatsTotals.__dataclass_fields__})


async def _per_group(session: AsyncSession) -> list[GroupStats]:
    query = (
        select(groups.c.id, groups.c.name, groups.c.last_success_at, stats_groups.c.comments,
               stats_groups.c.matched_comments)
        .select_from(groups.outerjoin(stats_groups, stats_groups.c.group_id == groups.c.id))
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
    k = stats_keywords.c
    query = (
        select(keywords.c.id, keywords.c.word, k.matches, k.comments)
        .select_from(stats_keywords.join(keywords, keywords.c.id == k.keyword_id))
        .where(k.matches > 0)
        .order_by(k.matches.desc(), keywords.c.id)
        .limit(top)
    )
    return [
        KeywordStats(keyword_id=row.id, word=row.word, matches=int(row.matches), comments=int(row.comments))
        for row in await session.execute(query)
    ]


async def _top_authors(session: AsyncSession, top: int) -> list[AuthorStats]:
    a = stats_authors.c
    ranked = select(a.from_id, a.comments).order_by(a.comments.desc(), a.from_id).limit(top).subquery()
    query = (
        select(ranked.c.from_id, ranked.c.comments, authors.c.name)
        .select_from(ranked.outerjoin(authors, authors.c.vk_id == ranked.c.from_id))
        .order_by(ranked.c.comments.desc(), ranked.c.from_id)
    )
    return [
        AuthorStats(vk_id=row.from_id, name=row.name, comments=int(row.comments))
        for row in await session.execute(query)
    ]


async def _days(session: AsyncSession, window: StatsWindow) -> list[DayStats]:
    d = stats_days.c
    query = (
        select(d.day, func.sum(d.comments), func.sum(d.matched_comments), func.sum(d.matches))
        .where(d.day >= window.since, d.day <= window.until)
        .group_by(d.day)
    )
    found = {
        _as_date(day): DayStats(_as_date(day), int(n), int(matched), int(hits))
        for day, n, matched, hits in await session.execute(query)
    }
    # Every day of the window, so charts need no gap filling (at most MAX_DAYS entries).
    days = (window.until - window.since).days + 1
    return [
        found.get(d, DayStats(d, 0, 0, 0)) for d in (window.since + timedelta(days=i) for i in range(days))
    ]
