"""Relay compatibility (issue #13): global ids, ``node``/``nodes``, and connections paged both
ways with the Relay cursor connection spec's ``pageInfo``; on SQLite and on PostgreSQL.

Old clients keep working: every argument that names an object of one type also takes its plain
row id, as the README's examples do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.auth import create_api_token
from graphql_api.app import create_app
from tests.conftest import postgres_database
from tests.e2e.graphql_support import make_settings, start_container


def decoded(global_id: str) -> str:
    return base64.b64decode(global_id).decode()


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Stack:
    """The API over one database: three communities (one parsed), keywords, tasks."""

    def __init__(self, http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.http = http
        self.tokens = tokens

    async def body(self, query: str, variables: dict[str, Any] | None = None, *, role: str = "admin") -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        assert response.status_code in (200, 400), response.text
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None, *, role: str = "admin") -> dict[str, Any]:
        body = await self.body(query, variables, role=role)
        assert "errors" not in body, body
        return body["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None, *, role: str = "admin") -> dict:
        """The one error of a request, as ``{code, field, path}``."""
        body = await self.body(query, variables, role=role)
        assert len(body.get("errors", [])) == 1, body
        error = body["errors"][0]
        return {"code": error["extensions"]["code"], "field": error["extensions"].get("field"), "path": error.get("path")}


async def finish(stack: Stack, task_id: str) -> None:
    for _ in range(600):
        state = (await stack.data("query($id: ID!) { task(id: $id) { state } }", {"id": task_id}))["task"]["state"]
        if state not in ("QUEUED", "RUNNING"):
            break
        await asyncio.sleep(0.05)
    assert state == "SUCCEEDED"


async def _seed(stack: Stack) -> None:
    added = await stack.data(
        'mutation { addGroups(refs: ["koshki_spb", "zarechye_news", "babushka_recipes"]) { groups { id } } }'
    )
    group_id = added["addGroups"]["groups"][0]["id"]
    parse = await stack.data(
        "mutation($g: [ID!]!) { startParse(input: {groupIds: $g}) { tasks { id } } }", {"g": [group_id]}
    )
    await finish(stack, parse["startParse"]["tasks"][0]["id"])
    words = [{"word": w} for w in ("кот", "кошка", "корм", "ветеринар", "котёнок")]
    await stack.data("mutation($k: [KeywordInput!]!) { addKeywords(input: $k) { keywords { id } } }", {"k": words})
    await finish(stack, (await stack.data("mutation { startAnalyze { task { id } } }"))["startAnalyze"]["task"]["id"])


def _database(kind: str, data_dir: Path) -> contextlib.AbstractAsyncContextManager[str]:
    if kind == "postgres":
        return postgres_database()
    return contextlib.nullcontext(f"sqlite+aiosqlite:///{data_dir / 'vkcp.sqlite3'}")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp(request.param)
    async with _database(request.param, data_dir) as url:
        container = await start_container(make_settings(data_dir, database_url=url))
        try:
            tokens = {}
            for role in ("viewer", "operator", "admin"):
                tokens[role], _ = await create_api_token(container.adapters.uow_factory, f"relay {role}", role)
            transport = httpx.ASGITransport(app=create_app(container))
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
                stack = Stack(http, tokens)
                await _seed(stack)
                yield stack
        finally:
            await container.aclose()


# --- ids and nodes --------------------------------------------------------------------------

ONE_OF_EACH = """{
  groups(first: 1) { edges { node { id name } } }
  keywords(first: 1) { edges { node { id word } } }
  tasks(first: 1) { edges { node { id kind } } }
  comments(first: 1) { edges { node { id text post { id text } } } }
  apiTokens { id name }
}"""

NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on Group { name } ... on Keyword { word } ... on Task { kind } ... on Comment { text }
  ... on Post { text } ... on ApiToken { name } } }"""


async def _one_of_each(stack: Stack) -> dict[str, dict[str, Any]]:
    found = await stack.data(ONE_OF_EACH)
    comment = found["comments"]["edges"][0]["node"]
    return {
        "Group": found["groups"]["edges"][0]["node"],
        "Keyword": found["keywords"]["edges"][0]["node"],
        "Task": found["tasks"]["edges"][0]["node"],
        "Comment": {"id": comment["id"], "text": comment["text"]},
        "Post": comment["post"],
        "ApiToken": found["apiTokens"][0],
    }


async def test_every_object_has_a_global_id_that_node_refetches(stack: Stack) -> None:
    objects = await _one_of_each(stack)
    for type_name, obj in objects.items():
        kind, _, pk = decoded(obj["id"]).partition(":")
        assert kind == type_name and pk.isdigit(), obj["id"]
        node = (await stack.data(NODE, {"id": obj["id"]}))["node"]
        assert node == {"__typename": type_name, **obj}

    ids = [o["id"] for o in objects.values()]
    missing = encoded("Group:999999")
    nodes = (await stack.data("query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }", {"ids": [*ids, missing]}))
    assert nodes["nodes"] == [{"__typename": t, "id": o["id"]} for t, o in objects.items()] + [None]
    # Ids are unique across types: the first group and the first keyword are both row 1.
    assert len(set(ids)) == len(ids)


async def test_typed_fields_take_the_global_id_and_the_row_id(stack: Stack) -> None:
    objects = await _one_of_each(stack)
    for field in ("group", "keyword", "task", "comment"):
        type_name = field.capitalize()
        global_id = objects[type_name]["id"]
        row_id = decoded(global_id).partition(":")[2]
        query = f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}"
        assert (await stack.data(query, {"id": global_id}))[field] == {"id": global_id}
        assert (await stack.data(query, {"id": row_id}))[field] == {"id": global_id}
        assert (await stack.data(query, {"id": f" {row_id} "}))[field] == {"id": global_id}

    group_id = objects["Group"]["id"]
    count = "query($g: [ID!]) { comments(filter: {groupIds: $g}) { totalCount } }"
    by_global = (await stack.data(count, {"g": [group_id]}))["comments"]["totalCount"]
    assert by_global > 0
    assert (await stack.data(count, {"g": [decoded(group_id).partition(":")[2]]}))["comments"]["totalCount"] == by_global
    # Mutations too; the README's `groupIds: ["1"]` and the payloads' global ids alike.
    refreshed = await stack.data('mutation { refreshGroup(id: "1") { group { id } errors { code } } }', role="operator")
    assert refreshed["refreshGroup"] == {"group": {"id": encoded("Group:1")}, "errors": []}
    # (Community 3 has no comments: analyzing it changes nothing the paging tests read.)
    analyze = "mutation($g: [ID!]) { startAnalyze(input: {groupIds: $g}) { task { id params } errors { code } } }"
    for ids in (["3"], [encoded("Group:3")]):
        started = (await stack.data(analyze, {"g": ids}, role="operator"))["startAnalyze"]
        assert started["errors"] == [] and started["task"]["params"]["groupIds"] == [3]
        await finish(stack, started["task"]["id"])


async def test_a_global_id_of_another_type_is_refused_not_read_as_a_row_id(stack: Stack) -> None:
    objects = await _one_of_each(stack)
    keyword_id, group_id, comment_id = objects["Keyword"]["id"], objects["Group"]["id"], objects["Comment"]["id"]

    assert await stack.error("query($id: ID!) { group(id: $id) { id } }", {"id": keyword_id}) == {
        "code": "BAD_USER_INPUT", "field": "id", "path": ["group"]
    }
    assert (await stack.error("query($id: ID!) { keyword(id: $id) { id } }", {"id": group_id}))["code"] == "BAD_USER_INPUT"
    filtered = "query($g: [ID!]) { comments(filter: {groupIds: $g}) { totalCount } }"
    assert (await stack.error(filtered, {"g": [keyword_id]}))["field"] == "groupIds"

    update = "mutation($id: ID!) { updateGroup(id: $id, input: {active: true}) { group { id } errors { code field message } } }"
    payload = (await stack.data(update, {"id": keyword_id}, role="operator"))["updateGroup"]
    assert payload["group"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("BAD_USER_INPUT", "id")]
    assert "Keyword" in payload["errors"][0]["message"] and "Group" in payload["errors"][0]["message"]
    parse = "mutation($g: [ID!]!) { startParse(input: {groupIds: $g}) { tasks { id } errors { code field } } }"
    assert (await stack.data(parse, {"g": [comment_id]}, role="operator"))["startParse"] == {
        "tasks": [], "errors": [{"code": "BAD_USER_INPUT", "field": "groupIds"}]
    }
    state = "mutation($ids: [ID!]!) { setCommentState(ids: $ids, viewed: true) { comments { id } errors { code } } }"
    assert (await stack.data(state, {"ids": [group_id]}, role="operator"))["setCommentState"] == {
        "comments": [], "errors": [{"code": "BAD_USER_INPUT"}]
    }
    # The subscription's id is read the same way (HTTP refuses subscriptions; its parsing is shared).


async def test_ids_we_never_gave_name_nothing(stack: Stack) -> None:
    for foreign in ("R3JvdXA6MQ", "R3JvdXA6MQ==\n" * 2, encoded("Group:01"), encoded("Group:0"), encoded("User:1"),
                    encoded("Group:1:2"), encoded("Group:"), "!!!", "", "MDQ6VXNlcjE=", "²", "-1", "1.0"):
        assert (await stack.data("query($id: ID!) { group(id: $id) { id } }", {"id": foreign}))["group"] is None, foreign
        assert (await stack.data("query($id: ID!) { node(id: $id) { id } }", {"id": foreign}))["node"] is None, foreign
    update = 'mutation($id: ID!) { removeKeyword(id: $id) { removedKeywordId errors { code } } }'
    assert (await stack.data(update, {"id": encoded("Keyword:999999")}, role="operator"))["removeKeyword"] == {
        "removedKeywordId": None, "errors": [{"code": "NOT_FOUND"}]
    }


async def test_node_takes_only_global_ids(stack: Stack) -> None:
    # A row id does not say what it names: refused with a code rather than guessed.
    body = await stack.body('{ node(id: "1") { id } }')
    assert body["data"] == {"node": None}
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [("BAD_USER_INPUT", ["node"])]
    group_id = encoded("Group:1")
    body = await stack.body("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [group_id, "1", group_id]})
    assert body["data"] == {"nodes": [{"id": group_id}, None, {"id": group_id}]}
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [("BAD_USER_INPUT", ["nodes", 1])]

    too_many = [encoded(f"Comment:{i}") for i in range(1, 1002)]
    error = await stack.error("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": too_many})
    assert (error["code"], error["field"]) == ("BAD_USER_INPUT", "ids")
    assert len((await stack.data("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": too_many[:1000]}))["nodes"]) == 1000


async def test_node_reads_nothing_the_caller_could_not_read_by_its_typed_field(stack: Stack) -> None:
    objects = await _one_of_each(stack)
    token_id, group_id = objects["ApiToken"]["id"], objects["Group"]["id"]
    for role in ("viewer", "operator"):
        assert (await stack.error("{ apiTokens { id } }", role=role))["code"] == "FORBIDDEN"
        assert await stack.error(NODE, {"id": token_id}, role=role) == {"code": "FORBIDDEN", "field": None, "path": ["node"]}
        # Even a token that does not exist: a non-admin learns nothing about tokens.
        missing = encoded("ApiToken:999999")
        assert (await stack.error(NODE, {"id": missing}, role=role))["code"] == "FORBIDDEN"
        body = await stack.body("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [group_id, token_id]}, role=role)
        assert body["data"] == {"nodes": [{"id": group_id}, None]}
        assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [("FORBIDDEN", ["nodes", 1])]
    assert (await stack.data(NODE, {"id": token_id}, role="admin"))["node"]["id"] == token_id
    assert (await stack.data(NODE, {"id": group_id}, role="viewer"))["node"]["id"] == group_id


async def test_removed_ids_are_the_ids_clients_hold(stack: Stack) -> None:
    added = await stack.data('mutation { addKeywords(input: [{word: "временное"}]) { keywords { id } } }', role="operator")
    keyword_id = added["addKeywords"]["keywords"][0]["id"]
    removed = await stack.data(
        "mutation($id: ID!) { removeKeyword(id: $id) { removedKeywordId errors { code } } }", {"id": keyword_id},
        role="operator",
    )
    assert removed["removeKeyword"] == {"removedKeywordId": keyword_id, "errors": []}
    stats = await stack.data("{ stats { groups { groupId group { id } } topKeywords { keywordId } } }")
    assert all(g["groupId"] == g["group"]["id"] for g in stats["stats"]["groups"])
    assert all(decoded(k["keywordId"]).startswith("Keyword:") for k in stats["stats"]["topKeywords"])


# --- paging both ways -----------------------------------------------------------------------

CONNECTIONS = {
    "groups": ("groups", "", 1),
    "keywords": ("keywords", "", 2),
    "tasks": ("tasks", "", 2),
    "comments by date": ("comments", "orderBy: {field: PUBLISHED_AT, direction: DESC}", None),
    "comments by likes": ("comments", "orderBy: {field: LIKES, direction: ASC}", None),
    "matched comments by matches": ("comments", "filter: {matched: true}, orderBy: {field: MATCHES_COUNT}", None),
}


def _page_query(field: str, args: str) -> str:
    extra = f"{args}, " if args else ""
    return f"""query($first: Int, $after: String, $last: Int, $before: String) {{
      {field}({extra}first: $first, after: $after, last: $last, before: $before) {{
        totalCount
        edges {{ cursor node {{ id }} }}
        pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
      }} }}"""


async def _page(stack: Stack, field: str, args: str, **window: Any) -> dict[str, Any]:
    return (await stack.data(_page_query(field, args), window, role="viewer"))[field]


def _ids(page: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in page["edges"]]


def _check_cursors(page: dict[str, Any]) -> None:
    info, edges = page["pageInfo"], page["edges"]
    assert info["startCursor"] == (edges[0]["cursor"] if edges else None)
    assert info["endCursor"] == (edges[-1]["cursor"] if edges else None)


@pytest.mark.parametrize("name", CONNECTIONS)
async def test_paging_backward_gives_the_items_paging_forward_gives(stack: Stack, name: str) -> None:
    field, args, size = CONNECTIONS[name]
    expected, after = [], None
    while True:  # the reference: pages as large as they come
        everything = await _page(stack, field, args, first=100, after=after)
        expected += _ids(everything)
        if not everything["pageInfo"]["hasNextPage"]:
            break
        after = everything["pageInfo"]["endCursor"]
    total = everything["totalCount"]
    assert total == len(expected) == len(set(expected)) >= 3
    size = size or min(100, total // 5 + 1)  # several pages, the last one short

    forward, after, pages = [], None, []
    while True:
        page = await _page(stack, field, args, first=size, after=after)
        _check_cursors(page)
        pages.append(page)
        forward += _ids(page)
        # Per the spec: with `first`, hasPreviousPage says whether anything comes before `after`.
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert forward == expected and len(pages) == -(-total // size)

    backward, before, back_pages = [], None, []
    while True:
        page = await _page(stack, field, args, last=size, before=before)
        _check_cursors(page)
        back_pages.append(page)
        backward = _ids(page) + backward
        # With `last`, hasNextPage says whether anything comes after `before`.
        assert page["pageInfo"]["hasNextPage"] is (before is not None)
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert backward == expected
    assert all(len(_ids(p)) == size for p in back_pages[:-1])

    # The same cursors work across directions: the page before the second forward page is the first.
    second = pages[1]
    previous = await _page(stack, field, args, last=size, before=second["pageInfo"]["startCursor"])
    assert _ids(previous) == _ids(pages[0])
    assert previous["pageInfo"]["hasPreviousPage"] is False and previous["pageInfo"]["hasNextPage"] is True
    # Both cursors: the items strictly between them (here: all but the first and the last page's).
    window = {"after": pages[0]["edges"][0]["cursor"], "before": pages[-1]["pageInfo"]["startCursor"]}
    inside = expected[1 : len(expected) - len(_ids(pages[-1]))]
    count = min(100, len(inside))
    between = await _page(stack, field, args, first=count, **window)
    assert _ids(between) == inside[:count]
    assert between["pageInfo"]["hasNextPage"] is (len(inside) > count) and between["pageInfo"]["hasPreviousPage"] is True
    squeezed = await _page(stack, field, args, last=1, **window)
    assert _ids(squeezed) == inside[-1:]
    assert squeezed["pageInfo"]["hasPreviousPage"] is (len(inside) > 1) and squeezed["pageInfo"]["hasNextPage"] is True


async def test_page_edges_and_empty_pages(stack: Stack) -> None:
    first = await _page(stack, "keywords", "", first=1)
    last = await _page(stack, "keywords", "", last=1)
    info = first["pageInfo"]
    assert (info["hasPreviousPage"], info["hasNextPage"]) == (False, True)
    info = last["pageInfo"]
    assert (info["hasPreviousPage"], info["hasNextPage"]) == (True, False)
    # Nothing after the last item, nothing before the first: empty pages, null cursors, but the
    # other side still says there is something there.
    beyond = await _page(stack, "keywords", "", first=5, after=last["pageInfo"]["endCursor"])
    assert beyond["edges"] == [] and beyond["pageInfo"] == {
        "hasNextPage": False, "hasPreviousPage": True, "startCursor": None, "endCursor": None
    }
    ahead = await _page(stack, "keywords", "", last=5, before=first["pageInfo"]["startCursor"])
    assert ahead["edges"] == [] and ahead["pageInfo"] == {
        "hasNextPage": True, "hasPreviousPage": False, "startCursor": None, "endCursor": None
    }
    nothing = await stack.data('{ comments(filter: {text: "нет такого слова вообще"}, last: 5) { edges { cursor } '
                               "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }")
    assert nothing["comments"] == {"edges": [], "pageInfo": {
        "hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None
    }}


@pytest.mark.parametrize(
    "window, code, field",
    [
        ({"first": 2, "last": 2}, "BAD_USER_INPUT", "last"),
        ({"last": 0}, "BAD_USER_INPUT", "last"),
        ({"last": 101}, "BAD_USER_INPUT", "last"),
        ({"first": 0}, "BAD_USER_INPUT", "first"),
        ({"last": 2, "before": "not a cursor"}, "BAD_USER_INPUT", "before"),
        ({"first": 2, "before": "not a cursor"}, "BAD_USER_INPUT", "before"),
        ({"last": 2, "after": "not a cursor"}, "BAD_USER_INPUT", "after"),
    ],
)
async def test_paging_arguments_are_checked(stack: Stack, window: dict[str, Any], code: str, field: str) -> None:
    error = await stack.error(_page_query("comments", ""), window)
    assert (error["code"], error["field"]) == (code, field)


async def test_first_still_defaults_to_twenty(stack: Stack) -> None:
    page = await stack.data("{ comments { edges { cursor } pageInfo { hasNextPage } } }")
    assert len(page["comments"]["edges"]) == 20 and page["comments"]["pageInfo"]["hasNextPage"]


async def test_the_readmes_relay_examples_work(stack: Stack) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Ids, paging and Relay", 1)[1]
    examples = section.split("```graphql\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(examples) == 2
    groups = (await stack.data(examples[0], role="viewer"))["groups"]
    assert len(groups["edges"]) == 2 and groups["pageInfo"]["hasPreviousPage"] is True
    assert (await stack.data(examples[1], role="viewer"))["node"]["id"] == "R3JvdXA6MQ=="
