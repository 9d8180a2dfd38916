"""The one bounded cache: at most ``size`` entries, the oldest stored dropped first."""

from __future__ import annotations

import pytest

from domain.bounded import BoundedDict


def test_storing_past_the_size_drops_the_oldest_entry() -> None:
    cache: BoundedDict[str, int] = BoundedDict(3)
    for n, key in enumerate("abcde"):
        cache[key] = n
    assert dict(cache) == {"c": 2, "d": 3, "e": 4}


def test_a_key_stored_again_becomes_the_newest() -> None:
    cache: BoundedDict[str, int] = BoundedDict(2)
    cache["a"], cache["b"] = 1, 2
    cache["a"] = 10  # "b" is the oldest now
    cache["c"] = 3
    assert dict(cache) == {"a": 10, "c": 3}


def test_reading_does_not_keep_an_entry() -> None:
    """Eviction follows stores, not reads: a hit stays a plain dict lookup."""
    cache: BoundedDict[str, int] = BoundedDict(2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1 and cache["a"] == 1 and "a" in cache
    cache["c"] = 3
    assert list(cache) == ["b", "c"]


def test_every_way_of_storing_keeps_the_bound() -> None:
    cache: BoundedDict[int, int] = BoundedDict(2)
    cache.update({1: 1, 2: 2, 3: 3})
    assert list(cache) == [2, 3]
    cache.update([(4, 4)])
    assert list(cache) == [3, 4]
    assert cache.setdefault(5, 5) == 5 and cache.setdefault(5, 6) == 5
    assert list(cache) == [4, 5]
    cache |= {6: 6, 7: 7}
    assert list(cache) == [6, 7] and isinstance(cache, BoundedDict) and cache.size == 2


def test_it_keeps_at_least_one_entry() -> None:
    with pytest.raises(ValueError):
        BoundedDict(0)
