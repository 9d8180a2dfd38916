"""The domain side of saved rules' stored matches (``domain.rule_index``): which rules a change
invalidates, and the one matcher that writes their rows."""

from __future__ import annotations

from domain.compiled_rules import StoredRule, compile_rules, dependents, needed_keywords, still_current
from domain.rules import KeywordTerm, compile_static, rule_key
from infrastructure.morphology import get_lemmatizer

RULES = [
    StoredRule(1, rule_key("Кошки"), "kw:1 OR кот"),
    StoredRule(2, rule_key("Без собак"), 'rule:Кошки -собака'),
    StoredRule(3, rule_key("Ещё"), 'rule:"Без собак" AND дом'),
    StoredRule(4, rule_key("Ёжики"), "kw:ёжик"),
    StoredRule(5, rule_key("Отдельно"), "корм"),
    StoredRule(6, rule_key("Сломано"), "кот AND"),
]
KEYWORDS = [KeywordTerm(1, "кошка"), KeywordTerm(2, "ёжик")]


def test_dependents_follow_keywords_and_names_transitively() -> None:
    assert dependents(RULES, keyword_ids=[1]) == {1, 2, 3}
    assert dependents(RULES, keyword_words=["ежик"]) == {4}  # keyword_key: ё as е
    assert dependents(RULES, rule_ids=[2], rule_names=[rule_key("Без собак")]) == {2, 3}
    assert dependents(RULES, rule_ids=[5]) == {5}
    assert dependents(RULES, keyword_ids=[99], rule_ids=[42]) == set()


def test_needed_keywords_are_those_any_rule_names() -> None:
    assert needed_keywords(RULES) == ({1}, {"ежик"})


def test_the_compiled_rules_match_as_each_query_does() -> None:
    lemmatizer = get_lemmatizer()
    compiled = compile_rules(RULES, RULES, KEYWORDS, lemmatizer, lemmatizer)
    assert compiled.rule_ids == (1, 2, 3, 4, 5) and compiled.broken == (6,)
    texts = ["Кошки дома", "кошка и собака дома", "ёжики и корм", "ничего", "кот в доме"]
    found = set(compiled.matching(list(enumerate(texts))))
    resolved = {
        1: "kw:кошка OR кот", 2: "(kw:кошка OR кот) -собака", 3: "(kw:кошка OR кот) -собака дом", 4: "kw:ёжик",
        5: "корм",
    }
    expected = set()
    for rule_id, query in resolved.items():
        matcher = compile_static(query, lemmatizer, KEYWORDS)
        expected |= {(rule_id, i) for i, t in enumerate(texts) if matcher.matches(t)}
    assert found == expected and {r for r, _ in found} == {1, 2, 3, 4, 5}
    # A rule that does not resolve without its keyword is left out, not matched as nothing.
    without = compile_rules(RULES, RULES, KEYWORDS[1:], lemmatizer, lemmatizer)
    assert without.rule_ids == (4, 5) and without.broken == (1, 2, 3, 6)


def test_a_rule_whose_generation_moved_is_dropped() -> None:
    lemmatizer = get_lemmatizer()
    compiled = compile_rules(RULES[:2], RULES, KEYWORDS, lemmatizer, lemmatizer)
    assert still_current(compiled, {1: 0, 2: 0}) is compiled
    moved = still_current(compiled, {1: 1, 2: 0})
    assert moved.live == [(2, 0)]
    assert {r for r, _ in moved.matching([(7, "кот дома")])} == {2}
    assert still_current(compiled, {}).live == []
