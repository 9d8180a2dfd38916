"""The compiled read plan answers byte for byte what Strawberry's executor answers (issue #12).

Random documents over the read schema (``read_documents.py``) go to two apps over one
database, one with the plan and one without, with the same token and request id; the
responses (status, media type, body bytes, so key order too) must be identical. On SQLite and
PostgreSQL. ``bench/plan_diff.py`` runs the same comparison over tens of thousands of documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError

from domain import declaration
from domain.auth import create_api_token
from domain.declaration import Spelling
from domain.models import Comment
from graphql_api import plan as plan_module
from graphql_api.app import create_app
from graphql_api.declared import camel
from graphql_api.ids import NodeType, find_id
from graphql_api.schema import schema
from infrastructure.db.queries import SqlReadModel
from tests.conftest import postgres_database
from tests.console_documents import console_documents
from tests.e2e.graphql_support import make_settings, start_container
from tests.e2e.read_documents import DocumentGenerator, Known

DOCUMENTS = 300
ROLES = ("viewer", "operator", "admin", "viewer", None)  # None: no token (401 from both)


class Pair:
    """Two clients of the same container: with the read plan and without it."""

    def __init__(self, plan: httpx.AsyncClient, normal: httpx.AsyncClient, tokens: dict[str, str], uow_factory) -> None:
        self.plan, self.normal, self.tokens = plan, normal, tokens
        self.uow_factory = uow_factory

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.normal.post(
            "/graphql", json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.tokens['admin']}"},
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def both(self, query: str, variables: dict[str, Any], role: str | None, request_id: str) -> tuple:
        headers = {"X-Request-ID": request_id}
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        body = {"query": query, "variables": variables}
        answers = []
        for client in (self.plan, self.normal):
            response = await client.post("/graphql", json=body, headers=headers)
            answers.append((response.status_code, response.headers.get("content-type"), response.content))
        return answers[0], answers[1]


async def _finish(pair: Pair, task_id: str) -> None:
    for _ in range(600):
        state = (await pair.data("query($id: ID!) { task(id: $id) { state } }", {"id": task_id}))["task"]["state"]
        if state not in ("QUEUED", "RUNNING"):
            break
        await asyncio.sleep(0.05)
    assert state == "SUCCEEDED"


async def seed(pair: Pair) -> Known:
    """Two parsed communities (comments with replies), one not parsed, keywords and matches,
    some comments viewed or archived; returns ids and cursors to build documents from."""
    added = await pair.data(
        'mutation { addGroups(refs: ["koshki_spb", "zarechye_news", "babushka_recipes"]) { groups { id } } }'
    )
    group_ids = [g["id"] for g in added["addGroups"]["groups"]]
    parse = await pair.data(
        "mutation($g: [ID!]!) { startParse(input: {groupIds: $g}) { tasks { id } } }", {"g": group_ids[:2]}
    )
    for task in parse["startParse"]["tasks"]:
        await _finish(pair, task["id"])
    words = [{"word": w} for w in ("кот", "кошка", "корм", "ветеринар", "котёнок", "новости", "рецепт")]
    await pair.data("mutation($k: [KeywordInput!]!) { addKeywords(input: $k) { keywords { id } } }", {"k": words})
    await _finish(pair, (await pair.data("mutation { startAnalyze { task { id } } }"))["startAnalyze"]["task"]["id"])
    page = await pair.data("{ comments(first: 100) { edges { cursor node { id authorId post { id } } } } }")
    edges = page["comments"]["edges"]
    comment_ids = [e["node"]["id"] for e in edges]
    await pair.data("mutation($ids: [ID!]!) { setCommentState(ids: $ids, viewed: true) { errors { code } } }",
                    {"ids": comment_ids[::3]})
    await pair.data("mutation($ids: [ID!]!) { setCommentState(ids: $ids, archived: true) { errors { code } } }",
                    {"ids": comment_ids[::5]})
    keywords = await pair.data("{ keywords(first: 100) { edges { cursor node { id word } } } }")
    await _edit_and_delete(pair)
    return Known(
        comment_ids=comment_ids,
        group_ids=group_ids,
        keyword_ids=[e["node"]["id"] for e in keywords["keywords"]["edges"]],
        post_ids=list(dict.fromkeys(e["node"]["post"]["id"] for e in edges)),
        author_ids=list(dict.fromkeys(e["node"]["authorId"] for e in edges)),
        cursors=[e["cursor"] for e in edges[::7]],
        id_cursors=[e["cursor"] for e in keywords["keywords"]["edges"][:3]],
        words=[w["word"] for w in words],
    )


async def _edit_and_delete(pair: Pair) -> None:
    """What re-reads of the posts store after comments were edited (some twice) and deleted on
    VK: ``editedAt``, ``versions`` and ``deletedAt`` to answer."""
    page = await pair.data("""{ comments(first: 60) { edges { node {
      vkId ownerId authorId text publishedAt likes group { id } post { vkId } parent { vkId } thread { vkId } } } } }""")
    nodes = [e["node"] for e in page["comments"]["edges"]]
    for rewrite in (1, 2):
        async with pair.uow_factory() as uow:
            for index, n in enumerate(nodes):
                edited, deleted = index % 4 == 1 and (rewrite == 1 or index % 8 == 1), rewrite == 2 and index % 6 == 2
                if not (edited or deleted):
                    continue
                comment = Comment(
                    owner_id=n["ownerId"], vk_id=n["vkId"], post_vk_id=n["post"]["vkId"],
                    from_id=0 if deleted else n["authorId"], text="" if deleted else f"{n['text']} (правка {rewrite})",
                    published_at=datetime.fromisoformat(n["publishedAt"]), likes=n["likes"], deleted=deleted,
                    thread_vk_id=n["thread"] and n["thread"]["vkId"], parent_vk_id=n["parent"] and n["parent"]["vkId"],
                )
                await uow.comments.upsert_many(find_id(n["group"]["id"], NodeType.GROUP), [comment])
            await uow.commit()


def _database(kind: str, data_dir: Path) -> contextlib.AbstractAsyncContextManager[str]:
    if kind == "postgres":
        return postgres_database()
    return contextlib.nullcontext(f"sqlite+aiosqlite:///{data_dir / 'vkcp.sqlite3'}")


@contextlib.asynccontextmanager
async def pair_over(database_url: str, data_dir: Path) -> AsyncIterator[Pair]:
    container = await start_container(make_settings(data_dir, database_url=database_url))
    try:
        tokens = {}
        for role in ("viewer", "operator", "admin"):
            tokens[role], _ = await create_api_token(container.adapters.uow_factory, f"plan {role}", role)
        with_plan = httpx.ASGITransport(app=create_app(container, read_plan=True))
        without = httpx.ASGITransport(app=create_app(container, read_plan=False))
        async with (
            httpx.AsyncClient(transport=with_plan, base_url="http://api.test") as plan_client,
            httpx.AsyncClient(transport=without, base_url="http://api.test") as normal_client,
        ):
            yield Pair(plan_client, normal_client, tokens, container.adapters.uow_factory)
    finally:
        await container.aclose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple]:
    data_dir = tmp_path_factory.mktemp(request.param)
    async with _database(request.param, data_dir) as url, pair_over(url, data_dir) as pair:
        yield pair, await seed(pair)


class Counted:
    """How often the plan answered, and how often it handed over to the normal executor."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answered = self.handed_over = 0
        run = plan_module.Plan.run

        async def counted(plan: Any, *args: Any) -> Any:
            data = await run(plan, *args)
            if data is None:
                self.handed_over += 1
            else:
                self.answered += 1
            return data

        monkeypatch.setattr(plan_module.Plan, "run", counted)


def requests(known: Known, seed_value: int, count: int):
    """(index, document, variables, role) of ``count`` generated requests; one in five repeats the
    document before it with other @skip/@include values (a plan cached under other values)."""
    generator = DocumentGenerator(schema._schema, known, seed_value)
    roles = random.Random(seed_value)
    query = ""
    variables: dict[str, Any] = {}
    for index in range(count):
        if index and roles.random() < 0.2:
            variables = generator.again(variables)
        else:
            query, variables = generator.document()
        yield index, query, variables, roles.choice(ROLES)


async def compare(pair: Pair, known: Known, seed_value: int, count: int) -> list[str]:
    differences = []
    for index, query, variables, role in requests(known, seed_value, count):
        plan, normal = await pair.both(query, variables, role, f"diff-{index}")
        if plan != normal:
            differences.append(f"{role} {query} {variables}\n plan:   {plan}\n normal: {normal}")
    return differences


async def test_the_plan_answers_random_documents_as_the_normal_executor(seeded, monkeypatch) -> None:
    pair, known = seeded
    counted = Counted(monkeypatch)
    differences = await compare(pair, known, 12, DOCUMENTS)
    assert differences == [], "\n\n".join(differences[:5])
    # The comparison means something only if the plan really answered most of them.
    assert counted.answered > DOCUMENTS // 3, (counted.answered, counted.handed_over)


async def test_the_benchmarks_page_is_answered_by_the_plan(seeded, monkeypatch) -> None:
    pair, _ = seeded
    counted = Counted(monkeypatch)
    query = """query Page($first: Int!, $after: String) { comments(first: $first, after: $after) {
      edges { cursor node { id vkId text publishedAt likes deleted deletedAt editedAt viewed archived
        versions { text seenAt } group { id name screenName } post { id vkId text publishedAt } author { vkId name screenName }
        matches { keyword { id word } matchedText start end snippet } parent { id } thread { id } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount } }"""
    plan, normal = await pair.both(query, {"first": 100}, "viewer", "page")
    assert plan == normal
    assert plan[0] == 200 and b'"matches":[{"keyword":{"id"' in plan[2] and b'"parent":{"id"' in plan[2]
    assert (counted.answered, counted.handed_over) == (1, 0)


async def test_what_the_plan_cannot_answer_exactly_the_normal_executor_answers(seeded, monkeypatch) -> None:
    pair, _ = seeded
    counted = Counted(monkeypatch)
    for query in (
        "{ comments(first: 0) { edges { cursor } } }",  # a bad argument: the error comes from the normal executor
        '{ comments(after: "bm90IGEgY3Vyc29y") { edges { cursor } } }',
    ):
        plan, normal = await pair.both(query, {}, "viewer", "errors")
        assert plan == normal and b'"BAD_USER_INPUT"' in plan[2]
    assert (counted.answered, counted.handed_over) == (0, 2)


class Projected:
    """How often a page's nodes were written by PostgreSQL (``comments_page_projected``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> None:
        self.reads = 0
        projected = SqlReadModel.comments_page_projected

        async def counted(read_model: Any, *args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            if fail:  # as a vkId past 32 bits fails the statement (tests/integration/test_projection.py)
                raise DBAPIError("SELECT ...", None, Exception("integer out of range"))
            return await projected(read_model, *args, **kwargs)

        monkeypatch.setattr(SqlReadModel, "comments_page_projected", counted)


def _projected(view: declaration.View, depth: int) -> list[str]:
    """Every field of ``view`` a projected read writes (``domain/declaration.py``), with an alias
    and ``__typename``; relations two levels down (a reply's parent and thread, then theirs)."""
    asked = ["__typename"]
    for f in view.fields:
        if f.spelling is Spelling.GLOBAL_ID:
            asked.append("id")
        elif f.exposed and f.name not in view.unprojected:
            asked.append(camel(f.name))
    asked.append(f"again: {asked[-1]}")
    for r in view.relations:
        if r.view and r.name not in view.unprojected and depth < 2:
            asked.append(f"{camel(r.name)} {{ {' '.join(_projected(declaration.VIEWS[r.view], depth + 1))} }}")
    return asked


# Every field a projected read writes, with aliases, __typename and a fragment.
PROJECTED_PAGE = f"""query($f: Int, $l: Int, $a: String, $b: String, $o: CommentOrder, $flt: CommentFilter) {{
  comments(first: $f, last: $l, after: $a, before: $b, orderBy: $o, filter: $flt) {{
    __typename totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    edges {{ __typename cursor n: node {{ ...C text }} }} }} }}
fragment C on Comment {{ {" ".join(_projected(declaration.COMMENT, 0))} }}"""


def _console_document(name: str) -> str:
    return console_documents()[name]


async def test_pages_written_by_postgresql_answer_as_the_normal_executor(seeded, monkeypatch, request) -> None:
    pair, known = seeded
    projected = Projected(monkeypatch)
    arguments = [
        {"f": 100}, {"f": 7, "a": known.cursors[1]}, {"l": 5}, {"l": 9, "b": known.cursors[2]},
        {"f": 3, "a": known.cursors[0], "b": known.cursors[3]},
        {"f": 20, "o": {"field": "LIKES", "direction": "ASC"}}, {"l": 20, "o": {"field": "MATCHES_COUNT"}},
        {"f": 50, "flt": {"keywordIds": known.keyword_ids[:1]}}, {"l": 50, "flt": {"keywordIds": known.keyword_ids[:1]}},
        {"f": 50, "flt": {"keywordIds": known.keyword_ids[:3], "viewed": False}},
        {"f": 30, "flt": {"matched": True, "archived": False, "groupIds": known.group_ids[:1]}},
        {"f": 30, "flt": {"text": "кош", "authorIds": known.author_ids[:5]}},
        {"f": 10, "flt": {"postIds": known.post_ids[:2]}}, {"f": 10, "flt": {"groupIds": known.group_ids[2:]}},
        {"f": 40, "flt": {"edited": True}}, {"l": 10, "flt": {"deleted": True, "edited": False}},
        {"f": 20, "flt": {"deleted": False, "keywordIds": known.keyword_ids[:1]}},
    ]
    bodies = []
    for index, variables in enumerate(arguments):
        plan, normal = await pair.both(PROJECTED_PAGE, variables, "viewer", f"projected-{index}")
        assert plan == normal, variables
        assert plan[0] == 200 and b'"errors"' not in plan[2], plan
        bodies.append(plan[2])
    # PostgreSQL wrote every page; SQLite's are completed in Python, and answer the same.
    assert projected.reads == (len(arguments) if request.node.callspec.params["seeded"] == "postgres" else 0)
    # The pages held something to write: comments, replies' authors, matches with keywords.
    assert sum(b'"edges":[]' not in body for body in bodies) >= len(arguments) - 2
    assert all(b'"keyword":{"__typename":"Keyword","id"' in body for body in bodies[7:10])
    # Comments seen edited (some twice), with their earlier texts oldest first, and deleted ones.
    assert b'"versions":[{"__typename":"CommentVersion","text":' in bodies[-3]
    assert '(правка 1)","seenAt"'.encode() in bodies[-3]  # the text a second edit replaced
    assert b'"deletedAt":"20' in bodies[-2] and b'"editedAt":null' in bodies[-2]


async def test_a_page_postgresql_cannot_write_is_answered_by_the_normal_executor(seeded, monkeypatch, request) -> None:
    pair, _ = seeded
    if request.node.callspec.params["seeded"] != "postgres":
        pytest.skip("only PostgreSQL writes pages")
    projected, counted = Projected(monkeypatch, fail=True), Counted(monkeypatch)
    plan, normal = await pair.both(PROJECTED_PAGE, {"f": 10}, "viewer", "projected-fails")
    assert plan == normal and plan[0] == 200
    assert projected.reads == 1 and (counted.answered, counted.handed_over) == (0, 1)


async def test_the_consoles_review_page_is_written_by_postgresql(seeded, monkeypatch, request) -> None:
    """The console's review query (url, author { url }, parent { author }, matches, totalCount)
    answers as the normal executor, and on PostgreSQL from one projected page."""
    pair, known = seeded
    projected, counted = Projected(monkeypatch), Counted(monkeypatch)
    query = _console_document("COMMENTS")
    assert "parent { id text author { name } }" in query and "author { vkId name url }" in query
    bodies = []
    for index, variables in enumerate([
        {"first": 50}, {"first": 50, "after": known.cursors[1]}, {"first": 20, "filter": {"matched": True}},
        {"first": 20, "orderBy": {"field": "LIKES", "direction": "DESC"}, "filter": {"viewed": False}},
    ]):
        plan, normal = await pair.both(query, variables, "viewer", f"console-{index}")
        assert plan == normal and plan[0] == 200 and b'"errors"' not in plan[2], variables
        bodies.append(plan[2])
    assert (counted.answered, counted.handed_over) == (4, 0)
    assert projected.reads == (4 if request.node.callspec.params["seeded"] == "postgres" else 0)
    # Replies with their parent's author, and links, were written.
    assert any(b'"parent":{"id":' in body for body in bodies)
    assert all(b'"url":"https://vk.com/wall-' in body for body in bodies)


REFETCH = """query($id: ID!) { node(id: $id) { __typename id ...C ...G ... on Post { vkId url group { name } }
  ... on Keyword { word matchesCount } ... on Task { state } } }
fragment C on Comment { text url author { url } parent { id } matches { keyword { word } } }
fragment G on Group { name url }"""


async def test_relay_refetches_through_node_answer_as_the_normal_executor(seeded, monkeypatch, request) -> None:
    """``node(id:)`` (Relay's refetch) of each declared type, completed with its own type's
    selection (on PostgreSQL written whole by one statement, but a keyword's ``matchesCount``);
    what the plan does not read itself (a task, a row id's error) the normal executor answers."""
    pair, known = seeded
    counted = Counted(monkeypatch)
    written = []
    by_id = SqlReadModel.projected_by_id

    async def counted_by_id(read_model: Any, projection: Any, pk: int) -> Any:
        written.append(projection.view)
        return await by_id(read_model, projection, pk)

    monkeypatch.setattr(SqlReadModel, "projected_by_id", counted_by_id)
    ids = [*known.comment_ids[:5], *known.group_ids, *known.post_ids[:3], *known.keyword_ids[:3],
           "Q29tbWVudDo5OTk5OTk5", "bm90IGFuIGlk"]  # Comment:9999999 (none), not an id
    for index, id in enumerate(ids):
        plan, normal = await pair.both(REFETCH, {"id": id}, "viewer", f"node-{index}")
        assert plan == normal and plan[0] == 200, id
    assert (counted.answered, counted.handed_over) == (len(ids), 0)
    if request.node.callspec.params["seeded"] == "postgres":
        assert sorted(set(written)) == ["comment", "group", "post"] and len(written) == len(ids) - 3 - 1  # not keywords, nor "not an id"
    else:
        assert written == []
    tasks = await pair.data("{ tasks(first: 1) { edges { node { id } } } }")
    for id in (tasks["tasks"]["edges"][0]["node"]["id"], "1"):  # a task; a row id (an error)
        plan, normal = await pair.both(REFETCH, {"id": id}, "viewer", "node-other")
        assert plan == normal
    assert counted.handed_over == 2


async def test_a_roots_arguments_are_converted_once_per_distinct_values(seeded, monkeypatch, request) -> None:
    """The plan keeps a root's arguments converted by their values: the same values again (a
    client's next poll) are not converted again, other values are, and both answer as the
    normal executor does."""
    pair, known = seeded
    conversions = []
    convert = plan_module.python_arguments

    def counted(schema: Any, field: Any, values: dict[str, Any]) -> dict[str, Any]:
        conversions.append(values)
        return convert(schema, field, values)

    monkeypatch.setattr(plan_module, "python_arguments", counted)
    # A document of its own for each database: compiled plans (and what they keep) are the process's.
    query = f"""query Args_{request.node.callspec.params["seeded"]}($f: Int, $flt: CommentFilter) {{
      comments(first: $f, filter: $flt) {{ totalCount edges {{ node {{ id text }} }} }} }}"""
    asked = [
        {"f": 3, "flt": {"matched": True}}, {"f": 3, "flt": {"matched": False}}, {"f": 3, "flt": {"matched": True}},
        {"f": 4, "flt": {"matched": True}}, {"f": 3, "flt": {"matched": True, "groupIds": known.group_ids[:1]}},
        {"f": 3, "flt": {"matched": True}}, {"f": 3, "flt": {"groupIds": known.group_ids[:1], "matched": True}},
    ]
    for index, variables in enumerate(asked):
        plan, normal = await pair.both(query, variables, "viewer", f"args-{index}")
        assert plan == normal and plan[0] == 200 and b'"errors"' not in plan[2], variables
    assert len(conversions) == 4, conversions  # the last is the fifth's values, its fields in another order


GROUPS_PAGE = f"""query($f: Int, $l: Int, $a: String, $b: String, $active: Boolean) {{
  groups(first: $f, last: $l, after: $a, before: $b, active: $active) {{
    __typename totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    edges {{ __typename cursor node {{ ...G id __typename }} }} }} }}
fragment G on Group {{ {" ".join(_projected(declaration.GROUP, 0))} }}"""


async def test_groups_pages_written_by_postgresql_answer_as_the_normal_executor(seeded, monkeypatch, request) -> None:
    """A groups page whose nodes ask only declared fields (Relay's communities list) is written
    by PostgreSQL, as a comments page is; one that asks more is read as objects, unreported."""
    pair, _ = seeded
    counted, written = Counted(monkeypatch), []
    projected = SqlReadModel.groups_page_projected

    async def counted_written(read_model: Any, *args: Any, **kwargs: Any) -> Any:
        written.append(kwargs)
        return await projected(read_model, *args, **kwargs)

    monkeypatch.setattr(SqlReadModel, "groups_page_projected", counted_written)
    cursors = [e["cursor"] for e in (await pair.data("{ groups(first: 3) { edges { cursor } } }"))["groups"]["edges"]]
    arguments = [
        {}, {"f": 2}, {"l": 2}, {"f": 1, "a": cursors[0]}, {"l": 1, "b": cursors[2]}, {"f": 5, "a": cursors[0], "b": cursors[2]},
        {"active": True}, {"l": 10, "active": False}, {"f": 2, "a": cursors[2]},
    ]
    for index, variables in enumerate(arguments):
        plan, normal = await pair.both(GROUPS_PAGE, variables, "viewer", f"groups-{index}")
        assert plan == normal and plan[0] == 200 and b'"errors"' not in plan[2], variables
    assert b'"screenName":"' in plan[2] or variables["f"] == 2  # the last page may be empty
    more = "{ groups(last: 5) { edges { node { id name monitoring { __typename } } } } }"  # not declared: not written
    plan, normal = await pair.both(more, {}, "viewer", "groups-more")
    assert plan == normal and b'"monitoring"' in plan[2]
    assert (counted.answered, counted.handed_over) == (len(arguments) + 1, 0)
    assert len(written) == (len(arguments) if request.node.callspec.params["seeded"] == "postgres" else 0)
