"""A team's review workflow over HTTP, on SQLite and on PostgreSQL: setCommentState's status,
assignee, tags and note in bulk; the filters; commentEvents (who, what, when); permissions
(viewers read, operators change) and the coded refusals of bad input, which change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bootstrap import Container
from domain.auth import create_api_token
from graphql_api.app import create_app
from tests.e2e.graphql_support import Api, make_settings, start_container, wait_for_task


@pytest.fixture
async def container(tmp_path: Path, database_url: str) -> AsyncIterator[Container]:
    c = await start_container(make_settings(tmp_path, database_url=database_url))
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def api(container: Container) -> AsyncIterator[Api]:
    made = {}
    for role, name in (("viewer", "Вера"), ("operator", "Анна"), ("admin", "Олег")):
        made[role], _ = await create_api_token(container.adapters.uow_factory, name, role)
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield Api(client, made)


@pytest.fixture
async def comment_ids(api: Api) -> list[str]:
    group = await api('mutation { addGroup(ref: "babushka_recipes") { group { id } } }')
    started = await api(
        'mutation($g: ID!) { startParse(input: {groupIds: [$g]}) { tasks { id } } }',
        {"g": group["addGroup"]["group"]["id"]},
    )
    assert (await wait_for_task(api, started["startParse"]["tasks"][0]["id"]))["state"] == "SUCCEEDED"
    page = await api("{ comments(first: 6) { edges { node { id } } } }", role="viewer")
    return [e["node"]["id"] for e in page["comments"]["edges"]]


SET = """
mutation($ids: [ID!]!, $status: CommentStatus, $assignee: String, $add: [String!], $remove: [String!],
         $note: String, $viewed: Boolean) {
  setCommentState(ids: $ids, status: $status, assignee: $assignee, addTags: $add, removeTags: $remove,
                  note: $note, viewed: $viewed) {
    comments { id status assignee tags note viewed }
    errors { code field message }
  }
}"""

EVENTS = """query($id: ID!) { commentEvents(id: $id) {
  totalCount edges { node { actor field oldValue newValue at } } } }"""


def count(filter_: str) -> str:
    return f"{{ comments(filter: {filter_}) {{ totalCount edges {{ node {{ id }} }} }} }}"


async def test_a_team_works_its_queue(api: Api, comment_ids: list[str]) -> None:
    a, b, c, *_ = comment_ids
    taken = (await api(SET, {"ids": [a, b], "status": "IN_PROGRESS", "assignee": "Анна",
                             "add": ["Срочно", " доставка "], "note": "перезвонить"}))["setCommentState"]
    assert taken["errors"] == []
    assert taken["comments"] == [
        {"id": i, "status": "IN_PROGRESS", "assignee": "Анна", "tags": ["доставка", "срочно"],
         "note": "перезвонить", "viewed": False}
        for i in (a, b)
    ]
    done = (await api(SET, {"ids": [b], "status": "DONE", "remove": ["срочно"], "viewed": True},
                      role="admin"))["setCommentState"]
    assert done["comments"] == [{"id": b, "status": "DONE", "assignee": "Анна", "tags": ["доставка"],
                                 "note": "перезвонить", "viewed": True}]
    assert (await api(SET, {"ids": [c], "add": ["Жалоба"]}))["setCommentState"]["errors"] == []

    # The filters: every list a filter goes to counts and lists the same comments.
    def ids(data: dict) -> set[str]:
        return {e["node"]["id"] for e in data["comments"]["edges"]}

    queue = await api(count('{assignees: ["Анна"], statuses: [NEW, IN_PROGRESS]}'), role="viewer")
    assert queue["comments"]["totalCount"] == 1 and ids(queue) == {a}
    tagged = await api(count('{tags: ["ДОСТАВКА", "жалоба"]}'), role="viewer")
    assert tagged["comments"]["totalCount"] == 3 and ids(tagged) == {a, b, c}
    every = (await api("{ comments { totalCount } }", role="viewer"))["comments"]["totalCount"]
    new = await api(count("{statuses: [NEW]}"), role="viewer")
    assert new["comments"]["totalCount"] == every - 2 and not ids(new) & {a, b}
    assert (await api(count('{assignees: ["Вера"]}'), role="viewer"))["comments"]["totalCount"] == 0
    assert (await api(count("{statuses: []}"), role="viewer"))["comments"]["totalCount"] == 0

    # Who changed what, when: the operator's and the admin's token names, oldest first.
    trail = (await api(EVENTS, {"id": b}, role="viewer"))["commentEvents"]
    assert [(e["node"]["actor"], e["node"]["field"], e["node"]["oldValue"], e["node"]["newValue"])
            for e in trail["edges"]] == [
        ("Анна", "STATUS", "NEW", "IN_PROGRESS"),
        ("Анна", "ASSIGNEE", None, "Анна"),
        ("Анна", "TAGS", None, "доставка, срочно"),
        ("Анна", "NOTE", None, "перезвонить"),
        ("Олег", "STATUS", "IN_PROGRESS", "DONE"),
        ("Олег", "TAGS", "доставка, срочно", "доставка"),
        ("Олег", "VIEWED", "false", "true"),
    ]
    assert trail["totalCount"] == 7
    assert all(e["node"]["at"] for e in trail["edges"])
    assert (await api(EVENTS, {"id": "99999999"}, role="viewer"))["commentEvents"] is None

    # Statistics by status.
    stats = (await api("{ stats { totals { comments } byStatus { status comments } } }", role="viewer"))["stats"]
    assert stats["byStatus"] == [
        {"status": "NEW", "comments": stats["totals"]["comments"] - 2}, {"status": "IN_PROGRESS", "comments": 1},
        {"status": "DONE", "comments": 1}, {"status": "IGNORED", "comments": 0},
    ]
    # A status change shows at once, though the numbers were just read (and cached).
    await api(SET, {"ids": [c], "status": "IGNORED"})
    stats = (await api("{ stats { byStatus { status comments } } }", role="viewer"))["stats"]
    assert stats["byStatus"][3] == {"status": "IGNORED", "comments": 1}


async def test_viewer_and_assignable_users(api: Api) -> None:
    me = await api("{ viewer { name role } assignableUsers }", role="viewer")
    assert me == {"viewer": {"name": "Вера", "role": "VIEWER"}, "assignableUsers": ["Анна", "Вера", "Олег"]}


async def test_viewers_read_but_cannot_change(api: Api, comment_ids: list[str]) -> None:
    response = await api.post(SET, {"ids": comment_ids[:1], "status": "DONE"}, role="viewer")
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await api(count("{statuses: [DONE]}"), role="viewer"))["comments"]["totalCount"] == 0
    assert (await api(EVENTS, {"id": comment_ids[0]}, role="viewer"))["commentEvents"]["totalCount"] == 0


async def test_the_trail_has_no_edit_or_delete(api: Api) -> None:
    fields = await api('{ __type(name: "Mutation") { fields { name } } }', role="admin")
    names = {f["name"] for f in fields["__type"]["fields"]}
    assert not {n for n in names if "vent" in n}  # no mutation touches events


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({}, "BAD_USER_INPUT", "viewed"),
        ({"assignee": "Никто"}, "INVALID_REFERENCE", "assignee"),
        ({"add": [" "]}, "BAD_USER_INPUT", "addTags"),
        ({"add": ["a,b"]}, "BAD_USER_INPUT", "addTags"),
        ({"add": ["x"], "remove": ["X"]}, "BAD_USER_INPUT", "addTags"),
        ({"note": "n" * 4001}, "BAD_USER_INPUT", "note"),
        ({"note": "a\u0000b"}, "BAD_USER_INPUT", "note"),
    ],
)
async def test_bad_input_is_a_coded_error_and_changes_nothing(
    api: Api, comment_ids: list[str], variables: dict, code: str, field: str
) -> None:
    result = (await api(SET, {"ids": comment_ids[:2], "status": "DONE", **variables} if variables else
                        {"ids": comment_ids[:2]}))["setCommentState"]
    assert result["comments"] == []
    assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)]
    assert (await api(count("{statuses: [DONE]}"), role="viewer"))["comments"]["totalCount"] == 0
    assert (await api(EVENTS, {"id": comment_ids[0]}, role="viewer"))["commentEvents"]["totalCount"] == 0


async def test_a_bad_filter_is_a_coded_error(api: Api) -> None:
    response = await api.post('{ comments(filter: {tags: ["a,b"]}) { totalCount } }', role="viewer")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


LIVE = """subscription($filter: CommentFilter) {
  commentMatched(filter: $filter) { id status assignee tags note }
}"""


async def test_the_live_feed_filters_by_the_workflow(container: Container, api: Api, comment_ids: list[str]) -> None:
    """commentMatched with statuses/assignees/tags sends the matched comments that pass, as they
    are now, event after event (each event reads them afresh)."""
    import asyncio
    from typing import Any, ClassVar

    from domain.analyze import COMMENTS_MATCHED_CHANNEL
    from domain.auth import Role
    from graphql_api.context import Context
    from graphql_api.ids import NodeType, parse_id
    from graphql_api.schema import schema

    a, b, c, *_ = comment_ids
    await api(SET, {"ids": [a, b], "status": "IN_PROGRESS", "assignee": "Анна", "add": ["срочно"]})

    class Socket:
        scope: ClassVar[dict[str, str]] = {"type": "websocket"}
        headers: ClassVar[dict[str, str]] = {}

    context = Context(request=Socket(), response=None, container=container, request_id="t", role=Role.VIEWER)
    variables: dict[str, Any] = {"filter": {"assignees": ["Анна"], "statuses": ["IN_PROGRESS"], "tags": ["Срочно"]}}
    stream = await schema.subscribe(LIVE, variable_values=variables, context_value=context)
    rows = [parse_id(i, NodeType.COMMENT) for i in (a, b, c)]

    async def next_ids() -> list[str]:
        result = await asyncio.wait_for(anext(stream), 10)  # type: ignore[arg-type]
        assert result.errors is None, result.errors
        return [result.data["commentMatched"]["id"]]

    try:
        receive = asyncio.create_task(next_ids())
        await asyncio.sleep(0.2)  # subscribed on the bus
        await container.adapters.events.publish(COMMENTS_MATCHED_CHANNEL, {"commentIds": [rows[2], rows[0]]})
        assert await receive == [a]  # c is NEW and untagged
        # A second event: b, changed meanwhile (DONE now), no longer passes; a does, as it is now.
        await api(SET, {"ids": [b], "status": "DONE"})
        await api(SET, {"ids": [a], "note": "перезвонить"})
        receive = asyncio.create_task(asyncio.wait_for(anext(stream), 10))  # type: ignore[arg-type]
        await container.adapters.events.publish(COMMENTS_MATCHED_CHANNEL, {"commentIds": [rows[1], rows[0]]})
        result = await receive
        assert result.errors is None, result.errors
        assert result.data["commentMatched"] == {
            "id": a, "status": "IN_PROGRESS", "assignee": "Анна", "tags": ["срочно"], "note": "перезвонить",
        }
    finally:
        await stream.aclose()  # type: ignore[union-attr]
