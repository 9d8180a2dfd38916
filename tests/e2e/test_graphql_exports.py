"""Exports through GraphQL over HTTP: what a finished export says, and downloading its file
(with a token, or with the signed link a browser follows without one)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import openpyxl
import pytest
from websockets.asyncio.client import connect

from domain.auth import create_api_token
from graphql_api.app import create_app
from tests.e2e.graphql_support import (  # noqa: F401
    Api,
    api,
    client,
    container,
    make_settings,
    serve_app,
    start_container,
    tokens,
    wait_for_task,
)

EXPORT = """
mutation($input: StartExportInput!) {
  startExport(input: $input) { task { id } errors { code field message } }
}"""
TASK = """query($id: ID!) { task(id: $id) {
  state result progress { done total message }
  export { fileName format rows bytes url expiresAt fileExpiresAt }
} }"""


@contextlib.asynccontextmanager
async def api_with(data_dir: Path, **settings) -> AsyncIterator[Api]:
    """An API over ``data_dir`` with these settings, and a token per role."""
    c = await start_container(make_settings(data_dir, **settings))
    try:
        made = {}
        for role in ("viewer", "operator"):
            made[role], _ = await create_api_token(c.adapters.uow_factory, f"{role} {uuid.uuid4().hex[:6]}", role)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(c)), base_url="http://api.test") as http:
            yield Api(http, made)
    finally:
        await c.aclose()


async def parse(api: Api, ref: str) -> str:
    group = (await api('mutation($r: String!) { addGroup(ref: $r) { group { id } } }', {"r": ref}))["addGroup"]
    started = await api(
        "mutation($g: ID!) { startParse(input: {groupIds: [$g]}) { tasks { id } } }", {"g": group["group"]["id"]}
    )
    assert (await wait_for_task(api, started["startParse"]["tasks"][0]["id"]))["state"] == "SUCCEEDED"
    return group["group"]["id"]


async def export(api: Api, input: dict) -> dict:
    """Start an export, wait for it, and return the finished task."""
    payload = (await api(EXPORT, {"input": input}))["startExport"]
    assert payload["errors"] == [], payload
    await wait_for_task(api, payload["task"]["id"], timeout=60)
    task = (await api(TASK, {"id": payload["task"]["id"]}, role="viewer"))["task"]
    assert task["state"] == "SUCCEEDED", task
    return task


@pytest.fixture
async def group_id(api: Api) -> str:
    return await parse(api, "velo_spb")


async def test_a_finished_export_says_what_it_wrote(api: Api, client: httpx.AsyncClient, group_id: str) -> None:
    task = await export(api, {"format": "CSV", "filter": {"groupIds": [group_id]}})
    result = task["result"]
    assert re.fullmatch(r"comments-\d{4}-\d{2}-\d{2}-\d{4}\.csv", result["fileName"]), result
    message = re.fullmatch(r"([\d,]+) comments written to (\S+) \((\d+\.\d) KB\)", task["progress"]["message"])
    assert message, task["progress"]
    assert message[1] == f"{result['rows']:,}"
    assert message[2] == result["fileName"]
    assert float(message[3]) == round(result["bytes"] / 1000, 1)

    download = await client.get(result["url"], headers={"Authorization": f"Bearer {api.tokens['viewer']}"})
    assert download.status_code == 200
    assert len(download.content) == result["bytes"]
    assert download.headers["content-disposition"] == f'attachment; filename="{result["fileName"]}"'


async def test_an_export_with_options_downloads_and_parses_with_them(
    api: Api, client: httpx.AsyncClient, group_id: str
) -> None:
    task = await export(
        api,
        {"format": "CSV", "delimiter": "SEMICOLON", "timeZone": "Asia/Yekaterinburg", "filter": {"groupIds": [group_id]}},
    )
    download = await client.get(task["export"]["url"])  # the signed link alone
    assert download.status_code == 200, download.text
    assert download.content.startswith(b"\xef\xbb\xbf")
    header, *rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert header[:4] == ["commentId", "commentVkId", "commentUrl", "publishedAt"]
    assert len(rows) == task["export"]["rows"] > 0 and {len(r) for r in rows} == {len(header)}
    published = datetime.fromisoformat(rows[0][3])
    assert published.utcoffset() == timedelta(hours=5)  # Yekaterinburg, written with its offset
    assert task["result"]["timeZone"] == "Asia/Yekaterinburg" and task["result"]["delimiter"] == "SEMICOLON"

    comments = await api("query($g: [ID!]) { comments(filter: {groupIds: $g}) { totalCount } }", {"g": [group_id]}, role="viewer")
    assert comments["comments"]["totalCount"] == len(rows)  # the rows the comments query shows


async def test_an_xlsx_export_opens_with_its_zone_in_the_header(api: Api, client: httpx.AsyncClient, group_id: str) -> None:
    task = await export(api, {"format": "XLSX", "filter": {"groupIds": [group_id]}})
    download = await client.get(task["export"]["url"])
    assert download.status_code == 200, download.text
    sheet = openpyxl.load_workbook(io.BytesIO(download.content))["comments"]
    titles = [c.value for c in sheet[1]]
    assert "Published (Europe/Moscow)" in titles  # the server's default zone
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")
    assert sheet.max_row == task["export"]["rows"] + 1
    published = sheet.cell(2, titles.index("Published (Europe/Moscow)") + 1)
    assert isinstance(published.value, datetime)
    assert sheet.cell(2, titles.index("Comment link") + 1).value.startswith('=HYPERLINK("https://vk.com/wall-')


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"format": "CSV", "timeZone": "Mars/Olympus_Mons"}, "timeZone"),
        ({"format": "CSV", "timeZone": "../../etc/passwd"}, "timeZone"),
        ({"format": "XLSX", "delimiter": "SEMICOLON"}, "delimiter"),
    ],
)
async def test_unknown_zones_and_misplaced_delimiters_are_refused(api: Api, input: dict, field: str) -> None:
    payload = (await api(EXPORT, {"input": input}))["startExport"]
    assert payload["task"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("BAD_USER_INPUT", field)]


# --- signed links ---------------------------------------------------------------------------


def _relink(url: str, **query: str) -> str:
    """``url`` with some of its query parameters replaced."""
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()} | query
    return parts._replace(query=urlencode(params)).geturl()


async def test_a_browser_downloads_with_the_signed_link_alone(api: Api, client: httpx.AsyncClient, group_id: str) -> None:
    before = datetime.now(UTC)
    task = await export(api, {"format": "XLSX", "filter": {"groupIds": [group_id]}})
    result, typed = task["result"], task["export"]
    assert typed["fileName"] == result["fileName"] and typed["format"] == "XLSX"
    assert typed["rows"] == result["rows"] > 0 and typed["bytes"] == result["bytes"]

    url = urlsplit(typed["url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "api.test", result["url"])  # absolute, same file
    assert set(parse_qs(url.query)) == {"expires", "signature"}
    expires_at = datetime.fromisoformat(typed["expiresAt"])
    assert before + timedelta(minutes=14) < expires_at <= datetime.now(UTC) + timedelta(minutes=15, seconds=1)
    assert datetime.fromisoformat(typed["fileExpiresAt"]) > before + timedelta(hours=23)

    download = await client.get(typed["url"])  # no Authorization header, as from an <a href>
    assert download.status_code == 200, download.text
    assert download.headers["content-disposition"] == f'attachment; filename="{typed["fileName"]}"'
    assert len(download.content) == typed["bytes"] and download.content.startswith(b"PK")
    assert download.headers["x-request-id"]

    assert (await client.get(result["url"])).status_code == 401  # the plain path still needs a token


async def test_a_changed_or_old_link_is_refused_with_a_reason(tmp_path: Path) -> None:
    async with api_with(tmp_path, export_link_minutes=0.01) as api:  # links live 0.6 s
        task = await export(api, {"format": "CSV"})
        url = task["export"]["url"]
        query = parse_qs(urlsplit(url).query)
        other = _relink(url, signature=query["signature"][0][:-2] + "AA")
        later = _relink(url, expires=str(int(query["expires"][0]) + 3600))
        renamed = url.replace(task["result"]["file"], "comments-20260101-000000-AAAAAAAAAAAAAAAAAAAAAA.csv")
        for changed in (other, later, renamed, _relink(url, signature=""), _relink(url, expires="soon")):
            refused = await api.client.get(changed)
            assert refused.status_code == 403, changed
            error = refused.json()["errors"][0]
            assert error["extensions"]["code"] == "LINK_INVALID" and "fresh link" in error["message"]

        await asyncio.sleep(max(0.0, (datetime.fromisoformat(task["export"]["expiresAt"]) - datetime.now(UTC)).total_seconds()) + 1.1)
        expired = await api.client.get(url)
        assert expired.status_code == 403
        error = expired.json()["errors"][0]
        assert error["extensions"]["code"] == "LINK_EXPIRED"
        assert task["export"]["expiresAt"] in error["message"]
        # A token still opens it, whatever the link says; and reading the task again gives a fresh link.
        with_token = await api.client.get(url, headers={"Authorization": f"Bearer {api.tokens['viewer']}"})
        assert with_token.status_code == 200
        fresh = (await api(TASK, {"id": "1"}, role="viewer"))["task"]["export"]["url"]
        assert fresh != url and (await api.client.get(fresh)).status_code == 200


async def test_links_point_at_the_public_url_or_the_requests_own_host(tmp_path: Path, api: Api, group_id: str) -> None:
    task = await export(api, {"format": "JSONL", "filter": {"groupIds": [group_id]}})
    spoofed = await api.client.post(
        "/graphql",
        json={"query": TASK, "variables": {"id": "2"}},
        headers={"Authorization": f"Bearer {api.tokens['viewer']}", "X-Forwarded-Host": "evil.example",
                 "X-Forwarded-Proto": "https"},
    )
    assert spoofed.json()["data"]["task"]["export"]["url"].startswith("http://api.test/exports/")  # not trusted
    other_host = httpx.AsyncClient(transport=api.client._transport, base_url="http://10.0.0.5:8000")
    async with other_host:
        seen = (await Api(other_host, api.tokens)(TASK, {"id": "2"}, role="viewer"))["task"]["export"]["url"]
    assert seen.startswith("http://10.0.0.5:8000/exports/" + task["result"]["file"] + "?")

    async with api_with(tmp_path / "public", public_url="https://vkcp.example.com/tools/") as public:
        task = await export(public, {"format": "CSV"})
        assert task["export"]["url"].startswith(f"https://vkcp.example.com/tools/exports/{task['result']['file']}?")


async def test_links_survive_a_restart_and_need_the_servers_key(tmp_path: Path) -> None:
    async with api_with(tmp_path) as api:
        url = (await export(api, {"format": "CSV"}))["export"]["url"]
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    async with api_with(tmp_path) as restarted:  # the key kept in the data dir
        assert (await restarted.client.get(url)).status_code == 200
    key = "k" * 40
    async with api_with(tmp_path, secret_key=key) as configured:  # VKCP_SECRET_KEY wins
        refused = await configured.client.get(url)
        assert refused.status_code == 403 and refused.json()["errors"][0]["extensions"]["code"] == "LINK_INVALID"
        url = (await configured(TASK, {"id": "1"}, role="viewer"))["task"]["export"]["url"]
        assert (await configured.client.get(url)).status_code == 200
    async with api_with(tmp_path, secret_key=key) as again:
        assert (await again.client.get(url)).status_code == 200


async def test_only_a_finished_export_with_its_file_has_a_link(api: Api, group_id: str, container) -> None:
    parse_task = (await api("{ tasks(filter: {kinds: [PARSE]}) { edges { node { id export { url } } } } }"))
    assert [e["node"]["export"] for e in parse_task["tasks"]["edges"]] == [None]

    task = await export(api, {"format": "CSV", "filter": {"groupIds": [group_id]}})
    path = container.adapters.exports.path_of(task["result"]["file"])
    old = (datetime.now(UTC) - timedelta(hours=25)).timestamp()
    os.utime(path, (old, old))  # the file has expired
    gone = (await api(TASK, {"id": "2"}, role="viewer"))["task"]["export"]
    assert gone["fileName"] == task["export"]["fileName"] and gone["rows"] == task["export"]["rows"]
    assert gone["url"] is None and gone["expiresAt"] is None and gone["fileExpiresAt"] is None
    assert (await api.client.get(task["export"]["url"])).status_code == 404  # the earlier link finds nothing


async def test_cross_origin_scripts_can_read_the_downloads_file_name(tmp_path: Path) -> None:
    async with api_with(tmp_path, cors_origins=["https://app.example"]) as api:
        task = await export(api, {"format": "CSV"})
        download = await api.client.get(task["export"]["url"], headers={"Origin": "https://app.example"})
        assert download.status_code == 200
        assert download.headers["access-control-allow-origin"] == "https://app.example"
        exposed = {h.strip().lower() for h in download.headers["access-control-expose-headers"].split(",")}
        assert {"content-disposition", "x-request-id"} <= exposed


async def test_subscribers_on_different_hosts_get_links_to_their_own_host(api: Api, container) -> None:
    """Identical taskProgress subscriptions share one feed, but a link must point at the host
    each client connected to."""
    from dataclasses import replace

    from domain.models import Progress, Task, TaskKind, TaskState
    from domain.tasks import publish_task

    finished = await export(api, {"format": "CSV"})
    async with container.adapters.uow_factory() as uow:
        running = await uow.tasks.add(Task(kind=TaskKind.EXPORT, state=TaskState.RUNNING, attempts=1,
                                           created_at=container.adapters.clock.now(), progress=Progress(0, 1, "")))
        await uow.commit()
    query = "subscription($id: ID!) { taskProgress(id: $id) { state export { url } } }"
    async with serve_app(container) as base:
        port = base.rsplit(":", 1)[1]
        sockets = [await connect(f"ws://{host}:{port}/graphql", subprotocols=["graphql-transport-ws"])
                   for host in ("127.0.0.1", "localhost")]
        try:
            for ws in sockets:
                await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {api.tokens['viewer']}"}}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"id": str(running.id)}}}))
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert first["payload"]["data"]["taskProgress"] == {"state": "RUNNING", "export": None}
            await publish_task(container.adapters, replace(running, state=TaskState.SUCCEEDED, result=finished["result"]))
            for ws, host in zip(sockets, ("127.0.0.1", "localhost")):
                item = json.loads(await asyncio.wait_for(ws.recv(), 5))["payload"]["data"]["taskProgress"]
                assert item["state"] == "SUCCEEDED"
                assert item["export"]["url"].startswith(f"http://{host}:{port}/exports/{finished['result']['file']}?")
        finally:
            for ws in sockets:
                await ws.close()
