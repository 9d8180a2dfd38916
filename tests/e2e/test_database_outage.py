"""What an API client sees while PostgreSQL is down, and right after it returns: a private
cluster this test stops for real (never the shared one)."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import event

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


async def test_a_query_meets_an_outage_once_and_the_plan_answers_it_as_the_executor_does(
    private_postgres, tmp_path
) -> None:
    """The compiled read plan does not hand an outage over to Strawberry's executor, which would
    only try the database again for the same error: its 503 is the executor's, byte for byte,
    and the database is tried as often as the executor alone tries it: once a root field."""
    await private_postgres.create_database("vkcp")
    container = await start_container(make_settings(tmp_path, database_url=private_postgres.url("vkcp"), auth=False))
    attempts = 0

    # Every connection the engine tries to open; with the server stopped each one fails.
    @event.listens_for(container.engine.sync_engine, "do_connect")
    def _connecting(*_: object) -> None:
        nonlocal attempts
        attempts += 1

    apps = {plan: create_app(container, read_plan=plan) for plan in (True, False)}
    documents = {  # -> root fields
        QUERY: 1,
        "{ groups(first: 5) { totalCount edges { node { id name } } } }": 1,
        "{ g: groups(first: 1) { totalCount } k: keywords(first: 1) { edges { cursor } } }": 2,
        '{ c: comment(id: "1") { id } k: keywords(first: 1) { totalCount } }': 2,  # nullable, non-null
        '{ c: comment(id: "1") { id } g: group(id: "1") { name } }': 2,  # both nullable: both errors
    }
    try:
        clients = {
            plan: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")
            for plan, app in apps.items()
        }
        async with clients[True], clients[False]:
            for document in documents:
                assert (await clients[True].post("/graphql", json={"query": document})).status_code == 200
            await private_postgres.stop()
            for document, roots in documents.items():
                answers, tried = {}, {}
                for plan, client in clients.items():
                    attempts = 0
                    response = await client.post("/graphql", json={"query": document}, headers={"X-Request-ID": "r1"})
                    answers[plan] = (response.status_code, response.headers.get("retry-after"), response.content)
                    tried[plan] = attempts
                assert answers[True] == answers[False], (document, answers)
                assert answers[True][:2] == (503, "5") and b'"SERVICE_UNAVAILABLE"' in answers[True][2]
                # Once per root field: its first statement fails, and that ends it.
                assert tried == {True: roots, False: roots}, (document, tried)  # with the plan: twice before
            metrics = (await clients[True].get("/metrics")).text
            assert "vkcp_read_plan_fallbacks_total{" not in metrics, "an outage is no fallback"
    finally:
        await container.aclose()
