"""The keyword matcher's mechanics, with a dictionary standing in for pymorphy3."""

from __future__ import annotations

import pytest

from domain.matching import (
    KeywordMatcher,
    KeywordRule,
    MatchHit,
    keyword_key,
    make_snippet,
    normalize_keyword,
    validate_keyword,
)

# token -> lemmas; a token not listed is its own lemma.
LEMMAS = {
    "кошки": {"кошка"},
    "кошку": {"кошка"},
    "кошками": {"кошка"},
    "окошко": {"окошко"},
    "дорога": {"дорога", "дорогой"},  # also a short form of the adjective
    "дорогой": {"дорога", "дорогой"},
    "дороги": {"дорога", "дорогой"},
    "дорогие": {"дорогой"},
    "красной": {"красная", "красный"},
    "красная": {"красная", "красный"},
    "площади": {"площадь"},
    "москве": {"москва"},
    "елки": {"елка"},
}


class FakeLemmatizer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def lemmas(self, token: str) -> frozenset[str]:
        self.calls.append(token)
        return frozenset(LEMMAS.get(token, {token}))


def matcher(*rules: KeywordRule) -> KeywordMatcher:
    return KeywordMatcher(rules, FakeLemmatizer())


def spans(hits: list[MatchHit]) -> list[tuple[int, str, int, int]]:
    return [(h.keyword_id, h.matched_text, h.start, h.end) for h in hits]


def test_reports_the_form_as_written_with_offsets_into_the_original_text():
    hits = matcher(KeywordRule(1, "кошка")).match("Вчера видел Кошку у дома, а потом кошки ушли")
    assert spans(hits) == [(1, "Кошку", 12, 17), (1, "кошки", 34, 39)]


def test_a_word_with_another_lemma_does_not_match():
    assert matcher(KeywordRule(1, "кошка")).match("окошко открыто, кошка-то нет") == [
        MatchHit(1, "кошка", 16, 21, "окошко открыто, кошка-то нет")
    ]


def test_any_parse_of_a_text_word_counts():
    hits = matcher(KeywordRule(1, "дорога")).match("Дорогой мой, дороги размыло")
    assert spans(hits) == [(1, "Дорогой", 0, 7), (1, "дороги", 13, 19)]


def test_a_keyword_in_dictionary_form_stands_for_that_word_only():
    # "дорога" is also a short form of the adjective "дорогой": that reading is not the keyword.
    assert matcher(KeywordRule(1, "дорога")).match("дорогие друзья") == []
    assert spans(matcher(KeywordRule(1, "дорогой")).match("дорогие друзья")) == [
        (1, "дорогие", 0, 7)
    ]


def test_a_keyword_typed_in_another_form_matches_every_form():
    assert spans(matcher(KeywordRule(1, "кошками")).match("кошку")) == [(1, "кошку", 0, 5)]


def test_yo_is_read_as_e_on_both_sides():
    assert spans(matcher(KeywordRule(1, "ёлка")).match("Елки!")) == [(1, "Елки", 0, 4)]
    assert spans(matcher(KeywordRule(1, "елка", morphology=False)).match("ёлка")) == [
        (1, "ёлка", 0, 4)
    ]


def test_phrase_matches_adjacent_words_in_order():
    m = matcher(KeywordRule(7, "красная площадь"))
    assert spans(m.match("Гуляли на Красной площади вчера")) == [(7, "Красной площади", 10, 25)]
    assert spans(m.match("красной, площади")) == [(7, "красной, площади", 0, 16)]
    assert m.match("красной и площади") == []
    assert m.match("площади красной") == []
    assert m.match("красной") == []


def test_hyphenated_keyword_needs_the_hyphen_and_text_hyphens_separate_words():
    m = matcher(KeywordRule(1, "кто-то"), KeywordRule(2, "кошка"))
    assert spans(m.match("Кто-то видел кошка-мышка")) == [
        (1, "Кто-то", 0, 6),
        (2, "кошка", 13, 18),
    ]
    assert m.match("кто то") == []


def test_substring_keyword_whole_word():
    m = matcher(KeywordRule(1, "iphone", morphology=False))
    assert spans(m.match("Купил iPhone, а не iphones")) == [(1, "iPhone", 6, 12)]
    m = matcher(KeywordRule(1, "iphone", morphology=False, whole_word=False))
    assert spans(m.match("Купил iPhone, а не iphones")) == [
        (1, "iPhone", 6, 12),
        (1, "iphone", 19, 25),
    ]


def test_keyword_without_cyrillic_is_a_substring_even_with_morphology_on():
    m = matcher(KeywordRule(1, "vk"))
    assert spans(m.match("VK, vkontakte, vk.com")) == [(1, "VK", 0, 2), (1, "vk", 15, 17)]


def test_keyword_with_punctuation_is_a_substring():
    assert spans(matcher(KeywordRule(1, "т.е.")).match("то есть, т.е. так")) == [
        (1, "т.е.", 9, 13)
    ]


def test_case_sensitive_substring_is_exact():
    m = matcher(KeywordRule(1, "VK", case_sensitive=True, morphology=False))
    assert spans(m.match("vk VK Vk")) == [(1, "VK", 3, 5)]


def test_case_sensitive_morphology_compares_the_case_of_the_first_letter():
    m = matcher(KeywordRule(1, "Москва", case_sensitive=True))
    assert spans(m.match("москва Москве МОСКВА")) == [(1, "Москве", 7, 13), (1, "МОСКВА", 14, 20)]
    m = matcher(KeywordRule(1, "кошка", case_sensitive=True))
    assert spans(m.match("Кошки кошки")) == [(1, "кошки", 6, 11)]


def test_case_sensitive_keyword_in_capitals_matches_only_capitals():
    m = matcher(KeywordRule(1, "МЧС", case_sensitive=True))
    assert spans(m.match("мчс Мчс МЧС")) == [(1, "МЧС", 8, 11)]


def test_case_sensitive_phrase_checks_every_word():
    m = matcher(KeywordRule(1, "Красная площадь", case_sensitive=True))
    assert spans(m.match("красная площадь, Красной площади")) == [(1, "Красной площади", 17, 32)]


def test_morphology_without_whole_word_also_finds_the_keyword_inside_words():
    m = matcher(KeywordRule(1, "кошка", whole_word=False))
    # "кошками" is both a form and a substring hit at 0: reported once, as the whole form.
    assert spans(m.match("кошками суперкошка")) == [(1, "кошками", 0, 7), (1, "кошка", 13, 18)]


def test_many_keywords_in_one_pass_sorted_by_position():
    m = matcher(
        KeywordRule(1, "кошка"),
        KeywordRule(2, "дорога"),
        KeywordRule(3, "he", morphology=False, whole_word=False),
        KeywordRule(4, "she", morphology=False, whole_word=False),
        KeywordRule(5, "красная площадь"),
    )
    hits = m.match("she, кошку на дороги Красной площади")
    assert spans(hits) == [
        (4, "she", 0, 3),
        (3, "he", 1, 3),
        (1, "кошку", 5, 10),
        (2, "дороги", 14, 20),
        (5, "Красной площади", 21, 36),
    ]


def test_two_keywords_on_the_same_word_are_two_hits():
    m = matcher(KeywordRule(1, "дорога"), KeywordRule(2, "дорогой"))
    assert spans(m.match("дорогой")) == [(1, "дорогой", 0, 7), (2, "дорогой", 0, 7)]


def test_each_distinct_word_is_lemmatized_once():
    lemmatizer = FakeLemmatizer()
    rules = [KeywordRule(i, f"слово{i}") for i in range(10_000)] + [KeywordRule(-1, "кошка")]
    m = KeywordMatcher(rules, lemmatizer)
    lemmatizer.calls.clear()
    assert len(m.match("кошки и кошки и собаки")) == 2
    assert sorted(lemmatizer.calls) == ["и", "кошки", "собаки"]
    lemmatizer.calls.clear()
    m.match("собаки и кошки")
    assert lemmatizer.calls == []


def test_offsets_survive_characters_that_lowercase_to_two():
    text = "İstanbul: кошка"
    hits = matcher(KeywordRule(1, "кошка")).match(text)
    assert spans(hits) == [(1, "кошка", 10, 15)]


def test_invalid_keywords_are_ignored_and_empty_text_has_no_hits():
    m = matcher(KeywordRule(1, "   "), KeywordRule(2, "!!!"), KeywordRule(3, "кошка"))
    assert m.match("") == []
    assert spans(m.match("!!! кошка")) == [(3, "кошка", 4, 9)]


# --- snippets -------------------------------------------------------------------------------


def test_snippet_of_a_short_text_is_the_text_with_whitespace_collapsed():
    assert make_snippet("Моя кошка\n\nспит", 4, 9) == "Моя кошка спит"


def test_snippet_cuts_at_word_boundaries_with_ellipses():
    before = " ".join(f"левое{i:02d}" for i in range(20))  # 7 letters + space per word
    after = " ".join(f"правое{i:02d}" for i in range(20))
    text = f"{before} кошка {after}"
    start = len(before) + 1
    snippet = make_snippet(text, start, start + 5)
    # 60 characters each side reach into "левое12" and "правое06": those partial words go.
    assert snippet == (
        "…левое13 левое14 левое15 левое16 левое17 левое18 левое19 кошка "
        "правое00 правое01 правое02 правое03 правое04 правое05…"
    )
    left, right = snippet[1:-1].split(" кошка ")
    assert len(left) <= 60 and len(right) <= 60


def test_snippet_drops_a_long_partial_word_entirely():
    assert make_snippet("x" * 100 + " кошка", 101, 106) == "…кошка"


def test_snippet_cuts_inside_a_word_when_the_match_is_part_of_it():
    text = "x" * 100 + "кошка" + "y" * 100
    assert make_snippet(text, 100, 105) == "…" + "x" * 60 + "кошка" + "y" * 60 + "…"


# --- keyword hygiene ------------------------------------------------------------------------


def test_normalize_keyword():
    assert normalize_keyword("  красная \t\n площадь ") == "красная площадь"


def test_keyword_key_ignores_case_yo_and_spacing():
    assert keyword_key(" Ёлка ") == keyword_key("ЕЛКА") == "елка"
    assert keyword_key("Красная  Площадь") == "красная площадь"
    assert keyword_key("кошка") != keyword_key("кошки")


@pytest.mark.parametrize(
    ("word", "error"),
    [
        ("", "Keyword is empty"),
        ("  \n ", "Keyword is empty"),
        ("а" * 201, "Keyword is longer than 200 characters"),
        ("?!…", "Keyword must contain a letter or a digit"),
        ("___", "Keyword must contain a letter or a digit"),
    ],
)
def test_validate_keyword_rejects(word, error):
    assert validate_keyword(word) == error


@pytest.mark.parametrize("word", ["кошка", "а" * 200, "2024", "c++", " красная площадь "])
def test_validate_keyword_accepts(word):
    assert validate_keyword(word) is None
