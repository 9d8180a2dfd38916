"""Exports through GraphQL over HTTP: what a finished export says, and downloading its file."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.graphql_support import Api, api, client, container, tokens, wait_for_task  # noqa: F401

EXPORT = """
mutation($input: StartExportInput!) {
  startExport(input: $input) { task { id } errors { code field message } }
}"""
TASK = "query($id: ID!) { task(id: $id) { state result progress { done total message } } }"


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
