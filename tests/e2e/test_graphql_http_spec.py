"""GraphQL over HTTP (the spec the `graphql-http` audit checks): media types by Accept, status
codes per media type, GET for queries only, batches and empty bodies refused cleanly."""

from __future__ import annotations

import json

import httpx
import pytest

from graphql_api.app import GRAPHQL_RESPONSE_JSON, JSON, negotiate
from tests.e2e.graphql_support import client, container, tokens  # noqa: F401


@pytest.fixture
def auth(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['viewer']}"}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        ("application/json, application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json;q=0.5, application/json", JSON),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),
        ("application/graphql-response+json;q=0", None),
        ("text/plain", None),
    ],
)
def test_media_type_negotiation(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


async def test_responses_use_the_accepted_media_type(client: httpx.AsyncClient, auth: dict) -> None:
    for accept, media in (("application/graphql-response+json", GRAPHQL_RESPONSE_JSON), ("application/json", JSON), ("*/*", JSON)):
        response = await client.post("/graphql", json={"query": "{ __typename }"}, headers={**auth, "Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == media
        assert response.json() == {"data": {"__typename": "Query"}}
    response = await client.post("/graphql", json={"query": "{ __typename }"}, headers={**auth, "Accept": "text/plain"})
    assert response.status_code == 406


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{", None),  # parsing
        ("{ nope }", None),  # validation
        ("query($id: ID!) { task(id: $id) { id } }", {"id": {"not": "an id"}}),  # variable coercion
    ],
)
async def test_request_errors_are_400_without_data_for_the_new_media_type(
    client: httpx.AsyncClient, auth: dict, query: str, variables: dict | None
) -> None:
    body = {"query": query, "variables": variables}
    new = await client.post("/graphql", json=body, headers={**auth, "Accept": GRAPHQL_RESPONSE_JSON})
    assert new.status_code == 400
    assert new.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    assert "data" not in new.json() and new.json()["errors"]

    legacy = await client.post("/graphql", json=body, headers={**auth, "Accept": JSON})
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith(JSON)
    assert legacy.json()["errors"]


async def test_field_errors_stay_200_with_data(client: httpx.AsyncClient, auth: dict) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ __typename comments(first: 500) { totalCount } }"},
        headers={**auth, "Accept": GRAPHQL_RESPONSE_JSON},
    )
    body = response.json()
    assert response.status_code == 200
    assert body["errors"][0]["path"] == ["comments"]


async def test_get_runs_queries_only(client: httpx.AsyncClient, auth: dict) -> None:
    response = await client.get(
        "/graphql", params={"query": "query($n: Int!) { groups(first: $n) { totalCount } }", "variables": json.dumps({"n": 1})},
        headers={**auth, "Accept": GRAPHQL_RESPONSE_JSON},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"groups": {"totalCount": 0}}}

    response = await client.get(
        "/graphql", params={"query": 'mutation { removeGroup(id: "1") { errors { code } } }'}, headers=auth
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "application/json"),  # empty body
        (b"{not json", "application/json"),
        (b'[{"query": "{ __typename }"}, {"query": "{ __typename }"}]', "application/json"),  # batch
        (b'{"query": 7}', "application/json"),
        (b'{"query": "{ __typename }", "variables": "x"}', "application/json"),
        (b'{"query": "{ __typename }"}', "text/plain"),
        (b'{"query": "{ __typename }"}', None),
        (b"{}", "application/json"),  # no query
    ],
)
async def test_malformed_requests_are_400(
    client: httpx.AsyncClient, auth: dict, content: bytes, content_type: str | None
) -> None:
    headers = {**auth, "Accept": GRAPHQL_RESPONSE_JSON}
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post("/graphql", content=content, headers=headers)
    assert 400 <= response.status_code < 500
    assert response.json()["errors"][0]["message"]
    assert "data" not in response.json()


async def test_utf8_both_ways(client: httpx.AsyncClient, auth: dict) -> None:
    body = json.dumps({"query": "query Кошки { __typename }"}, ensure_ascii=False).encode()
    response = await client.post(
        "/graphql", content=body, headers={**auth, "Content-Type": "application/json; charset=utf-8"}
    )
    # A Cyrillic operation name is not a GraphQL name: a clean validation error in UTF-8.
    assert response.status_code == 200 and response.json()["errors"]
    response = await client.post(
        "/graphql", json={"query": '{ stats(top: 1) { totals { groups } } }'}, headers=auth
    )
    assert response.json() == {"data": {"stats": {"totals": {"groups": 0}}}}


async def test_subscriptions_are_for_websockets_only(client: httpx.AsyncClient, auth: dict) -> None:
    response = await client.post(
        "/graphql", json={"query": "subscription { taskEvents { id } }"}, headers={**auth, "Accept": GRAPHQL_RESPONSE_JSON}
    )
    assert response.status_code == 400
    assert "subscriptions" in response.json()["errors"][0]["message"]
