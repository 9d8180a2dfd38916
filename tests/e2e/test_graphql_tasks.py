"""Parsing through GraphQL: start a parse, watch the task, read the collected comments."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.graphql_support import Api, api, client, container, tokens, wait_for_task  # noqa: F401

START = """
mutation($input: StartParseInput!) {
  startParse(input: $input) {
    tasks { id kind state priority params group { screenName } }
    errors { code message field }
  }
}"""


async def add_group(api: Api, ref: str) -> str:
    data = await api('mutation($ref: String!) { addGroup(ref: $ref) { group { id } errors { code } } }', {"ref": ref})
    return data["addGroup"]["group"]["id"]


@pytest.fixture
async def parsed_group(api: Api) -> str:
    """koshki_spb (the sandbox's cats community), fully collected."""
    group_id = await add_group(api, "koshki_spb")
    tasks = (await api(START, {"input": {"groupIds": [group_id]}}))["startParse"]["tasks"]
    task = await wait_for_task(api, tasks[0]["id"])
    assert task["state"] == "SUCCEEDED", task
    return group_id


async def test_start_parse_runs_a_task_to_success(api: Api) -> None:
    group_id = await add_group(api, "velo_spb")
    started = (await api(START, {"input": {"groupIds": [group_id], "priority": 7, "maxPosts": 5}}))["startParse"]
    assert started["errors"] == []
    [task] = started["tasks"]
    assert task["kind"] == "PARSE"
    assert task["state"] in ("QUEUED", "RUNNING")
    assert task["priority"] == 7
    assert task["params"]["maxPosts"] == 5
    assert task["group"] == {"screenName": "velo_spb"}

    done = await wait_for_task(api, task["id"])
    assert done["state"] == "SUCCEEDED"
    assert done["result"]["posts"] == 5
    assert done["progress"]["done"] == done["progress"]["total"]

    listed = await api(
        """{ tasks(filter: {kinds: [PARSE], states: [SUCCEEDED]}) {
               totalCount edges { node { id startedAt finishedAt attempts } } } }""",
        role="viewer",
    )
    assert listed["tasks"]["totalCount"] == 1
    node = listed["tasks"]["edges"][0]["node"]
    assert node["id"] == task["id"] and node["attempts"] == 1 and node["finishedAt"] >= node["startedAt"]
    running = await api("{ tasks(filter: {states: [QUEUED, RUNNING]}) { totalCount } }", role="viewer")
    assert running["tasks"]["totalCount"] == 0


async def test_start_parse_errors_are_user_errors(api: Api) -> None:
    unknown = (await api(START, {"input": {"groupIds": ["999"]}}))["startParse"]
    assert unknown["tasks"] == []
    assert unknown["errors"][0]["code"] == "NOT_FOUND"
    assert unknown["errors"][0]["field"] == "groupIds"

    group_id = await add_group(api, "velo_spb")
    for bad, field in (({"priority": 11}, "priority"), ({"maxPosts": 0}, "maxPosts"), ({"groupIds": []}, "groupIds")):
        result = (await api(START, {"input": {"groupIds": [group_id], **bad}}))["startParse"]
        assert result["errors"][0]["code"] == "BAD_USER_INPUT", bad
        assert result["errors"][0]["field"] == field, bad


async def test_cancel_task(api: Api) -> None:
    cancel = "mutation($id: ID!) { cancelTask(id: $id) { task { id state } errors { code field } } }"
    missing = (await api(cancel, {"id": "424242"}))["cancelTask"]
    assert missing == {"task": None, "errors": [{"code": "NOT_FOUND", "field": "id"}]}

    group_id = await add_group(api, "velo_spb")
    [task] = (await api(START, {"input": {"groupIds": [group_id]}}))["startParse"]["tasks"]
    await wait_for_task(api, task["id"])
    ended = (await api(cancel, {"id": task["id"]}))["cancelTask"]
    assert ended["task"] is None
    assert ended["errors"][0]["code"] == "BAD_USER_INPUT"  # it has already finished


async def test_unknown_task_is_null(api: Api) -> None:
    assert (await api('{ task(id: "77") { id } }', role="viewer"))["task"] is None


COMMENTS = """
query($filter: CommentFilter, $orderBy: CommentOrder, $first: Int!, $after: String) {
  comments(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id vkId ownerId text publishedAt likes deleted viewed archived url
        group { screenName }
        post { vkId url group { id } }
        parent { id vkId }
        author { vkId name url }
        matches { matchedText }
      }
    }
  }
}"""


REPLIES = """query($after: String) { comments(first: 100, after: $after) {
  pageInfo { hasNextPage endCursor }
  edges { node { replyToUserId parent { authorId } thread { id } } } } }"""


async def test_a_reply_says_whom_it_answers(api: Api, parsed_group: str) -> None:
    """``replyToUserId`` is VK's ``reply_to_user``: the author of the comment a reply answers
    (a reply that only posts into the thread names nobody); null for a top-level comment."""
    nodes, after = [], None
    while True:
        page = (await api(REPLIES, {"after": after}, role="viewer"))["comments"]
        nodes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    top_level = [n for n in nodes if n["thread"] is None]
    addressed = [n for n in nodes if n["replyToUserId"] is not None]
    assert top_level and all(n["replyToUserId"] is None for n in top_level)
    assert len(addressed) > 10 and all(n["parent"]["authorId"] == n["replyToUserId"] for n in addressed)


async def test_comments_connection_pages_through_everything(api: Api, parsed_group: str) -> None:
    seen: list[str] = []
    after = None
    total = None
    while True:
        page = (await api(COMMENTS, {"first": 100, "after": after}, role="viewer"))["comments"]
        total = page["totalCount"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert total and total > 500
    assert len(seen) == len(set(seen)) == total

    page = (await api(COMMENTS, {"first": 50}, role="viewer"))["comments"]
    nodes = [e["node"] for e in page["edges"]]
    dates = [n["publishedAt"] for n in nodes]
    assert dates == sorted(dates, reverse=True)  # newest first by default
    assert all(n["group"] == {"screenName": "koshki_spb"} for n in nodes)
    assert all(n["ownerId"] == -11001 and n["post"]["group"]["id"] == parsed_group for n in nodes)
    assert all(n["author"] and n["author"]["name"] for n in nodes)
    replies = [n for n in nodes if n["parent"]]
    assert replies, "the sandbox threads have replies"
    assert all(n["url"].startswith(f"https://vk.com/wall-11001_{n['post']['vkId']}?reply=") for n in nodes)


async def test_comments_filters_and_order(api: Api, parsed_group: str) -> None:
    everything = (await api(COMMENTS, {"first": 1}, role="viewer"))["comments"]["totalCount"]
    in_group = await api(COMMENTS, {"first": 1, "filter": {"groupIds": [parsed_group]}}, role="viewer")
    assert in_group["comments"]["totalCount"] == everything
    elsewhere = await api(COMMENTS, {"first": 1, "filter": {"groupIds": ["999", "nonsense"]}}, role="viewer")
    assert elsewhere["comments"]["totalCount"] == 0

    cats = (await api(COMMENTS, {"first": 100, "filter": {"text": "КОТ"}}, role="viewer"))["comments"]
    assert 0 < cats["totalCount"] < everything
    assert all("кот" in e["node"]["text"].lower() for e in cats["edges"])

    by_likes = await api(
        COMMENTS, {"first": 30, "orderBy": {"field": "LIKES", "direction": "DESC"}}, role="viewer"
    )
    likes = [e["node"]["likes"] for e in by_likes["comments"]["edges"]]
    assert likes == sorted(likes, reverse=True)

    unviewed = await api(COMMENTS, {"first": 1, "filter": {"viewed": False}}, role="viewer")
    assert unviewed["comments"]["totalCount"] == everything


async def test_bad_page_arguments_are_graphql_errors(api: Api, parsed_group: str) -> None:
    response = await api.post(COMMENTS, {"first": 1000}, role="viewer")
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    response = await api.post(COMMENTS, {"first": 10, "after": "garbage"}, role="viewer")
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["message"] == "Invalid cursor"


async def test_related_objects_are_loaded_in_batches(api: Api, container, parsed_group: str) -> None:
    calls: dict[str, int] = {}
    read_model = container.read_model
    for name in ("groups_by_ids", "posts_by_ids", "authors_by_ids", "comments_by_ids", "matches_by_comment_ids"):
        original = getattr(read_model, name)

        async def counted(ids, _original=original, _name=name):
            calls[_name] = calls.get(_name, 0) + 1
            return await _original(ids)

        setattr(read_model, name, counted)
    page = (await api(COMMENTS, {"first": 100}, role="viewer"))["comments"]
    assert len(page["edges"]) == 100
    # One query per kind of related object for the whole page (parents: one more per level).
    assert calls["groups_by_ids"] == 1
    assert calls["posts_by_ids"] == 1
    assert calls["authors_by_ids"] == 1
    assert calls["matches_by_comment_ids"] == 1
    assert calls.get("comments_by_ids", 0) <= 1


class _SlowVk:
    """The sandbox's VK, answering comment pages as slowly as real VK does (a page a few tens of
    milliseconds at best): the sandbox's own parse ends before a client could look at it."""

    def __init__(self, vk: object) -> None:
        self._vk = vk

    def __getattr__(self, name: str) -> object:
        return getattr(self._vk, name)

    async def comments_page(self, *args: object, **kwargs: object) -> object:
        await asyncio.sleep(0.15)
        return await self._vk.comments_page(*args, **kwargs)  # type: ignore[attr-defined]


async def test_progress_says_its_message_as_a_code_with_arguments_and_the_count_moves(api: Api, container) -> None:
    """While a parse runs, its progress is a code with arguments beside the English sentence
    (a console words it in its own language), and the community's comment count follows the
    comments already stored, batch by batch, not only once the task ends."""
    container.adapters.vk = _SlowVk(container.adapters.vk)
    container.adapters.collect_concurrency = 2
    group_id = await add_group(api, "koshki_spb")
    [task] = (await api(START, {"input": {"groupIds": [group_id]}}))["startParse"]["tasks"]
    watch = """query($task: ID!, $group: ID!) {
      task(id: $task) { state result progress { done total message messageCode messageArgs } }
      group: node(id: $group) { ... on Group { commentsCount } }
    }"""
    seen: list[tuple[str, dict, int]] = []
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        data = await api(watch, {"task": task["id"], "group": group_id}, role="viewer")
        state, progress, count = data["task"]["state"], data["task"]["progress"], data["group"]["commentsCount"]
        seen.append((state, progress, count))
        if state in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        assert asyncio.get_running_loop().time() < deadline, seen[-1]
        await asyncio.sleep(0.02)
    assert state == "SUCCEEDED", seen[-1]
    result = data["task"]["result"]
    # Every message said has its code (a task still QUEUED has said nothing yet).
    codes = {p["messageCode"] for _, p, _ in seen if p["message"]}
    assert None not in codes and "POSTS_READ" in codes, codes
    for _, p, _ in seen:  # the code and arguments say what the English sentence says
        if p["messageCode"] == "POSTS_READ":
            a = p["messageArgs"]
            assert p["message"] == f"{a['done']}/{a['total']} posts, {a['comments']} comments", p
    final = progress["messageArgs"]
    assert progress["messageCode"] == "POSTS_READ" and final["done"] == final["total"] == result["postsRead"], progress
    assert final["comments"] == result["commentsSeen"] == count > 0, (progress, result, count)
    # mid-parse: some comments stored and counted before the task ended
    moving = [(p["messageArgs"]["comments"], n) for s, p, n in seen
              if s == "RUNNING" and p["messageCode"] == "POSTS_READ" and 0 < n < count]
    assert moving, [(s, p["message"], n) for s, p, n in seen]
    # the count never lags behind what the progress said was stored
    assert all(n >= stored for stored, n in moving), moving
