"""What a client sees when something goes wrong: the exact ``extensions.code``, over HTTP and
over WebSocket (graphql-transport-ws), for each kind of mistake (``graphql_api.codes``)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from graphql_api.limits import MAX_ALIASES
from tests.e2e.graphql_support import container, server, tokens  # noqa: F401

GRAPHQL_RESPONSE = "application/graphql-response+json"
COUNT = "query($f: Int!) { groups(first: $f) { totalCount } }"


@dataclass(frozen=True)
class Case:
    name: str
    query: str
    code: str
    status: int  # over HTTP, with Accept: application/graphql-response+json
    variables: dict | None = None
    operation_name: str | None = None
    role: str = "viewer"
    ws_type: str = "error"  # the WebSocket message that carries it: `error`, or `next` for a field error
    # With Accept: application/json, a document that cannot run is a 200 (the spec's rule for
    # legacy clients); a request that names no operation to run is a 400 either way.
    json_status: int = 200


CASES = [
    Case("syntax error", "{ groups { ", "GRAPHQL_PARSE_FAILED", 400),
    Case("unknown field", "{ nope }", "GRAPHQL_VALIDATION_FAILED", 400),
    Case("argument literal of the wrong type", '{ groups(first: "x") { totalCount } }', "GRAPHQL_VALIDATION_FAILED", 400),
    Case("unknown argument", "{ groups(size: 1) { totalCount } }", "GRAPHQL_VALIDATION_FAILED", 400),
    Case(
        "too many aliases", "{ " + " ".join(f"a{i}: __typename" for i in range(MAX_ALIASES + 1)) + " }",
        "GRAPHQL_VALIDATION_FAILED", 400,
    ),
    # A query over WebSocket answers variables it cannot use with a `next` (data null).
    Case("variable of the wrong type", COUNT, "BAD_USER_INPUT", 400, {"f": "x"}, ws_type="next"),
    Case("missing required variable", COUNT, "BAD_USER_INPUT", 400, {}, ws_type="next"),
    Case(
        "DateTime variable without an offset",
        "query($s: DateTime) { comments(filter: {since: $s}) { totalCount } }",
        "BAD_USER_INPUT", 400, {"s": "2024-05-01T12:00:00"}, ws_type="next",
    ),
    Case("page size out of range", COUNT, "BAD_USER_INPUT", 200, {"f": 1000}, ws_type="next"),
    Case("malformed cursor", '{ groups(after: "not-a-cursor") { totalCount } }', "BAD_USER_INPUT", 200, ws_type="next"),
    Case("stats(top) out of range", "{ stats(top: 0) { totals { comments } } }", "BAD_USER_INPUT", 200, ws_type="next"),
    Case(
        "operationName naming no operation",
        "query A { groups { totalCount } } query B { keywords { totalCount } }",
        "OPERATION_RESOLUTION_FAILURE", 400, operation_name="C", json_status=400,
    ),
    Case("admin-only field for a viewer", "{ vkTokens { state } }", "FORBIDDEN", 200, ws_type="next"),
    Case(
        "mutation for a viewer", 'mutation { removeGroup(id: "1") { removedGroupId } }', "FORBIDDEN", 200,
        ws_type="next",
    ),
]


def _codes(errors: list[dict[str, Any]]) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in errors]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_over_http(server: str, tokens: dict, case: Case) -> None:
    body = {"query": case.query, "variables": case.variables, "operationName": case.operation_name}
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        for accept, status in ((GRAPHQL_RESPONSE, case.status), ("application/json", case.json_status)):
            headers = {"Authorization": f"Bearer {tokens[case.role]}", "Accept": accept}
            response = await client.post("/graphql", json=body, headers=headers)
            assert response.status_code == status, response.text
            assert _codes(response.json()["errors"]) == [case.code], response.text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_over_websocket(server: str, tokens: dict, case: Case) -> None:
    async with connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens[case.role]}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        payload = {"query": case.query, "variables": case.variables, "operationName": case.operation_name}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (message["id"], message["type"]) == ("1", case.ws_type), message
        errors = message["payload"] if case.ws_type == "error" else message["payload"]["errors"]
        assert _codes(errors) == [case.code], message
        # A refused operation is only that: the connection serves the next one.
        await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": {"query": "{ __typename }"}}))
        while (message := json.loads(await asyncio.wait_for(ws.recv(), 5)))["id"] != "2":
            pass
        assert message == {"id": "2", "type": "next", "payload": {"data": {"__typename": "Query"}}}


async def test_a_subscription_with_a_wrong_variable_is_refused_with_bad_user_input(server: str, tokens: dict) -> None:
    async with connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens['viewer']}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        query = "subscription($s: DateTime) { commentMatched(filter: {since: $s}) { id } }"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"s": "yesterday"}}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert message["type"] == "error" and _codes(message["payload"]) == ["BAD_USER_INPUT"], message


@pytest.mark.parametrize("task_id", ["987654", "not-an-id", ""])
async def test_a_subscription_to_no_task_is_refused_with_not_found(server: str, tokens: dict, task_id: str) -> None:
    async with connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens['viewer']}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        query = "subscription($id: ID!) { taskProgress(id: $id) { id state } }"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"id": task_id}}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["type"] == "error", message
        assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in message["payload"]] == [("NOT_FOUND", "id")]


async def test_a_mutations_expected_failure_is_a_user_error_with_a_code(server: str, tokens: dict) -> None:
    query = 'mutation { setCommentState(ids: ["1"]) { errors { code field } } }'
    headers = {"Authorization": f"Bearer {tokens['operator']}"}
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        body = (await client.post("/graphql", json={"query": query}, headers=headers)).json()
    assert body == {"data": {"setCommentState": {"errors": [{"code": "BAD_USER_INPUT", "field": "viewed"}]}}}


async def test_without_a_token_http_says_unauthenticated_and_websocket_closes_4403(server: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 401
    assert _codes(response.json()["errors"]) == ["UNAUTHENTICATED"]
    async with connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_persisted_query_hash_alone_says_not_supported(server: str, tokens: dict) -> None:
    """Apollo Client's persisted-query link reads this code and resends with the query."""
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": "ab" * 32}}
    headers = {"Authorization": f"Bearer {tokens['viewer']}"}
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        response = await client.post("/graphql", json={"extensions": extensions}, headers=headers)
    assert response.status_code == 400
    assert _codes(response.json()["errors"]) == ["PERSISTED_QUERY_NOT_SUPPORTED"]
