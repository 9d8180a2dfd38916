"""A query sent again is answered from the HTTP request straight to its plan (``planned_http``),
byte for byte as the normal path answers it: the same random documents as ``test_read_plan.py``,
each sent twice to the app with the plan (the second time it is a kept document) and once to the
app without it. Then what must still take the normal path, or answer as it does: variables that do
not coerce, no token or a bad one, an outage, the deadline, a plan that hands a kept document back.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from domain.errors import Unavailable
from graphql_api.app import GraphQLView
from graphql_api.planned_http import MAX_KEPT_QUERY, PlannedRequests
from infrastructure.db.queries import SqlReadModel
from tests.e2e.test_read_plan import (  # noqa: F401 (seeded: the fixture, seeded once per module)
    REFETCH,
    Counted,
    Pair,
    Projected,
    _console_document,
    requests,
    seeded,
)

DOCUMENTS = 200


def view_of(client: httpx.AsyncClient) -> GraphQLView:
    app = client._transport.app  # type: ignore[attr-defined]  # httpx.ASGITransport's
    [route] = [r for r in app.routes if getattr(r, "path", None) == "/graphql" and hasattr(r, "methods")]
    view = route.endpoint
    assert isinstance(view, GraphQLView)
    return view


def kept(pair: Pair) -> PlannedRequests:
    planned = view_of(pair.plan).planned_requests
    assert planned is not None
    return planned


async def test_kept_queries_answer_as_the_normal_path(seeded) -> None:
    pair, known = seeded
    planned = kept(pair)
    before = planned.answered
    differences = []
    for index, query, variables, role in requests(known, 31, DOCUMENTS):
        first, normal = await pair.both(query, variables, role, f"kept-{index}")
        again, _ = await pair.both(query, variables, role, f"kept-{index}")
        if not first == again == normal:
            differences.append(f"{role} {query} {variables}\n first: {first}\n again: {again}\n normal: {normal}")
    assert differences == [], "\n\n".join(differences[:5])
    # Meaningful only if most second requests really were answered straight from HTTP.
    assert planned.answered - before > DOCUMENTS // 3, planned.answered - before


async def test_real_clients_documents_are_answered_straight_from_http(seeded, monkeypatch, request) -> None:
    """The console's review page and a Relay refetch, sent as clients send them (new variables each
    time): from the second request on, one plan run each and nothing else."""
    pair, known = seeded
    planned, counted = kept(pair), Counted(monkeypatch)
    projected = Projected(monkeypatch)
    review = _console_document("COMMENTS")
    asked = [(review, {"first": 20}), (review, {"first": 5, "after": known.cursors[1]}),
             (review, {"first": 20, "filter": {"matched": True}}),
             *((REFETCH, {"id": id}) for id in [*known.comment_ids[:3], *known.group_ids[:2]])]
    before = planned.answered
    for index, (query, variables) in enumerate(asked):
        plan, normal = await pair.both(query, variables, "viewer", f"client-{index}")
        assert plan == normal and plan[0] == 200 and b'"errors"' not in plan[2], variables
    # Each document's first request took the normal path; every later one came straight here.
    assert planned.answered - before == len(asked) - 2
    assert (counted.answered, counted.handed_over) == (len(asked), 0)
    assert projected.reads == (3 if request.node.callspec.params["seeded"] == "postgres" else 0)


async def test_what_is_wrong_with_a_kept_documents_request_is_said_as_the_normal_path_says_it(seeded) -> None:
    pair, _ = seeded
    planned = kept(pair)
    query = "query Wrong($f: Int!, $flt: CommentFilter) { comments(first: $f, filter: $flt) { totalCount } }"
    plan, normal = await pair.both(query, {"f": 3}, "viewer", "wrong-0")
    assert plan == normal and plan[0] == 200
    before = planned.answered
    for index, (variables, role) in enumerate([
        ({"f": "three"}, "viewer"),  # does not coerce: BAD_USER_INPUT from the normal path
        ({}, "viewer"),  # a required variable missing
        ({"f": 3, "flt": {"nope": True}}, "viewer"),  # an input field that does not exist
        ({"f": 3}, None),  # no token: 401
        ({"f": 0}, "viewer"),  # an argument the use case refuses (a field error)
    ]):
        plan, normal = await pair.both(query, variables, role, f"wrong-{index + 1}")
        assert plan == normal, (variables, plan, normal)
        assert plan[0] in (200, 400, 401) and b'"errors"' in plan[2], plan
    headers = {"Authorization": "Bearer vkcp_not-a-token", "X-Request-ID": "wrong-token"}
    answers = [await client.post("/graphql", json={"query": query, "variables": {"f": 3}}, headers=headers)
               for client in (pair.plan, pair.normal)]
    assert [a.status_code for a in answers] == [401, 401] and answers[0].content == answers[1].content
    # None was answered here: the normal path said each (``f: 0`` too: the plan hands a use case's
    # refusal back to the normal executor, which reports it).
    assert planned.answered == before


async def test_an_outage_meets_the_database_once_and_answers_as_the_normal_path(seeded, monkeypatch) -> None:
    pair, known = seeded
    planned = kept(pair)
    query = "query Outage($id: ID!) { node(id: $id) { id ... on Group { name } } }"
    plan, normal = await pair.both(query, {"id": known.group_ids[0]}, "viewer", "outage-0")
    assert plan == normal and plan[0] == 200
    reads = 0

    async def away(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        raise Unavailable("The database is unavailable; try again shortly", dependency="database")

    for name in ("projected_by_id", "groups_by_ids"):
        monkeypatch.setattr(SqlReadModel, name, away)
    before = planned.answered
    plan, normal = await pair.both(query, {"id": known.group_ids[1]}, "viewer", "outage-1")
    assert plan == normal, (plan, normal)
    assert plan[0] == 503 and b'"SERVICE_UNAVAILABLE"' in plan[2]
    assert planned.answered == before + 1
    assert reads == 2  # once by each app: nothing read again after the outage answered


async def test_a_kept_document_past_the_deadline_is_a_504(seeded, monkeypatch) -> None:
    pair, known = seeded
    view, planned = view_of(pair.plan), kept(pair)
    query = "query Slow($id: ID!) { node(id: $id) { id ... on Group { screenName } } }"
    plan, normal = await pair.both(query, {"id": known.group_ids[0]}, "viewer", "slow-0")
    assert plan == normal and plan[0] == 200

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(30)

    for name in ("projected_by_id", "groups_by_ids"):
        monkeypatch.setattr(SqlReadModel, name, slow)
    monkeypatch.setattr(view, "timeout", 0.2)
    before = planned.answered
    response = await pair.plan.post("/graphql", json={"query": query, "variables": {"id": known.group_ids[1]}},
                                    headers={"Authorization": f"Bearer {pair.tokens['viewer']}"})
    assert response.status_code == 504 and response.json()["errors"][0]["extensions"]["code"] == "TIMEOUT", response.text
    assert planned.answered == before  # stopped, not answered


async def test_a_kept_document_the_plan_hands_back_is_read_once_by_the_normal_executor(
    seeded, monkeypatch, request
) -> None:
    if request.node.callspec.params["seeded"] != "postgres":
        pytest.skip("only PostgreSQL writes pages (the write that fails here)")
    pair, _ = seeded
    planned = kept(pair)
    query = "query HandedBack($f: Int) { comments(first: $f) { totalCount edges { node { id text likes } } } }"
    plan, normal = await pair.both(query, {"f": 4}, "viewer", "back-0")
    assert plan == normal and plan[0] == 200
    projected, counted = Projected(monkeypatch, fail=True), Counted(monkeypatch)
    before = planned.answered
    plan, normal = await pair.both(query, {"f": 5}, "viewer", "back-1")
    assert plan == normal and plan[0] == 200 and b'"errors"' not in plan[2]
    assert planned.answered == before
    # The plan ran once (and handed back); the normal executor then answered without it.
    assert projected.reads == 1 and (counted.answered, counted.handed_over) == (0, 1)


async def test_a_kept_documents_requests_are_logged_and_counted_by_operation(seeded) -> None:
    pair, _ = seeded
    query = "query CountedOp($f: Int) { groups(first: $f) { edges { node { id } } } }"
    headers = {"Authorization": f"Bearer {pair.tokens['viewer']}"}
    for f in (1, 2, 3):
        response = await pair.plan.post("/graphql", json={"query": query, "variables": {"f": f}}, headers=headers)
        assert response.status_code == 200 and "X-Request-ID" in response.headers
    metrics = (await pair.plan.get("/metrics")).text
    counted = [line for line in metrics.splitlines() if 'operation="CountedOp"' in line]
    assert counted == ['vkcp_graphql_requests_total{operation="CountedOp",outcome="ok",type="query"} 3.0'], counted


async def test_a_very_long_document_is_answered_but_not_kept(seeded) -> None:
    """The texts are the keys: one past ``MAX_KEPT_QUERY`` (a long comment, say) takes the normal
    path every time, so a client cannot make the process hold hundreds of megabytes."""
    pair, _ = seeded
    planned = kept(pair)
    query = "# " + "x" * MAX_KEPT_QUERY + "\nquery Long { groups(first: 1) { edges { node { id } } } }"
    before = planned.answered
    for index in range(2):
        plan, normal = await pair.both(query, {}, "viewer", f"long-{index}")
        assert plan == normal and plan[0] == 200 and b'"errors"' not in plan[2]
    assert planned.answered == before
