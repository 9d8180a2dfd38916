"""What an API client sees while PostgreSQL is down, and right after it returns: a private
cluster this test stops for real (never the shared one)."""

from __future__ import annotations

import asyncio

import httpx

from domain.auth import create_api_token
from graphql_api.app import create_app
from tests.e2e.graphql_support import make_settings, start_container
from tests.faults import private_postgres  # noqa: F401  (fixture)

QUERY = "{ comments(first: 5) { totalCount edges { node { id } } } }"
MUTATION = 'mutation { startExport(input: {format: CSV}) { task { id state } errors { code message } } }'


async def test_requests_get_a_coded_retryable_503_while_the_database_is_down_and_work_after(
    private_postgres, tmp_path
) -> None:
    await private_postgres.create_database("vkcp")
    url = private_postgres.url("vkcp")
    container = await start_container(make_settings(tmp_path, database_url=url))
    # Auth off: the request reaches the resolvers, whose reads and writes meet the outage.
    open_container = await start_container(make_settings(tmp_path, database_url=url, auth=False))
    token, _ = await create_api_token(container.adapters.uow_factory, "op", "operator")
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(container))
    open_transport = httpx.ASGITransport(app=create_app(open_container))
    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://api.test") as client,
            httpx.AsyncClient(transport=open_transport, base_url="http://api.test") as resolvers,
        ):
            assert (await client.post("/graphql", json={"query": QUERY}, headers=headers)).status_code == 200

            await private_postgres.stop()
            for via, document in ((client, QUERY), (resolvers, QUERY), (resolvers, MUTATION)):
                response = await via.post("/graphql", json={"query": document}, headers=headers)
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "5"
                [error] = response.json()["errors"]
                assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", error
                assert "Internal" not in error["message"]
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error")

            await private_postgres.start()
            response = await client.post("/graphql", json={"query": QUERY}, headers=headers)
            assert response.status_code == 200 and "errors" not in response.json(), response.text
            body = (await client.post("/graphql", json={"query": MUTATION}, headers=headers)).json()
            assert body["data"]["startExport"]["errors"] == [] and body["data"]["startExport"]["task"]["state"]
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await container.aclose()
        await open_container.aclose()


async def test_the_first_requests_after_a_restart_succeed_on_a_pool_of_stale_connections(
    private_postgres, tmp_path
) -> None:
    """No request meets the outage, so nothing has told the pool: every pooled connection is
    one the old server closed. They are replaced at checkout, not answered with 503s."""
    await private_postgres.create_database("vkcp")
    container = await start_container(make_settings(tmp_path, database_url=private_postgres.url("vkcp"), auth=False))
    transport = httpx.ASGITransport(app=create_app(container))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:

            async def many() -> list[httpx.Response]:
                return await asyncio.gather(*(client.post("/graphql", json={"query": QUERY}) for _ in range(8)))

            assert {r.status_code for r in await many()} == {200}  # several pooled connections
            assert container.engine.pool.checkedin() > 1
            await private_postgres.restart()
            for response in await many():
                assert response.status_code == 200 and "errors" not in response.json(), response.text
    finally:
        await container.aclose()
