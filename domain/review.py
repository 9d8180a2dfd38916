"""Review: people mark comments viewed (read) and archived (dealt with), and a team works its
queue — a status, who it is assigned to, free tags and a note per comment — many at once.

Every change is recorded: one ``CommentEvent`` per changed field per comment (who: the API
token's name; what: old -> new; when), written in the transaction that makes the change, so
the trail and the state cannot disagree. Nothing edits or deletes an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from domain.errors import InvalidInput, InvalidReference, NotFound
from domain.models import CommentEvent, CommentStatus, WorkflowState
from domain.ports import Adapters
from domain.stats import invalidate_stats
from domain.text import checked_text

MAX_BULK = 1000  # ids per call
MAX_TAG = 50  # characters of one tag
MAX_TAGS = 20  # tags on one comment
MAX_NOTE = 4000  # characters of a note
MAX_ASSIGNEE = 200  # an API token's name (api_tokens.name)
NO_ACTOR = "(auth off)"  # who changed something when VKCP_AUTH=off (there is no token)


@dataclass(frozen=True)
class StateChange:
    """What ``set_comment_state`` changes; None leaves a field as it is. ``assignee`` and
    ``note``: an empty string clears them. Tags are added and removed, the rest kept."""

    viewed: bool | None = None
    archived: bool | None = None
    status: CommentStatus | None = None
    assignee: str | None = None
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    note: str | None = None

    @property
    def empty(self) -> bool:
        return self == StateChange()


def normal_tag(tag: str, *, field: str) -> str:
    """A tag as stored and compared: trimmed, inner spaces as one, lowercase ("Срочно " and
    "срочно" are one label). Empty, too long or with a comma (exports list tags comma-separated):
    InvalidInput."""
    checked_text(tag, field=field)
    normal = " ".join(tag.split()).lower()
    if not normal:
        raise InvalidInput("A tag cannot be empty", field=field)
    if len(normal) > MAX_TAG:
        raise InvalidInput(f"A tag is at most {MAX_TAG} characters: '{normal[:MAX_TAG]}…'", field=field)
    if "," in normal:
        raise InvalidInput(f"A tag cannot contain a comma: '{normal}'", field=field)
    return normal


def normal_tags(tags: Sequence[str], *, field: str) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(normal_tag(t, field=field) for t in tags))
    if len(found) > MAX_TAGS:
        raise InvalidInput(f"At most {MAX_TAGS} tags at once", field=field)
    return found


def checked_change(change: StateChange) -> StateChange:
    """``change`` with its tags, assignee and note in their stored form; InvalidInput for what
    cannot be stored."""
    if change.empty:
        raise InvalidInput(
            "Give something to change: viewed, archived, status, assignee, addTags, removeTags or note", field="viewed"
        )
    add = normal_tags(change.add_tags, field="addTags")
    remove = normal_tags(change.remove_tags, field="removeTags")
    if both := sorted(set(add) & set(remove)):
        raise InvalidInput(f"A tag cannot be both added and removed: {', '.join(both)}", field="addTags")
    assignee = change.assignee
    if assignee is not None:
        assignee = checked_text(assignee, field="assignee").strip()
        if len(assignee) > MAX_ASSIGNEE:
            raise InvalidInput(f"`assignee` is longer than {MAX_ASSIGNEE} characters", field="assignee")
    note = change.note
    if note is not None:
        checked_text(note, field="note")
        if len(note) > MAX_NOTE:
            raise InvalidInput(f"`note` is longer than {MAX_NOTE} characters", field="note")
    return replace(change, add_tags=add, remove_tags=remove, assignee=assignee, note=note)


def applied(state: WorkflowState, change: StateChange) -> WorkflowState:
    """The state ``change`` (checked) leaves a comment in."""
    tags = state.tags
    if change.add_tags or change.remove_tags:
        kept = [t for t in tags if t not in change.remove_tags]
        tags = tuple(sorted(set(kept) | set(change.add_tags)))
    return WorkflowState(
        id=state.id,
        viewed=state.viewed if change.viewed is None else change.viewed,
        archived=state.archived if change.archived is None else change.archived,
        status=state.status if change.status is None else change.status,
        assignee=state.assignee if change.assignee is None else (change.assignee or None),
        tags=tags,
        note=state.note if change.note is None else (change.note or None),
    )


FIELDS = ("status", "assignee", "tags", "note", "viewed", "archived")


def event_value(field: str, value: object) -> str | None:
    """A field's value as an event records it: a status by name, tags comma-separated (None for
    none), a flag as ``true``/``false``, a name or a note as it is."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(value) or None
    if isinstance(value, CommentStatus):
        return value.value
    return str(value)


def events_of(before: WorkflowState, after: WorkflowState, *, actor: str, at: datetime) -> list[CommentEvent]:
    """One event per field that changed, in ``FIELDS`` order."""
    found = []
    for name in FIELDS:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            found.append(CommentEvent(
                comment_id=before.id, at=at, actor=actor, field=name,
                old_value=event_value(name, old), new_value=event_value(name, new),
            ))
    return found


async def set_comment_state(
    adapters: Adapters,
    comment_ids: Sequence[int],
    change: StateChange | None = None,
    *,
    viewed: bool | None = None,
    archived: bool | None = None,
    actor: str | None = None,
) -> list[int]:
    """Change the review state of many comments at once, recording each change; returns the ids
    that exist, in the order given. ``actor``: the API token's name (None: auth is off)."""
    if change is None:
        change = StateChange(viewed=viewed, archived=archived)
    if not comment_ids:
        raise InvalidInput("Give at least one comment id", field="ids")
    if len(comment_ids) > MAX_BULK:
        raise InvalidInput(f"At most {MAX_BULK} comments at once", field="ids")
    change = checked_change(change)
    ids = list(dict.fromkeys(comment_ids))
    who = actor or NO_ACTOR
    async with adapters.uow_factory() as uow:
        if change.assignee:
            live = {t.name for t in await uow.api_tokens.list() if t.revoked_at is None}
            if change.assignee not in live:
                raise InvalidReference(
                    f"No live API token is named '{change.assignee}': assign to a token holder's name",
                    field="assignee",
                )
        before = await uow.comments.workflow_states(ids)
        now = adapters.clock.now()
        after = [applied(state, change) for state in before]
        if any(len(state.tags) > MAX_TAGS for state in after):
            raise InvalidInput(f"A comment can have at most {MAX_TAGS} tags", field="addTags")
        events = [e for old, new in zip(before, after, strict=True) for e in events_of(old, new, actor=who, at=now)]
        if change.viewed is not None or change.archived is not None:
            await uow.comments.set_state([s.id for s in before], viewed=change.viewed, archived=change.archived)
        moved = [new for old, new in zip(before, after, strict=True) if _workflow(old) != _workflow(new)]
        if moved:
            await uow.comments.set_workflow(moved)
        if events:
            await uow.comments.add_events(events)
        await uow.commit()
    if any(old.status != new.status for old, new in zip(before, after, strict=True)):
        await invalidate_stats(adapters.cache)  # the counts by status
    found = {s.id for s in before}
    if not found:
        raise NotFound(f"No comment with id {', '.join(map(str, sorted(ids)[:10]))}", field="ids")
    return [i for i in ids if i in found]


def _workflow(state: WorkflowState) -> tuple[object, ...]:
    return state.status, state.assignee, state.tags, state.note
