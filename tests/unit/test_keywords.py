"""Keyword management use cases against the in-memory fakes."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput, NotFound
from domain.keywords import (
    DuplicateKeyword,
    KeywordChanges,
    KeywordInput,
    add_keywords,
    default_morphology,
    remove_keyword,
    update_keyword,
)
from domain.models import Match
from domain.ports import Adapters
from tests.fakes import FakeClock, InMemoryStore


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def adapters(store: InMemoryStore) -> Adapters:
    return Adapters(uow_factory=store.uow_factory, vk=None, queue=None, events=None, clock=FakeClock())  # type: ignore[arg-type]


async def test_bulk_add_reports_each_item_and_skips_only_the_bad_ones(adapters, store) -> None:
    store.add_keyword("Собака")
    results = await add_keywords(
        adapters,
        [
            KeywordInput("  кошка  "),
            KeywordInput("КОШКА"),  # repeats item 1
            KeywordInput("собака"),  # already stored as "Собака"
            KeywordInput("   "),
            KeywordInput("x" * 201),
            KeywordInput("ёлка", category=" деревья "),
            KeywordInput("елка"),  # "ё" is "е"
            KeywordInput("!!!"),
        ],
    )
    assert [r.keyword.word if r.added else type(r.error).__name__ for r in results] == [
        "кошка", "DuplicateKeyword", "DuplicateKeyword", "InvalidInput", "InvalidInput", "ёлка", "DuplicateKeyword",
        "InvalidInput",
    ]  # fmt: skip
    assert [r.word for r in results][:2] == ["  кошка  ", "КОШКА"]
    assert "item 1" in results[1].error.message
    assert results[2].keyword.word == "Собака"  # a duplicate names the keyword it duplicates
    assert results[3].error.message == "Keyword is empty" and results[3].error.field == "word"
    assert "longer than 200" in results[4].error.message
    assert results[5].keyword.category == "деревья"
    assert sorted(k.word for k in store.keywords.values()) == ["Собака", "кошка", "ёлка"]


async def test_options_and_the_morphology_default(adapters, store) -> None:
    results = await add_keywords(
        adapters,
        [
            KeywordInput("кошка"),
            KeywordInput("cat"),
            KeywordInput("МЧС", case_sensitive=True, morphology=False, whole_word=False, active=False, category="ops"),
            KeywordInput("красная площадь"),
        ],
    )
    cat, latin, mchs, phrase = (r.keyword for r in results)
    assert cat.morphology and not latin.morphology and phrase.morphology
    assert (mchs.case_sensitive, mchs.morphology, mchs.whole_word, mchs.active, mchs.category) == (
        True, False, False, False, "ops",
    )  # fmt: skip
    assert default_morphology("Ёж") and not default_morphology("covid-19")


async def test_too_many_keywords_at_once_is_refused(adapters) -> None:
    with pytest.raises(InvalidInput):
        await add_keywords(adapters, [KeywordInput(f"w{i}") for i in range(5001)])


async def test_update_keyword(adapters, store) -> None:
    cat = store.add_keyword("кошка", category="pets")
    store.add_keyword("собака")
    updated = await update_keyword(adapters, cat.id, KeywordChanges(word=" Кот ", category=None, active=False))
    assert (updated.word, updated.category, updated.active) == ("Кот", None, False)
    assert store.keywords[cat.id] == updated

    with pytest.raises(DuplicateKeyword):
        await update_keyword(adapters, cat.id, KeywordChanges(word="СОБАКА"))
    # Changing only the case of its own word is not a duplicate.
    assert (await update_keyword(adapters, cat.id, KeywordChanges(word="КОТ"))).word == "КОТ"
    with pytest.raises(InvalidInput):
        await update_keyword(adapters, cat.id, KeywordChanges(word=""))
    with pytest.raises(InvalidInput):
        await update_keyword(adapters, cat.id, KeywordChanges(active=None))  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await update_keyword(adapters, 999, KeywordChanges(active=True))


async def test_remove_keyword_takes_its_matches_along(adapters, store) -> None:
    cat, dog = store.add_keyword("кошка"), store.add_keyword("собака")
    store.matches[100] = [Match(100, cat.id, "кошки", 0, 5, "кошки"), Match(100, dog.id, "собаки", 6, 12, "собаки")]
    store.matches[101] = [Match(101, cat.id, "кошкой", 0, 6, "кошкой")]
    removed = await remove_keyword(adapters, cat.id)
    assert removed == cat and cat.id not in store.keywords
    assert store.all_matches() == [Match(100, dog.id, "собаки", 6, 12, "собаки")]
    with pytest.raises(NotFound):
        await remove_keyword(adapters, cat.id)
