"""``stats`` on both databases equals numbers counted by hand from a small known data set."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import insert

from domain.queries import AuthorStats, DayStats, KeywordStats, StatsTotals, StatsWindow
from domain.stats import read_stats
from infrastructure.cache import InMemoryCache
from infrastructure.db.aggregates import rebuild
from infrastructure.db.queries import SqlReadModel
from infrastructure.db.tables import authors, comments, groups, keywords, matches, posts, tasks

NOW = datetime(2026, 3, 5, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


async def seed(sessions) -> None:
    async with sessions() as session:
        await session.execute(
            insert(groups),
            [
                {"id": i, "vk_id": 100 + i, "screen_name": f"g{i}", "name": name, "created_at": NOW, "updated_at": NOW,
                 "last_success_at": NOW if i == 1 else None}
                for i, name in ((1, "Кошки"), (2, "Собаки"), (3, "Пустая"))
            ],
        )
        await session.execute(
            insert(posts),
            [
                {"id": 1, "group_id": 1, "owner_id": -101, "vk_id": 1, "text": "", "published_at": at(1, 9)},
                {"id": 2, "group_id": 2, "owner_id": -102, "vk_id": 1, "text": "", "published_at": at(1, 9)},
            ],
        )
        await session.execute(
            insert(authors),
            [{"vk_id": 10, "name": "Анна", "updated_at": NOW}, {"vk_id": 20, "name": "Борис", "updated_at": NOW}],
        )
        rows = [
            # id, group, post, owner, vk id, thread, author, published, matches
            (1, 1, 1, -101, 1, None, 10, at(1, 10), 2),
            (2, 1, 1, -101, 2, 1, 20, at(1, 23, 30), 0),  # late evening UTC: still March 1st
            (3, 1, 1, -101, 3, 1, 10, at(2, 0, 10), 1),
            (4, 2, 2, -102, 1, None, 30, at(3, 12), 1),  # same VK id as comment 1, another wall
            (5, 2, 2, -102, 2, None, 0, at(20, 8, month=2), 0),  # deleted: no author; outside the window
        ]
        await session.execute(
            insert(comments),
            [
                {"id": i, "group_id": g, "post_id": p, "owner_id": o, "vk_id": v, "post_vk_id": 1, "thread_vk_id": t,
                 "parent_vk_id": t, "from_id": a, "text": "текст", "text_folded": "текст", "published_at": when, "matches_count": m,
                 "deleted": a == 0, "created_at": NOW}
                for i, g, p, o, v, t, a, when, m in rows
            ],
        )
        published = {row[0]: row[7] for row in rows}  # a match carries its comment's time
        await session.execute(
            insert(keywords),
            [
                {"id": i, "word": w, "word_key": w, "created_at": NOW, "updated_at": NOW}
                for i, w in ((1, "кошка"), (2, "собака"), (3, "мышь"))
            ],
        )
        await session.execute(
            insert(matches),
            [
                {"comment_id": c, "keyword_id": k, "matched_text": "x", "start_pos": s, "end_pos": s + 1, "snippet": "x",
                 "published_at": published[c]}
                for c, k, s in ((1, 1, 0), (1, 1, 10), (3, 1, 0), (4, 2, 0))
            ],
        )
        await session.execute(
            insert(tasks),
            [
                {"kind": kind, "state": state, "params": {}, "created_at": NOW}
                for kind, state in (("PARSE", "SUCCEEDED"), ("PARSE", "SUCCEEDED"), ("PARSE", "FAILED"), ("EXPORT", "QUEUED"))
            ],
        )
        # Rows inserted with plain SQL bypass the repositories, which keep the aggregates.
        await rebuild(await session.connection())
        await session.commit()


WINDOW = StatsWindow(since=date(2026, 3, 1), until=date(2026, 3, 3), top=10)


async def test_stats_equal_hand_counted_numbers(migrated_db) -> None:
    _, sessions = migrated_db
    await seed(sessions)
    stats = await SqlReadModel(sessions).stats(WINDOW)

    assert stats.totals == StatsTotals(
        groups=3, posts=2, comments=5, replies=2, matched_comments=3, matches=4, authors=3, keywords=3
    )
    assert [(g.group_id, g.name, g.comments, g.matched_comments) for g in stats.groups] == [
        (1, "Кошки", 3, 2),
        (2, "Собаки", 2, 1),
        (3, "Пустая", 0, 0),
    ]
    assert stats.groups[0].last_collected_at == NOW and stats.groups[1].last_collected_at is None
    assert stats.top_keywords == [KeywordStats(1, "кошка", matches=3, comments=2), KeywordStats(2, "собака", 1, 1)]
    assert stats.top_authors == [AuthorStats(10, "Анна", 2), AuthorStats(20, "Борис", 1), AuthorStats(30, None, 1)]
    assert stats.days == [
        DayStats(date(2026, 3, 1), comments=2, matched_comments=1, matches=2),
        DayStats(date(2026, 3, 2), comments=1, matched_comments=1, matches=1),
        DayStats(date(2026, 3, 3), comments=1, matched_comments=1, matches=1),
    ]


async def test_top_lists_are_cut_and_empty_days_are_zero(migrated_db) -> None:
    _, sessions = migrated_db
    await seed(sessions)
    stats = await SqlReadModel(sessions).stats(StatsWindow(since=date(2026, 2, 27), until=date(2026, 3, 1), top=1))
    assert [a.vk_id for a in stats.top_authors] == [10]
    assert [k.keyword_id for k in stats.top_keywords] == [1]
    assert [(d.day.day, d.comments) for d in stats.days] == [(27, 0), (28, 0), (1, 2)]


async def test_an_empty_database_has_zero_stats(migrated_db) -> None:
    _, sessions = migrated_db
    stats = await SqlReadModel(sessions).stats(WINDOW)
    assert stats.totals == StatsTotals()
    assert stats.groups == [] and stats.top_keywords == [] and stats.top_authors == []
    assert [d.comments for d in stats.days] == [0, 0, 0]


async def test_task_counts_by_kind_and_state(migrated_db) -> None:
    _, sessions = migrated_db
    await seed(sessions)
    assert await SqlReadModel(sessions).task_counts() == {
        ("PARSE", "SUCCEEDED"): 2,
        ("PARSE", "FAILED"): 1,
        ("EXPORT", "QUEUED"): 1,
    }


async def test_cached_stats_are_fresh_after_invalidation(migrated_db) -> None:
    _, sessions = migrated_db
    await seed(sessions)
    read_model, cache = SqlReadModel(sessions), InMemoryCache()
    first = await read_stats(read_model, cache, WINDOW)
    async with sessions() as session:
        await session.execute(insert(groups).values(id=4, vk_id=104, screen_name="g4", name="Новая",
                                                    created_at=NOW, updated_at=NOW))
        await session.commit()
    cached = await read_stats(read_model, cache, WINDOW)
    assert cached == first  # served from the cache (equal after the round trip through bytes)
    await cache.invalidate("stats")
    assert (await read_stats(read_model, cache, WINDOW)).totals.groups == 4


# --- through the API: cached, and fresh as soon as a task finishes --------------------------

from tests.e2e.graphql_support import Api, api, client, container, tokens, wait_for_task  # noqa: E402, F401

STATS = "{ stats { totals { groups posts comments } groups { name comments group { id } } } }"


async def test_stats_over_graphql_are_fresh_after_a_parse(api: Api) -> None:
    before = (await api(STATS, role="viewer"))["stats"]
    assert before["totals"] == {"groups": 0, "posts": 0, "comments": 0}

    group = (await api('mutation { addGroup(ref: "koshki_spb") { group { id } } }'))["addGroup"]["group"]
    # Adding a group finishes no task: the cached numbers may stay for their short TTL.
    assert (await api(STATS, role="viewer"))["stats"] == before

    started = await api(
        "mutation($g: [ID!]!) { startParse(input: {groupIds: $g, maxPosts: 3}) { tasks { id } } }", {"g": [group["id"]]}
    )
    task = await wait_for_task(api, started["startParse"]["tasks"][0]["id"])
    assert task["state"] == "SUCCEEDED"

    after = (await api(STATS, role="viewer"))["stats"]
    assert after["totals"]["groups"] == 1
    assert after["totals"]["posts"] > 0 and after["totals"]["comments"] > 0
    assert after["groups"] == [{"name": after["groups"][0]["name"], "comments": after["totals"]["comments"],
                                "group": {"id": group["id"]}}]
    total = (await api("{ comments { totalCount } }", role="viewer"))["comments"]["totalCount"]
    assert after["totals"]["comments"] == total
