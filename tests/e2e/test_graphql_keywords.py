"""Keywords, analyze, export and the live matched-comments feed, through GraphQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.e2e.graphql_support import Api, api, client, container, server, tokens, wait_for_task  # noqa: F401

ADD = """
mutation($input: [KeywordInput!]!) {
  addKeywords(input: $input) {
    results { word keyword { id word category active caseSensitive wholeWord morphology createdAt } errors { code field message } }
    keywords { id word }
    errors { code }
  }
}"""
ANALYZE = """
mutation($input: StartAnalyzeInput) {
  startAnalyze(input: $input) { task { id kind state params } errors { code field } }
}"""
EXPORT = """
mutation($input: StartExportInput!) {
  startExport(input: $input) { task { id kind state params } errors { code field } }
}"""
COUNT = "query($f: CommentFilter) { comments(filter: $f) { totalCount } }"


async def add_keywords(api: Api, *items: dict) -> list[dict]:
    payload = (await api(ADD, {"input": list(items)}))["addKeywords"]
    assert payload["errors"] == []
    return payload["results"]


async def parse(api: Api, ref: str) -> str:
    group = (await api('mutation($r: String!) { addGroup(ref: $r) { group { id } } }', {"r": ref}))["addGroup"]
    group_id = group["group"]["id"]
    started = await api(
        "mutation($g: ID!) { startParse(input: {groupIds: [$g]}) { tasks { id } } }", {"g": group_id}
    )
    task = await wait_for_task(api, started["startParse"]["tasks"][0]["id"])
    assert task["state"] == "SUCCEEDED", task
    return group_id


async def run(api: Api, mutation: str, field: str, input: dict | None) -> dict:
    payload = (await api(mutation, {"input": input}))[field]
    assert payload["errors"] == [], payload
    task = await wait_for_task(api, payload["task"]["id"], timeout=60)
    assert task["state"] == "SUCCEEDED", task
    return task


async def total(api: Api, flt: dict | None = None) -> int:
    return (await api(COUNT, {"f": flt}, role="viewer"))["comments"]["totalCount"]


async def all_comments(api: Api, flt: dict) -> list[dict]:
    query = """query($f: CommentFilter, $after: String) { comments(filter: $f, first: 100, after: $after) {
                 edges { node { text matchesCount matches { matchedText keyword { id } } } }
                 pageInfo { hasNextPage endCursor } } }"""
    nodes, after = [], None
    while True:
        page = (await api(query, {"f": flt, "after": after}, role="viewer"))["comments"]
        nodes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_add_keywords_reports_each_item(api: Api) -> None:
    results = await add_keywords(
        api,
        {"word": "Кошка", "category": "pets"},
        {"word": "кошка"},
        {"word": ""},
        {"word": "z" * 201},
        {"word": "COVID-19", "caseSensitive": True},
    )
    cat, dup, empty, long, covid = results
    assert cat["errors"] == [] and cat["keyword"]["morphology"] is True and cat["keyword"]["createdAt"]
    assert dup["errors"][0]["code"] == "DUPLICATE" and dup["keyword"]["id"] == cat["keyword"]["id"]
    assert empty == {"word": "", "keyword": None, "errors": [{"code": "BAD_USER_INPUT", "field": "word", "message": "Keyword is empty"}]}
    assert long["errors"][0]["code"] == "BAD_USER_INPUT"
    assert covid["keyword"]["morphology"] is False and covid["keyword"]["caseSensitive"] is True

    listed = await api(
        """query($f: KeywordFilter) { keywords(filter: $f, first: 10) {
             totalCount edges { node { word category matchesCount } } pageInfo { hasNextPage } } }""",
        {"f": {"category": "pets"}},
        role="viewer",
    )
    assert listed["keywords"]["totalCount"] == 1
    assert listed["keywords"]["edges"][0]["node"] == {"word": "Кошка", "category": "pets", "matchesCount": 0}
    by_text = await api('{ keywords(filter: {text: "covid"}) { totalCount } }', role="viewer")
    assert by_text["keywords"]["totalCount"] == 1
    one = await api("query($id: ID!) { keyword(id: $id) { word } }", {"id": cat["keyword"]["id"]}, role="viewer")
    assert one["keyword"] == {"word": "Кошка"}
    assert (await api('{ keyword(id: "999") { word } }', role="viewer"))["keyword"] is None


async def test_update_and_remove_keyword_errors(api: Api) -> None:
    cat, dog = (r["keyword"] for r in await add_keywords(api, {"word": "кошка"}, {"word": "собака"}))
    update = "mutation($id: ID!, $i: UpdateKeywordInput!) { updateKeyword(id: $id, input: $i) { keyword { word active category } errors { code field } } }"
    changed = (await api(update, {"id": cat["id"], "i": {"active": False, "category": "pets"}}))["updateKeyword"]
    assert changed == {"keyword": {"word": "кошка", "active": False, "category": "pets"}, "errors": []}
    clash = (await api(update, {"id": cat["id"], "i": {"word": "Собака"}}))["updateKeyword"]
    assert clash == {"keyword": None, "errors": [{"code": "DUPLICATE", "field": "word"}]}
    missing = (await api(update, {"id": "12345", "i": {"active": True}}))["updateKeyword"]
    assert missing["errors"][0]["code"] == "NOT_FOUND"

    remove = "mutation($id: ID!) { removeKeyword(id: $id) { removedKeywordId errors { code } } }"
    assert (await api(remove, {"id": dog["id"]}))["removeKeyword"] == {"removedKeywordId": dog["id"], "errors": []}
    assert (await api(remove, {"id": dog["id"]}))["removeKeyword"]["errors"][0]["code"] == "NOT_FOUND"

    viewer = await api.post(remove, {"id": cat["id"]}, role="viewer")
    assert viewer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_analyze_matches_word_forms_and_remove_fixes_counts(api: Api) -> None:
    group_id = await parse(api, "koshki_spb")
    assert await total(api, {"matched": True}) == 0  # no keywords yet

    [cat] = [r["keyword"] for r in await add_keywords(api, {"word": "кошка"})]
    task = await run(api, ANALYZE, "startAnalyze", {"groupIds": [group_id], "keywordIds": [cat["id"]]})
    assert task["result"]["comments"] == task["progress"]["total"] == await total(api)

    nodes = await all_comments(api, {"keywordIds": [cat["id"]]})
    assert len(nodes) == await total(api, {"keywordIds": [cat["id"]]}) > 0
    forms = {m["matchedText"].lower() for n in nodes for m in n["matches"]}
    assert len(forms) >= 2 and all(f.startswith(("кошк", "кошек")) for f in forms), forms
    assert all("окошк" not in f for f in forms)
    stored = sum(n["matchesCount"] for n in nodes)
    count = await api("query($id: ID!) { keyword(id: $id) { matchesCount } }", {"id": cat["id"]}, role="viewer")
    assert count["keyword"]["matchesCount"] == stored

    removed = await api("mutation($id: ID!) { removeKeyword(id: $id) { errors { code } } }", {"id": cat["id"]})
    assert removed["removeKeyword"]["errors"] == []
    assert await total(api, {"matched": True}) == 0  # matchesCount went back to 0 everywhere


async def test_start_analyze_refuses_unknown_references(api: Api) -> None:
    for input, field in (({"keywordIds": ["777"]}, "keywordIds"), ({"groupIds": ["777"]}, "groupIds")):
        payload = (await api(ANALYZE, {"input": input}))["startAnalyze"]
        assert payload == {"task": None, "errors": [{"code": "NOT_FOUND", "field": field}]}
    everything = (await api(ANALYZE, {"input": None}))["startAnalyze"]
    assert everything["task"]["kind"] == "ANALYZE" and everything["task"]["params"] == {"groupIds": None, "keywordIds": None}
    bad = (await api(ANALYZE, {"input": {"priority": 0}}))["startAnalyze"]
    assert bad["errors"][0]["field"] == "priority"


@pytest.mark.parametrize("fmt", ["CSV", "XLSX", "JSONL"])
async def test_export_downloads_the_same_rows_as_the_comments_query(api: Api, client: httpx.AsyncClient, fmt: str) -> None:
    group_id = await parse(api, "velo_spb")
    await add_keywords(api, {"word": "велосипед"})
    await run(api, ANALYZE, "startAnalyze", None)
    flt = {"groupIds": [group_id], "matched": True}
    expected = await total(api, flt)
    assert expected > 0

    task = await run(api, EXPORT, "startExport", {"filter": flt, "format": fmt})
    result = task["result"]
    assert result["rows"] == expected and result["format"] == fmt and result["url"].startswith("/exports/")

    assert (await client.get(result["url"])).status_code == 401
    bad = await client.get(result["url"], headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    viewer = {"Authorization": f"Bearer {api.tokens['viewer']}"}
    assert (await client.get("/exports/comments-20260101-000000-AAAAAAAAAAAAAAAAAAAAAA.csv", headers=viewer)).status_code == 404
    assert (await client.get("/exports/..%2Fvkcp.sqlite3", headers=viewer)).status_code == 404

    download = await client.get(result["url"], headers=viewer)
    assert download.status_code == 200
    body = download.content
    if fmt == "CSV":
        assert body.startswith(b"\xef\xbb\xbf") and download.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert len(rows) == expected and all("велосипед" in r["keywords"] for r in rows)
    elif fmt == "JSONL":
        rows = [json.loads(line) for line in body.decode("utf-8").splitlines()]
        assert len(rows) == expected and all(r["keywords"] == ["велосипед"] for r in rows)
    else:
        import zipfile

        with zipfile.ZipFile(io.BytesIO(body)) as book:
            sheet = book.read("xl/worksheets/sheet1.xml").decode("utf-8")
        assert sheet.count("<row ") == expected + 1 and "велосипед" in sheet.lower()


async def test_start_export_errors(api: Api) -> None:
    bad = (await api(EXPORT, {"input": {"format": "CSV", "priority": 42}}))["startExport"]
    assert bad["task"] is None and bad["errors"][0]["field"] == "priority"
    response = await api.post(EXPORT, {"input": {"format": "PDF"}})
    assert response.status_code == 200 and response.json()["errors"]  # not a value of the enum


# --- the live feed --------------------------------------------------------------------------




async def test_comment_matched_streams_newly_matched_comments_of_the_filter(server: str, tokens: dict) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server}", timeout=30) as http:
        api = Api(http, tokens)
        cats = await parse(api, "koshki_spb")
        await parse(api, "velo_spb")
        [bike, cat] = [r["keyword"] for r in await add_keywords(api, {"word": "велосипед"}, {"word": "кошка"})]

        async with connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens['viewer']}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            query = """subscription($f: CommentFilter) { commentMatched(filter: $f) {
                         id group { id } matches { keyword { id } } } }"""
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": query, "variables": {"f": {"keywordIds": [cat["id"]]}}}}))
            await asyncio.sleep(0.2)  # let the subscription register
            await run(api, ANALYZE, "startAnalyze", None)
            expected = await total(api, {"keywordIds": [cat["id"]]})
            seen: set[str] = set()
            while len(seen) < expected:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert message["type"] == "next", message
                comment = message["payload"]["data"]["commentMatched"]
                assert comment["group"]["id"] == cats
                assert cat["id"] in {m["keyword"]["id"] for m in comment["matches"]}
                seen.add(comment["id"])
            assert bike["id"]  # bike matches were published too, and filtered out
            await ws.send(json.dumps({"id": "1", "type": "complete"}))


async def test_stats_see_keyword_changes_at_once(api: Api) -> None:
    """stats are cached; changing keywords must not leave them stale."""
    stats = "{ stats { totals { keywords } } }"
    assert (await api(stats))["stats"]["totals"]["keywords"] == 0
    [result] = await add_keywords(api, {"word": "кошка"})
    assert (await api(stats))["stats"]["totals"]["keywords"] == 1
    removed = await api("mutation($id: ID!) { removeKeyword(id: $id) { errors { code } } }", {"id": result["keyword"]["id"]})
    assert removed["removeKeyword"]["errors"] == []
    assert (await api(stats))["stats"]["totals"]["keywords"] == 0
