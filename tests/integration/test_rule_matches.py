"""Saved rules' stored matches (``rule_matches``, ``domain.rule_index``) on SQLite and PostgreSQL:
once a rule is indexed, its count, its pages and ``topRules`` come from the stored set, and they
equal what running the same query gives (the ad-hoc path), for every query of the filter
semantics' list; they follow a comment's edit, a keyword's change and the rule's own change; a
rule being rebuilt is read by running its query, never off a partial set."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy import text as sa_text

from domain import saved_rules
from domain.models import Comment, Group, Keyword, Post
from domain.queries import CommentFilter, CommentOrder, CommentSort, Member, Projection
from domain.rule_index import index_comments, rebuild_rule_matches
from domain.rules import InvalidInput
from infrastructure.db.queries import SqlReadModel
from infrastructure.db.rules import SqlRules
from infrastructure.db.tables import rule_matches
from tests.integration.test_filter_semantics import QUERIES, stored  # noqa: F401

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def clock() -> datetime:
    return NOW


async def _ids(reads: SqlReadModel, flt: CommentFilter, order: CommentOrder | None = None) -> list[int]:
    found, after = [], None
    while True:
        page = await reads.comments_page(flt, order or CommentOrder(), first=4, after=after)
        found += [view.id for _, view in page.edges]
        if not page.has_next_page:
            return found
        after = page.end_cursor


async def _make_rules(store: SqlRules, queries: list[str]) -> dict[str, str]:
    """A saved rule per query that resolves here: name -> query."""
    made = {}
    for i, query in enumerate(queries):
        try:
            await saved_rules.create_rule(store, name=f"r{i}", query=query, category=None, now=NOW)
        except InvalidInput:
            continue  # names what does not exist here (rule:животные)
        made[f"r{i}"] = query
    return made


async def test_stored_matches_give_what_the_query_gives(stored, migrated_db, uow_factory) -> None:
    _engine, sessions = migrated_db
    store, reads = SqlRules(sessions), SqlReadModel(sessions)
    made = await _make_rules(store, QUERIES)
    assert len(made) >= len(QUERIES) - 1
    assert all(r.indexed_at is None for r in await store.list_rules())
    result = await rebuild_rule_matches(uow_factory, clock)
    assert result["rules"] == len(made)
    assert all(r.indexed_at == NOW for r in await store.list_rules())

    groups = stored[0]
    for name, query in made.items():
        by_name = CommentFilter(query=f'rule:"{name}"')
        adhoc = CommentFilter(query=query)
        expected = await _ids(reads, adhoc)
        assert await _ids(reads, by_name) == expected, query
        assert await reads.comments_count(by_name) == await reads.comments_count(adhoc) == len(expected), query
        # With the rest of a filter, in another order, backwards.
        narrowed = dataclasses.replace(by_name, group_ids=(groups[0].id,), viewed=False)
        adhoc_narrowed = dataclasses.replace(adhoc, group_ids=(groups[0].id,), viewed=False)
        assert await reads.comments_count(narrowed) == await reads.comments_count(adhoc_narrowed), query
        likes = CommentOrder(CommentSort.LIKES)
        assert await _ids(reads, narrowed, likes) == await _ids(reads, adhoc_narrowed, likes), query
        back = await reads.comments_page(by_name, CommentOrder(), last=2, before=None)
        back_adhoc = await reads.comments_page(adhoc, CommentOrder(), last=2, before=None)
        assert [v.id for _, v in back.edges] == [v.id for _, v in back_adhoc.edges], query
        if reads.projects:  # PostgreSQL writes the page's JSON: the same comments, in the same order
            projection = Projection("comment", (Member("text", attribute="text"),))
            written = await reads.comments_page_projected(by_name, CommentOrder(), projection, first=3, after=None)
            views = await reads.comments_by_ids(expected[:3])
            assert [orjson.loads(node)["text"] for _, node in written.edges] == [v.text for v in views if v], query
    names = list(made)
    assert await reads.rule_counts([f'rule:"{n}"' for n in names]) == await reads.rule_counts(
        [made[n] for n in names]
    )


async def test_stored_matches_follow_edits_keywords_and_rules(stored, migrated_db, uow_factory) -> None:
    engine, sessions = migrated_db
    store, reads = SqlRules(sessions), SqlReadModel(sessions)
    _groups, (cat_id, _), every, by_index = stored
    await saved_rules.create_rule(store, name="Кошки", query=f"kw:{cat_id} OR кот", category=None, now=NOW)
    await saved_rules.create_rule(store, name="Без собак", query="rule:Кошки -собака", category=None, now=NOW)
    await saved_rules.create_rule(store, name="Ёжики", query="ёжик", category=None, now=NOW)
    await rebuild_rule_matches(uow_factory, clock)

    async def agree() -> None:
        for name, query in (("Кошки", f"kw:{cat_id} OR кот"), ("Без собак", f"(kw:{cat_id} OR кот) -собака")):
            indexed = await reads.comments_count(CommentFilter(query=f'rule:"{name}"'))
            assert indexed == await reads.comments_count(CommentFilter(query=query)), name
            assert await _ids(reads, CommentFilter(query=f'rule:"{name}"')) == await _ids(
                reads, CommentFilter(query=query)
            ), name

    async def state() -> dict[str, bool]:
        return {r.name: r.indexed_at is not None for r in await store.list_rules()}

    await agree()
    before = await reads.comments_count(CommentFilter(query="rule:Кошки"))

    # A comment edited (as the collector stores it: its rule matches in the same transaction).
    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=99, screen_name="g99", name="G99"))
        await uow.posts.upsert_many(group.id, [Post(owner_id=group.owner_id, vk_id=1, from_id=1, text="",
                                                    published_at=NOW)])
        comment = Comment(owner_id=group.owner_id, vk_id=1, post_vk_id=1, from_id=1, text="кошка дома",
                          published_at=NOW - timedelta(days=1))
        ids = await uow.comments.upsert_many(group.id, [comment])
        await index_comments(uow, [(ids[(group.owner_id, 1)], comment.text)])
        await uow.commit()
    assert await reads.comments_count(CommentFilter(query="rule:Кошки")) == before + 1
    await agree()
    async with uow_factory() as uow:
        edited = dataclasses.replace(comment, text="собака дома")
        ids = await uow.comments.upsert_many(group.id, [edited])
        await index_comments(uow, [(ids[(group.owner_id, 1)], edited.text)])
        await uow.commit()
    assert await reads.comments_count(CommentFilter(query="rule:Кошки")) == before
    await agree()

    # The keyword a rule names changes: the rule and the rule naming it are rebuilt; meanwhile
    # they are read by running their queries (same answers), the other rule stays indexed.
    async with uow_factory() as uow:
        keyword = await uow.keywords.get(cat_id)
        assert keyword is not None
        await uow.keywords.save(dataclasses.replace(keyword, word="собака"))
        stale = await uow.rule_matches.invalidate(keyword_ids=[cat_id], keyword_words=["кошка", "собака"])
        await uow.commit()
    reads.queries_changed()  # as the API does on a keyword's change
    assert len(stale) == 2
    assert await state() == {"Кошки": False, "Без собак": False, "Ёжики": True}
    await agree()
    await rebuild_rule_matches(uow_factory, clock)
    assert await state() == {"Кошки": True, "Без собак": True, "Ёжики": True}
    await agree()
    assert await reads.comments_count(CommentFilter(query="rule:Кошки")) != before

    # The rule's own query changes: it and the rule naming it.
    [cats] = [r for r in await store.list_rules() if r.name == "Кошки"]
    await saved_rules.update_rule(store, cats.id, name=None, query="кошка", category=None, clear_category=False,
                                  now=NOW)
    reads.queries_changed()
    assert await state() == {"Кошки": False, "Без собак": False, "Ёжики": True}
    await rebuild_rule_matches(uow_factory, clock)
    assert await state() == {"Кошки": True, "Без собак": True, "Ёжики": True}
    assert await reads.comments_count(CommentFilter(query="rule:Кошки")) == await reads.comments_count(
        CommentFilter(query="кошка")
    ) == 5
    assert await reads.comments_count(CommentFilter(query='rule:"Без собак"')) == await reads.comments_count(
        CommentFilter(query="кошка -собака")
    )

    # The keyword removed: a rule naming it no longer resolves; it stays unindexed and says so
    # as the query path does (a QuerySyntaxError), never a count of 0.
    await saved_rules.update_rule(store, cats.id, name=None, query=f"kw:{cat_id}", category=None,
                                  clear_category=False, now=NOW)
    reads.queries_changed()
    await rebuild_rule_matches(uow_factory, clock)
    async with uow_factory() as uow:
        await uow.keywords.remove(cat_id)
        await uow.rule_matches.invalidate(keyword_ids=[cat_id], keyword_words=["собака"])
        await uow.commit()
    reads.queries_changed()
    await rebuild_rule_matches(uow_factory, clock)
    assert (await state())["Кошки"] is False
    with pytest.raises(InvalidInput):
        await reads.comments_count(CommentFilter(query="rule:Кошки"))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(rule_matches.c.rule_id).where(rule_matches.c.rule_id == cats.id))).all()
    assert rows == []
    # A keyword with a word a rule names (`kw:ёж`, broken since its keyword went) again: rebuilt.
    async with uow_factory() as uow:
        hedgehog = await uow.keywords.add(Keyword(id=0, word="ёж"))
        assert hedgehog is not None
        await uow.commit()
    await saved_rules.create_rule(store, name="Ёж", query="kw:ёж", category=None, now=NOW)
    await rebuild_rule_matches(uow_factory, clock)
    async with uow_factory() as uow:
        await uow.keywords.remove(hedgehog.id)
        assert await uow.rule_matches.invalidate(keyword_ids=[hedgehog.id], keyword_words=["еж"])
        await uow.commit()
    await rebuild_rule_matches(uow_factory, clock)
    assert (await state())["Ёж"] is False
    async with uow_factory() as uow:
        assert await uow.keywords.add(Keyword(id=0, word="Ёж")) is not None
        assert len(await uow.rule_matches.invalidate(keyword_words=["еж"])) == 1
        await uow.commit()
    reads.queries_changed()
    await rebuild_rule_matches(uow_factory, clock)
    assert (await state())["Ёж"] is True
    assert await reads.comments_count(CommentFilter(query="rule:Ёж")) == await reads.comments_count(
        CommentFilter(query="ёж")
    )
    assert every and by_index


async def test_a_rebuild_overtaken_by_a_change_never_marks_the_rule_indexed(
    stored, migrated_db, uow_factory
) -> None:
    _engine, sessions = migrated_db
    store, reads = SqlRules(sessions), SqlReadModel(sessions)
    rule = await saved_rules.create_rule(store, name="Коты", query="кот", category=None, now=NOW)
    async with uow_factory() as uow:
        compiled = await uow.rule_matches.compiled(unindexed_only=True)
    assert compiled.live == [(rule.id, 0)]
    # Changed while the rebuild matched: its generation moved.
    await saved_rules.update_rule(store, rule.id, name=None, query="кошка", category=None, clear_category=False,
                                  now=NOW)
    async with uow_factory() as uow:
        assert await uow.rule_matches.generations([rule.id]) == {rule.id: 1}
        assert await uow.rule_matches.mark_indexed(compiled.live, NOW) == 0
        await uow.commit()
    assert [r.indexed_at for r in await store.list_rules()] == [None]
    # Read by running the query meanwhile; the next rebuild builds the new query.
    assert await reads.comments_count(CommentFilter(query="rule:Коты")) == await reads.comments_count(
        CommentFilter(query="кошка")
    )
    await rebuild_rule_matches(uow_factory, clock)
    assert [r.indexed_at for r in await store.list_rules()] == [NOW]
    assert await reads.comments_count(CommentFilter(query="rule:Коты")) == await reads.comments_count(
        CommentFilter(query="кошка")
    )


async def test_storing_a_comment_again_writes_only_what_changed(stored, migrated_db, uow_factory) -> None:
    # An analysis stores every comment's rule matches again, mostly unchanged: those rows stay
    # as they are (on PostgreSQL not even rewritten); a rule lost or gained, and a comment's
    # time moving, are written.
    engine, sessions = migrated_db
    store = SqlRules(sessions)
    for name, query in (("Кошки", "кошка"), ("Дома", "дом"), ("Собаки", "собака")):
        await saved_rules.create_rule(store, name=name, query=query, category=None, now=NOW)
    await rebuild_rule_matches(uow_factory, clock)
    rule_ids = {r.name: r.id for r in await store.list_rules()}
    postgres = engine.dialect.name == "postgresql"

    async with uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=98, screen_name="g98", name="G98"))
        await uow.posts.upsert_many(group.id, [Post(owner_id=group.owner_id, vk_id=1, from_id=1, text="",
                                                    published_at=NOW)])
        await uow.commit()
    comment = Comment(owner_id=group.owner_id, vk_id=1, post_vk_id=1, from_id=1, text="кошка дома",
                      published_at=NOW - timedelta(days=1))

    async def put(c: Comment) -> int:
        async with uow_factory() as uow:
            ids = await uow.comments.upsert_many(group.id, [c])
            comment_id = ids[(group.owner_id, 1)]
            await index_comments(uow, [(comment_id, c.text)])
            await uow.commit()
        return comment_id

    async def rows(comment_id: int) -> dict[int, tuple[datetime, str | None]]:
        columns = [rule_matches.c.rule_id, rule_matches.c.published_at]
        if postgres:
            columns.append(sa_text("xmin::text"))
        async with engine.connect() as conn:
            found = await conn.execute(select(*columns).where(rule_matches.c.comment_id == comment_id))
        return {r[0]: (r[1].replace(tzinfo=UTC) if r[1].tzinfo is None else r[1], r[2] if postgres else None)
                for r in found}

    comment_id = await put(comment)
    first = await rows(comment_id)
    assert {k: v[0] for k, v in first.items()} == {rule_ids["Кошки"]: comment.published_at,
                                                    rule_ids["Дома"]: comment.published_at}
    await put(comment)  # unchanged
    assert await rows(comment_id) == first
    edited = dataclasses.replace(comment, text="собака дома")  # loses Кошки, keeps Дома, gains Собаки
    await put(edited)
    after = await rows(comment_id)
    assert {k: v[0] for k, v in after.items()} == {rule_ids["Собаки"]: comment.published_at,
                                                    rule_ids["Дома"]: comment.published_at}
    moved = dataclasses.replace(edited, published_at=NOW - timedelta(days=3))  # the same rules, another time
    await put(moved)
    assert {k: v[0] for k, v in (await rows(comment_id)).items()} == {
        rule_ids["Собаки"]: moved.published_at, rule_ids["Дома"]: moved.published_at
    }
    # Comments read by id range (an analysis of some communities): the rows of a comment in the
    # range that was not among them stay as they are.
    others = [dataclasses.replace(comment, vk_id=v, text="кошка дома") for v in (2, 3)]
    async with uow_factory() as uow:
        ids = await uow.comments.upsert_many(group.id, others)
        second, third = ids[(group.owner_id, 2)], ids[(group.owner_id, 3)]
        await index_comments(uow, [(second, "кошка дома"), (third, "кошка дома")])
        await uow.commit()
    assert comment_id < second < third
    kept = await rows(second)
    async with uow_factory() as uow:
        await index_comments(uow, [(comment_id, "кот"), (third, "кот")])  # neither matches now
        await uow.commit()
    assert await rows(comment_id) == {} and await rows(third) == {}
    assert await rows(second) == kept and len(kept) == 2
