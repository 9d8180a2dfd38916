"""Reviewing comments: one comment by id, marking viewed / archived in bulk, and fresh reads."""

from __future__ import annotations

import pytest

from graphql_api.context import Context
from graphql_api.schema import schema
from tests.e2e.graphql_support import Api, api, client, container, tokens, wait_for_task  # noqa: F401


@pytest.fixture
async def comment_ids(api: Api) -> list[str]:
    return await collect_sandbox_group(api)


async def collect_sandbox_group(api: Api) -> list[str]:
    group = await api('mutation { addGroup(ref: "babushka_recipes") { group { id } } }')
    started = await api(
        'mutation($g: ID!) { startParse(input: {groupIds: [$g]}) { tasks { id } } }',
        {"g": group["addGroup"]["group"]["id"]},
    )
    assert (await wait_for_task(api, started["startParse"]["tasks"][0]["id"]))["state"] == "SUCCEEDED"
    page = await api("{ comments(first: 5) { edges { node { id } } } }", role="viewer")
    return [e["node"]["id"] for e in page["comments"]["edges"]]


async def test_comment_by_id(api: Api, comment_ids: list[str]) -> None:
    query = "query($id: ID!) { comment(id: $id) { id text group { screenName } post { id } } }"
    comment = (await api(query, {"id": comment_ids[0]}, role="viewer"))["comment"]
    assert comment["id"] == comment_ids[0]
    assert comment["group"] == {"screenName": "babushka_recipes"}
    assert (await api(query, {"id": "99999999"}, role="viewer"))["comment"] is None
    assert (await api(query, {"id": "x"}, role="viewer"))["comment"] is None


SET_STATE = """
mutation($ids: [ID!]!, $viewed: Boolean, $archived: Boolean) {
  setCommentState(ids: $ids, viewed: $viewed, archived: $archived) {
    comments { id viewed archived }
    errors { code field }
  }
}"""


async def test_set_comment_state_in_bulk(api: Api, comment_ids: list[str]) -> None:
    marked = (await api(SET_STATE, {"ids": comment_ids[:3], "viewed": True}))["setCommentState"]
    assert marked["errors"] == []
    assert [(c["id"], c["viewed"], c["archived"]) for c in marked["comments"]] == [
        (i, True, False) for i in comment_ids[:3]
    ]
    archived = (await api(SET_STATE, {"ids": comment_ids[:1], "archived": True}))["setCommentState"]
    assert archived["comments"] == [{"id": comment_ids[0], "viewed": True, "archived": True}]

    viewed = await api("{ comments(filter: {viewed: true}) { totalCount } }", role="viewer")
    assert viewed["comments"]["totalCount"] == 3
    hidden = await api("{ comments(filter: {archived: false, viewed: true}) { totalCount } }", role="viewer")
    assert hidden["comments"]["totalCount"] == 2


async def test_set_comment_state_user_errors(api: Api) -> None:
    for variables, code, field in (
        ({"ids": [], "viewed": True}, "BAD_USER_INPUT", "ids"),
        ({"ids": ["1"]}, "BAD_USER_INPUT", "viewed"),
        ({"ids": ["nonsense"], "viewed": True}, "NOT_FOUND", "ids"),
    ):
        result = (await api(SET_STATE, variables))["setCommentState"]
        assert result == {"comments": [], "errors": [{"code": code, "field": field}]}, variables


async def test_one_connection_context_never_serves_stale_data(container, api: Api) -> None:
    """A WebSocket connection has one context for hours: each operation gets fresh loaders."""
    group = (await api('mutation { addGroup(ref: "velo_spb") { group { id } } }'))["addGroup"]["group"]
    context = Context(request=None, response=None, container=container, request_id="t", role=None)
    query = "query($id: ID!) { group(id: $id) { active } }"

    first = await schema.execute(query, {"id": group["id"]}, context_value=context)
    assert first.data == {"group": {"active": True}}
    await api('mutation($id: ID!) { updateGroup(id: $id, input: {active: false}) { errors { code } } }',
              {"id": group["id"]})
    second = await schema.execute(query, {"id": group["id"]}, context_value=context)
    assert second.data == {"group": {"active": False}}
    assert context._loaders == {}  # dropped when each operation ended


NESTED_PAGE = """query($first: Int!) { comments(first: $first) { edges { node {
  id text group { name } post { vkId } author { name }
  matches { matchedText keyword { word } }
} } } }"""
PLAIN_PAGE = "query($first: Int!) { comments(first: $first) { edges { node { id text } } } }"


async def test_a_nested_page_costs_a_fixed_number_of_statements(container, api: Api, monkeypatch) -> None:
    """Comments with group, post, author, matches and each match's keyword: one statement for
    the page and one per relation (matches and their keywords: one), at any page size;
    relations not asked for cost nothing. The page loads them up front, so no field waits on a
    loader."""
    from sqlalchemy import event

    from graphql_api.loaders import _Loader

    added = await api('mutation { addKeywords(input: [{word: "пирог"}, {word: "борщ"}]) { results { keyword { id } } } }')
    assert all(r["keyword"] for r in added["addKeywords"]["results"])
    await collect_sandbox_group(api)  # babushka_recipes, matched against the keywords as stored
    statements: list[str] = []  # queries, that is

    def count(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):  # not BEGIN / the token's touch
            statements.append(statement)

    waited: list[object] = []
    load_then = _Loader._load_then

    def counted_load_then(self, key, convert):
        waited.append(key)
        return load_then(self, key, convert)

    monkeypatch.setattr(_Loader, "_load_then", counted_load_then)
    event.listen(container.engine.sync_engine, "before_cursor_execute", count)
    try:
        costs = {}
        for name, query, first in (("nested 100", NESTED_PAGE, 100), ("nested 10", NESTED_PAGE, 10),
                                   ("plain 100", PLAIN_PAGE, 100)):
            statements.clear()
            page = (await api(query, {"first": first}, role="viewer"))["comments"]["edges"]
            assert len(page) == first
            costs[name] = len(statements)
            if name == "nested 100":
                nodes = [e["node"] for e in page]
                assert all(n["group"]["name"] and n["post"]["vkId"] for n in nodes)
                assert any(m["keyword"]["word"] in ("пирог", "борщ") for n in nodes for m in n["matches"])
    finally:
        event.remove(container.engine.sync_engine, "before_cursor_execute", count)
    assert waited == []
    assert costs["nested 100"] == costs["nested 10"]
    # groups, posts, authors, and matches with their keywords (the read plan joins those two)
    assert costs["nested 100"] - costs["plain 100"] == 4
