"""/metrics in Prometheus text format, and one structured log line per GraphQL request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from graphql_api.app import create_app
from infrastructure.vk.gateway import token_fingerprint
from tests.conftest import postgres_database
from tests.e2e.graphql_support import Api, api, client, container, make_settings, start_container, tokens, wait_for_task  # noqa: F401


def samples(text: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(found: dict[str, list], name: str, **labels: str) -> float | None:
    for sample in found.get(name, []):
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


async def test_metrics_have_requests_latency_tasks_and_pool(api: Api) -> None:
    await api("query GroupsPage { groups { totalCount } }", role="viewer")
    await api("query GroupsPage { groups { totalCount } }", role="viewer")
    await api.post("query Broken { noSuchField }", role="viewer")
    await api.client.post("/graphql", json={"query": "{ __typename }"})  # no token
    group = (await api('mutation { addGroup(ref: "koshki_spb") { group { id } } }'))["addGroup"]["group"]
    started = await api(
        "mutation($g: [ID!]!) { startParse(input: {groupIds: $g, maxPosts: 2}) { tasks { id } } }", {"g": [group["id"]]}
    )
    await wait_for_task(api, started["startParse"]["tasks"][0]["id"])

    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    assert value(found, "vkcp_graphql_requests_total", operation="GroupsPage", type="query", outcome="ok") == 2
    assert value(found, "vkcp_graphql_requests_total", operation="Broken", outcome="invalid") == 1
    assert value(found, "vkcp_graphql_requests_total", outcome="unauthenticated") == 1
    assert value(found, "vkcp_graphql_request_duration_seconds_count", type="query") >= 2
    assert value(found, "vkcp_graphql_request_duration_seconds_bucket", type="query", le="+Inf") >= 2
    assert value(found, "vkcp_tasks", kind="PARSE", state="SUCCEEDED") == 1
    assert value(found, "vkcp_db_pool_checked_out") is not None


async def test_operation_names_cannot_blow_up_the_label_set(api: Api) -> None:
    from graphql_api.observability import MAX_OPERATION_NAMES

    # Through the API, as a client inventing a name per request would: the first
    # MAX_OPERATION_NAMES names get series, every later one is counted as "other".
    extra = 30
    for i in range(MAX_OPERATION_NAMES + extra):
        await api(f"query Op{i} {{ __typename }}", role="viewer")
    await api("query Op7 { __typename }", role="viewer")  # a name already seen keeps its series
    await api("{ __typename }", role="viewer")
    found = samples((await api.client.get("/metrics")).text)
    series = found["vkcp_graphql_requests_total"]
    operations = {s.labels["operation"] for s in series}
    assert operations == {f"Op{i}" for i in range(MAX_OPERATION_NAMES)} | {"other", "anonymous"}
    assert len(series) == MAX_OPERATION_NAMES + 2  # one (type, outcome) each: bounded
    assert value(found, "vkcp_graphql_requests_total", operation="other", type="query", outcome="ok") == extra
    assert value(found, "vkcp_graphql_requests_total", operation="Op7", type="query", outcome="ok") == 2

    metrics = api.client._transport.app.state.metrics  # type: ignore[attr-defined]
    assert metrics.operation_label("x" * 100) == "invalid"  # names GraphQL itself would refuse
    assert metrics.operation_label("no spaces") == "invalid"


async def test_vk_gateway_series_show_no_token_and_no_fingerprint(tmp_path: Path) -> None:
    secret = "vk1.a.METRICS-SECRET-TOKEN-abcdefghijklmnopqrstuvwxyz0123456789"
    c = await start_container(
        make_settings(tmp_path, auth=False, vk_sandbox=False, vk_tokens=secret, vk_api_url="http://127.0.0.1:9/method")
    )
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(c)), base_url="http://t") as http:
            text = (await http.get("/metrics")).text
    finally:
        await c.aclose()
    assert secret not in text and secret[6:30] not in text
    found = samples(text)
    assert value(found, "vkcp_vk_requests_total") == 0
    assert value(found, "vkcp_vk_rate_limiter_wait_seconds_total") == 0
    assert token_fingerprint(secret) not in text  # which token is in trouble is for admins
    states = {s.labels["state"]: s.value for s in found["vkcp_vk_tokens"]}
    assert states == {"ACTIVE": 1, "PARKED": 0, "REVOKED": 0}


async def test_each_request_logs_one_json_ready_line(api: Api) -> None:
    with structlog.testing.capture_logs() as logs:
        await api.client.post(
            "/graphql",
            json={"query": "query Listing { groups { totalCount } }"},
            headers={"Authorization": f"Bearer {api.tokens['viewer']}", "X-Request-ID": "abc-123"},
        )
    lines = [entry for entry in logs if entry["event"] == "graphql.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "abc-123"
    assert line["operation"] == "Listing" and line["operation_type"] == "query"
    assert line["outcome"] == "ok" and line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert api.tokens["viewer"] not in str(logs)


async def test_the_read_plans_fallbacks_are_counted_by_reason(api: Api, container, monkeypatch) -> None:
    """Each query operation the compiled read plan hands to Strawberry's executor, by why."""
    await api('mutation { addKeywords(input: [{word: "кот"}]) { results { keyword { id } } } }')
    await api("{ keywords(first: 5) { edges { node { word matchesCount } } } }", role="viewer")  # the plan's
    await api("{ stats { totals { comments } } }", role="viewer")  # no rule for `stats`
    await api("{ stats { totals { comments } } }", role="viewer")  # counted per query, not per compile
    for bad in ("first: 0", 'after: "bm90IGEgY3Vyc29y"'):  # its read raises: the executor says what is wrong
        refused = await api.post(f"{{ comments({bad}) {{ edges {{ cursor }} }} }}", role="viewer")
        assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    async def no_counts(ids: list[int]) -> list[None]:  # a null where the schema forbids one
        return [None] * len(ids)

    monkeypatch.setattr(container.read_model, "keyword_matches_counts", no_counts)
    await api.post("{ keywords(first: 5) { edges { node { word matchesCount } } } }", role="viewer")

    found = samples((await api.client.get("/metrics")).text)
    counted = {
        (s.labels["reason"], s.labels["kind"]): s.value for s in found.get("vkcp_read_plan_fallbacks_total", [])
    }
    assert counted == {
        ("unknown_shape", "root"): 2,
        ("error", "GraphQLError"): 1,  # first: 0
        ("error", "InvalidInput"): 1,  # the cursor
        ("handed_back", "null"): 1,
    }  # and SQLite, which writes no page itself, refuses no projection


@pytest.mark.postgres
async def test_pages_postgresql_cannot_write_are_counted_by_what_it_cannot(tmp_path: Path) -> None:
    async with postgres_database() as url:
        c = await start_container(make_settings(tmp_path, database_url=url, auth=False))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(c)), base_url="http://t") as http:
                for nodes in ("id text", "id matches { keyword { matchesCount } }", "id group { monitoring { enabled } }",
                              "id text parent { url } author { url }"):
                    response = await http.post("/graphql", json={"query": f"{{ comments(first: 5) {{ edges {{ node {{ {nodes} }} }} }} }}"})
                    assert response.status_code == 200 and "errors" not in response.json(), response.text
                found = samples((await http.get("/metrics")).text)
        finally:
            await c.aclose()
    counted = {
        (s.labels["reason"], s.labels["kind"]): s.value for s in found.get("vkcp_read_plan_fallbacks_total", [])
    }
    # A keyword's matchesCount: a count, not a view's relation; a community's monitoring: an object
    # made of several columns, no declared field (domain/declaration.py lists both as unprojected).
    assert counted == {("projection_refused", "relation"): 1, ("projection_refused", "computed"): 1}
