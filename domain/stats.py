"""Statistics: the window rules and the cache in front of ``ReadModel.stats``.

The numbers themselves are SQL aggregates (``infrastructure/db/stats.py``). They are cached
for a short while in the ``stats`` namespace, which every finished task invalidates
(``domain.tasks``), so a collection or analyze job is never followed by stale numbers; so does
a change of review status (``domain.review``), for the counts by status.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta

from domain.errors import InvalidInput
from domain.models import CommentStatus
from domain.ports import Cache
from domain.queries import (
    AuthorStats,
    DayStats,
    GroupStats,
    KeywordStats,
    ReadModel,
    Stats,
    StatsTotals,
    StatsWindow,
    StatusStats,
)

DEFAULT_DAYS = 30
MAX_DAYS = 366
DEFAULT_TOP = 10
MAX_TOP = 100
CACHE_NAMESPACE = "stats"
CACHE_TTL_SECONDS = 60.0


# The last day a window may include: its SQL range ends at midnight after `until`.
LAST_DAY = date.max - timedelta(days=1)


def stats_window(today: date, *, since: date | None, until: date | None, top: int = DEFAULT_TOP) -> StatsWindow:
    """The days to report: by default the last 30 up to today; at most a year at once.

    A default end is counted from the given one and stops at the ends of the calendar
    (``date.min``, ``LAST_DAY``) rather than overflowing them.
    """
    for name, day in (("since", since), ("until", until)):
        if day is not None and day > LAST_DAY:
            raise InvalidInput(f"`{name}` must be {LAST_DAY.isoformat()} or earlier", field=name)
    span = DEFAULT_DAYS - 1
    until = until or (_shifted(since, span) if since else today)
    since = since or _shifted(until, -span)
    if since > until:
        raise InvalidInput("`since` must not be after `until`", field="since")
    if (until - since).days + 1 > MAX_DAYS:
        raise InvalidInput(f"At most {MAX_DAYS} days at once", field="since")
    if not 1 <= top <= MAX_TOP:
        raise InvalidInput(f"`top` must be between 1 and {MAX_TOP}", field="top")
    return StatsWindow(since=since, until=until, top=top)


def _shifted(day: date, days: int) -> date:
    try:
        return min(day + timedelta(days=days), LAST_DAY)
    except OverflowError:
        return date.min if days < 0 else LAST_DAY


async def read_stats(read_model: ReadModel, cache: Cache | None, window: StatsWindow) -> Stats:
    if cache is None:
        return await read_model.stats(window)

    async def compute() -> bytes:
        return _encode(await read_model.stats(window))

    key = f"{window.since.isoformat()}:{window.until.isoformat()}:{window.top}"
    return _decode(await cache.get_or_compute(CACHE_NAMESPACE, key, compute, ttl=CACHE_TTL_SECONDS))


async def invalidate_stats(cache: Cache | None) -> None:
    if cache is not None:
        await cache.invalidate(CACHE_NAMESPACE)


# --- the cached form ------------------------------------------------------------------------


def _encode(stats: Stats) -> bytes:
    return json.dumps(dataclasses.asdict(stats), default=lambda v: v.isoformat(), ensure_ascii=False).encode()


def _decode(raw: bytes) -> Stats:
    data = json.loads(raw)

    def moment(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return Stats(
        totals=StatsTotals(**data["totals"]),
        groups=[GroupStats(**{**g, "last_collected_at": moment(g["last_collected_at"])}) for g in data["groups"]],
        top_keywords=[KeywordStats(**k) for k in data["top_keywords"]],
        top_authors=[AuthorStats(**a) for a in data["top_authors"]],
        days=[DayStats(**{**d, "day": date.fromisoformat(d["day"])}) for d in data["days"]],
        by_status=[StatusStats(CommentStatus(s["status"]), s["comments"]) for s in data.get("by_status", [])],
    )
