"""The gateway packs concurrent calls into execute requests and parses VK into domain objects.

Runs the real adapter against the emulator in-process (httpx.ASGITransport): no network.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import httpx

from domain.collect import CollectOptions, collect_group
from infrastructure.vk.emulator import VkEmulator
from infrastructure.vk.gateway import HttpVkGateway, execute_code
from infrastructure.vk.world import VkWorld, WorldComment, WorldGroup, WorldPost, generated_world, sandbox_world
from tests.fakes import InMemoryStore, no_report

WORLD = generated_world(11, communities=2, posts_per_community=30, comments_per_post=10,
                        closed_comment_posts=0, closed_communities=1)


def gateway(app: VkEmulator, tokens=("tok",), **options) -> HttpVkGateway:
    options.setdefault("rps", 1000)
    options.setdefault("backoff_factor", 0.001)
    return HttpVkGateway("http://vk/method", list(tokens), transport=httpx.ASGITransport(app=app), **options)


async def test_concurrent_calls_share_execute_requests():
    app = VkEmulator(WORLD)
    vk = gateway(app)
    posts = (await vk.wall_page(-100001, 0)).posts
    pages = await asyncio.gather(*(vk.comments_page(-100001, p.vk_id, 0) for p in posts))
    await vk.aclose()
    assert [len([c for c in page.comments if c.thread_vk_id is None]) for page in pages] == [
        len(WORLD.posts[(-100001, p.vk_id)].comments) for p in posts]
    # one wall.get, then 30 pages in ceil(30 / 25) = 2 executes
    assert app.stats()["requests_total"] == 3
    assert vk.stats.requests == 3 and vk.stats.calls == 31


async def test_without_execute_every_call_is_a_request():
    app = VkEmulator(WORLD)
    vk = gateway(app, use_execute=False)
    await asyncio.gather(*(vk.resolve_screen_name("community1") for _ in range(5)))
    await vk.aclose()
    assert app.stats()["requests_total"] == 5


async def test_collects_exactly_the_world_with_minimal_calls():
    app = VkEmulator(WORLD)
    vk = gateway(app)
    store = InMemoryStore()
    for owner in WORLD.open_owner_ids():
        async with store.uow_factory() as uow:
            group = await uow.groups.add((await vk.get_groups([-owner]))[0])
            await uow.commit()
        app.reset()
        result = await collect_group(group, vk=vk, uow_factory=store.uow_factory, options=CollectOptions(),
                                     report=no_report, now=datetime.now(UTC))
        assert store.comment_ids(owner) == WORLD.expected_comments(owner)
        # Every page fetched exactly once, and the wall listed once more to see it held still.
        assert app.stats()["calls"] == WORLD.minimal_calls(owner) + math.ceil(len(WORLD.walls[owner]) / 100)
        assert result.rereads == 0 and result.unsettled_posts == []
        assert result.authors_looked_up == 0  # authors came with the pages
    await vk.aclose()
    every_author = {c.from_id for _, _, c in store.comments.values()}
    assert every_author <= set(store.authors)


async def test_parses_comments_threads_and_authors():
    world = sandbox_world()
    vk = gateway(VkEmulator(world))
    owner = -11001
    post = next(p for p in world.walls[owner] if any(len(c.replies) > 10 for c in p.comments))
    root = next(c for c in post.comments if len(c.replies) > 10)
    page = await vk.comments_page(owner, post.id, 0)
    assert page.total == post.comments_count and page.level_count == len(post.comments)
    assert page.threads[root.id] == (len(root.replies), 10)
    rest = await vk.thread_page(owner, post.id, root.id, 10)
    await vk.aclose()
    replies = [c for c in page.comments if c.thread_vk_id == root.id] + rest.comments
    assert [c.vk_id for c in replies] == [r.id for r in root.replies]
    for got, want in zip(replies, root.replies, strict=True):
        assert got.thread_vk_id == root.id
        assert got.parent_vk_id == (want.reply_to_comment or root.id)
        assert got.reply_to_user == want.reply_to_user
        assert got.deleted == want.deleted and got.text == want.text
        assert got.published_at == datetime.fromtimestamp(want.date, UTC)
    names = {a.vk_id: a for a in page.authors}
    some_user = next(c.from_id for c in page.comments if c.from_id > 0)
    user = world.users[some_user]
    assert names[some_user].name == f"{user.first_name} {user.last_name}"
    assert names[some_user].screen_name == user.screen_name


async def test_parses_posts_and_groups():
    world = sandbox_world()
    vk = gateway(VkEmulator(world))
    page = await vk.wall_page(-11001, 0, 100)
    [group] = await vk.get_groups([11005])
    await vk.aclose()
    pinned = page.posts[0]
    source = world.posts[(-11001, pinned.vk_id)]
    assert pinned.is_pinned and pinned.comments_count == source.comments_count
    assert (pinned.likes, pinned.reposts, pinned.views) == (source.likes, source.reposts, source.views)
    assert pinned.published_at.tzinfo is not None and not pinned.comments_closed
    assert (group.vk_id, group.screen_name, group.is_closed) == (11005, "closed_club", True)
    assert group.members_count == 214 and group.description


async def test_too_big_answers_are_split_until_they_fit():
    world = VkWorld()
    world.add_group(WorldGroup(1, "Болтуны", "talkers"))
    for post_id in range(1, 13):
        post = world.add_post(WorldPost(post_id, -1, -1, 1_700_000_000 + post_id, "пост"))
        for i in range(100):
            world.add_comment(post, WorldComment(1000 * post_id + i, -1, post_id, -1, 1_700_000_000, "слово " * 500))
    app = VkEmulator(world.finish())
    vk = gateway(app)
    pages = await asyncio.gather(*(vk.comments_page(-1, post_id, 0) for post_id in range(1, 13)))
    await vk.aclose()
    assert all(len(p.comments) == 100 for p in pages)
    assert vk.stats.splits >= 1 and app.stats()["errors"]["13"] >= 1


def test_execute_code_is_the_plain_form():
    code = execute_code([("wall.get", {"owner_id": -1, "count": 100}), ("users.get", {"user_ids": "1,2"})])
    assert code == 'return [API.wall.get({"owner_id":-1,"count":100}),API.users.get({"user_ids":"1,2"})];'


async def test_sandbox_gateway_collects_a_sandbox_community():
    from infrastructure.vk.sandbox import sandbox_gateway

    world = sandbox_world()
    vk = sandbox_gateway()
    store = InMemoryStore()
    try:
        kind, vk_id = await vk.resolve_screen_name("koshki_spb")
        [group] = await vk.get_groups([vk_id])
        async with store.uow_factory() as uow:
            group = await uow.groups.add(group)
            await uow.commit()
        await collect_group(group, vk=vk, uow_factory=store.uow_factory, options=CollectOptions(),
                            report=no_report, now=datetime.now(UTC))
    finally:
        await vk.aclose()
    assert (kind, group.name) == ("page", "Кошки Петербурга")
    assert store.comment_ids(-vk_id) == world.expected_comments(-vk_id)
    texts = [c.text for _, _, c in store.comments.values()]
    assert any("кошк" in t for t in texts) and any(c.deleted for _, _, c in store.comments.values())


async def test_authors_vk_left_out_of_the_pages_are_looked_up_once_at_the_end():
    """VK's ``profiles`` sometimes lack a comment's author (a deleted page): those, and only
    those, are asked for with users.get after the parse."""
    app = VkEmulator(WORLD)
    vk = gateway(app)
    owner = WORLD.open_owner_ids()[0]
    left_out = sorted({c.from_id for (o, _), c in WORLD.comments.items() if o == owner and c.from_id > 0})[:2]

    async def without_some_profiles(page):
        page = await page
        page.authors = [a for a in page.authors if a.vk_id not in left_out]
        return page

    pages, threads = vk.comments_page, vk.thread_page
    vk.comments_page = lambda *a, **k: without_some_profiles(pages(*a, **k))
    vk.thread_page = lambda *a, **k: without_some_profiles(threads(*a, **k))
    store = InMemoryStore()
    async with store.uow_factory() as uow:
        group = await uow.groups.add((await vk.get_groups([-owner]))[0])
        await uow.commit()
    result = await collect_group(group, vk=vk, uow_factory=store.uow_factory, options=CollectOptions(),
                                 report=no_report, now=datetime.now(UTC))
    await vk.aclose()
    assert result.authors_looked_up == len(left_out) == 2
    assert {c.from_id for _, _, c in store.comments.values()} <= set(store.authors)


async def test_a_full_re_read_stores_edits_and_deletions_and_rematches():
    """Between two runs a comment is edited and another (with replies) deleted on VK: a full
    run keeps the edited one's text before it and matches its new text; the deleted one keeps
    its text, author and matches; an incremental run sees neither (no count changed)."""
    from bootstrap import build_matcher_factory

    world = generated_world(11, communities=1, posts_per_community=8, comments_per_post=10,
                            closed_comment_posts=0, closed_communities=0)
    vk = gateway(VkEmulator(world))
    store = InMemoryStore()
    store.add_keyword("кошка")
    giraffe = store.add_keyword("жираф")
    async with store.uow_factory() as uow:
        group = await uow.groups.add((await vk.get_groups([100001]))[0])
        await uow.commit()
    tops = [c for p in world.walls[-100001] for c in p.comments if not c.deleted and "кошк" in c.text.lower()]
    edited, deleted = next(c for c in tops if not c.replies), next(c for c in tops if c.replies)

    async def run(full: bool) -> None:
        await collect_group(group, vk=vk, uow_factory=store.uow_factory, options=CollectOptions(full=full),
                            report=no_report, now=datetime.now(UTC), matcher_factory=build_matcher_factory())

    await run(full=False)
    row = {c.id: store.comments[(-100001, c.id)][0] for c in (edited, deleted)}
    deleted_matches = store.matches[row[deleted.id]]
    edited_text, deleted_text = edited.text, deleted.text  # the world's objects change
    world.edit_comment(-100001, edited.id, "Теперь у нас жираф")
    world.delete_comment(-100001, deleted.id)
    await run(full=False)
    assert store.comment(-100001, edited.id).text == edited_text and not store.versions
    await run(full=True)
    await vk.aclose()
    assert store.comment(-100001, edited.id).text == "Теперь у нас жираф"
    assert [text for text, _ in store.versions[row[edited.id]]] == [edited_text]
    assert row[edited.id] in store.edited_at
    assert [m.keyword_id for m in store.matches[row[edited.id]]] == [giraffe.id]
    kept = store.comment(-100001, deleted.id)
    assert kept.deleted and kept.text == deleted_text and kept.from_id == deleted.from_id
    assert row[deleted.id] in store.deleted_at and store.matches[row[deleted.id]] == deleted_matches
    assert row[deleted.id] not in store.versions
