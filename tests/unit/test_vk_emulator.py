"""The VK emulator answers as ``docs/vk-api.md`` says VK does: the contract our adapter is tested against."""

from __future__ import annotations

import json
import sys

import httpx
import pytest

from infrastructure.vk.emulator import ApiError, VkEmulator, fingerprint, parse_execute
from infrastructure.vk.world import VkWorld, WorldComment, WorldGroup, WorldPost, generated_world, sandbox_world

SANDBOX = sandbox_world()


async def api(app: VkEmulator, method: str, token: str = "t", **params) -> dict:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vk") as client:
        response = await client.post(f"/method/{method}", data={"access_token": token, "v": "5.199", **params})
    assert response.status_code == 200
    return response.json()


# --- execute parsing ------------------------------------------------------------------------


def test_parses_the_plain_execute_forms():
    code = 'return [API.wall.get({"owner_id": -1, "count": 100}), API.wall.getComments({"text": "a), b"})];'
    assert parse_execute(code) == [("wall.get", {"owner_id": -1, "count": 100}),
                                   ("wall.getComments", {"text": "a), b"})]
    assert parse_execute('return API.users.get({"user_ids": "1,2"});') == [("users.get", {"user_ids": "1,2"})]
    assert parse_execute(" return [ API.wall.get( {} ) ] ") == [("wall.get", {})]
    assert parse_execute("return [];") == []


@pytest.mark.parametrize("code", ["var a = 1; return a;", "return [API.wall.get({)];", "return API.wall.get(1);"])
def test_rejects_richer_vkscript(code):
    with pytest.raises(ApiError) as e:
        parse_execute(code)
    assert e.value.code == 12


async def test_execute_reports_failed_calls_in_order():
    app = VkEmulator(SANDBOX)
    code = ('return [API.wall.get({"owner_id": -11005}), API.utils.resolveScreenName({"screen_name": "koshki_spb"}),'
            ' API.groups.getById({"group_ids": "999999999"})];')
    body = await api(app, "execute", code=code)
    assert body["response"] == [False, {"object_id": 11001, "type": "page"}, False]
    assert [(e["method"], e["error_code"]) for e in body["execute_errors"]] == [("wall.get", 15), ("groups.getById", 100)]


async def test_execute_allows_25_calls_and_no_more():
    app = VkEmulator(SANDBOX)
    call = 'API.utils.resolveScreenName({"screen_name": "koshki_spb"})'
    assert len((await api(app, "execute", code=f"return [{','.join([call] * 25)}];"))["response"]) == 25
    body = await api(app, "execute", code=f"return [{','.join([call] * 26)}];")
    assert body["error"]["error_code"] == 13


async def test_execute_answer_over_5_mb_fails_with_13():
    world = VkWorld()
    world.add_group(WorldGroup(1, "Болтуны", "talkers"))
    post = world.add_post(WorldPost(1, -1, -1, 1_700_000_000, "пост"))
    for i in range(100):
        world.add_comment(post, WorldComment(i + 2, -1, 1, -1, 1_700_000_000, "слово " * 500))
    app = VkEmulator(world.finish())
    call = 'API.wall.getComments({"owner_id": -1, "post_id": 1, "count": 100})'
    body = await api(app, "execute", code=f"return [{','.join([call] * 10)}];")
    assert body["error"]["error_code"] == 13
    assert "response" in await api(app, "execute", code=f"return [{call}];")


# --- methods --------------------------------------------------------------------------------


async def test_errors_echo_params_but_never_the_token():
    app = VkEmulator(SANDBOX)
    body = await api(app, "wall.get", token="very-secret", owner_id="-11005")
    assert body["error"]["error_code"] == 15
    assert "Access denied" in body["error"]["error_msg"]
    assert "very-secret" not in json.dumps(body)
    assert {"key": "owner_id", "value": "-11005"} in body["error"]["request_params"]


async def test_tokens_and_version_are_required():
    app = VkEmulator(SANDBOX, tokens=["good"])
    assert (await api(app, "users.get", token="bad", user_ids="1001"))["error"]["error_code"] == 5
    assert (await api(app, "users.get", token="good", user_ids="1001"))["response"][0]["id"] == 1001
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vk") as client:
        body = (await client.get("/method/users.get", params={"access_token": "good", "user_ids": "1001"})).json()
    assert body["error"]["error_code"] == 8


async def test_resolves_screen_names_of_communities_and_users():
    app = VkEmulator(SANDBOX)
    assert (await api(app, "utils.resolveScreenName", screen_name="zarechye_news"))["response"] == {
        "object_id": 11002, "type": "page"}
    assert (await api(app, "utils.resolveScreenName", screen_name="no_such_name"))["response"] == []
    groups = (await api(app, "groups.getById", group_ids="koshki_spb,11005", fields="members_count"))["response"]
    assert [(g["id"], g["is_closed"]) for g in groups["groups"]] == [(11001, 0), (11005, 1)]
    assert groups["groups"][0]["members_count"] > 0 and groups["profiles"] == []


async def test_wall_is_pinned_first_then_newest_first():
    app = VkEmulator(SANDBOX)
    body = (await api(app, "wall.get", owner_id="-11001", count="100"))["response"]
    items = body["items"]
    assert body["count"] == len(items) == 40
    assert items[0].get("is_pinned") == 1
    dates = [p["date"] for p in items[1:]]
    assert dates == sorted(dates, reverse=True)
    assert (await api(app, "wall.get", domain="koshki_spb", offset="39", count="5"))["response"]["items"][0]["id"] == items[39]["id"]
    assert (await api(app, "wall.get", owner_id="-11001", count="101"))["error"]["error_code"] == 100
    assert (await api(app, "wall.get", owner_id="-11006"))["error"]["error_code"] == 15


async def test_comments_envelope_threads_and_reply_paging():
    world = generated_world(3, communities=1, posts_per_community=5, comments_per_post=5,
                            long_threads=(130,), closed_comment_posts=0, closed_communities=0)
    app = VkEmulator(world)
    post = next(p for p in world.walls[-100001] if any(len(c.replies) == 130 for c in p.comments))
    root = next(c for c in post.comments if len(c.replies) == 130)
    top = (await api(app, "wall.getComments", owner_id="-100001", post_id=str(post.id), count="100",
                     thread_items_count="10", extended="1", need_likes="1"))["response"]
    assert top["count"] == post.comments_count
    assert top["current_level_count"] == len(post.comments)
    item = next(i for i in top["items"] if i["id"] == root.id)
    assert item["thread"]["count"] == 130 and len(item["thread"]["items"]) == 10
    inline_authors = {r["from_id"] for r in item["thread"]["items"]}
    known = {p["id"] for p in top["profiles"]} | {-g["id"] for g in top["groups"]}
    assert inline_authors <= known
    replies = []
    for offset in (10, 110):
        page = (await api(app, "wall.getComments", owner_id="-100001", post_id=str(post.id),
                          comment_id=str(root.id), offset=str(offset), count="100"))["response"]
        replies += page["items"]
    assert [r["id"] for r in item["thread"]["items"] + replies] == [r.id for r in root.replies]
    assert all(r["parents_stack"] == [root.id] for r in replies)


async def test_deleted_comments_are_returned_with_empty_text():
    world = generated_world(5, communities=1, posts_per_community=20, comments_per_post=30, closed_communities=0)
    deleted = next(c for c in world.comments.values() if c.deleted and c.thread_root is None)
    body = (await api(VkEmulator(world), "wall.getComments", owner_id=str(deleted.owner_id),
                      post_id=str(deleted.post_id), count="100"))["response"]
    item = next(i for i in body["items"] if i["id"] == deleted.id)
    assert item["deleted"] is True and item["text"] == ""


async def test_edits_and_deletions_between_runs_answer_as_vk_does():
    """An edit changes the text and nothing else; a deleted comment with replies stays as
    ``deleted: true`` without text, one without replies vanishes and the count drops."""
    world = generated_world(5, communities=1, posts_per_community=20, comments_per_post=30, closed_communities=0)
    app = VkEmulator(world)
    post = next(p for p in world.walls[-100001] if sum(1 for c in p.comments if c.replies and not c.deleted) >= 1)
    with_replies = next(c for c in post.comments if c.replies and not c.deleted)
    lonely = next(c for c in post.comments if not c.replies and not c.deleted)
    edited = next(c for c in post.comments if c not in (with_replies, lonely) and not c.deleted)
    count = post.comments_count

    async def items() -> tuple[dict, dict[int, dict]]:
        body = (await api(app, "wall.getComments", owner_id="-100001", post_id=str(post.id), count="100",
                          need_likes="1"))["response"]
        return body, {i["id"]: i for i in body["items"]}

    _, before = await items()
    world.edit_comment(-100001, edited.id, "Новый текст")
    world.delete_comment(-100001, with_replies.id)
    world.delete_comment(-100001, lonely.id)
    body, after = await items()
    assert after[edited.id] == {**before[edited.id], "text": "Новый текст"}
    assert after[with_replies.id]["deleted"] is True and after[with_replies.id]["text"] == ""
    assert after[with_replies.id]["thread"]["count"] == len(with_replies.replies)
    assert lonely.id not in after and (-100001, lonely.id) not in world.comments
    assert body["count"] == post.comments_count == count - 1
    with pytest.raises(ValueError):
        world.edit_comment(-100001, with_replies.id, "nobody edits a deleted comment")
    # The same, from a test process through the emulator's HTTP control route.
    reply = with_replies.replies[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vk") as client:
        ok = await client.post("/_world", json={"edit": {"owner_id": -100001, "comment_id": reply.id, "text": "ок"}})
        bad = await client.post("/_world", json={"delete": {"owner_id": -100001}})
    assert ok.status_code == 200 and reply.text == "ок" and bad.status_code == 400


async def test_closed_comments_answer_212():
    owner = -11002
    post_id = SANDBOX.closed_comment_posts(owner)[0]
    body = await api(VkEmulator(SANDBOX), "wall.getComments", owner_id=str(owner), post_id=str(post_id))
    assert body["error"]["error_code"] == 212


async def test_more_than_rps_requests_in_a_second_answer_6():
    now = [100.0]
    app = VkEmulator(SANDBOX, rps=3, clock=lambda: now[0])
    codes = []
    for step in (0.0, 0.1, 0.1, 0.1, 0.75, 0.1):
        now[0] += step
        body = await api(app, "utils.resolveScreenName", screen_name="koshki_spb")
        codes.append(body.get("error", {}).get("error_code"))
    assert codes == [None, None, None, 6, None, None]
    assert app.stats()["error6"] == 1
    assert app.stats()["requests"] == {fingerprint("t"): 6}


async def test_failures_are_seeded_and_counted():
    app = VkEmulator(SANDBOX, fail_rate=1.0, stall_seconds=0.0, seed=3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://vk") as client:
        for _ in range(20):
            await client.post("/method/users.get", data={"access_token": "t", "v": "5.199", "user_ids": "1001"})
    assert sum(app.stats()["failures"].values()) == 20
    assert set(app.stats()["failures"]) == set(VkEmulator.FAILURES)


# --- token trouble: quotas, captchas, invalid tokens ----------------------------------------

RESOLVE = 'API.utils.resolveScreenName({"screen_name": "koshki_spb"})'
WALL = 'API.wall.get({"owner_id": -11001, "count": 1})'


async def test_a_daily_quota_answers_29_at_the_top_and_inside_execute():
    day = ["20261207"]
    app = VkEmulator(SANDBOX, quotas={"wall.get": 2}, today=lambda: day[0])
    assert "response" in await api(app, "wall.get", owner_id="-11001", count="1")
    # Inside execute: the call over the quota fails alone, the others answer.
    body = await api(app, "execute", code=f"return [{WALL},{RESOLVE},{WALL}];")
    assert body["response"][0]["count"] == 40 and body["response"][1] == {"object_id": 11001, "type": "page"}
    assert body["response"][2] is False
    assert body["execute_errors"] == [{"method": "wall.get", "error_code": 29, "error_msg": "Rate limit reached"}]
    error = (await api(app, "wall.get", owner_id="-11001", count="1"))["error"]
    assert (error["error_code"], error["error_msg"]) == (29, "Rate limit reached")
    # Per token: another token has its own quota; the next UTC day starts afresh.
    assert "response" in await api(app, "wall.get", token="other", owner_id="-11001", count="1")
    day[0] = "20261208"
    assert "response" in await api(app, "wall.get", owner_id="-11001", count="1")
    assert app.stats()["calls_today"] == {fingerprint("t"): {"wall.get": 1}}


async def test_a_quota_of_one_token_leaves_the_others_alone():
    app = VkEmulator(SANDBOX, token_quotas={"tired": {"utils.resolveScreenName": 0}})
    assert (await api(app, "utils.resolveScreenName", token="tired", screen_name="x"))["error"]["error_code"] == 29
    assert "response" in await api(app, "utils.resolveScreenName", token="fresh", screen_name="x")


async def test_a_captcha_with_2025_fields_at_the_top_and_inside_execute():
    app = VkEmulator(SANDBOX, captcha_after={"vk1.a.bot": 1})
    body = await api(app, "execute", token="vk1.a.bot", code=f"return [{RESOLVE},{RESOLVE}];")
    assert body["response"][0] == {"object_id": 11001, "type": "page"} and body["response"][1] is False
    [inner] = body["execute_errors"]
    assert (inner["method"], inner["error_code"], inner["error_msg"]) == ("utils.resolveScreenName", 14, "Captcha needed")
    error = (await api(app, "users.get", token="vk1.a.bot", user_ids="1001"))["error"]
    assert error["error_code"] == 14
    for name in ("captcha_sid", "captcha_img", "redirect_uri", "captcha_ts", "captcha_attempt",
                 "is_refresh_enabled", "captcha_track"):
        assert name in error and name in inner, name
    assert error["captcha_sid"] in error["captcha_img"] and error["redirect_uri"].startswith("https://")
    assert "vk1.a.bot" not in json.dumps(body) + json.dumps(error)  # the token is in none of them
    assert "response" in await api(app, "users.get", token="human", user_ids="1001")


async def test_a_token_that_expires_inside_execute_answers_5_there_then_at_the_top():
    app = VkEmulator(SANDBOX, expire_after={"short": 2})
    body = await api(app, "execute", token="short", code=f"return [{RESOLVE},{RESOLVE},{RESOLVE}];")
    assert body["response"][:2] == [{"object_id": 11001, "type": "page"}] * 2 and body["response"][2] is False
    assert [e["error_code"] for e in body["execute_errors"]] == [5]
    assert (await api(app, "execute", token="short", code=f"return [{RESOLVE}];"))["error"]["error_code"] == 5


def test_the_command_line_sets_quotas_captchas_and_expiries(monkeypatch):
    import uvicorn

    from infrastructure.vk import emulator

    built = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: built.setdefault("app", app))
    monkeypatch.setattr(sys, "setswitchinterval", lambda _: None)  # main's tuning is for its own process
    emulator.main(["--quota", "wall.getComments=50", "--token-quota", "a:wall.get=3",
                   "--captcha-after", "b=7", "--expire-after", "c=9"])
    app = built["app"]
    assert app.quotas == {"wall.getComments": 50} and app.token_quotas == {"a": {"wall.get": 3}}
    assert app.captcha_after == {"b": 7} and app.expire_after == {"c": 9}
