"""Which comment filters are counted from the per-day aggregates (infrastructure/db/counts.py)
rather than from the comments; tests/integration/test_filter_semantics.py checks that both
give the same numbers."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.queries import CommentFilter
from infrastructure.db.counts import countable

T = datetime(2024, 5, 1, tzinfo=UTC)


def test_matched_alone_with_communities_and_time_is_counted_from_the_aggregates() -> None:
    assert countable(CommentFilter(matched=True))
    assert countable(CommentFilter(matched=False, group_ids=(1, 2), since=T))
    assert countable(CommentFilter(viewed=False, archived=False, group_ids=(3,)))


def test_what_the_aggregates_do_not_cross_is_counted_from_the_comments() -> None:
    # stats_days counts matched comments and review states, not matched comments per state.
    assert not countable(CommentFilter(matched=True, viewed=False))
    assert not countable(CommentFilter(matched=True, archived=False, group_ids=(1,)))
    assert not countable(CommentFilter(text="кошка"))
    assert not countable(CommentFilter(keyword_ids=(1,), matched=True))
    assert not countable(CommentFilter(group_ids=()))
