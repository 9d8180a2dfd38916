"""The in-memory cache: TTL, invalidation, no stale value after a job (the Redis cache passes
the same tests in ``tests/integration/test_redis_cache.py``); and the stats window."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from domain.errors import InvalidInput
from domain.stats import DEFAULT_DAYS, LAST_DAY, MAX_DAYS, stats_window
from infrastructure.cache import InMemoryCache


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> bytes:
        self.calls += 1
        return f"value {self.calls}".encode()


@pytest.fixture
async def cache():
    # tests/integration/test_redis_cache.py holds the same tests against RedisCache.
    return InMemoryCache()


async def test_a_value_is_computed_once_until_it_expires(cache) -> None:
    compute = Counter()
    assert await cache.get_or_compute("stats", "k", compute, ttl=0.2) == b"value 1"
    assert await cache.get_or_compute("stats", "k", compute, ttl=0.2) == b"value 1"
    assert await cache.get_or_compute("stats", "other", compute, ttl=0.2) == b"value 2"
    await asyncio.sleep(0.3)
    assert await cache.get_or_compute("stats", "k", compute, ttl=0.2) == b"value 3"


async def test_invalidate_makes_a_whole_namespace_stale(cache) -> None:
    compute = Counter()
    await cache.get_or_compute("stats", "a", compute, ttl=60)
    await cache.get_or_compute("groups", "a", compute, ttl=60)
    await cache.invalidate("stats")
    assert await cache.get_or_compute("stats", "a", compute, ttl=60) == b"value 3"
    assert await cache.get_or_compute("groups", "a", compute, ttl=60) == b"value 2"  # untouched


async def test_a_value_computed_during_an_invalidation_is_not_kept(cache) -> None:
    """A job finishing while stats are being computed: the next reader must not get the old numbers."""
    calls = 0

    async def slow_compute() -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            await cache.invalidate("stats")  # the job ends mid-computation
        return f"value {calls}".encode()

    assert await cache.get_or_compute("stats", "k", slow_compute, ttl=60) == b"value 1"
    assert await cache.get_or_compute("stats", "k", slow_compute, ttl=60) == b"value 2"


async def test_the_memory_cache_keeps_at_most_max_entries() -> None:
    cache = InMemoryCache(max_entries=3)
    for i in range(10):
        await cache.get_or_compute("stats", str(i), Counter(), ttl=60)
    assert len(cache._entries) <= 3


# --- the stats window -----------------------------------------------------------------------

TODAY = date(2026, 3, 31)


def test_the_default_window_is_the_last_30_days() -> None:
    window = stats_window(TODAY, since=None, until=None)
    assert (window.since, window.until) == (date(2026, 3, 2), TODAY)
    assert (window.until - window.since).days + 1 == DEFAULT_DAYS


def test_a_window_from_one_end() -> None:
    assert stats_window(TODAY, since=date(2026, 1, 1), until=None).until == date(2026, 1, 30)
    assert stats_window(TODAY, since=None, until=date(2026, 1, 30)).since == date(2026, 1, 1)


@pytest.mark.parametrize(
    ("since", "until", "top", "field"),
    [
        (date(2026, 3, 2), date(2026, 3, 1), 10, "since"),
        (date(2024, 1, 1), date(2026, 1, 1), 10, "since"),
        (None, None, 0, "top"),
        (None, None, 101, "top"),
        # The window's SQL range ends the day after `until`: the calendar's last day has none.
        (None, date.max, 10, "until"),
        (date.max, None, 10, "since"),
    ],
)
def test_bad_windows_are_refused(since, until, top, field) -> None:
    with pytest.raises(InvalidInput) as refused:
        stats_window(TODAY, since=since, until=until, top=top)
    assert refused.value.field == field


def test_a_window_from_one_end_stops_at_the_ends_of_the_calendar() -> None:
    early = stats_window(TODAY, since=None, until=date(1, 1, 5))
    assert (early.since, early.until) == (date.min, date(1, 1, 5))
    late = stats_window(TODAY, since=date(9999, 12, 20), until=None)
    assert (late.since, late.until) == (date(9999, 12, 20), LAST_DAY)


def test_a_year_is_allowed() -> None:
    long = stats_window(TODAY, since=date(2025, 3, 31), until=date(2026, 3, 31))
    assert (long.until - long.since).days + 1 == MAX_DAYS
