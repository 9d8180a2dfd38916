"""Every input a client can send gets a clear, coded answer or a correct one — never HTTP 5xx or
INTERNAL_SERVER_ERROR — and the server keeps answering afterwards (issue #10).

One table of inputs, run against both databases: they fail differently (PostgreSQL refuses a
NUL in text and more than 32,767 bind parameters, SQLite an integer past 64 bits). Each case
says what the user sees: the HTTP status and the ``errors[].extensions.code`` of a query, the
``UserError`` of a mutation's payload, or — for inputs that deserve an answer — that answer,
given as the answer to an equivalent plain request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.auth import create_api_token
from graphql_api.app import create_app
from tests.conftest import postgres_database
from tests.e2e.graphql_support import make_settings, start_container

GRAPHQL_RESPONSE = "application/graphql-response+json"


def cursor(*values: Any) -> str:
    """A cursor as the API makes them (base64 of a JSON array), holding whatever we like."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Case:
    """One input and what the user must see.

    Exactly one expectation: ``code`` (with ``payload``: where the ``errors`` holding it are,
    e.g. ``addKeywords.results.0``; without: the request's ``errors[].extensions.code``), or
    ``same_as`` (a request whose answer this one must equal), or ``data`` (the exact answer).
    """

    id: str
    query: str = ""
    variables: dict[str, Any] | None = None
    body: bytes | None = None  # sent as is, as application/json, instead of query and variables
    params: dict[str, str] | None = None  # sent as a GET query string instead
    status: int = 200
    code: str | None = None
    payload: str | None = None
    field: str | None = None
    same_as: tuple[str, dict[str, Any]] | None = None
    data: dict[str, Any] | None = None


COMMENTS = "query($f: CommentFilter, $a: String) { comments(filter: $f, after: $a, first: 5) { totalCount edges { node { id } } } }"
ADD_GROUP = "mutation($r: String!) { addGroup(ref: $r) { group { id } errors { code field } } }"
PAGE = "query($a: String, $o: CommentOrder) { comments(after: $a, orderBy: $o, first: 5) { edges { node { id } } } }"
LIKES = {"field": "LIKES", "direction": "DESC"}
TASKS = "query($a: String) { tasks(after: $a) { edges { node { id } } } }"
COUNT = "query($f: CommentFilter) { comments(filter: $f) { totalCount } }"
UPDATE_SINCE = "mutation($s: DateTime) { updateGroup(id: \"1\", input: {since: $s}) { group { since } errors { code field } } }"
STATS = "query($s: Date, $u: Date) { stats(since: $s, until: $u) { since until } }"
KEYWORDS = "query($f: KeywordFilter) { keywords(filter: $f) { totalCount } }"
ADD_KEYWORD = "mutation($k: KeywordInput!) { addKeywords(input: [$k]) { results { errors { code field } } errors { code field } } }"
UPDATE_KEYWORD = "mutation($k: UpdateKeywordInput!) { updateKeyword(id: \"1\", input: $k) { errors { code field } } }"
EXPORT = "mutation($f: CommentFilter) { startExport(input: {filter: $f}) { task { id } errors { code field } } }"
TASK_COUNT = "query($f: TaskFilter) { tasks(filter: $f) { totalCount } }"
MANY = 40_000
SET_STATE = "mutation($ids: [ID!]!) { setCommentState(ids: $ids, viewed: true) { comments { id } errors { code field } } }"

CASES = [
    # --- ids: ASCII digits only, what we handed out ------------------------------------------
    Case("task id superscript-2 is no task", "query { task(id: \"²\") { id } }", data={"task": None}),
    Case("comment id arabic-indic-1 is not comment 1", "query { comment(id: \"١\") { id } }", data={"comment": None}),
    Case("addGroup circled-3", ADD_GROUP, {"r": "③"}, code="INVALID_REFERENCE", payload="addGroup", field="ref"),
    Case("addGroup '--1'", ADD_GROUP, {"r": "--1"}, code="INVALID_REFERENCE", payload="addGroup", field="ref"),
    Case("addGroup club circled-1", ADD_GROUP, {"r": "club①"}, code="INVALID_REFERENCE", payload="addGroup", field="ref"),
    Case("addGroup 40 digits", ADD_GROUP, {"r": "9" * 40}, code="INVALID_REFERENCE", payload="addGroup", field="ref"),
    Case("setCommentState circled-1", SET_STATE, {"ids": ["①"]}, code="NOT_FOUND", payload="setCommentState", field="ids"),
    Case("setCommentState 40 digits", SET_STATE, {"ids": ["9" * 40]}, code="NOT_FOUND", payload="setCommentState", field="ids"),
    Case(
        "updateGroup circled-3",
        'mutation { updateGroup(id: "③", input: {active: true}) { errors { code field } } }',
        code="NOT_FOUND", payload="updateGroup", field="id",
    ),
    Case(
        "filter groupIds circled-1 superscript-2 and 1",
        COMMENTS, {"f": {"groupIds": ["①", "²", "1"]}},
        same_as=(COMMENTS, {"f": {"groupIds": ["1"]}}),
    ),
    Case("filter groupIds circled-1 only", "{ comments(filter: {groupIds: [\"①\"]}) { totalCount } }",
         data={"comments": {"totalCount": 0}}),
    # --- cursors: only what encode_cursor can have made ---------------------------------------
    Case("comments cursor id 10^30", PAGE, {"a": cursor("2024-01-01T00:00:00+00:00", 10**30)}, code="BAD_USER_INPUT", field="after"),
    Case("comments cursor year 1 at +14:00", PAGE, {"a": cursor("0001-01-01T00:00:00+14:00", 1)}, code="BAD_USER_INPUT", field="after"),
    Case("comments cursor 9999 at -12:00", PAGE, {"a": cursor("9999-12-31T23:59:59-12:00", 1)}, code="BAD_USER_INPUT", field="after"),
    Case("comments cursor naive time", PAGE, {"a": cursor("2024-01-01T00:00:00", 1)}, code="BAD_USER_INPUT", field="after"),
    Case("likes cursor 10^30", PAGE, {"a": cursor(10**30, 1), "o": LIKES}, code="BAD_USER_INPUT", field="after"),
    Case("likes cursor 2^31 (past INTEGER)", PAGE, {"a": cursor(2**31, 1), "o": LIKES}, code="BAD_USER_INPUT", field="after"),
    Case("likes cursor true", PAGE, {"a": cursor(True, 1), "o": LIKES}, code="BAD_USER_INPUT", field="after"),
    Case("tasks cursor 10^30", TASKS, {"a": cursor(10**30, 10**30)}, code="BAD_USER_INPUT", field="after"),
    Case("tasks cursor -2^63-1", TASKS, {"a": cursor(-(2**63) - 1, 1)}, code="BAD_USER_INPUT", field="after"),
    Case("cursor of 5000 nested arrays", TASKS, {"a": base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()}, code="BAD_USER_INPUT", field="after"),
    Case("cursor of a 4300-digit number", TASKS, {"a": base64.urlsafe_b64encode(b"[" + b"9" * 4400 + b",1]").decode()},
         code="BAD_USER_INPUT", field="after"),
    # The ends of time and of BIGINT are fine cursors: the page after them is what it is.
    Case("comments cursor year 1 UTC", PAGE, {"a": cursor("0001-01-01T00:00:00+00:00", 1)}, data={"comments": {"edges": []}}),
    Case("comments cursor 9999 UTC", PAGE, {"a": cursor("9999-12-31T23:59:59+00:00", 2**63 - 1)}, same_as=(PAGE, {})),
    Case("tasks cursor 2^63-1", TASKS, {"a": cursor(2**63 - 1, 2**63 - 1)}, same_as=(TASKS, {})),
    Case("likes cursor 2^31-1", PAGE, {"a": cursor(2**31 - 1, 2**63 - 1), "o": LIKES}, same_as=(PAGE, {"o": LIKES})),
    # --- times: one DateTime parser for every input: an offset, and within UTC's years 1-9999 -
    Case("filter since year 1 at +14:00", COUNT, {"f": {"since": "0001-01-01T00:00:00+14:00"}}, status=400, code="BAD_USER_INPUT"),
    Case("filter until 9999 at -12:00", COUNT, {"f": {"until": "9999-12-31T23:59:59-12:00"}}, status=400, code="BAD_USER_INPUT"),
    Case("filter since in the document", '{ comments(filter: {since: "0001-01-01T00:00:00+14:00"}) { totalCount } }',
         status=400, code="BAD_USER_INPUT"),
    Case("filter since without an offset", COUNT, {"f": {"since": "2024-01-01T00:00:00"}}, status=400, code="BAD_USER_INPUT"),
    Case("filter since a date alone", COUNT, {"f": {"since": "2024-01-01"}}, status=400, code="BAD_USER_INPUT"),
    Case("filter since a number", COUNT, {"f": {"since": 1700000000}}, status=400, code="BAD_USER_INPUT"),
    Case("updateGroup since year 1 at +14:00", UPDATE_SINCE, {"s": "0001-01-01T00:00:00+14:00"}, status=400, code="BAD_USER_INPUT"),
    Case("updateGroup since without an offset", UPDATE_SINCE, {"s": "0001-01-01T00:00:00"}, status=400, code="BAD_USER_INPUT"),
    Case("startParse since year 1 at +14:00",
         'mutation { startParse(input: {groupIds: ["1"], since: "0001-01-01T00:00:00+14:00"}) { errors { code } } }',
         status=400, code="BAD_USER_INPUT"),
    Case("filter since year 1 UTC", COUNT, {"f": {"since": "0001-01-01T00:00:00Z"}}, same_as=(COUNT, {})),
    Case("filter until 9999 UTC", COUNT, {"f": {"until": "9999-12-31T23:59:59.999999+00:00"}}, same_as=(COUNT, {})),
    Case("filter since with an offset", COUNT, {"f": {"since": "2026-10-01T03:00:00+03:00"}},
         same_as=(COUNT, {"f": {"since": "2026-10-01T00:00:00Z"}})),
    Case("updateGroup since year 1 UTC", UPDATE_SINCE, {"s": "0001-01-01T00:00:00Z"},
         data={"updateGroup": {"group": {"since": "0001-01-01T00:00:00+00:00"}, "errors": []}}),
    Case("updateGroup since +03:00 arrives in UTC", UPDATE_SINCE, {"s": "2024-05-01T03:00:00+03:00"},
         data={"updateGroup": {"group": {"since": "2024-05-01T00:00:00+00:00"}, "errors": []}}),
    # Days (stats): the window's SQL range ends the day after `until`.
    Case("stats until 9999-12-31", STATS, {"u": "9999-12-31"}, code="BAD_USER_INPUT", field="until"),
    Case("stats since 9999-12-31", STATS, {"s": "9999-12-31"}, code="BAD_USER_INPUT", field="since"),
    Case("stats until 0001-01-05", STATS, {"u": "0001-01-05"}, data={"stats": {"since": "0001-01-01", "until": "0001-01-05"}}),
    Case("stats since 9999-12-20", STATS, {"s": "9999-12-20"}, data={"stats": {"since": "9999-12-20", "until": "9999-12-30"}}),
    # --- text the databases cannot hold: refused, naming the field, for storing and searching -
    Case("filter text with NUL", COUNT, {"f": {"text": "кот\u0000"}}, code="BAD_USER_INPUT", field="text"),
    Case("keywords text with NUL", KEYWORDS, {"f": {"text": "a\u0000"}}, code="BAD_USER_INPUT", field="text"),
    Case("keywords category with NUL", KEYWORDS, {"f": {"category": "\u0000"}}, code="BAD_USER_INPUT", field="category"),
    Case("addKeywords word with NUL", ADD_KEYWORD, {"k": {"word": "ко\u0000шка"}},
         code="BAD_USER_INPUT", payload="addKeywords.results.0", field="word"),
    Case("addKeywords category with NUL", ADD_KEYWORD, {"k": {"word": "собака", "category": "a\u0000"}},
         code="BAD_USER_INPUT", payload="addKeywords.results.0", field="category"),
    Case("updateKeyword word with NUL", UPDATE_KEYWORD, {"k": {"word": "ко\u0000т"}},
         code="BAD_USER_INPUT", payload="updateKeyword", field="word"),
    Case("updateKeyword category with NUL", UPDATE_KEYWORD, {"k": {"category": "\u0000"}},
         code="BAD_USER_INPUT", payload="updateKeyword", field="category"),
    Case("startExport filter text with NUL", EXPORT, {"f": {"text": "\u0000"}},
         code="BAD_USER_INPUT", payload="startExport", field="text"),
    Case("filter text of 501 characters", COUNT, {"f": {"text": "к" * 501}}, code="BAD_USER_INPUT", field="text"),
    Case("filter text of 500 characters", COUNT, {"f": {"text": "к" * 500}}, data={"comments": {"totalCount": 0}}),
    Case("filter text of spaces", COUNT, {"f": {"text": "  \t "}}, same_as=(COUNT, {})),
    # --- lists: at most 1000 distinct ids in a filter; repeats count once -----------------------
    Case("40,000 postIds", COUNT, {"f": {"postIds": [str(i) for i in range(1, MANY + 1)]}}, code="BAD_USER_INPUT", field="postIds"),
    Case("40,000 groupIds", COUNT, {"f": {"groupIds": [str(i) for i in range(1, MANY + 1)]}}, code="BAD_USER_INPUT", field="groupIds"),
    Case("40,000 keywordIds", COUNT, {"f": {"keywordIds": [str(i) for i in range(1, MANY + 1)]}},
         code="BAD_USER_INPUT", field="keywordIds"),
    Case("40,000 authorIds", COUNT, {"f": {"authorIds": list(range(1, MANY + 1))}}, code="BAD_USER_INPUT", field="authorIds"),
    Case("40,000 task groupIds", TASK_COUNT, {"f": {"groupIds": [str(i) for i in range(1, MANY + 1)]}},
         code="BAD_USER_INPUT", field="groupIds"),
    Case("startExport with 40,000 postIds", EXPORT, {"f": {"postIds": [str(i) for i in range(1, MANY + 1)]}},
         code="BAD_USER_INPUT", payload="startExport", field="postIds"),
    Case("40,000 copies of one postId", COUNT, {"f": {"postIds": ["1"] * MANY}}, same_as=(COUNT, {"f": {"postIds": ["1"]}})),
    Case("40,000 copies of one authorId", COUNT, {"f": {"authorIds": [1] * MANY}}, same_as=(COUNT, {"f": {"authorIds": [1]}})),
    Case("40,000 task kinds", TASK_COUNT, {"f": {"kinds": ["PARSE"] * MANY}}, same_as=(TASK_COUNT, {"f": {"kinds": ["PARSE"]}})),
    Case("1000 postIds", COUNT, {"f": {"postIds": [str(i) for i in range(1, 1001)]}}, same_as=(COUNT, {})),
    # Mutations taking id lists answer by their own limits, or at the first unknown id.
    Case("setCommentState 40,000 ids", SET_STATE, {"ids": [str(i) for i in range(1, MANY + 1)]},
         code="BAD_USER_INPUT", payload="setCommentState", field="ids"),
    Case("startParse 40,000 groupIds", "mutation($g: [ID!]!) { startParse(input: {groupIds: $g}) { errors { code field } } }",
         {"g": [str(i) for i in range(1, MANY + 1)]}, code="NOT_FOUND", payload="startParse", field="groupIds"),
    Case("startAnalyze 40,000 keywordIds", "mutation($k: [ID!]) { startAnalyze(input: {keywordIds: $k}) { errors { code field } } }",
         {"k": [str(i) for i in range(1, MANY + 1)]}, code="NOT_FOUND", payload="startAnalyze", field="keywordIds"),
    Case("addGroups 40,000 refs", "mutation($r: [String!]!) { addGroups(refs: $r) { errors { code field } } }",
         {"r": ["koshki_spb"] * MANY}, code="BAD_USER_INPUT", payload="addGroups", field="refs"),
    # --- request bodies: a JSON object in UTF-8, or a coded 400 ---------------------------------
    *(
        Case(f"body {name}", body=body, status=400, code="BAD_REQUEST")
        for name, body in [
            ("invalid UTF-8 in the query", b'{"query": "{ __typename \xff }"}'),
            ("invalid UTF-8 in a variable", b'{"query": "query($t: String) { keywords(filter: {text: $t}) { totalCount } }", '
                                            b'"variables": {"t": "\xc3\x28"}}'),
            # JSON over a network is UTF-8, without a byte order mark (RFC 8259).
            ("UTF-16", '{"query": "{ __typename }"}'.encode("utf-16")),
            ("with a UTF-8 byte order mark", b'\xef\xbb\xbf{"query": "{ __typename }"}'),
            ("null", b"null"),
            ("a JSON string", b'"{ __typename }"'),
            ("a number", b"12"),
            ("true", b"true"),
            ("empty", b""),
            ("of spaces", b"  \n "),
            ("an array of numbers", b"[1, 2]"),
            ("an array of null", b"[null]"),
            ("an array of strings", b'["{ __typename }"]'),
            ("an array of operations", b'[{"query": "{ __typename }"}]'),
            ("truncated", b'{"query": "{ __typename }"'),
            ("with NaN", b'{"query": "query($n: Int) { __typename }", "variables": {"n": NaN}}'),
            ("nested 100,000 deep", b'{"query": "{ __typename }", "variables": {"v": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"),
            ("query a number", b'{"query": 5}'),
            ("query null", b'{"query": null}'),
            ("variables an array", b'{"query": "{ __typename }", "variables": [1]}'),
            ("variables a string", b'{"query": "{ __typename }", "variables": "{}"}'),
            ("extensions a string", b'{"query": "{ __typename }", "extensions": "x"}'),
            ("operationName an object", b'{"query": "{ __typename }", "operationName": {}}'),
        ]
    ),
    Case("lone surrogate in variables", COUNT, body=b'{"query": "' + COUNT.encode() + b'", "variables": {"f": {"text": "\\ud800"}}}',
         status=400, code="BAD_REQUEST"),
    Case("lone low surrogate in the query", body=b'{"query": "{ keywords(filter: {text: \\"\\udc00\\"}) { totalCount } }"}',
         status=400, code="BAD_REQUEST"),
    Case("GET variables with a lone surrogate", params={"query": COUNT, "variables": '{"f": {"text": "\\ud800"}}'},
         status=400, code="BAD_REQUEST"),
    Case("GET variables not JSON", params={"query": COUNT, "variables": "{f: 1}"}, status=400, code="BAD_REQUEST"),
    Case("GET variables an array", params={"query": COUNT, "variables": "[1]"}, status=400, code="BAD_REQUEST"),
    Case("a surrogate pair is one character", COUNT, body=b'{"query": "' + COUNT.encode() + b'", "variables": {"f": {"text": "\\ud83d\\ude00"}}}',
         same_as=(COUNT, {"f": {"text": "\U0001f600"}})),
    Case("a body with spaces around the object", body=b' \r\n\t{"query": "{ keywords { totalCount } }"}\n', data={"keywords": {"totalCount": 1}}),
]


# --- the stack under test -------------------------------------------------------------------


class Stack:
    """The API over one database, with a parsed community and a keyword stored."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE}
        self.counts: dict[str, Any] = {}

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=self.headers)

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def still_answers(self) -> None:
        """The server keeps working, database included, and nothing stored has changed."""
        assert (await self.http.get("/healthz")).status_code == 200
        assert await self.data(HEALTH) == self.counts


HEALTH = "{ groups { totalCount } comments { totalCount } keywords { totalCount } tasks { totalCount } }"


async def _seed(stack: Stack) -> None:
    await stack.data('mutation { addGroup(ref: "koshki_spb") { group { id } } }')
    task = (await stack.data('mutation { startParse(input: {groupIds: ["1"]}) { tasks { id } } }'))["startParse"]["tasks"][0]
    for _ in range(600):
        state = (await stack.data("query($id: ID!) { task(id: $id) { state } }", {"id": task["id"]}))["task"]["state"]
        if state not in ("QUEUED", "RUNNING"):
            break
        await asyncio.sleep(0.05)
    assert state == "SUCCEEDED"
    await stack.data('mutation { addKeywords(input: [{word: "кот"}]) { keywords { id } } }')
    stack.counts = await stack.data(HEALTH)
    assert stack.counts["comments"]["totalCount"] > 0


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp(request.param)
    async with _database(request.param, data_dir) as url:
        container = await start_container(make_settings(data_dir, database_url=url))
        try:
            token, _ = await create_api_token(container.adapters.uow_factory, "catalog", "operator")
            transport = httpx.ASGITransport(app=create_app(container))
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
                stack = Stack(http, token)
                await _seed(stack)
                yield stack
        finally:
            await container.aclose()


def _database(kind: str, data_dir: Path) -> contextlib.AbstractAsyncContextManager[str]:
    if kind == "postgres":
        return postgres_database()
    return contextlib.nullcontext(f"sqlite+aiosqlite:///{data_dir / 'vkcp.sqlite3'}")


# --- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_every_input_gets_a_coded_answer(stack: Stack, case: Case) -> None:
    if case.body is not None:
        headers = {**stack.headers, "Content-Type": "application/json"}
        response = await stack.http.post("/graphql", content=case.body, headers=headers)
    elif case.params is not None:
        response = await stack.http.get("/graphql", params=case.params, headers=stack.headers)
    else:
        response = await stack.post(case.query, case.variables)
    assert response.status_code == case.status, response.text
    body = response.json()
    assert "INTERNAL_SERVER_ERROR" not in response.text, body
    if case.code is not None and case.payload is not None:
        assert "errors" not in body, body
        errors = _at(body["data"], case.payload)["errors"]
        assert [(e["code"], e["field"]) for e in errors] == [(case.code, case.field)], errors
    elif case.code is not None:
        codes = [e.get("extensions", {}).get("code") for e in body["errors"]]
        assert codes == [case.code], body["errors"]
        if case.field is not None:
            assert body["errors"][0]["extensions"]["field"] == case.field
    elif case.same_as is not None:
        assert body == {"data": await stack.data(*case.same_as)}
    else:
        assert body == {"data": case.data}
    await stack.still_answers()


def _at(data: Any, path: str) -> Any:
    """``data`` at a dotted path of keys and list indexes ("addKeywords.results.0")."""
    for step in path.split("."):
        data = data[int(step)] if step.isdigit() else data[step]
    return data


async def test_ten_analyze_requests_at_once_all_succeed(stack: Stack) -> None:
    start = "mutation { startAnalyze { task { id } errors { code } } }"
    started = await asyncio.gather(*(stack.data(start) for _ in range(10)))
    assert all(s["startAnalyze"]["errors"] == [] for s in started)
    states = []
    for s in started:
        task_id = s["startAnalyze"]["task"]["id"]
        for _ in range(1200):
            task = (await stack.data("query($id: ID!) { task(id: $id) { state error } }", {"id": task_id}))["task"]
            if task["state"] not in ("QUEUED", "RUNNING"):
                break
            await asyncio.sleep(0.05)
        states.append((task["state"], task["error"]))
    assert states == [("SUCCEEDED", None)] * 10
    stack.counts["tasks"]["totalCount"] += 10
    await stack.still_answers()
