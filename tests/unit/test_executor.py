"""The executor hands query operations to the read plan, and takes them back whenever the plan
cannot answer exactly: the response is then the normal executor's, errors included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from domain.errors import Unavailable
from domain.models import Keyword
from domain.queries import Page
from graphql_api import plan as plan_module
from graphql_api.context import Context
from graphql_api.schema import schema

CREATED = datetime(2026, 11, 29, 12, tzinfo=UTC)


class Keywords:
    """The part of the ReadModel that ``keywords`` reads."""

    projects = False  # as on SQLite: no page is written by the database

    def __init__(self, *keywords: Keyword) -> None:
        self.keywords = list(keywords)
        self.calls: list[str] = []

    async def keywords_page(self, *, first=None, after=None, last=None, before=None, **conditions: Any) -> Page:
        self.calls.append("keywords_page")
        return Page(edges=[(f"c{k.id}", k) for k in self.keywords[:first]], has_next_page=len(self.keywords) > first)

    async def keywords_count(self, **conditions: Any) -> int:
        self.calls.append("keywords_count")
        return len(self.keywords)

    async def keyword_matches_counts(self, ids: list[int]) -> list[int]:
        self.calls.append(f"keyword_matches_counts {ids}")
        return [i * 10 for i in ids]

    def __getattr__(self, name: str) -> Any:  # the loaders' other reads: made, never called here
        if name.endswith(("_by_ids", "_by_vk_ids", "_by_comment_ids")):
            return self._unused
        raise AttributeError(name)

    async def _unused(self, ids: list) -> list:
        raise AssertionError("not read by these queries")


def _context(read_model: Keywords, *, read_plan: bool) -> Context:
    container = SimpleNamespace(read_model=read_model, settings=SimpleNamespace(public_url=None))
    return Context(request=None, response=None, container=container, request_id="r1", read_plan=read_plan)  # type: ignore[arg-type]


QUERY = """{ keywords(first: 2) { totalCount edges { cursor node { __typename id word createdAt matchesCount
  ... on Keyword { w: word } } } pageInfo { hasNextPage endCursor } } }"""


async def _both(read_model_of, query: str = QUERY) -> tuple[Any, Any]:
    answers = []
    for read_plan in (True, False):
        result = await schema.execute(query, context_value=_context(read_model_of(), read_plan=read_plan))
        # As JSON: key order is part of the answer.
        answers.append((json.dumps(result.data, ensure_ascii=False), [e.formatted for e in result.errors or ()]))
    return answers[0], answers[1]


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    counts = {"answered": 0, "handed over": 0}
    run = plan_module.Plan.run

    async def counting(plan, *args):
        data = await run(plan, *args)
        counts["answered" if data is not None else "handed over"] += 1
        return data

    monkeypatch.setattr(plan_module.Plan, "run", counting)
    return counts


async def test_a_query_the_plan_knows_is_answered_by_it_as_the_executor_would(counted) -> None:
    def read_model() -> Keywords:
        return Keywords(Keyword(3, "кот", created_at=CREATED), Keyword(5, "пёс"), Keyword(8, "корм"))

    with_plan, without = await _both(read_model)
    assert with_plan == without
    assert counted == {"answered": 1, "handed over": 0}
    data, errors = json.loads(with_plan[0]), with_plan[1]
    assert errors == []
    assert data["keywords"]["totalCount"] == 3
    assert data["keywords"]["edges"][0]["node"] == {
        "__typename": "Keyword", "id": "S2V5d29yZDoz", "word": "кот", "createdAt": "2026-11-29T12:00:00+00:00",
        "matchesCount": 30, "w": "кот",
    }
    assert data["keywords"]["pageInfo"] == {"hasNextPage": True, "endCursor": "c5"}


async def test_objects_whose_every_field_is_skipped_are_empty_objects(counted) -> None:
    query = "{ keywords(first: 2) { edges { node { word @skip(if: true) } } } }"
    with_plan, without = await _both(lambda: Keywords(Keyword(3, "кот"), Keyword(5, "пёс")), query)
    assert with_plan == without
    assert json.loads(with_plan[0]) == {"keywords": {"edges": [{"node": {}}, {"node": {}}]}}
    assert counted == {"answered": 1, "handed over": 0}


async def test_one_batched_read_per_relation() -> None:
    read_model = Keywords(Keyword(3, "кот"), Keyword(5, "пёс"))
    result = await schema.execute(QUERY, context_value=_context(read_model, read_plan=True))
    assert result.errors is None
    assert sorted(read_model.calls) == ["keyword_matches_counts [3, 5]", "keywords_count", "keywords_page"]


@pytest.mark.parametrize(
    "broken",
    [
        Keyword(3, None),  # type: ignore[arg-type]  # null in a non-null field
        Keyword(3, "кот", created_at="yesterday"),  # type: ignore[arg-type]  # a value DateTime refuses
        Keyword(2**40, "кот"),  # matchesCount past GraphQL's Int
    ],
)
async def test_what_the_plan_cannot_answer_exactly_the_executor_answers(counted, broken: Keyword) -> None:
    with_plan, without = await _both(lambda: Keywords(Keyword(1, "пёс"), broken))
    assert with_plan == without
    assert with_plan[1], "the case must produce an error"
    assert counted == {"answered": 0, "handed over": 1}


async def test_without_the_plan_nothing_reaches_it(counted) -> None:
    result = await schema.execute(QUERY, context_value=_context(Keywords(Keyword(1, "пёс")), read_plan=False))
    assert result.errors is None
    assert counted == {"answered": 0, "handed over": 0}


async def test_what_the_plan_does_not_know_is_never_compiled_into_one(counted) -> None:
    # keywords(first: 0) is refused by its root read; `stats` has no plan: both go to the executor.
    for query in ("{ keywords(first: 0) { totalCount } }", "{ stats { totals { comments } } }"):
        assert plan_module.plans is not None
        await schema.execute(query, context_value=_context(Keywords(), read_plan=True))
    assert counted == {"answered": 0, "handed over": 1}


async def test_one_document_with_other_skip_and_include_values_gets_its_own_plan(counted) -> None:
    # The parser cache gives both requests the same document node: the plan must follow the
    # variables, not the first request's choice.
    query = """query($all: Boolean!, $n: Int!) { keywords(first: $n) {
      totalCount @skip(if: $all) edges { node { word ...More @include(if: $all) } } } }
      fragment More on Keyword { id matchesCount }"""

    def read_model() -> Keywords:
        return Keywords(Keyword(3, "кот"), Keyword(5, "пёс"))

    answers = {}
    for all_ in (False, True, False):
        for n in (1, 2):
            variables = {"all": all_, "n": n}
            results = []
            for read_plan in (True, False):
                result = await schema.execute(
                    query, variable_values=variables, context_value=_context(read_model(), read_plan=read_plan)
                )
                assert result.errors is None
                results.append(json.dumps(result.data, ensure_ascii=False))
            assert results[0] == results[1]
            answers[(all_, n)] = json.loads(results[0])
    assert answers[(False, 2)] == {"keywords": {"totalCount": 2, "edges": [{"node": {"word": "кот"}}, {"node": {"word": "пёс"}}]}}
    assert answers[(True, 1)] == {"keywords": {"edges": [{"node": {"word": "кот", "id": "S2V5d29yZDoz", "matchesCount": 30}}]}}
    assert counted == {"answered": 6, "handed over": 0}


class Away(Keywords):
    """A read model whose database is away: every read fails as the adapters report it."""

    async def keywords_page(self, **arguments: Any) -> Page:
        self.calls.append("keywords_page")
        raise Unavailable("the database is unavailable (ConnectionRefusedError)", dependency="database")

    async def keywords_count(self, **conditions: Any) -> int:
        self.calls.append("keywords_count")
        raise Unavailable("the database is unavailable (ConnectionRefusedError)", dependency="database")

    async def keywords_by_ids(self, ids: list[int]) -> list:
        self.calls.append("keywords_by_ids")
        raise Unavailable("the database is unavailable (ConnectionRefusedError)", dependency="database")


@pytest.mark.parametrize(
    "query",
    [
        QUERY,  # a non-null root: the data is null
        '{ keyword(id: "3") { word } }',  # a nullable root: null, with its error
        '{ a: keyword(id: "3") { word } b: keywords(first: 1) { totalCount } }',  # one error: b's
    ],
)
async def test_an_outage_is_answered_by_the_plan_and_read_once(counted, query: str) -> None:
    """Handing an outage over would read the database again for the same error."""
    reads = {}
    for read_plan in (True, False):
        read_model = Away()
        result = await schema.execute(query, context_value=_context(read_model, read_plan=read_plan))
        reads[read_plan] = (json.dumps(result.data), [e.formatted for e in result.errors or ()], read_model.calls)
    assert reads[True][:2] == reads[False][:2]  # data and errors (with their paths and locations)
    assert reads[True][1] and all("unavailable" in e["message"] for e in reads[True][1])
    assert len(reads[True][2]) == len(reads[False][2]) == query.count("keyword")  # once a root field
    assert counted == {"answered": 1, "handed over": 0}
