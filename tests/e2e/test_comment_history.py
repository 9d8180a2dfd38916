"""Edits and deletions after collection, on both stacks, with real processes.

A community is parsed; then, on the emulator, one comment is edited and another (one with
replies, so VK keeps it as ``deleted: true`` with empty text) is deleted; a second, full parse
re-reads every post. The API then lists the edited comment under ``edited: true`` with its new
text, ``editedAt`` and the text before in ``versions``, its matches following the new text;
and the deleted one under ``deleted: true`` with ``deletedAt`` and its text and matches intact.

Stacks and helpers are ``test_stacks.py``'s; the emulator is this module's own (each test
changes its world).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from infrastructure.vk.world import generated_world
from tests.e2e import test_stacks
from tests.e2e.test_stacks import ADD, VK_TOKEN, Stack, _wait_task
from tests.processes import vk_emulator

stack = test_stacks.stack  # the fixture: both stacks, over this module's ``vk_url``

WORLD = {"seed": 11, "communities": 1, "posts": 6, "comments": 12}
NEW_TEXT = "Кошек больше нет, теперь у нас жираф."


def _world():
    return generated_world(WORLD["seed"], communities=WORLD["communities"], posts_per_community=WORLD["posts"],
                           comments_per_post=WORLD["comments"], closed_comment_posts=0, closed_communities=0)


@pytest.fixture
def vk_url(tmp_path) -> Iterator[str]:
    """A fresh emulator for each test (``stack`` asks for it by this name)."""
    log = tmp_path / "emulator.log"
    args = ["--rps", "20", "--world", "generated",
            "--seed", str(WORLD["seed"]), "--communities", str(WORLD["communities"]), "--posts", str(WORLD["posts"]),
            "--comments", str(WORLD["comments"]), "--closed-comment-posts", "0", "--closed-communities", "0",
            "--token", VK_TOKEN]
    with vk_emulator(args, log) as url:
        yield url


async def _change_world(vk_url: str, change: dict) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(vk_url.removesuffix("/method") + "/_world", json=change)
    assert response.status_code == 200, response.text


KEYWORDS = """mutation { addKeywords(input: [{word: "кошка"}, {word: "жираф"}]) { keywords { id } errors { message } } }"""
PARSE = """mutation($ids: [ID!]!, $full: Boolean!) {
  startParse(input: {groupIds: $ids, full: $full}) { tasks { id } errors { code message } } }"""
FINISHED = """query($id: ID!) { task(id: $id) { finishedAt } }"""
NODE = """id ownerId vkId text deleted deletedAt editedAt versions { text seenAt }
  matches { keyword { word } matchedText }"""
BY_FLAGS = f"""query($deleted: Boolean, $edited: Boolean, $after: String) {{
  comments(first: 100, after: $after, filter: {{deleted: $deleted, edited: $edited}}) {{
    totalCount edges {{ node {{ {NODE} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
ONE = f"""query($id: ID!) {{ comment(id: $id) {{ {NODE} }} }}"""


async def _listed(stack: Stack, **flags) -> tuple[int, dict[int, dict]]:
    """totalCount and every comment (by VK id) the flags select."""
    nodes: dict[int, dict] = {}
    after = None
    while True:
        found = (await stack.gql(BY_FLAGS, after=after, **flags))["comments"]
        nodes |= {e["node"]["vkId"]: e["node"] for e in found["edges"]}
        if not found["pageInfo"]["hasNextPage"]:
            return found["totalCount"], nodes
        after = found["pageInfo"]["endCursor"]


async def _parse(stack: Stack, group_id: str, *, full: bool) -> dict:
    (task,) = (await stack.gql(PARSE, ids=[group_id], full=full))["startParse"]["tasks"]
    finished = await _wait_task(stack, task["id"])
    assert finished["state"] == "SUCCEEDED", finished
    return (await stack.gql(FINISHED, id=task["id"]))["task"]


async def test_a_full_re_read_stores_edits_and_deletions(stack: Stack, vk_url: str) -> None:
    world = _world()
    (owner_id,) = world.open_owner_ids()
    tops = [c for p in world.walls[owner_id] for c in p.comments if not c.deleted and "кошк" in c.text.lower()]
    edited = next(c for c in tops if not c.replies)
    deleted = next(c for c in tops if c.replies)
    already_deleted = {c.id for c in world.comments.values() if c.deleted}

    assert (await stack.gql(KEYWORDS))["addKeywords"]["errors"] == []
    group = (await stack.gql(ADD, ref=f"club{-owner_id}"))["addGroup"]["group"]
    first = await _parse(stack, group["id"], full=False)
    total, nothing = await _listed(stack, edited=True)
    assert (total, nothing) == (0, {})
    total_deleted, listed = await _listed(stack, deleted=True)
    assert set(listed) == already_deleted and total_deleted == len(already_deleted)
    _, before = await _listed(stack)
    assert [m["keyword"]["word"] for m in before[edited.id]["matches"]] == ["кошка"]
    deleted_matches = before[deleted.id]["matches"]
    assert deleted_matches and before[deleted.id]["versions"] == []

    await _change_world(vk_url, {"edit": {"owner_id": owner_id, "comment_id": edited.id, "text": NEW_TEXT}})
    await _change_world(vk_url, {"delete": {"owner_id": owner_id, "comment_id": deleted.id}})
    # An edit changes no count: an incremental run re-reads no post, and sees nothing.
    await _parse(stack, group["id"], full=False)
    assert (await _listed(stack, edited=True))[0] == 0
    second = await _parse(stack, group["id"], full=True)

    total, found = await _listed(stack, edited=True)
    assert total == 1 and set(found) == {edited.id}
    node = found[edited.id]
    assert node["text"] == NEW_TEXT and not node["deleted"] and node["deletedAt"] is None
    assert first["finishedAt"] < node["editedAt"] <= second["finishedAt"]
    assert [v["text"] for v in node["versions"]] == [edited.text]
    assert datetime.fromisoformat(node["versions"][0]["seenAt"]) <= datetime.fromisoformat(first["finishedAt"])
    # The matches follow the new text: "Кошек" and "жираф", in text order.
    assert [(m["keyword"]["word"], m["matchedText"]) for m in node["matches"]] == [("кошка", "Кошек"), ("жираф", "жираф")]
    assert (await stack.gql(ONE, id=node["id"]))["comment"] == node  # one comment, not a page: the same answer

    total, found = await _listed(stack, deleted=True)
    assert total == len(already_deleted) + 1 and set(found) == already_deleted | {deleted.id}
    node = found[deleted.id]
    # A deletion is not an edit: the text VK no longer sends is kept, and so are its matches.
    assert node["text"] == deleted.text and node["editedAt"] is None and node["versions"] == []
    assert first["finishedAt"] < node["deletedAt"] <= second["finishedAt"]
    assert node["matches"] == deleted_matches
    assert all(found[i]["deletedAt"] <= first["finishedAt"] for i in already_deleted)

    # Every other comment is as it was.
    total_all, everything = await _listed(stack, deleted=False, edited=False)
    assert total_all == len(before) - len(already_deleted) - 2
    assert all(everything[i] == before[i] for i in everything)
