"""The rule language on a fixed Russian corpus: what each expression matches, with the real
pymorphy3 dictionary (morphology traps are the point), what each wrong one says, and that the
databases' narrowing never loses a match (``QueryMatcher.narrowing`` holds for every match)."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.rules import (
    AllOf,
    AnyOf,
    Contains,
    KeywordTerm,
    Narrowing,
    QueryCompiler,
    QueryMatcher,
    QuerySyntaxError,
    RuleSet,
    StaticCatalog,
    compile_static,
    parse,
)
from infrastructure.morphology import get_lemmatizer

CORPUS = {
    1: "Кормлю кошку сухим кормом, кошки довольны.",
    2: "Продам корм для кошек, недорого.",
    3: "В окошко светит солнце, на подоконнике спит кот.",
    4: "Котов и собак кормим вместе: корм у нас один.",
    5: "Разбилось стекло на балконе, ремонт дороги к дому затянулся.",
    6: "Вода стекла по стене, вся дорога в лужах.",
    7: "Ремонт этой старой дороги начали весной.",
    8: "Ремонт очень старой разбитой дороги так и не закончили.",
    9: "Ёлка во дворе, ёлки в лесу; елку нарядили.",
    10: "МЧС предупреждает о грозе в Москве.",
    11: "мчс опять ничего не сделало, москва молчит",
    12: "Кто-то опять оставил мусор у подъезда.",
    13: "Кто то из соседей жалуется на мусор.",
    14: "Красная площадь закрыта, на Красной площади концерт.",
    15: "Площадь у красного дома благоустроили.",
    16: "Замок на двери сломан, а замок на горе красивый.",
    17: "Дорогие друзья, цены на корм дорогие!",
    18: "Кошкин дом сгорел, кошатники собирают помощь.",
    19: "Мы поедем в Санкт-Петербург на поезде.",
    20: "Печь пирожки и печь в доме — разные вещи.",
    21: "Дети шли в школу, а учитель шёл за ними.",
    22: "Люди пришли на собрание, человек сто.",
}

KEYWORDS = [
    KeywordTerm(1, "кошка"),
    KeywordTerm(2, "ремонт дороги"),
    KeywordTerm(3, "МЧС", case_sensitive=True),
    KeywordTerm(4, "кош", whole_word=False, morphology=False),
]
RULES = {"кошачье": "кошка OR кот", "без продаж": "rule:кошачье -продам", "дороги": '"ремонт дороги"~3'}

# (expression, ids of the CORPUS comments it matches). Traps: кошка/окошко/кошкин, стекло (noun)
# and стекло (стечь), дорога/дорогие, ё = е, hyphens (кто-то), case (МЧС/мчс), suppletion
# (идти/шёл, человек/люди), homonyms (замок, печь).
TABLE = [
    ('кошка', {1, 2}),
    ('кошки', {1, 2}),
    ('кошками', {1, 2}),
    ('кот', {3, 4}),
    ('окошко', {3}),
    ('корм', {1, 2, 4, 17}),
    ('кормить', {1, 4}),
    ('кошка AND корм', {1, 2}),
    ('кошка корм', {1, 2}),
    ('кошка OR кот', {1, 2, 3, 4}),
    ('(кошка OR кот) AND корм NOT продам', {1, 4}),
    ('(кошка OR кот) корм -продам', {1, 4}),
    ('кошка NOT корм', set()),
    ('NOT кошка', {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22}),
    ('-кошка -кот', {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22}),
    ('стекло', {5, 6}),
    ('стечь', {5, 6}),
    ('стекать', set()),
    ('дорога', {8, 5, 6, 7}),
    ('дороги', {5, 6, 7, 8, 17}),
    ('дорогой', {5, 6, 7, 8, 17}),
    ('дорогие', {5, 6, 7, 8, 17}),
    ('"ремонт дороги"', {5}),
    ('"ремонт дороги"~2', {5, 7}),
    ('"ремонт дороги"~3', {8, 5, 7}),
    ('"ремонт дороги"~1', {5}),
    ('ремонт NEAR/2 дороги', {5, 7}),
    ('ремонт NEAR/3 дороги', {8, 5, 7}),
    ('дороги NEAR/2 ремонт', {5, 7}),
    ('ёлка', {9}),
    ('елка', {9}),
    ('ёлки', {9}),
    ('exact:ёлки', {9}),
    ('exact:елку', {9}),
    ('МЧС', {10, 11}),
    ('case:МЧС', {10}),
    ('case:Москва', {10}),
    ('case:москва', {11}),
    ('москва', {10, 11}),
    ('кто-то', {12}),
    ('"кто то"', {12, 13}),
    ('Кто', {12, 13}),
    ('"красная площадь"', {14}),
    ('"красный площадь"', {14}),
    ('красный', {14, 15}),
    ('"площадь красная"', set()),
    ('замок', {16}),
    ('кош*', {1, 2, 18}),
    ('кот*', {3, 4}),
    ('Кош*', {1, 2, 18}),
    ('case:Кош*', {18}),
    ('part:кош', {18, 1, 2, 3}),
    ('exact:кошки', {1}),
    ('part:exact:кош', {18, 1, 2, 3}),
    ('Санкт-Петербург', {19}),
    ('петербург', {19}),
    ('санкт*', {19}),
    ('"санкт петербург"', {19}),
    ('печь', {20}),
    ('печь AND пирожок', {20}),
    ('идти', {21}),
    ('шёл', {21}),
    ('человек', {22}),
    ('люди', {22}),
    ('kw:1', {1, 2}),
    ('kw:кошка', {1, 2}),
    ('kw:"ремонт дороги"', {5}),
    ('kw:3', {10}),
    ('kw:4', {18, 1, 2, 3}),
    ('rule:кошачье', {1, 2, 3, 4}),
    ('rule:"без продаж"', {1, 3, 4}),
    ('rule:дороги AND NOT стекло', {8, 7}),
    ('кошка NEAR/0 корм', {1}),
    ('кормом NEAR/1 кошки', {1, 2}),
    ('"сухим кормом"', {1}),
    ('"сухой корм"', {1}),
    ('"корм сухой"', set()),
    ('кошка OR (корм AND продам)', {1, 2}),
    ('кошка AND (дом OR помощь)', set()),
    ('кошкин', {18}),
    ('кошатник', {18}),
    ('мусор -кто-то', {13}),
    ('мусор NOT "кто то"', set()),
]


@pytest.fixture(scope="module")
def lemmatizer():
    return get_lemmatizer()


def matcher(query: str, lemmatizer) -> QueryMatcher:
    return compile_static(query, lemmatizer, KEYWORDS, RULES, stems=lemmatizer)


def test_the_table_is_large_enough():
    assert len(TABLE) >= 60
    assert len({q for q, _ in TABLE}) == len(TABLE)


@pytest.mark.parametrize(("query", "expected"), TABLE, ids=[q for q, _ in TABLE])
def test_expression_matches(query, expected, lemmatizer):
    found = {i for i, text in CORPUS.items() if matcher(query, lemmatizer).matches(text)}
    assert found == expected


def _holds(narrowing: Narrowing, folded: str) -> bool:
    if narrowing is None:
        return True
    if isinstance(narrowing, Contains):
        return narrowing.text in folded
    if isinstance(narrowing, AnyOf):
        return any(_holds(n, folded) for n in narrowing.items)
    assert isinstance(narrowing, AllOf)
    return all(_holds(n, folded) for n in narrowing.items)


@pytest.mark.parametrize(("query", "expected"), TABLE, ids=[q for q, _ in TABLE])
def test_narrowing_keeps_every_match(query, expected, lemmatizer):
    # What the databases look for (lowercase, ё as е, as LIKE over fold_text) holds for every
    # comment the matcher accepts: narrowing loses nothing, the domain decides.
    narrowing = matcher(query, lemmatizer).narrowing
    for i in expected:
        assert _holds(narrowing, CORPUS[i].lower().replace("ё", "е")), (query, i)


def test_narrowing_narrows(lemmatizer):
    narrowing = matcher("(кошка OR кот) AND корм NOT продам", lemmatizer).narrowing
    assert narrowing == AllOf((AnyOf((Contains("кош"), Contains("кот"))), Contains("корм")))
    assert matcher("NOT кошка", lemmatizer).narrowing is None  # nothing a text must contain
    # Suppletive forms: every stem is an alternative (шёл, шли are forms of идти).
    assert matcher("идти", lemmatizer).narrowing is None or _holds(matcher("идти", lemmatizer).narrowing, "шел")


def test_highlights_show_the_terms_that_matched(lemmatizer):
    text = CORPUS[1]
    found = matcher("(кошка OR кот) AND корм NOT продам", lemmatizer).highlights(text)
    assert found is not None
    assert [(text[h.start : h.end], h.term) for h in found] == [
        ("кошку", "кошка"), ("кормом", "корм"), ("кошки", "кошка")
    ]
    assert matcher("корм NOT кошка", lemmatizer).highlights(text) is None
    kw = matcher("kw:1", lemmatizer).highlights(text)
    assert kw is not None and {h.keyword_id for h in kw} == {1}
    near = matcher('"ремонт дороги"~3', lemmatizer).highlights(CORPUS[8])
    assert near is not None and [CORPUS[8][h.start : h.end] for h in near] == ["Ремонт", "дороги"]


def test_implicit_and_and_precedence():
    assert parse("кошка корм") == parse("кошка AND корм")
    assert parse("(кошка OR кот) AND корм NOT продам") == parse("(кошка OR кот) корм (NOT продам)")
    assert parse("a OR b c") == parse("a OR (b AND c)")
    assert parse("-a") == parse("NOT a")
    assert parse("and or not") != parse("a")  # lowercase operators are words


# (query, line, column, a fragment of the message, something expected there)
ERRORS = [
    ("(кошка", 1, 7, "ends too early", ")"),
    ("кошка AND", 1, 10, "ends too early", "a word"),
    ("кошка )", 1, 7, "Unexpected `)`", "the end of the query"),
    ('кошка AND "корм', 1, 11, "Unexpected character", "a word"),
    ("кошка\nAND OR корм", 2, 5, "Unexpected `OR`", "a word"),
    ("кошка ~3", 1, 7, "Unexpected `~3`", None),
    ('"кошка"~3', 1, 8, "two or more words", None),
    ("(кошка OR кот) NEAR/3 корм", 1, 16, "not groups", None),
    ("кошка NEAR/500 корм", 1, 7, "at most 100", None),
    ('""', 1, 1, "holds no word", None),
    ("   ", 1, 1, "empty", "a word"),
]


@pytest.mark.parametrize(("query", "line", "column", "message", "expected"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_say_where_and_what_was_expected(query, line, column, message, expected):
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    error = caught.value
    assert isinstance(error, InvalidInput) and error.field == "query"  # BAD_USER_INPUT
    assert (error.line, error.column) == (line, column), error.message
    assert message in error.message
    if expected is not None:
        assert expected in error.expected, error.expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("kw:99", "No keyword kw:99"),
        ("kw:собака", 'No keyword kw:"собака"'),
        ("кошка rule:нет", 'No saved rule "нет"'),
    ],
)
def test_references_to_nothing_are_errors_at_the_reference(query, message, lemmatizer):
    with pytest.raises(QuerySyntaxError) as caught:
        matcher(query, lemmatizer)
    assert message in caught.value.message
    assert caught.value.column == query.index(query.split()[-1]) + 1


def test_a_rule_that_refers_to_itself_is_refused(lemmatizer):
    with pytest.raises(QuerySyntaxError, match=r"refers to itself|broken"):
        compile_static("rule:a", lemmatizer, rules={"a": "кошка OR rule:b", "b": "rule:a"})


def test_text_no_database_stores_is_refused():
    with pytest.raises(InvalidInput):
        parse("кошка\x00")


def test_a_rule_set_matches_as_each_query_alone(lemmatizer):
    queries = [q for q, _ in TABLE]
    exprs = [matcher(q, lemmatizer).expr for q in queries]
    rule_set = RuleSet(exprs, lemmatizer)
    for i, text in CORPUS.items():
        together = {queries[k] for k in rule_set.matching(text)}
        assert together == {q for q, expected in TABLE if i in expected}, text


# Terms of every kind ``RuleSet`` finds its own way (one Cyrillic word by its lemmas, a word
# prefix) or hands to ``_Terms`` (phrases, ~N, case:, part:, exact:, hyphens, Latin, kw:), to mix.
_MIXED_TERMS = [
    "кошка", "кошки", "кот", "корм", "дорога", "дороги", "ремонт", "стекло", "ёлка", "елку",
    "москва", "мчс", "Кто", "кто-то", "замок", "печь", "идти", "люди", "covid", "2024", "x_y",
    "кош*", "Кош*", "кот*", "санкт*", "е*", "ё*", "cov*", "кто-т*",
    "case:МЧС", "case:Москва", "case:москва", "case:Кош*", "part:кош", "exact:кошки", "part:exact:кош",
    "exact:ёлки", "part:covid",
    '"ремонт дороги"', '"кто то"', '"красная площадь"', '"сухой корм"', '"кошка-мышка"', '"covid вирус"',
    '"ремонт дороги"~2', '"кошка корм"~3', '"кошка covid"~1', '"мусор подъезд"~4', 'case:"Красная площадь"',
    "kw:1", "kw:2", "kw:3", "kw:4", "rule:кошачье",
]
_MIXED_WORDS = (
    "Кошка кошки КОШКИ кошками кот Котов окошко корм кормом дорога дороги дорогие ремонт ремонта стекло "
    "ёлка Ёлки елку Москва москва МЧС мчс Кто кто-то кто то замок печь шёл люди covid COVID-19 2024 x_y "
    "Санкт-Петербург красная площадь Красной площади сухой сухим кошка-мышка мусор подъезда вирус кошкин "
    "кошатники е ё ещё еще и в на"
).split()


# Terms ``_Terms`` finds that no word of the text rules out (``RuleSet`` looks for them always).
_UNGATED = {"covid", "2024", "x_y", "кто-т*", "case:Кош*", "part:кош", "exact:кошки", "part:exact:кош",
            "exact:ёлки", "part:covid", "kw:4"}


@pytest.mark.parametrize("ungated", [True, False], ids=["every term", "terms a word can rule out"])
def test_a_rule_set_matches_as_each_query_alone_on_mixed_queries(lemmatizer, ungated):
    # Random queries over every kind of term, random texts: the rule set finds exactly what
    # each query finds alone (``QueryMatcher``, the one-query path), NEAR and NOT included.
    import random

    rng = random.Random(22)
    pool = [t for t in _MIXED_TERMS if ungated or t not in _UNGATED]

    def query() -> str:
        terms = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
        out = terms[0]
        for term in terms[1:]:
            op = rng.choice((" ", " AND ", " OR ", " NOT ", " -", " NEAR/1 ", " NEAR/3 "))
            if op.startswith(" NEAR") and (":" in out.split()[-1] or ":" in term or '"' in term + out):
                op = " AND "  # NEAR takes plain terms
            out = f"({out}){op}{term}" if op.strip() == "OR" else f"{out}{op}{term}"
        return out

    queries, exprs = [], []
    while len(queries) < 150:
        q = query()
        try:
            compiled = matcher(q, lemmatizer)
        except InvalidInput:
            continue
        queries.append(compiled)
        exprs.append(compiled.expr)
    rule_set = RuleSet(exprs, lemmatizer)
    texts = list(CORPUS.values())
    for _ in range(400):
        words = [rng.choice(_MIXED_WORDS) for _ in range(rng.randint(1, 12))]
        texts.append("".join(w + rng.choice((" ", " ", ", ", "-", ". ", " — ")) for w in words))
    fired = 0
    for text in texts:
        expected = [i for i, q in enumerate(queries) if q.matches(text)]
        assert rule_set.matching(text) == expected, text
        fired += len(expected)
    assert fired > len(texts)  # the queries do match: the comparison means something


async def test_the_compiler_keeps_resolved_references_briefly_and_forgets_on_change(lemmatizer):
    class Counting(StaticCatalog):
        lookups = 0

        async def rule_queries(self, names):
            Counting.lookups += 1
            return await super().rule_queries(names)

    now = [100.0]
    catalog = Counting(rules={"кошачье": "кошка OR кот"})
    compiler = QueryCompiler(catalog, lemmatizer, resolved_for=2.0, clock=lambda: now[0])
    first = await compiler.compile("rule:кошачье")
    assert (await compiler.compile("rule:кошачье")) is first and Counting.lookups == 1
    catalog.rules = {"кошачье": "собака"}
    now[0] += 2.5  # another process changed the rule: seen once the time is up
    changed = await compiler.compile("rule:кошачье")
    assert Counting.lookups == 2 and changed.matches("собака лает") and not changed.matches("кошка")
    catalog.rules = {"кошачье": "кот"}
    compiler.forget()  # a change made here: seen at once
    assert (await compiler.compile("rule:кошачье")).matches("котик") is False
    assert (await compiler.compile("rule:кошачье")).matches("кот") and Counting.lookups == 3


def test_a_query_nested_too_deep_for_python_is_still_decided():
    # The rule set compiles a query into one Python expression; one nested deeper than the
    # compiler takes is decided node by node, with the same answer.
    from domain.rules import _predicate

    node: object = 7
    for _ in range(120):  # 240 parentheses deep: Python's parser stops at 200
        node = ("!", ("&", (node, 3)))
    test = _predicate(node)
    for present in ({7, 3}, {3}, {7}, set()):
        inner = 7 in present
        for _ in range(120):
            inner = not (inner and 3 in present)
        assert test(present) is inner
