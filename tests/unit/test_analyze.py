"""The ANALYZE job against the in-memory fakes and the real matcher (pymorphy3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bootstrap import build_matcher_factory
from domain import analyze
from domain.analyze import COMMENTS_MATCHED_CHANNEL, run_analyze
from domain.collect import CollectOptions, collect_group
from domain.errors import TaskCancelled
from domain.keywords import KeywordInput, add_keywords
from domain.models import Comment, Group, Match, Task, TaskKind
from domain.ports import Adapters
from domain.queries import CommentFilter, CommentView
from infrastructure.vk.sandbox import sandbox_gateway
from tests.fakes import FakeClock, InMemoryStore, no_report

T0 = datetime(2026, 10, 1, tzinfo=UTC)


class RecordingEvents:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, channel: str, event: dict[str, Any]) -> None:
        self.published.append((channel, event))

    def matched_ids(self) -> list[int]:
        return [i for channel, e in self.published if channel == COMMENTS_MATCHED_CHANNEL for i in e["commentIds"]]


def make_adapters(store: InMemoryStore, events: RecordingEvents | None = None) -> Adapters:
    return Adapters(
        uow_factory=store.uow_factory,
        vk=None,  # type: ignore[arg-type]  # analyze never calls VK
        queue=None,  # type: ignore[arg-type]
        events=events or RecordingEvents(),  # type: ignore[arg-type]
        clock=FakeClock(),
        matcher_factory=build_matcher_factory(),
    )


async def store_comments(store: InMemoryStore, texts: list[str], *, group_id: int = 1, owner_id: int = -1) -> list[int]:
    comments = [Comment(owner_id, i + 1, 1, 100 + i, text, T0) for i, text in enumerate(texts)]
    async with store.uow_factory() as uow:
        ids = await uow.comments.upsert_many(group_id, comments)
        await uow.commit()
    return [ids[(owner_id, i + 1)] for i in range(len(texts))]


def analyze_task(**params: Any) -> Task:
    return Task(kind=TaskKind.ANALYZE, params={"groupIds": None, "keywordIds": None, **params}, id=1)


def matched(store: InMemoryStore) -> dict[int, list[tuple[int, str]]]:
    return {cid: sorted((m.keyword_id, m.matched_text) for m in ms) for cid, ms in store.matches.items() if ms}


async def test_a_new_keyword_finds_every_form_of_its_word_and_no_lookalike() -> None:
    store = InMemoryStore()
    events = RecordingEvents()
    adapters = make_adapters(store, events)
    ids = await store_comments(
        store,
        ["Я люблю гулять с кошками", "Кот сидел на окошке", "Нет кошек — нет проблем", "Окошко открыто", "Ничего"],
    )
    [result] = await add_keywords(adapters, [KeywordInput("кошка")])
    keyword = result.keyword
    assert keyword.morphology  # on by default for a Cyrillic word

    summary = await run_analyze(adapters, analyze_task(), no_report)

    assert matched(store) == {ids[0]: [(keyword.id, "кошками")], ids[2]: [(keyword.id, "кошек")]}
    assert summary == {"comments": 5, "matchedComments": 2, "matches": 2, "keywords": 1}
    assert sorted(events.matched_ids()) == [ids[0], ids[2]]


async def test_partial_analyze_replaces_only_the_given_keywords_matches() -> None:
    store = InMemoryStore()
    adapters = make_adapters(store)
    [c1, c2] = await store_comments(store, ["кошки и собаки", "собака"])
    cat, dog = store.add_keyword("кошка"), store.add_keyword("собака")
    stale = Match(c2, cat.id, "собака", 0, 6, "собака")  # a match the cat keyword no longer makes
    store.matches[c2] = [stale]

    await run_analyze(adapters, analyze_task(keywordIds=[dog.id]), no_report)
    assert matched(store) == {c1: [(dog.id, "собаки")], c2: [(cat.id, "собака"), (dog.id, "собака")]}

    await run_analyze(adapters, analyze_task(keywordIds=[cat.id]), no_report)
    assert matched(store) == {c1: [(cat.id, "кошки"), (dog.id, "собаки")], c2: [(dog.id, "собака")]}


async def test_full_analyze_drops_matches_of_inactive_keywords_and_a_deactivated_one_in_scope() -> None:
    store = InMemoryStore()
    adapters = make_adapters(store)
    [c1] = await store_comments(store, ["кошки и собаки"])
    cat, dog = store.add_keyword("кошка"), store.add_keyword("собака", active=False)
    store.matches[c1] = [Match(c1, dog.id, "собаки", 8, 14, "")]

    await run_analyze(adapters, analyze_task(keywordIds=[dog.id]), no_report)  # inactive: loses its matches
    assert matched(store) == {}
    await run_analyze(adapters, analyze_task(), no_report)
    assert matched(store) == {c1: [(cat.id, "кошки")]}


async def test_only_the_given_groups_are_analyzed() -> None:
    store = InMemoryStore()
    adapters = make_adapters(store)
    [a] = await store_comments(store, ["кошки"], group_id=1, owner_id=-1)
    [b] = await store_comments(store, ["кошки"], group_id=2, owner_id=-2)
    store.add_keyword("кошка")
    summary = await run_analyze(adapters, analyze_task(groupIds=[2]), no_report)
    assert summary["comments"] == 1
    assert set(matched(store)) == {b} and a not in store.matches


async def test_progress_by_batch_and_cancellation_between_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analyze, "ANALYZE_BATCH", 2)
    store = InMemoryStore()
    adapters = make_adapters(store)
    await store_comments(store, [f"кошка номер {i}" for i in range(5)])
    store.add_keyword("кошка")
    steps: list[tuple[int, int | None]] = []

    async def report(done: int, total: int | None, message: str) -> None:
        steps.append((done, total))

    await run_analyze(adapters, analyze_task(), report)
    assert steps == [(0, 5), (2, 5), (4, 5), (5, 5)]

    store.matches.clear()

    async def cancel_after_first_batch(done: int, total: int | None, message: str) -> None:
        if done >= 2:
            raise TaskCancelled("cancelled")

    with pytest.raises(TaskCancelled):
        await run_analyze(adapters, analyze_task(), cancel_after_first_batch)
    assert len(matched(store)) == 2  # the first batch is committed, nothing after it


async def collect_velo_spb(store: InMemoryStore, adapters: Adapters, *, report=no_report, full: bool = False) -> None:
    async with store.uow_factory() as uow:
        group = await uow.groups.get_by_vk_id(11004)
        if group is None:
            group = await uow.groups.add(Group(vk_id=11004, screen_name="velo_spb", name="Велосипедный Петербург"))
        await uow.commit()
    await collect_group(
        group, vk=sandbox_gateway(rps=1000), uow_factory=store.uow_factory, options=CollectOptions(full=full),
        report=report, now=T0, matcher_factory=adapters.matcher_factory,
    )


def by_comment_key(store: InMemoryStore) -> set[tuple]:
    """Every match, named by what identifies it across stores (comment key, keyword word)."""
    keys = {row_id: key for key, (row_id, _, _) in store.comments.items()}
    words_by_id = {k.id: k.word for k in store.keywords.values()}
    return {(keys[m.comment_id], words_by_id[m.keyword_id], m.matched_text, m.start, m.end, m.snippet)
            for m in store.all_matches()}


async def fresh_collection_matches(words: list[str]) -> set[tuple]:
    """The matches of velo_spb collected with ``words`` as keywords from the start."""
    fresh = InMemoryStore()
    adapters = make_adapters(fresh)
    await add_keywords(adapters, [KeywordInput(w) for w in words])
    await collect_velo_spb(fresh, adapters)
    return by_comment_key(fresh)


async def test_analyze_after_adding_a_keyword_equals_a_fresh_collection() -> None:
    """Collect velo_spb with the keywords present vs. collect first, add them, then analyze."""
    words = ["велосипед", "дорожка", "мост", "машина"]

    expected = await fresh_collection_matches(words)

    later = InMemoryStore()
    later_adapters = make_adapters(later)
    await collect_velo_spb(later, later_adapters)
    assert later.all_matches() == []
    await add_keywords(later_adapters, [KeywordInput(w) for w in words])
    await run_analyze(later_adapters, analyze_task(), no_report)

    assert len(expected) > 10
    assert {w for _, w, *_ in expected} == set(words)
    assert by_comment_key(later) == expected


async def test_a_parse_publishes_the_comments_it_matched() -> None:
    from domain.collect import run_parse

    store = InMemoryStore()
    events = RecordingEvents()
    adapters = make_adapters(store, events)
    adapters.vk = sandbox_gateway(rps=1000)
    async with store.uow_factory() as uow:
        group = await uow.groups.add(Group(vk_id=11004, screen_name="velo_spb", name="Велосипедный Петербург"))
        await uow.commit()
    store.add_keyword("велосипед")

    await run_parse(adapters, Task(kind=TaskKind.PARSE, group_id=group.id, id=99), no_report)

    published = events.matched_ids()
    assert published and len(published) == len(set(published))
    assert set(published) == set(store.matches)


def view(**overrides: Any) -> CommentView:
    values = dict(
        id=1, group_id=1, post_id=10, owner_id=-1, vk_id=1, post_vk_id=5, parent_vk_id=None, thread_vk_id=None,
        from_id=7, text="Ёжик в тумане", published_at=T0, likes=0, deleted=False, viewed=False, archived=False,
        matches_count=1,
    )
    values.update(overrides)
    return CommentView(**values)


def test_live_filter_follows_the_comments_query_conditions() -> None:
    hit = [Match(1, 3, "Ёжик", 0, 4, "")]
    assert CommentFilter().admits(view(), hit)
    assert CommentFilter(group_ids=(1, 2), keyword_ids=(3,), text="ЕЖИК", author_ids=(7,)).admits(view(), hit)
    assert not CommentFilter(group_ids=(2,)).admits(view(), hit)
    assert not CommentFilter(keyword_ids=(4,)).admits(view(), hit)
    assert not CommentFilter(matched=False).admits(view(), hit)
    assert not CommentFilter(viewed=True).admits(view(), hit)
    assert not CommentFilter(since=datetime(2027, 1, 1, tzinfo=UTC)).admits(view(), hit)
    assert not CommentFilter(text="кошка").admits(view(), hit)
    # Every word, as a folded substring: a stem finds its forms, word order does not matter.
    assert CommentFilter(text="туман ёж").admits(view(), hit)
    assert not CommentFilter(text="ёжик лес").admits(view(), hit)


async def test_a_keyword_added_during_a_parse_matches_from_the_next_batch_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parse lasts hours: it must not keep matching with the keywords of its start."""
    import domain.collect

    monkeypatch.setattr(domain.collect, "WRITE_BATCH", 20)  # many batches
    store = InMemoryStore()
    adapters = make_adapters(store)
    written_before: set[int] = set()

    async def add_keyword_after_the_first_batch(done: int, total: int | None, message: str) -> None:
        if store.comments and not written_before:
            written_before.update(row_id for row_id, _, _ in store.comments.values())
            await add_keywords(adapters, [KeywordInput("велосипед")])

    await collect_velo_spb(store, adapters, report=add_keyword_after_the_first_batch)

    later = {row_id: text for row_id, _, text in _rows(store) if row_id not in written_before}
    factory = adapters.matcher_factory
    assert factory is not None
    expected = factory(list(store.keywords.values()))(sorted(later.items()))
    assert len(expected) > 5
    assert {m for m in store.all_matches() if m.comment_id in later} == set(expected)


async def test_a_parse_keeps_the_matches_an_analyze_gave_after_a_keyword_was_added(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword added and analyzed while a re-collecting parse runs: the parse's later batches
    re-write matches of comments the analyze already did, and must use the new keyword too."""
    import domain.collect

    monkeypatch.setattr(domain.collect, "WRITE_BATCH", 20)
    words = ["мост", "велосипед"]
    expected = await fresh_collection_matches(words)

    store = InMemoryStore()
    adapters = make_adapters(store)
    await add_keywords(adapters, [KeywordInput(words[0])])
    await collect_velo_spb(store, adapters)
    analyzed = False

    async def add_and_analyze_halfway(done: int, total: int | None, message: str) -> None:
        nonlocal analyzed
        if total and done >= total // 2 and not analyzed:
            analyzed = True
            await add_keywords(adapters, [KeywordInput(words[1])])
            await run_analyze(adapters, analyze_task(), no_report)

    await collect_velo_spb(store, adapters, report=add_and_analyze_halfway, full=True)

    assert analyzed
    assert {w for _, w, *_ in expected} == set(words)
    assert by_comment_key(store) == expected


def _rows(store: InMemoryStore) -> list[tuple[int, int, str]]:
    """(row id, group id, text) of every stored comment."""
    return [(row_id, group_id, comment.text) for row_id, group_id, comment in store.comments.values()]
