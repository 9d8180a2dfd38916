"""The rule language through GraphQL: `CommentFilter.query` in comments, counts, exports and the
live feed, `validateQuery`, highlights, and saved rules (`rules`, `createRule`, `updateRule`,
`removeRule`) usable by name."""

from __future__ import annotations

import asyncio
import json

import httpx
from websockets.asyncio.client import connect

from domain.rules import compile_static
from infrastructure.morphology import get_lemmatizer
from tests.e2e.graphql_support import Api, api, client, container, server, tokens, wait_for_task  # noqa: F401
from tests.e2e.test_graphql_keywords import ANALYZE, EXPORT, add_keywords, parse, run

VALIDATE = "query($q: String!) { validateQuery(query: $q) { valid errors { message line column expected } } }"
CREATE = """mutation($i: RuleInput!) { createRule(input: $i) {
  rule { id name query category reference matchesCount } errors { code field message } } }"""
UPDATE = """mutation($id: ID!, $i: UpdateRuleInput!) { updateRule(id: $id, input: $i) {
  rule { name query category } errors { code field message } } }"""
REMOVE = "mutation($id: ID!) { removeRule(id: $id) { removedRuleId errors { code field message } } }"
PAGE = """query($f: CommentFilter, $q: String!, $after: String) { comments(filter: $f, first: 100, after: $after) {
  totalCount edges { node { id text highlights(query: $q) { matchedText start end term } } }
  pageInfo { hasNextPage endCursor } } }"""


async def every_comment(api: Api, flt: dict | None, query: str = "x") -> list[dict]:
    nodes, after = [], None
    while True:
        page = (await api(PAGE, {"f": flt, "q": query, "after": after}, role="viewer"))["comments"]
        nodes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_validate_query_says_where_and_what_was_expected(api: Api) -> None:
    ok = await api(VALIDATE, {"q": '(кошка OR кот) AND корм NOT продам "ремонт дороги"~3'}, role="viewer")
    assert ok["validateQuery"] == {"valid": True, "errors": []}
    bad = (await api(VALIDATE, {"q": "кошка AND\n(корм OR"}, role="viewer"))["validateQuery"]
    assert bad["valid"] is False
    [error] = bad["errors"]
    assert (error["line"], error["column"]) == (2, 9) and "a word" in error["expected"]
    unknown = (await api(VALIDATE, {"q": "кошка kw:собака"}, role="viewer"))["validateQuery"]
    assert unknown["errors"][0]["column"] == 7 and "No keyword" in unknown["errors"][0]["message"]

    # The same mistake in a filter: BAD_USER_INPUT with the position in the extensions.
    response = await api.post(PAGE, {"f": {"query": "кошка )"}, "q": "x"}, role="viewer")
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["extensions"]["field"] == "query"
    assert error["extensions"]["query"] == {"line": 1, "column": 7, "expected": ["the end of the query"]}


async def test_query_filter_matches_as_the_domain_decides_everywhere(api: Api) -> None:
    await parse(api, "koshki_spb")
    query = "(кошка OR кот) -продам"
    texts = [n["text"] for n in await every_comment(api, None)]
    matcher = compile_static(query, get_lemmatizer())
    expected = sorted(t for t in texts if matcher.matches(t))
    assert 0 < len(expected) < len(texts)

    nodes = await every_comment(api, {"query": query}, query)
    assert sorted(n["text"] for n in nodes) == expected
    count = await api("query($f: CommentFilter) { comments(filter: $f) { totalCount } }", {"f": {"query": query}})
    assert count["comments"]["totalCount"] == len(expected)
    for node in nodes:  # the words that made it match, where they stand
        assert node["highlights"], node
        for h in node["highlights"]:
            assert node["text"][h["start"] : h["end"]] == h["matchedText"] and h["term"] in ("кошка", "кот")

    task = await run(api, EXPORT, "startExport", {"filter": {"query": query}, "format": "JSONL"})
    assert task["result"]["rows"] == len(expected)
    refused = (await api(EXPORT, {"input": {"filter": {"query": "кошка rule:нет"}, "format": "CSV"}}))["startExport"]
    assert refused["task"] is None and refused["errors"] == [{"code": "BAD_USER_INPUT", "field": "query"}]


async def test_saved_rules_are_usable_by_name(api: Api) -> None:
    await parse(api, "koshki_spb")
    [cat] = [r["keyword"] for r in await add_keywords(api, {"word": "кошка"})]
    made = (await api(CREATE, {"i": {"name": "Кошки", "query": "kw:кошка OR кот", "category": "pets"}}))["createRule"]
    assert made["errors"] == [] and made["rule"]["reference"] == 'rule:"Кошки"'
    rule = made["rule"]
    plain = await api("query($f: CommentFilter) { comments(filter: $f) { totalCount } }", {"f": {"query": "кошка OR кот"}})
    assert rule["matchesCount"] == plain["comments"]["totalCount"] > 0

    # By name in a filter, and in another rule.
    named = await api("query($f: CommentFilter) { comments(filter: $f) { totalCount } }", {"f": {"query": "rule:кошки"}})
    assert named["comments"]["totalCount"] == rule["matchesCount"]
    other = (await api(CREATE, {"i": {"name": "Кошки без продаж", "query": "rule:Кошки -продам"}}))["createRule"]
    assert other["errors"] == [] and other["rule"]["matchesCount"] <= rule["matchesCount"]
    top = (await api("{ stats { topRules { ruleId name comments } } }", role="viewer"))["stats"]["topRules"]
    assert top == [
        {"ruleId": rule["id"], "name": "Кошки", "comments": rule["matchesCount"]},
        {"ruleId": other["rule"]["id"], "name": "Кошки без продаж", "comments": other["rule"]["matchesCount"]},
    ]

    # Mistakes come back in the payload.
    duplicate = (await api(CREATE, {"i": {"name": " КОШКИ ", "query": "кот"}}))["createRule"]
    assert duplicate["rule"] is None and duplicate["errors"][0]["code"] == "CONFLICT"
    broken = (await api(CREATE, {"i": {"name": "x", "query": "кот AND"}}))["createRule"]
    assert broken["errors"][0]["code"] == "BAD_USER_INPUT" and "line 1, column 8" in broken["errors"][0]["message"]
    loop = (await api(UPDATE, {"id": rule["id"], "i": {"query": 'rule:"Кошки без продаж"'}}))["updateRule"]
    assert loop["errors"][0]["code"] == "BAD_USER_INPUT", loop
    renamed = (await api(UPDATE, {"id": rule["id"], "i": {"name": "Коты"}}))["updateRule"]
    assert renamed["errors"][0]["code"] == "CONFLICT"  # "Кошки без продаж" names it
    busy = (await api(REMOVE, {"id": rule["id"]}))["removeRule"]
    assert busy["errors"][0]["code"] == "CONFLICT"

    changed = (await api(UPDATE, {"id": rule["id"], "i": {"query": "kw:кошка", "category": None}}))["updateRule"]
    assert changed == {"rule": {"name": "Кошки", "query": "kw:кошка", "category": None}, "errors": []}
    listed = await api("{ rules(first: 10) { totalCount edges { node { name query } } } }", role="viewer")
    assert listed["rules"]["totalCount"] == 2
    assert [e["node"]["name"] for e in listed["rules"]["edges"]] == ["Кошки", "Кошки без продаж"]
    one = await api("query($id: ID!) { rule(id: $id) { name } node(id: $id) { id } }", {"id": rule["id"]}, role="viewer")
    assert one["rule"] == {"name": "Кошки"} and one["node"] == {"id": rule["id"]}

    viewer = await api.post(CREATE, {"i": {"name": "y", "query": "кот"}}, role="viewer")
    assert viewer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await api(REMOVE, {"id": other["rule"]["id"]}))["removeRule"]["errors"] == []
    assert (await api(REMOVE, {"id": rule["id"]}))["removeRule"]["errors"] == []
    assert (await api(REMOVE, {"id": rule["id"]}))["removeRule"]["errors"][0]["code"] == "NOT_FOUND"
    assert cat["id"]


async def test_comment_matched_filters_by_query(server: str, tokens: dict) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server}", timeout=30) as http:
        api = Api(http, tokens)
        await parse(api, "koshki_spb")
        await parse(api, "velo_spb")
        await add_keywords(api, {"word": "велосипед"}, {"word": "кошка"})
        query = "кошка -продам"
        async with connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens['viewer']}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            subscription = "subscription($f: CommentFilter) { commentMatched(filter: $f) { id text } }"
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": subscription, "variables": {"f": {"query": query}}}}))
            await asyncio.sleep(0.2)  # let the subscription register
            task = await run(api, ANALYZE, "startAnalyze", None)
            await wait_for_task(api, task["id"])
            # Only comments with a keyword match are published; of those, the query's.
            published = await every_comment(api, {"matched": True, "query": query})
            assert published
            seen: set[str] = set()
            matcher = compile_static(query, get_lemmatizer())
            while len(seen) < len(published):
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert message["type"] == "next", message
                comment = message["payload"]["data"]["commentMatched"]
                assert matcher.matches(comment["text"]), comment
                seen.add(comment["id"])
            assert seen == {n["id"] for n in published}
            await ws.send(json.dumps({"id": "1", "type": "complete"}))


INDEXED = """query($id: ID!) { rule(id: $id) { indexedAt matchesCount } }"""
INDEX_TASKS = "{ tasks(filter: {kinds: [INDEX_RULES]}, first: 50) { edges { node { id state result } } } }"
UPDATE_KEYWORD = """mutation($id: ID!, $i: UpdateKeywordInput!) { updateKeyword(id: $id, input: $i) {
  keyword { word morphology } errors { code field } } }"""


async def _index_built(api: Api, rule_id: str) -> dict:
    """Waits for every INDEX_RULES task; the rule as it is then."""
    tasks = (await api(INDEX_TASKS, role="viewer"))["tasks"]["edges"]
    assert tasks, "a change that invalidates a rule starts an INDEX_RULES task"
    for edge in tasks:
        assert (await wait_for_task(api, edge["node"]["id"], timeout=60))["state"] == "SUCCEEDED"
    return (await api(INDEXED, {"id": rule_id}, role="viewer"))["rule"]


async def test_saved_rules_are_counted_and_paged_off_their_stored_matches(api: Api) -> None:
    """A rule's matches are stored by an INDEX_RULES task: `indexedAt` says so, and its count,
    `topRules` and its filter's pages equal the query's own answers before, while and after the
    keyword it names changes (the rule is rebuilt: `indexedAt` null meanwhile)."""
    await parse(api, "koshki_spb")
    [cat] = [r["keyword"] for r in await add_keywords(api, {"word": "кошка"})]
    made = (await api(CREATE, {"i": {"name": "Кошки", "query": "kw:кошка OR кот"}}))["createRule"]
    assert made["errors"] == []
    rule = made["rule"]
    count = "query($f: CommentFilter) { comments(filter: $f) { totalCount } }"

    async def agree(query: str) -> int:
        adhoc = (await api(count, {"f": {"query": query}}, role="viewer"))["comments"]["totalCount"]
        named = (await api(count, {"f": {"query": 'rule:"Кошки"'}}, role="viewer"))["comments"]["totalCount"]
        current = (await api(INDEXED, {"id": rule["id"]}, role="viewer"))["rule"]
        assert named == adhoc == current["matchesCount"]
        top = (await api("{ stats { topRules { name comments } } }", role="viewer"))["stats"]["topRules"]
        assert top == [{"name": "Кошки", "comments": adhoc}]
        by_name = [n["text"] for n in await every_comment(api, {"query": 'rule:"Кошки"'})]
        assert by_name == [n["text"] for n in await every_comment(api, {"query": query})]
        return adhoc

    built = await _index_built(api, rule["id"])
    assert built["indexedAt"] is not None
    before = await agree("kw:кошка OR кот")
    assert before > 0
    # A full analysis writes every comment's rule matches again, in its own transactions: the same.
    await run(api, ANALYZE, "startAnalyze", {})
    assert await agree("kw:кошка OR кот") == before
    assert (await api(INDEXED, {"id": rule["id"]}, role="viewer"))["rule"]["indexedAt"] == built["indexedAt"]

    # Its keyword matches this word form only now: counted by the query until rebuilt.
    changed = (await api(UPDATE_KEYWORD, {"id": cat["id"], "i": {"morphology": False}}))["updateKeyword"]
    assert changed["errors"] == []
    rebuilt = await _index_built(api, rule["id"])
    assert rebuilt["indexedAt"] is not None
    assert await agree("exact:кошка OR кот") < before
