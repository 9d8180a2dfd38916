"""The review workflow's use case over the in-memory fakes: what a bulk change does to each
comment, the events it records (one per changed field per comment, in its transaction), and the
coded refusals of bad input, which change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.auth import hash_token
from domain.errors import InvalidInput, InvalidReference, NotFound
from domain.models import Comment, CommentStatus
from domain.ports import Adapters
from domain.queries import CommentFilter, CommentView
from domain.review import MAX_TAGS, NO_ACTOR, StateChange, normal_tag, set_comment_state
from tests.fakes import FakeClock, InMemoryStore

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def make_adapters(store: InMemoryStore) -> Adapters:
    return Adapters(
        uow_factory=store.uow_factory,
        vk=None,  # type: ignore[arg-type]  # review never calls VK
        queue=None,  # type: ignore[arg-type]
        events=None,  # type: ignore[arg-type]
        clock=FakeClock(),
    )


async def setup(store: InMemoryStore, n: int = 3) -> list[int]:
    comments = [Comment(-1, i + 1, 1, 100 + i, f"текст {i}", T0) for i in range(n)]
    async with store.uow_factory() as uow:
        ids = await uow.comments.upsert_many(1, comments)
        await uow.api_tokens.add(name="Анна", role="operator", token_hash=hash_token("a"))
        revoked = await uow.api_tokens.add(name="Борис", role="operator", token_hash=hash_token("b"))
        await uow.api_tokens.revoke(revoked.id)
        await uow.commit()
    return [ids[(-1, i + 1)] for i in range(n)]


def events(store: InMemoryStore) -> list[tuple[int, str, str, str | None, str | None]]:
    return [(e.comment_id, e.actor, e.field, e.old_value, e.new_value) for _, e in sorted(store.events.items())]


async def test_a_bulk_change_sets_every_field_and_records_one_event_per_changed_field() -> None:
    store = InMemoryStore()
    a, b, c = await setup(store)
    adapters = make_adapters(store)
    await set_comment_state(adapters, [a], StateChange(add_tags=("Срочно",)), actor="Анна")
    store.events.clear()

    changed = await set_comment_state(
        adapters, [b, a, 10**6],
        StateChange(status=CommentStatus.IN_PROGRESS, assignee=" Анна ", add_tags=("срочно ", "Доставка"),
                    note="позвонить", viewed=True),
        actor="Анна",
    )

    assert changed == [b, a]  # those that exist, in the order given
    assert store.workflow[a].tags == ("доставка", "срочно")  # normalised, sorted, once
    assert store.workflow[a].assignee == "Анна" and store.workflow[a].status is CommentStatus.IN_PROGRESS
    assert c not in store.workflow
    assert events(store) == [
        (a, "Анна", "status", "NEW", "IN_PROGRESS"),
        (a, "Анна", "assignee", None, "Анна"),
        (a, "Анна", "tags", "срочно", "доставка, срочно"),
        (a, "Анна", "note", None, "позвонить"),
        (a, "Анна", "viewed", "false", "true"),
        (b, "Анна", "status", "NEW", "IN_PROGRESS"),
        (b, "Анна", "assignee", None, "Анна"),
        (b, "Анна", "tags", None, "доставка, срочно"),
        (b, "Анна", "note", None, "позвонить"),
        (b, "Анна", "viewed", "false", "true"),
    ]


async def test_nothing_changed_is_no_event_and_empty_strings_clear() -> None:
    store = InMemoryStore()
    a, *_ = await setup(store)
    adapters = make_adapters(store)
    await set_comment_state(adapters, [a], StateChange(assignee="Анна", note="x", add_tags=("t",)), actor=None)
    store.events.clear()
    await set_comment_state(adapters, [a], StateChange(assignee="Анна", remove_tags=("absent",)), actor="Анна")
    assert events(store) == []
    await set_comment_state(adapters, [a], StateChange(assignee="", note="", remove_tags=("T",)), actor=None)
    assert events(store) == [
        (a, NO_ACTOR, "assignee", "Анна", None), (a, NO_ACTOR, "tags", "t", None), (a, NO_ACTOR, "note", "x", None),
    ]
    assert store.workflow[a].assignee is None and store.workflow[a].note is None and store.workflow[a].tags == ()


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        (StateChange(), InvalidInput, "viewed"),
        (StateChange(assignee="Борис"), InvalidReference, "assignee"),  # revoked
        (StateChange(assignee="никто"), InvalidReference, "assignee"),
        (StateChange(add_tags=("  ",)), InvalidInput, "addTags"),
        (StateChange(add_tags=("a,b",)), InvalidInput, "addTags"),
        (StateChange(add_tags=("x" * 51,)), InvalidInput, "addTags"),
        (StateChange(remove_tags=("a\x00",)), InvalidInput, "removeTags"),
        (StateChange(add_tags=("a",), remove_tags=("A",)), InvalidInput, "addTags"),
        (StateChange(add_tags=tuple(f"t{i}" for i in range(MAX_TAGS + 1))), InvalidInput, "addTags"),
        (StateChange(note="n" * 4001), InvalidInput, "note"),
        (StateChange(note="\ud800"), InvalidInput, "note"),
    ],
)
async def test_bad_input_is_refused_with_its_field_and_changes_nothing(change, error, field) -> None:
    store = InMemoryStore()
    a, *_ = await setup(store)
    with pytest.raises(error) as refused:
        await set_comment_state(make_adapters(store), [a], change, actor="Анна")
    assert type(refused.value) is error and refused.value.field == field
    assert store.workflow == {} and store.events == {}


async def test_too_many_tags_on_one_comment_is_refused_as_a_whole() -> None:
    store = InMemoryStore()
    a, b, _ = await setup(store)
    adapters = make_adapters(store)
    await set_comment_state(adapters, [a], StateChange(add_tags=tuple(f"t{i}" for i in range(MAX_TAGS))), actor="Анна")
    before = dict(store.events)
    with pytest.raises(InvalidInput):
        await set_comment_state(adapters, [b, a], StateChange(add_tags=("one more",)), actor="Анна")
    assert store.events == before and b not in store.workflow  # the transaction rolled back


async def test_unknown_ids_only_is_not_found_and_empty_ids_is_bad_input() -> None:
    store = InMemoryStore()
    await setup(store)
    adapters = make_adapters(store)
    with pytest.raises(NotFound):
        await set_comment_state(adapters, [10**6], StateChange(status=CommentStatus.DONE), actor="Анна")
    with pytest.raises(InvalidInput):
        await set_comment_state(adapters, [], StateChange(status=CommentStatus.DONE), actor="Анна")
    assert store.events == {}


def test_tags_are_compared_in_their_normal_form() -> None:
    assert normal_tag("  Срочно   ВАЖНО ", field="addTags") == "срочно важно"


def view(**overrides) -> CommentView:
    values = dict(
        id=1, group_id=1, post_id=10, owner_id=-1, vk_id=1, post_vk_id=5, parent_vk_id=None, thread_vk_id=None,
        from_id=7, text="текст", published_at=T0, likes=0, deleted=False, viewed=False, archived=False,
        matches_count=1,
    )
    values.update(overrides)
    return CommentView(**values)


def test_the_live_filter_knows_the_workflow_fields() -> None:
    assert CommentFilter(statuses=(CommentStatus.NEW,)).admits(view(), [])
    assert not CommentFilter(statuses=(CommentStatus.DONE,)).admits(view(), [])
    assert CommentFilter(statuses=(CommentStatus.DONE,)).admits(view(status="DONE"), [])
    assert not CommentFilter(assignees=("Анна",)).admits(view(), [])
    assert CommentFilter(assignees=("Анна", "Ира")).admits(view(assignee="Анна"), [])
    assert CommentFilter(tags=("b", "z")).admits(view(tags=["a", "b"]), [])
    assert not CommentFilter(tags=("z",)).admits(view(tags=["a", "b"]), [])
    assert not CommentFilter(tags=()).admits(view(tags=["a"]), [])
