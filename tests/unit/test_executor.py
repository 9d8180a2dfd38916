"""The executor's shortcut for plain leaf fields answers exactly what graphql-core would."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_api.executor import ApiExecutor


@strawberry.enum
class Kind(enum.Enum):
    BIG = "big"
    SMALL = "small"


@strawberry.type
class Thing:
    name: str
    size: int | None
    kind: Kind
    at: datetime
    tags: list[str]

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


GOOD = Thing(name="кот", size=3, kind=Kind.BIG, at=datetime(2026, 11, 29, 12, tzinfo=UTC), tags=["a", "b"])
ROWS = {
    "good": [GOOD, Thing(name="пёс", size=None, kind=Kind.SMALL, at=GOOD.at, tags=[])],
    "null in a non-null field": [Thing(name=None, size=1, kind=Kind.BIG, at=GOOD.at, tags=[])],  # type: ignore[arg-type]
    "int out of range": [Thing(name="x", size=2**40, kind=Kind.BIG, at=GOOD.at, tags=[])],
    "not an enum member": [Thing(name="x", size=1, kind="huge", at=GOOD.at, tags=[])],  # type: ignore[arg-type]
    "an error object": [Thing(name=ValueError("boom"), size=1, kind=Kind.BIG, at=GOOD.at, tags=[])],  # type: ignore[arg-type]
}
QUERY = "query($case: String!) { things(case: $case) { name size kind at tags shout(times: 2) alias: name } }"


@strawberry.type
class Query:
    @strawberry.field
    def things(self, case: str) -> list[Thing]:
        return ROWS[case]


fast = strawberry.Schema(query=Query, execution_context_class=ApiExecutor)
plain = strawberry.Schema(query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext)


def _answer(schema: strawberry.Schema, case: str) -> tuple:
    result = schema.execute_sync(QUERY, variable_values={"case": case})
    errors = [(e.message, e.path) for e in result.errors or ()]
    return result.data, errors


@pytest.mark.parametrize("case", list(ROWS))
def test_plain_leaves_answer_as_graphql_core_does(case: str) -> None:
    assert _answer(fast, case) == _answer(plain, case)


def test_the_good_case_is_really_answered() -> None:
    data, errors = _answer(fast, "good")
    assert errors == []
    assert data["things"][0] == {"name": "кот", "size": 3, "kind": "BIG", "at": "2026-11-29T12:00:00+00:00",
                                 "tags": ["a", "b"], "shout": "КОТКОТ", "alias": "кот"}


def test_plain_leaves_skip_graphql_cores_field_machinery(monkeypatch) -> None:
    from graphql_api.fanout import SharedEventExecutor

    slow: list[str] = []
    original = SharedEventExecutor.execute_field

    def counted(self, parent_type, source, field_details_list, path, position_context):
        slow.append(f"{parent_type.name}.{field_details_list[0].node.name.value}")
        return original(self, parent_type, source, field_details_list, path, position_context)

    monkeypatch.setattr(SharedEventExecutor, "execute_field", counted)
    _answer(fast, "good")
    # Only what is not a plain leaf takes the long way: the list field, the resolver with
    # arguments, and the list of strings.
    assert sorted(set(slow)) == ["Query.things", "Thing.shout", "Thing.tags"]
