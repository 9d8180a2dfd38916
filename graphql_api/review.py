"""The team's review workflow, read side: ``commentEvents`` (a comment's audit trail), ``viewer``
(who is calling: the console's "my queue") and ``assignableUsers`` (whom a comment can be
assigned to). Changes go through ``setCommentState`` (``comments.py``); the trail is append-only:
nothing here or anywhere edits or deletes an event."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry

from domain import auth, models
from graphql_api.api_tokens import ApiRole
from graphql_api.context import Info
from graphql_api.ids import NodeType, find_id
from graphql_api.relay import After, Before, Connection, First, Last, connection, window


@strawberry.enum(description="Which review field an event changed.")
class CommentField(enum.Enum):
    STATUS = strawberry.enum_value("status", description="`status`: a status name.")
    ASSIGNEE = strawberry.enum_value("assignee", description="`assignee`: a name; null: nobody.")
    TAGS = strawberry.enum_value("tags", description="`tags`: comma-separated; null: none.")
    NOTE = strawberry.enum_value("note", description="`note`: the text; null: none.")
    VIEWED = strawberry.enum_value("viewed", description="`viewed`: `true` or `false`.")
    ARCHIVED = strawberry.enum_value("archived", description="`archived`: `true` or `false`.")


@strawberry.type(description="One change of one review field of a comment: who, what (old -> new), when.")
class CommentEvent:
    at: datetime = strawberry.field(description="When it was changed.")
    actor: str = strawberry.field(description="Who changed it: the API token's name ('(auth off)' without auth).")
    field: CommentField = strawberry.field(description="Which field.")
    old_value: str | None = strawberry.field(description="Its value before, as text (see `field`).")
    new_value: str | None = strawberry.field(description="Its value after, as text (see `field`).")

    @classmethod
    def from_domain(cls, e: models.CommentEvent) -> CommentEvent:
        return cls(at=e.at, actor=e.actor, field=CommentField(e.field), old_value=e.old_value, new_value=e.new_value)


CommentEventConnection = Connection[CommentEvent]


@strawberry.field(description="A comment's review changes, oldest first; null when there is no such comment.")
async def comment_events(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="Id of the comment (global or row id).")],
    first: First = None,
    after: After = None,
    last: Last = None,
    before: Before = None,
) -> CommentEventConnection | None:
    comment_id = find_id(id, NodeType.COMMENT)
    if comment_id is None or await info.context.loaders(info).comment.load(comment_id) is None:
        return None
    read_model = info.context.read_model
    page = await read_model.comment_events_page(comment_id, **window(first, after, last, before))
    return connection(page, CommentEvent.from_domain, lambda: read_model.comment_events_count(comment_id))


@strawberry.type(description="Who is calling.")
class Viewer:
    name: str | None = strawberry.field(description="The API token's name; null when auth is off.")
    role: ApiRole = strawberry.field(description="What the token may do.")


@strawberry.field(description="Who is calling (the token's name and role): the console's \"my queue\".")
def viewer(info: Info) -> Viewer | None:
    role, token = info.context.role, info.context.token
    if role is None:
        return None
    return Viewer(name=token.name if token is not None else None, role=ApiRole(role.value))


@strawberry.field(
    description="Names a comment can be assigned to (`setCommentState(assignee:)`): the live API tokens' names, "
    "each once, sorted. Only names: never a role or a secret."
)
async def assignable_users(info: Info) -> list[str]:
    tokens = await auth.list_api_tokens(info.context.adapters.uow_factory)
    return sorted({t.name for t in tokens if t.revoked_at is None})
