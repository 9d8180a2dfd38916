"""Russian word forms through the real pymorphy3 dictionary."""

from __future__ import annotations

import pytest

from domain.matching import KeywordMatcher, KeywordRule
from infrastructure.morphology import PymorphyLemmatizer, get_lemmatizer


def found(keyword: str, text: str, **options: bool) -> list[str]:
    matcher = KeywordMatcher([KeywordRule(1, keyword, **options)], get_lemmatizer())
    return [hit.matched_text for hit in matcher.match(text)]


def test_lemmatizer_gives_every_parse_with_yo_as_e():
    lemmatizer = get_lemmatizer()
    assert lemmatizer is get_lemmatizer()
    assert lemmatizer.lemmas("дорогой") == {"дорога", "дорогой"}
    assert lemmatizer.lemmas("кошками") == {"кошка"}
    assert lemmatizer.lemmas("ёлки") == lemmatizer.lemmas("елки") == {"елка"}
    assert lemmatizer.lemmas("iphones") == {"iphones"}
    assert lemmatizer.lemmas("2024") == {"2024"}


@pytest.mark.parametrize("form", ["кошки", "кошкой", "кошек", "кошками", "кошке", "Кошка", "КОШКУ"])
def test_every_form_of_koshka(form):
    assert found("кошка", f"Вот {form} сидит") == [form]


@pytest.mark.parametrize("trap", ["окошко", "окошке", "кошелёк", "кошелек", "кошачий", "кошкин"])
def test_words_that_only_contain_koshka_do_not_match(trap):
    assert found("кошка", f"Вот {trap} лежит") == []


@pytest.mark.parametrize("form", ["дорогой", "дороги", "дорогу", "дорогами", "Дорога"])
def test_every_form_of_doroga(form):
    assert found("дорога", f"плохая {form} тут") == [form]


@pytest.mark.parametrize("trap", ["дорогостоящий", "дорогие", "подорога"])
def test_doroga_traps(trap):
    assert found("дорога", f"очень {trap} ремонт") == []


def test_phrase_in_another_case():
    text = "Вчера гуляли на Красной площади с детьми"
    matcher = KeywordMatcher([KeywordRule(5, "красная площадь")], get_lemmatizer())
    [hit] = matcher.match(text)
    assert (hit.keyword_id, hit.matched_text, hit.start, hit.end) == (5, "Красной площади", 16, 31)
    assert hit.snippet == text
    assert found("красная площадь", "красную площадь и красные площади") == [
        "красную площадь",
        "красные площади",
    ]
    assert found("красная площадь", "красная большая площадь") == []


def test_yo_and_e_are_one_letter():
    assert found("ёлка", "Купили елки и ёлку") == ["елки", "ёлку"]
    assert found("елка", "Купили ёлки") == ["ёлки"]


def test_verb_forms():
    assert found("купить", "Купил бы, но купят раньше; покупка не та") == ["Купил", "купят"]


def test_hyphenated_words():
    assert found("кто-то", "Кого-то ждали, кто-то пришёл") == ["Кого-то", "кто-то"]
    assert found("бизнес-центр", "у бизнес-центров стоят") == ["бизнес-центров"]
    assert found("кошка", "игра в кошки-мышки") == ["кошки"]


def test_latin_keyword_is_whole_word_without_morphology():
    assert found("iphone", "iPhone лучше, чем iphones", morphology=False) == ["iPhone"]
    assert found("iphone", "iPhone лучше, чем iphones", morphology=False, whole_word=False) == [
        "iPhone",
        "iphone",
    ]


def test_case_sensitive_proper_name():
    text = "москва, в Москве, МОСКВУ"
    assert found("Москва", text, case_sensitive=True) == ["Москве", "МОСКВУ"]


def test_hits_with_offsets_in_a_real_comment():
    text = (
        "Кошку сбила машина на дороге у Кошкина дома, окошко разбито. "
        "Дорогие мои, берегите кошек!"
    )
    matcher = KeywordMatcher(
        [KeywordRule(1, "кошка"), KeywordRule(2, "дорога"), KeywordRule(3, "машина")],
        PymorphyLemmatizer(),
    )
    got = [(h.keyword_id, h.matched_text, h.start, h.end) for h in matcher.match(text)]
    assert got == [
        (1, "Кошку", 0, 5),
        (3, "машина", 12, 18),
        (2, "дороге", 22, 28),
        (1, "кошек", 83, 88),
    ]
    for hit in matcher.match(text):
        assert text[hit.start : hit.end] == hit.matched_text
