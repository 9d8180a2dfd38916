"""A wall that moves while it is read: the emulator moves like VK, the collector loses nothing.

The real adapter against the emulator in-process (httpx.ASGITransport). Scripted changes run
right before a chosen call is answered, so each test puts a deletion or an addition exactly
where offset paging used to lose a comment; the seeded ``WallDrift`` tests move the walls at
random between requests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from domain.collect import CollectOptions, collect_group
from domain.models import Group
from infrastructure.vk.emulator import VkEmulator
from infrastructure.vk.gateway import HttpVkGateway
from infrastructure.vk.world import (
    BASE_TS,
    VkWorld,
    WallDrift,
    WorldComment,
    WorldGroup,
    WorldPost,
    generated_world,
)
from tests.fakes import InMemoryStore, no_report

OWNER = -1


class ScriptedEmulator(VkEmulator):
    """Runs ``script[i]`` right before the first call that ``when[i]`` recognises is answered."""

    def __init__(self, world: VkWorld, **options) -> None:
        super().__init__(world, **options)
        self.script: list[tuple[Callable[[str, dict], bool], Callable[[], None]]] = []
        self.calls_seen: list[tuple[str, dict]] = []

    def on(self, when: Callable[[str, dict], bool], action: Callable[[], None]) -> None:
        self.script.append((when, action))

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        self.calls_seen.append((method, dict(params)))
        for step in list(self.script):
            if step[0](method, params):
                self.script.remove(step)
                step[1]()
        return super()._call(method, params)


def comments_call(post_id: int, offset: int | None = None) -> Callable[[str, dict], bool]:
    def match(method: str, params: dict) -> bool:
        return (method == "wall.getComments" and int(params["post_id"]) == post_id and "comment_id" not in params
                and (offset is None or int(params.get("offset", 0)) == offset))
    return match


def wall_call(offset: int) -> Callable[[str, dict], bool]:
    return lambda method, params: method == "wall.get" and int(params.get("offset", 0)) == offset


def small_world(posts: int = 3, comments: int = 250, replies_every: int = 0) -> VkWorld:
    """One community; post ids 1..posts (newest last), ``comments`` top-level comments each."""
    world = VkWorld()
    world.add_group(WorldGroup(1, "Сообщество", "community"))
    for _ in range(posts):
        post = world.add_post(WorldPost(world.new_id(OWNER), OWNER, OWNER, BASE_TS - 10_000_000 + 1000 * len(world.posts), "пост"))
    for post in list(world.posts.values()):
        for i in range(comments):
            root = world.add_comment(post, _comment(world, post, BASE_TS - 5_000_000 + i))
            if replies_every and i % replies_every == 0:
                for _ in range(3):
                    world.add_comment(post, _comment(world, post, BASE_TS - 5_000_000 + i, root.id))
    return world.finish()


def _comment(world: VkWorld, post: WorldPost, date: int, thread_root: int | None = None) -> WorldComment:
    return WorldComment(world.new_id(OWNER), OWNER, post.id, 1000 + date % 7, date, "текст", thread_root=thread_root)


def write(world: VkWorld, post_id: int, count: int, thread_root: int | None = None) -> list[int]:
    post = world.posts[(OWNER, post_id)]
    return [world.add_comment(post, _comment(world, post, BASE_TS + i, thread_root)).id for i in range(count)]


def gateway(app: VkEmulator, **options) -> HttpVkGateway:
    return HttpVkGateway("http://vk/method", ["tok"], rps=1000, backoff_factor=0.001,
                         transport=httpx.ASGITransport(app=app), **options)


async def collect(app: VkEmulator, store: InMemoryStore, owner: int = OWNER, vk_options: dict | None = None,
                  **options):
    vk = gateway(app, **(vk_options or {}))
    try:
        async with store.uow_factory() as uow:
            group = await uow.groups.get_by_vk_id(-owner)
            if group is None:
                group = await uow.groups.add(Group(vk_id=-owner, screen_name=f"club{-owner}", name="Сообщество"))
            await uow.commit()
        return await collect_group(group, vk=vk, uow_factory=store.uow_factory, options=CollectOptions(**options),
                                   report=no_report, now=datetime.now(UTC))
    finally:
        await vk.aclose()


def on_wall_now(world: VkWorld, owner: int = OWNER) -> set[int]:
    """What VK holds now: every comment of the posts on the wall."""
    return world.expected_comments(owner)


def marked_gone(store: InMemoryStore, world: VkWorld, owner: int = OWNER) -> set[int]:
    """Stored comments marked deleted that VK no longer has at all: what ``mark_vanished`` marked
    (VK's own ``deleted: true`` placeholders are marked too, but VK still shows them)."""
    return {vk_id for (o, vk_id), (row_id, _, _) in store.comments.items()
            if o == owner and row_id in store.deleted_at and (owner, vk_id) not in world.comments}


def stored_present(store: InMemoryStore, world: VkWorld, owner: int = OWNER) -> set[int]:
    """Stored and not marked gone, on the posts still on the wall."""
    live_posts = {p.id for p in world.walls[owner]}
    gone = marked_gone(store, world, owner)
    return {vk_id for vk_id in store.comment_ids(owner)
            if vk_id not in gone and store.comment(owner, vk_id).post_vk_id in live_posts}


# --- the emulator moves like VK -------------------------------------------------------------


async def api(app: VkEmulator, method: str, **params) -> dict:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vk") as client:
        response = await client.post(f"/method/{method}", data={"access_token": "t", "v": "5.199", **params})
    return response.json()


async def test_start_comment_id_starts_at_that_comment_or_the_nearest_earlier_one():
    world = small_world(posts=1, comments=30, replies_every=10)
    app = VkEmulator(world)
    post = world.walls[OWNER][0]
    top = [c.id for c in post.comments]

    async def ids(**params) -> list[int]:
        body = await api(app, "wall.getComments", owner_id=str(OWNER), post_id=str(post.id), count="5", **params)
        return [item["id"] for item in body["response"]["items"]]

    assert await ids(start_comment_id=str(top[7])) == top[7:12]
    assert await ids(start_comment_id=str(top[7]), offset="2") == top[9:14]  # offset counts from there
    world.delete_comment(OWNER, top[7])  # no replies: it vanishes
    assert await ids(start_comment_id=str(top[7])) == [top[6], *top[8:12]]  # the nearest earlier one
    assert await ids(start_comment_id=str(top[7]), offset="1") == top[8:13]
    assert await ids(start_comment_id="1") == top[:5]  # none earlier: from the start
    # In a thread (comment_id) as well.
    root = post.comments[0]
    replies = [r.id for r in root.replies]
    body = await api(app, "wall.getComments", owner_id=str(OWNER), post_id=str(post.id), comment_id=str(root.id),
                     start_comment_id=str(replies[1]), count="5")
    assert [i["id"] for i in body["response"]["items"]] == replies[1:]


async def test_deletions_follow_vk_and_counts_follow_the_world():
    world = small_world(posts=1, comments=5, replies_every=2)  # comments 0, 2 and 4 have 3 replies each
    app = VkEmulator(world)
    post = world.walls[OWNER][0]
    with_replies, plain = post.comments[0], post.comments[1]
    before = post.comments_count
    world.delete_comment(OWNER, plain.id)  # vanishes
    world.delete_comment(OWNER, with_replies.id)  # stays, as deleted: true
    body = (await api(app, "wall.getComments", owner_id=str(OWNER), post_id=str(post.id), count="100",
                      thread_items_count="10"))["response"]
    items = {i["id"]: i for i in body["items"]}
    assert plain.id not in items and items[with_replies.id]["deleted"] is True and items[with_replies.id]["text"] == ""
    assert body["count"] == before - 1 and body["current_level_count"] == 4
    for reply in list(with_replies.replies):  # its last reply gone, the placeholder goes too
        world.delete_comment(OWNER, reply.id)
    body = (await api(app, "wall.getComments", owner_id=str(OWNER), post_id=str(post.id), count="100"))["response"]
    assert with_replies.id not in {i["id"] for i in body["items"]} and body["current_level_count"] == 3
    wall = (await api(app, "wall.get", owner_id=str(OWNER), count="100"))["response"]
    assert wall["items"][0]["comments"]["count"] == body["count"] == post.comments_count


async def test_a_deleted_post_answers_15_and_a_new_one_comes_first_after_the_pinned():
    world = small_world(posts=4, comments=2)
    world.walls[OWNER][-1].is_pinned = True
    world.finish()
    app = VkEmulator(world)
    gone = world.walls[OWNER][2]
    world.remove_post(OWNER, gone.id)
    body = await api(app, "wall.getComments", owner_id=str(OWNER), post_id=str(gone.id))
    assert body["error"]["error_code"] == 15
    assert body["error"]["error_msg"] == "Access denied: post was not found check post_id param"
    WallDrift(world, seed=1)._publish_post(OWNER)
    items = (await api(app, "wall.get", owner_id=str(OWNER), count="100"))["response"]["items"]
    assert items[0]["is_pinned"] == 1 and items[1]["id"] == max(p.id for p in world.posts.values())
    assert len(items) == 4


def test_drift_is_the_same_for_a_seed_whatever_the_requests():
    def run(steps: list[int]) -> tuple[dict, set[int]]:
        world = generated_world(4, communities=1, posts_per_community=20, comments_per_post=10, closed_communities=0)
        drift = WallDrift(world, rate=2.5, seed=9, budget=60)
        for n in steps:
            for _ in range(n):
                drift.step()
        return dict(drift.made), world.expected_comments(-100001)

    made, ids = run([100])
    assert sum(made.values()) == 60 and set(made) == {k for k, _ in WallDrift.KINDS}
    assert run([7, 50, 43]) == (made, ids)


async def test_drift_writes_photo_only_comments_that_are_stored_with_empty_text():
    world = generated_world(2, communities=1, posts_per_community=10, comments_per_post=5, closed_communities=0)
    app = VkEmulator(world, drift=3, drift_seed=5, drift_budget=80)
    store = InMemoryStore()
    await collect(app, store, owner=-100001, concurrency=1)
    photos = [c for c in world.comments.values() if c.attachments]
    assert photos and all(c.text == "" for c in photos)
    assert any(store.comment(-100001, c.id).text == "" for c in photos if (-100001, c.id) in store.comments)


# --- the collector loses nothing ------------------------------------------------------------


async def test_comments_deleted_on_a_page_already_read_shift_nothing_past_the_read():
    world = small_world(posts=2, comments=250)
    app = ScriptedEmulator(world)
    post = world.walls[OWNER][0]
    early = [c.id for c in post.comments[10:15]]
    app.on(comments_call(post.id, offset=100), lambda: [world.delete_comment(OWNER, i) for i in early])
    store = InMemoryStore()
    result = await collect(app, store)
    assert stored_present(store, world) == on_wall_now(world)
    assert result.rereads >= 1 and result.unsettled_posts == []
    # What a read saw and VK then deleted is kept, marked.
    assert marked_gone(store, world) == set(early)


async def test_comments_written_while_and_after_a_post_is_read_are_stored():
    world = small_world(posts=3, comments=150, replies_every=20)
    app = ScriptedEmulator(world)
    first, second, third = world.walls[OWNER]
    root = first.comments[0].id
    added: list[int] = []
    # While the first post's second page is asked for: new comments at its end, a reply in a thread.
    app.on(comments_call(first.id, offset=100), lambda: added.extend(write(world, first.id, 3) + write(world, first.id, 1, root)))
    # After it was read (the next post's first page): more of both.
    app.on(comments_call(second.id, offset=0), lambda: added.extend(write(world, first.id, 2) + write(world, first.id, 2, root)))
    app.on(comments_call(third.id, offset=0), lambda: added.extend(write(world, second.id, 1)))
    store = InMemoryStore()
    result = await collect(app, store, concurrency=1)  # one post after another: "after" is after
    assert len(added) == 9 and set(added) <= store.comment_ids(OWNER)
    assert stored_present(store, world) == on_wall_now(world)
    assert not marked_gone(store, world) and result.unsettled_posts == []


async def test_posts_published_and_deleted_while_the_wall_is_listed_shift_nothing_out():
    world = small_world(posts=150, comments=2)
    app = ScriptedEmulator(world)
    drift = WallDrift(world, seed=3)

    published: list[int] = []

    def move() -> None:
        drift._publish_post(OWNER)  # it comes first, pushing one post into the second page
        published.append(world.walls[OWNER][0].id)
        write(world, published[0], 4)
        for index in (10, 30, 50):  # three of the first page go: two posts slide back into it
            world.remove_post(OWNER, world.walls[OWNER][index].id)

    app.on(wall_call(offset=100), move)
    store = InMemoryStore()
    result = await collect(app, store)
    assert len(store.comment_ids(OWNER) & set(world.walls[OWNER][0].comments and [c.id for c in world.walls[OWNER][0].comments])) == 4
    assert stored_present(store, world) == on_wall_now(world)
    assert result.unsettled_posts == []


async def test_a_post_deleted_between_the_wall_and_its_comments_is_skipped_not_the_community():
    world = small_world(posts=5, comments=120)
    app = ScriptedEmulator(world)
    store = InMemoryStore()
    await collect(app, store)  # a first run stores it all
    doomed, busy = world.walls[OWNER][1], world.walls[OWNER][3]
    write(world, doomed.id, 1)
    write(world, busy.id, 1)  # both must be read again
    app.on(comments_call(doomed.id), lambda: world.remove_post(OWNER, doomed.id))
    app.on(comments_call(busy.id, offset=100), lambda: world.remove_post(OWNER, busy.id))  # on its second page
    result = await collect(app, store)
    assert sorted(s["postId"] for s in result.skipped_posts) == sorted([doomed.id, busy.id])
    assert all("post was not found" in s["reason"] for s in result.skipped_posts)
    assert stored_present(store, world) == on_wall_now(world)
    assert not marked_gone(store, world)  # a post that could not be read completely marks nothing


async def test_a_pinned_old_post_does_not_stop_a_date_bounded_crawl():
    world = small_world(posts=250, comments=1)
    oldest = min(world.walls[OWNER], key=lambda p: p.date)
    oldest.is_pinned = True
    world.finish()
    bound = sorted(p.date for p in world.walls[OWNER])[80]  # 170 posts are newer: two pages
    app = VkEmulator(world)
    store = InMemoryStore()
    result = await collect(app, store, since=datetime.fromtimestamp(bound, UTC))
    newer = {p.id for p in world.walls[OWNER] if p.date >= bound}
    assert result.posts == len(newer) == 170
    assert {store.comment(OWNER, i).post_vk_id for i in store.comment_ids(OWNER)} == newer


async def test_comments_gone_between_runs_are_marked_never_erased():
    world = small_world(posts=2, comments=20, replies_every=5)
    app = VkEmulator(world)
    store = InMemoryStore()
    await collect(app, store)
    post = world.walls[OWNER][0]
    plain = next(c for c in post.comments if not c.replies)
    threaded = next(c for c in post.comments if c.replies)
    world.delete_comment(OWNER, plain.id)  # vanishes from VK
    world.delete_comment(OWNER, threaded.id)  # stays as deleted: true
    result = await collect(app, store)
    assert plain.id in store.comment_ids(OWNER) and marked_gone(store, world) == {plain.id}  # kept, marked
    assert store.comment(OWNER, threaded.id).deleted and (OWNER, threaded.id) in world.comments  # VK's placeholder
    assert result.vanished == 1 and stored_present(store, world) == on_wall_now(world)


def balanced(store: InMemoryStore, world: VkWorld, owner: int) -> tuple[int, int]:
    """Per post on the wall, the comments VK has that were not stored must be as many as the
    stored ones VK lost unnoticed: only a deletion and an addition on one post between two looks
    at it leave every count VK reports as it was, and nothing short of reading the post again
    shows them. Returns (missed, lost unnoticed) in all."""
    got, want = stored_present(store, world, owner), on_wall_now(world, owner)
    missed: dict[int, int] = {}
    for vk_id in want - got:
        post = world.comments[(owner, vk_id)].post_id
        missed[post] = missed.get(post, 0) + 1
    unnoticed: dict[int, int] = {}
    for vk_id in got - want:
        post = store.comment(owner, vk_id).post_vk_id
        unnoticed[post] = unnoticed.get(post, 0) + 1
    assert missed == unnoticed, (missed, unnoticed)
    return sum(missed.values()), sum(unnoticed.values())


@pytest.mark.parametrize(("seed", "execute"), [(1, False), (2, False), (3, True), (4, True)])
async def test_a_wall_moving_at_random_is_stored_as_vk_counts_it(seed: int, execute: bool):
    world = generated_world(seed, communities=1, posts_per_community=60, comments_per_post=40, long_threads=(130, 250),
                            closed_comment_posts=1, closed_communities=0)
    owner = -100001
    # Without execute every call is a request, and the wall moves between any two pages. The
    # budget runs out while the wall is read: a wall that never stops moving never settles.
    app = VkEmulator(world, drift=0.5 if not execute else 4, drift_seed=seed, drift_budget=40)
    store = InMemoryStore()
    result = await collect(app, store, owner=owner, vk_options={"use_execute": execute})
    assert sum(app.drift.made.values()) == 40  # the wall did move while it was read
    assert result.unsettled_posts == [] and result.rereads > 0
    missed, _ = balanced(store, world, owner)
    assert missed <= 3  # of some 3,000
    # Stored once each (the store is keyed by (owner, id)); what VK lost since it was read is
    # kept, and marked unless an addition on its post balanced it.
    assert marked_gone(store, world, owner)


async def test_on_a_still_wall_the_check_costs_one_listing():
    world = generated_world(6, communities=1, posts_per_community=120, comments_per_post=20, closed_communities=0)
    app = VkEmulator(world)
    store = InMemoryStore()
    result = await collect(app, store, owner=-100001)
    wall_pages = math.ceil(len(world.walls[-100001]) / 100)
    assert app.stats()["calls"] == world.minimal_calls(-100001) + wall_pages
    assert result.rereads == 0 and not marked_gone(store, world, -100001)
    # An incremental run of a wall that did not change: the listing, the post whose comments are
    # closed (never collected, so asked again), the check.
    app.reset()
    again = await collect(app, store, owner=-100001)
    assert again.posts_read == 1 and app.stats()["calls"] == 2 * wall_pages + 1


async def test_a_wall_that_never_stops_moving_leaves_its_busy_posts_for_the_next_run():
    world = small_world(posts=4, comments=150)
    app = VkEmulator(world, drift=2, drift_seed=4)  # no budget: it moves until the end
    store = InMemoryStore()
    result = await collect(app, store, vk_options={"use_execute": False})
    # Said, not hidden behind SUCCEEDED; and the run ends (ROUNDS listings at most).
    assert result.unsettled_posts and set(result.unsettled_posts) <= {p.id for p in world.posts.values()} | {
        p for _, p in world.deleted_posts}


async def test_a_cancelled_run_marks_nothing_it_did_not_read_completely():
    import asyncio

    world = small_world(posts=1, comments=250)
    app = ScriptedEmulator(world)
    store = InMemoryStore()
    await collect(app, store)
    post = world.walls[OWNER][0]
    gone = post.comments[5].id
    world.delete_comment(OWNER, gone)
    write(world, post.id, 2)
    loop = asyncio.get_running_loop()
    run = asyncio.ensure_future(collect(app, store))
    app.on(comments_call(post.id, offset=200), lambda: loop.call_soon_threadsafe(run.cancel))
    with pytest.raises(asyncio.CancelledError):
        await run
    assert gone in store.comment_ids(OWNER) and not marked_gone(store, world)


async def test_a_thread_gone_while_it_is_read_is_read_again_not_a_failed_parse():
    world = small_world(posts=1, comments=3)
    post = world.walls[OWNER][0]
    root = post.comments[1]
    write(world, post.id, 30, thread_root=root.id)
    app = ScriptedEmulator(world)

    def purge() -> None:  # a moderator removes the comment and its whole thread
        world.delete_comment(OWNER, root.id)
        for reply in list(root.replies):
            world.delete_comment(OWNER, reply.id)

    app.on(lambda method, params: method == "wall.getComments" and "comment_id" in params, purge)
    store = InMemoryStore()
    result = await collect(app, store)
    assert result.rereads >= 1 and result.unsettled_posts == []
    assert stored_present(store, world) == on_wall_now(world) == {c.id for c in post.comments}


async def test_a_listing_that_leaves_out_the_kept_deleted_comments_settles_too():
    """VK does not say whether a post's comments.count counts a deleted comment kept for its
    replies; a wall that leaves them out must settle as well, and its next run read nothing."""
    world = small_world(posts=6, comments=30, replies_every=4)
    for post in world.walls[OWNER]:
        world.delete_comment(OWNER, post.comments[4].id)  # kept: it has replies

    class LeavesThemOut(VkEmulator):
        def __init__(self, world: VkWorld) -> None:
            super().__init__(world)
            shape = self.methods._post

            def post_without_kept(post: WorldPost) -> dict:
                out = shape(post)
                out["comments"]["count"] -= sum(1 for c in post.comments if c.deleted and c.replies)
                return out

            self.methods._post = post_without_kept

    app = LeavesThemOut(world)
    store = InMemoryStore()
    first = await collect(app, store)
    assert first.unsettled_posts == [] and stored_present(store, world) == on_wall_now(world)
    again = await collect(app, store)
    assert again.posts_read == 0 and again.rereads == 0
