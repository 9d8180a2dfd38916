"""A comment filter means one thing: the ``comments`` query on SQLite, the same on PostgreSQL,
and the live feed (``commentMatched``, which runs ``CommentFilter.admits``) select the same
comments. Differential: every filter below runs through the read model on each database and
through the domain predicate, over comments chosen where the three could part ways (case,
"ё", stems, scripts whose lowercase is special, LIKE's wildcards)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from domain.models import Author, Comment, CommentStatus, Group, Keyword, Match, Post, WorkflowState
from domain.queries import MAX_PAGE, CommentFilter, CommentOrder, Member, Projection, Spelling
from infrastructure.db.queries import SqlReadModel
from infrastructure.db.rules import SqlRules

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# Comments (indexes into TEXTS) seen edited, then deleted on VK, and gone from VK (none of
# the texts the pinned answers below name is edited).
EDITED = frozenset({0, 10, 12, 15, 17})
DELETED = frozenset({2, 10, 14})
VANISHED = 16
# The review workflow, by index into TEXTS: status (cycling), assignee, tags (JSON on SQLite,
# JSONB on PostgreSQL: labels with quotes, wildcards, Cyrillic and a prefix of another).
STATUSES = list(CommentStatus)
ASSIGNEES = {0: "Анна", 3: "Анна", 4: "Борис", 7: "anna", 12: "Анна"}
TAGS = {
    0: ("срочно",), 1: ("срочно", "доставка"), 2: ('"кавычки"',), 5: ("%",), 6: ("_",), 8: ("срочно важно",),
    9: ("сроч",), 11: ("доставка",), 13: ("a\\b",),
}

TEXTS = [
    "Я люблю кошек",
    "С кошками гуляю",
    "Окошко открыто",
    "КОШКА спит",
    "Собака лает на кошку",
    "ёжик в тумане",
    "ЁЖИК и Ёлка",
    "Ежик",
    "кот,кошка;собака",
    "Кот-обормот",
    "Straße und STRASSE",
    "ΣΊΣΥΦΟΣ",
    "İstanbul",
    "100% скидка_50",
    "back\\slash",
    "emoji 🐈 кот",
    "Ⅻ век",
    "ǅemal",
    "",
    # Latin and Cyrillic: one word of each script, and a word of both ("с" Cyrillic, "at" Latin).
    "Cat и КОТ",  # Latin "Cat", Cyrillic "КОТ"
    "\u0441at наоборот",  # Cyrillic "с", Latin "at"
]

TEXT_FILTERS = [
    "кошка", "кошк", "КОШКАМИ", "кошек", "ёж", "ЕЖИК", "ёлка", "Елка", "кот собака", "собака кот",
    "кот-", "strasse", "straße", "σίσυφος", "ς", "istanbul", "i̇stanbul", "100%", "%", "_", "_50",
    "\\", "🐈", "ⅻ", "ǆemal", "ǅ", "а", "  ", "Окошко открыто",
    "cat", "CAT кот", "\u0441at", "\u0441AT", "\u0441\u0430\u0442", "\\%", "\\_", "%_", "0%", "k_t",
]


QUERIES = [
    "кошка", "кошки", "КОШКАМИ", "кошка OR собака", "кошка -собака", "кошка AND NOT собака", "NOT кошка",
    "кот", '"кот обормот"', "кот NEAR/1 собака", "кот NEAR/0 собака", '"кот собака"~1', "кош*", "КОШ*", "part:кош",
    "case:КОШКА", "case:кошка", "exact:кошку", "ёжик", "ежик OR елка", "ЕЛКА", "case:Ёлка", "kw:кошка",
    "kw:ёжик -тумане", "strasse", "Straße", "straße", "istanbul", "σίσυφος", "emoji", "век", "скидка_50",
    "100", "(кошка OR ёжик) -спит", "открыто", "окошко", "исправлено", "rule:животные",
]


@pytest.fixture
async def stored(uow_factory, migrated_db):
    """The comments, two keywords' matches, authors, times and review states; their ids."""
    async with uow_factory() as uow:
        groups = [await uow.groups.add(Group(vk_id=v, screen_name=f"g{v}", name=f"G{v}")) for v in (1, 2)]
        for g in groups:
            await uow.posts.upsert_many(g.id, [Post(owner_id=g.owner_id, vk_id=1, from_id=g.owner_id, text="", published_at=T0)])
        made = [
            Comment(owner_id=groups[i % 2].owner_id, vk_id=i + 1, post_vk_id=1, from_id=1000 + i % 3, text=text,
                    published_at=T0 + timedelta(hours=5 * i), likes=i % 4)
            for i, text in enumerate(TEXTS)
        ]
        ids: dict[tuple[int, int], int] = {}
        for g in groups:
            ids |= await uow.comments.upsert_many(g.id, [c for c in made if c.owner_id == g.owner_id])
        cat = await uow.keywords.add(Keyword(id=0, word="кошка"))
        hedgehog = await uow.keywords.add(Keyword(id=0, word="ёжик"))
        found = []
        for c in made:
            cid = ids[(c.owner_id, c.vk_id)]
            if "кош" in c.text.lower():
                found.append(Match(cid, cat.id, "кош", 0, 3, c.text))
            if "ж" in c.text.lower():
                found.append(Match(cid, hedgehog.id, "ж", 0, 1, c.text))
        await uow.matches.replace_for_comments(list(ids.values()), found)
        await uow.authors.upsert_many([Author(1000, "Ann")])
        await uow.commit()
    every = sorted(ids.values())
    by_index = [ids[(c.owner_id, c.vk_id)] for c in made]  # TEXTS[i]'s comment id
    async with uow_factory() as uow:
        await uow.comments.set_state(every[::3], viewed=True, archived=None)
        await uow.comments.set_state(every[::4], viewed=None, archived=True)
        await uow.commit()
    # Re-read later: some edited, some deleted on VK (one of them edited before), one gone.
    for step in (EDITED, DELETED):
        async with uow_factory() as uow:
            for g in groups:
                changed = [
                    dataclasses.replace(c, text="", from_id=0, deleted=True) if step is DELETED
                    else dataclasses.replace(c, text=c.text + " (исправлено)")
                    for i, c in enumerate(made) if i in step and c.owner_id == g.owner_id
                ]
                await uow.comments.upsert_many(g.id, changed)
            await uow.commit()
    async with uow_factory() as uow:
        states = [
            WorkflowState(id=cid, viewed=False, archived=False, status=STATUSES[i % 4], assignee=ASSIGNEES.get(i),
                          tags=tuple(sorted(TAGS.get(i, ()))), note=f"заметка {i}" if i % 5 == 0 else None)
            for i, cid in enumerate(by_index)
        ]
        await uow.comments.set_workflow(states)
        await uow.commit()
    async with uow_factory() as uow:
        owner = made[VANISHED].owner_id
        present = [c.vk_id for i, c in enumerate(made) if c.owner_id == owner and i != VANISHED]
        assert len(await uow.comments.mark_vanished(owner, 1, present, now=T0)) == 1
        await uow.commit()
    return groups, (cat.id, hedgehog.id), every, by_index


def _filters(groups, keyword_ids) -> list[CommentFilter]:
    cat, hedgehog = keyword_ids
    filters = [CommentFilter(text=text) for text in TEXT_FILTERS]
    filters += [
        CommentFilter(),
        CommentFilter(keyword_ids=(cat,)),
        CommentFilter(keyword_ids=(cat, hedgehog)),
        CommentFilter(keyword_ids=()),
        CommentFilter(matched=True),
        CommentFilter(matched=False),
        CommentFilter(group_ids=(groups[0].id,)),
        CommentFilter(author_ids=(1000, 1002)),
        CommentFilter(since=T0 + timedelta(hours=5), until=T0 + timedelta(hours=12)),
        CommentFilter(viewed=True),
        CommentFilter(archived=False, viewed=False),
        CommentFilter(text="кош", keyword_ids=(hedgehog,)),
        CommentFilter(text="кот", matched=False, group_ids=(groups[1].id,)),
        CommentFilter(text="ж", since=T0 + timedelta(hours=6), viewed=False),
        CommentFilter(deleted=True),
        CommentFilter(deleted=False),
        CommentFilter(edited=True),
        CommentFilter(edited=False),
        CommentFilter(edited=True, deleted=True),
        CommentFilter(edited=False, deleted=False, matched=True),
        CommentFilter(text="исправлено"),
        CommentFilter(text="кош", deleted=False, group_ids=(groups[0].id,)),
        CommentFilter(keyword_ids=(cat,), edited=True),
        CommentFilter(statuses=(CommentStatus.NEW,)),
        CommentFilter(statuses=(CommentStatus.IN_PROGRESS, CommentStatus.DONE)),
        CommentFilter(statuses=tuple(CommentStatus)),
        CommentFilter(statuses=()),
        CommentFilter(assignees=("Анна",)),
        CommentFilter(assignees=("Анна", "anna", "Борис")),
        CommentFilter(assignees=("АННА",)),
        CommentFilter(assignees=()),
        CommentFilter(tags=("срочно",)),
        CommentFilter(tags=("сроч",)),
        CommentFilter(tags=("срочно", "доставка")),
        CommentFilter(tags=('"кавычки"',)),
        CommentFilter(tags=("%",)),
        CommentFilter(tags=("_",)),
        CommentFilter(tags=("a\\b",)),
        CommentFilter(tags=("срочно важно",)),
        CommentFilter(tags=("нет такого",)),
        CommentFilter(tags=()),
        CommentFilter(assignees=("Анна",), statuses=(CommentStatus.NEW, CommentStatus.IN_PROGRESS)),
        CommentFilter(tags=("срочно", "доставка"), text="кош", viewed=False),
        CommentFilter(statuses=(CommentStatus.DONE,), since=T0 + timedelta(hours=7), until=T0 + timedelta(hours=70)),
    ]
    # The rule language: the domain's matcher decides on both databases, which only narrow.
    filters += [CommentFilter(query=q) for q in QUERIES]
    filters += [
        CommentFilter(query="кошка", viewed=False),
        CommentFilter(query="кот OR кошка", keyword_ids=(cat,)),  # the one-keyword read path
        CommentFilter(query="кот OR кошка", keyword_ids=(cat,), edited=False),
        CommentFilter(query="NOT кошка", deleted=False, group_ids=(groups[0].id,)),
        CommentFilter(query="ёжик OR кошка", text="ж"),
        CommentFilter(query="rule:животные -собака"),
    ]
    # Counted from the per-day aggregates (infrastructure/db/counts.py): comments over four UTC
    # days, ranges that cut days, hold whole ones, sit inside one day, or are empty.
    day = timedelta(days=1)
    for since, until in [
        (T0 + timedelta(hours=7), T0 + timedelta(hours=70)),
        (T0 - timedelta(hours=12), T0 + 3 * day - timedelta(hours=12)),  # whole days only
        (T0 + timedelta(hours=13), T0 + timedelta(hours=14)),
        (T0 + timedelta(hours=30), T0 + timedelta(hours=20)),
        (None, T0 + timedelta(hours=40)),
        (T0 + timedelta(hours=33), None),
        (T0 + timedelta(hours=49), T0 + timedelta(hours=100)),  # a comment at midnight, a whole day
        (T0 + timedelta(hours=20), T0 + timedelta(hours=60)),  # ... at the end
        (None, None),
    ]:
        for states in [{}, {"deleted": True}, {"edited": False, "viewed": True}, {"viewed": True}, {"viewed": False}, {"viewed": False, "archived": False}, {"viewed": True, "archived": False},
                       {"viewed": False, "archived": True}, {"viewed": True, "archived": True}, {"archived": False},
                       {"matched": True}, {"matched": False}, {"matched": True, "viewed": False}]:
            filters.append(CommentFilter(since=since, until=until, **states))
            filters.append(CommentFilter(since=since, until=until, group_ids=(groups[1].id,), **states))
    return filters
    return filters


async def _selected_by_sql(reads: SqlReadModel, flt: CommentFilter) -> set[int]:
    page = await reads.comments_page(flt, CommentOrder(), first=MAX_PAGE, after=None)
    assert not page.has_next_page
    return {view.id for _, view in page.edges}


_ID = Projection("comment", (Member("id", attribute="vk_id", spelling=Spelling.INT32),))


async def test_the_comments_query_and_the_live_feed_select_the_same_comments(stored, migrated_db) -> None:
    groups, keyword_ids, every, _ = stored
    reads = SqlReadModel(migrated_db[1])
    await SqlRules(migrated_db[1]).add_rule("Животные", "животные", "кошка OR собака OR кот", None, T0)
    views = await reads.comments_by_ids(every)
    matches = await reads.matches_by_comment_ids(every)
    disagreements = []
    selections = set()
    for flt in _filters(groups, keyword_ids):
        query = await reads.compiled(flt)
        by_domain = {v.id for v, found in zip(views, matches) if flt.admits(v, found, query)}
        by_sql = await _selected_by_sql(reads, flt)
        if by_sql != by_domain:
            texts = {i: v.text for i, v in zip(every, views)}
            disagreements.append((flt, sorted(texts[i] for i in by_sql ^ by_domain)))
        assert await reads.comments_count(flt) == len(by_sql)
        if reads.projects:  # the count read in the page's own statement is the same count
            counted = await reads.comments_page_projected(flt, CommentOrder(), _ID, first=1, counted=True)
            assert counted.total == (len(by_sql) if by_sql and flt.query is None else None), flt
        selections.add(frozenset(by_sql))
    assert disagreements == []
    # The filters tell the comments apart: not all nothing, not all everything.
    assert len(selections) > len(TEXT_FILTERS) // 2


async def test_the_meaning_is_literal_folded_words(stored, migrated_db) -> None:
    """Pinned answers, so both sides cannot drift together unnoticed."""
    reads = SqlReadModel(migrated_db[1])
    views = await reads.comments_by_ids(stored[2])
    text_of = {v.id: v.text for v in views}

    async def texts(text: str) -> set[str]:
        return {text_of[i] for i in await _selected_by_sql(reads, CommentFilter(text=text))}

    # A stem finds every form (and any word containing it); a form finds itself (and longer
    # ones), not its siblings.
    assert await texts("кошк") == {
        "С кошками гуляю", "КОШКА спит", "кот,кошка;собака", "Собака лает на кошку", "Окошко открыто",
    }
    assert await texts("кошка") == {"С кошками гуляю", "КОШКА спит", "кот,кошка;собака"}
    # Case and ё do not matter; every word must occur, in any order.
    assert await texts("ЕЖИК") == {"ёжик в тумане", "ЁЖИК и Ёлка", "Ежик"}
    assert await texts("собака кот") == {"кот,кошка;собака"}
    # LIKE's wildcards are plain characters.
    assert await texts("%") == {"100% скидка_50"}
    assert await texts("_") == {"100% скидка_50"}
    # Review workflow: a tag is matched whole (not as a prefix or a pattern), a name exactly.
    by_index = stored[3]

    async def workflow(**conditions) -> set[int]:
        return {by_index.index(i) for i in await _selected_by_sql(reads, CommentFilter(**conditions))}

    assert await workflow(tags=("срочно",)) == {0, 1}
    assert await workflow(tags=("%",)) == {5}
    assert await workflow(tags=("сроч",)) == {9}
    assert await workflow(assignees=("Анна",), statuses=(CommentStatus.NEW,)) == {0, 12}
    # Unicode lowercase, not ASCII only: Greek and the final sigma too.
    assert await texts("σίσυφος") == {"ΣΊΣΥΦΟΣ"}
    # Scripts are not mixed up: a Latin "c" is not a Cyrillic "с", whatever the case.
    assert await texts("CAT кот") == {"Cat и КОТ"}
    assert await texts("cat") == {"Cat и КОТ"}
    assert await texts("\u0421\u0410\u0422") == set()  # all Cyrillic: no text has it
    assert await texts("\u0441AT") == {"\u0441at наоборот"}
    # The escape character is plain too, and escapes nothing.
    assert await texts("\\") == {"back\\slash"}
    assert await texts("\\%") == set()
    assert await texts("0%") == {"100% скидка_50"}


async def test_the_stored_fold_is_the_domains_after_edits_and_deletions(stored, migrated_db) -> None:
    """``comments.text_folded`` (what the filter compares) is ``fold_text(text)`` for every
    comment the fixture wrote, edited, deleted and marked vanished, on both databases."""
    from sqlalchemy import select

    from domain.queries import fold_text
    from infrastructure.db.tables import comments

    engine, _ = migrated_db
    async with engine.connect() as conn:
        rows = (await conn.execute(select(comments.c.text, comments.c.text_folded))).all()
    assert len(rows) == len(TEXTS)
    assert [folded for _, folded in rows] == [fold_text(text) for text, _ in rows]
    assert any(folded != text for text, folded in rows)  # the fold did change some
    assert any("(исправлено)" in folded for _, folded in rows)  # edits were folded anew


async def test_the_rule_language_pinned(stored, migrated_db) -> None:
    """Pinned answers of queries on both databases (morphology, not substrings)."""
    reads = SqlReadModel(migrated_db[1])
    views = await reads.comments_by_ids(stored[2])
    text_of = {v.id: v.text for v in views}

    async def texts(query: str) -> set[str]:
        return {text_of[i] for i in await _selected_by_sql(reads, CommentFilter(query=query))}

    # Every form of кошка, not окошко (which a substring finds).
    assert await texts("кошка") == {
        "С кошками гуляю", "КОШКА спит", "кот,кошка;собака", "Собака лает на кошку", "Я люблю кошек (исправлено)",
    }
    assert await texts("кошка -собака") == {"С кошками гуляю", "КОШКА спит", "Я люблю кошек (исправлено)"}
    assert await texts("case:КОШКА") == {"КОШКА спит"}
    assert await texts("ежик") == {"ёжик в тумане", "ЁЖИК и Ёлка", "Ежик"}
    assert await texts("кот NEAR/0 собака") == set()  # кот,кошка;собака: one word between
    assert await texts("кот NEAR/1 собака") == {"кот,кошка;собака"}


async def test_query_pages_and_counts_read_past_refused_candidates(migrated_db, uow_factory) -> None:
    """Many candidates the database cannot tell apart (кошка/окошко share "кош"), few matches:
    pages forward and backward, across the batches the read model takes, give each match once,
    in order, and the count agrees."""
    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=77, screen_name="g77", name="G77"))
        await uow.posts.upsert_many(group.id, [Post(owner_id=group.owner_id, vk_id=1, from_id=1, text="", published_at=T0)])
        made = [
            Comment(owner_id=group.owner_id, vk_id=i + 1, post_vk_id=1, from_id=1, published_at=T0 + timedelta(minutes=i),
                    text="кошка пришла" if i % 37 == 0 else "окошко открыто")
            for i in range(600)
        ]
        ids = await uow.comments.upsert_many(group.id, made)
        await uow.commit()
    expected = sorted((ids[(group.owner_id, i + 1)] for i in range(600) if i % 37 == 0), reverse=True)
    reads = SqlReadModel(migrated_db[1])
    flt = CommentFilter(query="кошка", group_ids=(group.id,))
    assert await reads.comments_count(flt) == len(expected) == 17
    seen, after = [], None
    while True:
        page = await reads.comments_page(flt, CommentOrder(), first=5, after=after)
        seen += [view.id for _, view in page.edges]
        assert await page.items_before() == (after is not None)
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == expected
    back = await reads.comments_page(flt, CommentOrder(), last=4, before=None)
    assert [view.id for _, view in back.edges] == expected[-4:]
    assert back.has_previous_page
    if reads.projects:  # PostgreSQL writes the page's JSON: the same comments, in the same order
        projection = Projection("comment", (Member("id", attribute="vk_id", spelling=Spelling.INT32),
                                            Member("text", attribute="text")))
        written = await reads.comments_page_projected(flt, CommentOrder(), projection, first=10, after=None)
        vk_id_of = {row: vk_id for (_, vk_id), row in ids.items()}  # the projection writes VK's ids
        assert [orjson.loads(node)["id"] for _, node in written.edges] == [vk_id_of[i] for i in expected[:10]]
        assert all(orjson.loads(node)["text"] == "кошка пришла" for _, node in written.edges)
        assert written.has_next_page
        middle = await reads.comments_page_projected(flt, CommentOrder(), projection, first=3, after=written.edges[4][0])
        assert [orjson.loads(node)["id"] for _, node in middle.edges] == [vk_id_of[i] for i in expected[5:8]]
        assert await middle.items_before()
