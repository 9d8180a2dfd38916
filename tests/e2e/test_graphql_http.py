"""The HTTP surface: auth and roles, GET/POST rules, malformed requests, GraphiQL, health."""

from __future__ import annotations

from pathlib import Path

import httpx

from domain.auth import create_api_token
from graphql_api.app import create_app
from tests.e2e.graphql_support import Api, api, client, container, make_settings, start_container, tokens  # noqa: F401
from tests.faults import private_postgres, private_redis  # noqa: F401  (fixtures)

ADD = 'mutation { addGroup(ref: "koshki_spb") { group { id } errors { code } } }'


async def test_no_or_bad_token_is_401(client: httpx.AsyncClient, tokens: dict) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {tokens['admin']}"}):
        response = await client.post("/graphql", json={"query": "{ groups { totalCount } }"}, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_revoked_token_stops_working(client: httpx.AsyncClient, container) -> None:
    plain, record = await create_api_token(container.adapters.uow_factory, "leaked", "admin")
    headers = {"Authorization": f"Bearer {plain}"}
    query = {"query": "{ groups { totalCount } }"}
    assert (await client.post("/graphql", json=query, headers=headers)).status_code == 200
    async with container.adapters.uow_factory() as uow:
        assert await uow.api_tokens.revoke(record.id)
        await uow.commit()
    response = await client.post("/graphql", json=query, headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"].startswith("Invalid API token")


async def test_viewer_reads_but_cannot_mutate(api: Api) -> None:
    assert (await api("{ groups { totalCount } }", role="viewer")) == {"groups": {"totalCount": 0}}

    response = await api.post(ADD, role="viewer")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["path"] == ["addGroup"]
    assert (await api("{ groups { totalCount } }", role="viewer")) == {"groups": {"totalCount": 0}}

    for role in ("operator", "admin"):
        assert (await api(ADD, role=role))["addGroup"]["errors"] == []


async def test_malformed_documents_are_400_with_errors(api: Api) -> None:
    # With the GraphQL-over-HTTP media type a document that cannot run is a 400 without data;
    # plain application/json clients get 200 (the spec's rule for legacy clients).
    headers = {"Authorization": f"Bearer {api.tokens['viewer']}"}
    for query in ("{ groups { totalCount }", "{ noSuchField }", "mutation { addGroup { errors { code } } }"):
        response = await api.client.post(
            "/graphql", json={"query": query}, headers={**headers, "Accept": "application/graphql-response+json"}
        )
        assert response.status_code == 400, query
        assert response.headers["content-type"].startswith("application/graphql-response+json")
        body = response.json()
        assert "data" not in body and body["errors"][0]["message"], query
        legacy = await api.client.post("/graphql", json={"query": query}, headers={**headers, "Accept": "application/json"})
        assert legacy.status_code == 200, query
        assert legacy.json()["errors"][0]["message"], query

    response = await api.client.post(
        "/graphql", content=b"{not json", headers={"Authorization": f"Bearer {api.tokens['viewer']}",
                                                    "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]


async def test_get_runs_queries_only(client: httpx.AsyncClient, tokens: dict) -> None:
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    response = await client.get("/graphql", params={"query": "{ groups { totalCount } }"}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"data": {"groups": {"totalCount": 0}}}

    response = await client.get("/graphql", params={"query": ADD}, headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "errors" in response.json()


async def test_graphiql_page_for_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "not configured"


async def readyz(container) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(container)), base_url="http://t") as c:
        return await c.get("/readyz")


async def test_readiness_fails_while_the_database_is_down_and_recovers(private_postgres, tmp_path: Path) -> None:
    await private_postgres.create_database("vkcp")
    container = await start_container(make_settings(tmp_path, database_url=private_postgres.url("vkcp")))
    try:
        ok = await readyz(container)
        assert ok.status_code == 200
        assert ok.json() == {"status": "ok", "checks": {"database": "ok", "redis": "not configured", "vk": "sandbox"}}

        await private_postgres.stop()  # for real: the cluster is shut down
        down = await readyz(container)
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "unavailable" and set(body["checks"]) == {"database", "redis", "vk"}
        assert body["checks"]["database"] in ("error: ConnectionRefusedError", "error: OSError"), body
        assert (body["checks"]["redis"], body["checks"]["vk"]) == ("not configured", "sandbox")

        await private_postgres.start()
        back = await readyz(container)
        assert back.status_code == 200 and back.json()["checks"]["database"] == "ok"
    finally:
        await container.aclose()


async def test_readiness_fails_while_redis_is_down_and_recovers(private_redis, tmp_path: Path) -> None:
    container = await start_container(make_settings(tmp_path, redis_url=private_redis.url(), redis_prefix="ready:"))
    try:
        ok = await readyz(container)
        assert ok.status_code == 200
        assert ok.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "vk": "sandbox"}}

        await private_redis.stop()  # for real: the server is killed
        down = await readyz(container)
        assert down.status_code == 503
        assert down.json() == {"status": "unavailable",
                               "checks": {"database": "ok", "redis": "error: ConnectionError", "vk": "sandbox"}}

        await private_redis.start()
        back = await readyz(container)
        assert back.status_code == 200 and back.json()["checks"]["redis"] == "ok"
    finally:
        await container.aclose()


async def test_unexpected_errors_are_masked(api: Api, container) -> None:
    async def explode(**kwargs):
        raise RuntimeError("secret internal detail")

    container.read_model.groups_count = explode
    response = await api.post("{ groups { totalCount } }", role="viewer")
    body = response.json()
    error = body["errors"][0]
    assert "secret" not in response.text
    assert error["message"].startswith("Internal server error (request id ")
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


async def test_request_id_from_the_caller_is_used(api: Api, container) -> None:
    async def explode(**kwargs):
        raise RuntimeError("boom")

    container.read_model.groups_count = explode
    response = await api.client.post(
        "/graphql",
        json={"query": "{ groups { totalCount } }"},
        headers={"Authorization": f"Bearer {api.tokens['viewer']}", "X-Request-ID": "req-123"},
    )
    assert response.json()["errors"][0]["extensions"]["requestId"] == "req-123"


async def test_with_auth_off_everyone_is_admin(tmp_path: Path) -> None:
    container = await start_container(make_settings(tmp_path, auth=False))
    try:
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            response = await c.post("/graphql", json={"query": ADD})
        assert response.status_code == 200
        assert response.json()["data"]["addGroup"]["errors"] == []
    finally:
        await container.aclose()


async def test_absurdly_deep_queries_are_refused(api: Api) -> None:
    nested = "id " + "parent { id " * 14 + "}" * 14
    response = await api.post(f"{{ comments(first: 1) {{ edges {{ node {{ {nested} }} }} }} }}", role="viewer")
    assert response.status_code == 200  # application/json: a refused document is still a 200
    assert "exceeds maximum operation depth" in response.json()["errors"][0]["message"]


async def test_the_app_closes_the_container_on_shutdown(container) -> None:
    closed = []
    real_close = container.aclose

    async def aclose() -> None:
        closed.append(True)
        await real_close()

    container.aclose = aclose
    app = create_app(container)
    async with app.router.lifespan_context(app):
        assert closed == []
    assert closed == [True]
