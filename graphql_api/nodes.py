"""``node(id:)`` and ``nodes(ids:)``: any object by its global id, as its own typed field would
give it to the caller (Relay's refetch). The one place that knows every ``Node`` type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import strawberry

from domain.errors import InvalidInput
from domain.queries import MAX_FILTER_IDS
from graphql_api import api_tokens as token_api
from graphql_api import rules as rule_api
from graphql_api.comments import Comment, Post
from graphql_api.context import Info
from graphql_api.groups import Group
from graphql_api.ids import NodeType, decode_id
from graphql_api.keywords import Keyword
from graphql_api.relay import Node
from graphql_api.tasks import Task


async def load_node(info: Info, id: strawberry.ID, *, field: str) -> Node | None:
    """The object a global id names, as its own typed field would give it to this caller; null
    for an id we never handed out. A plain row id names no type: refused, never guessed."""
    decoded = decode_id(id)
    if decoded is None:
        return None
    kind, pk = decoded
    if kind is None:
        raise InvalidInput(
            f"'{id}' is a row id, which does not say what it names: `{field}` takes an object's global `id`",
            field=field,
        )
    if kind is NodeType.API_TOKEN:
        return await token_api.load_api_token(info, pk)
    if kind is NodeType.RULE:
        return await rule_api.load_rule(info, pk)
    loaders = info.context.loaders(info)
    loaders_by_kind: dict[NodeType, tuple[Any, Callable[[Any], Node]]] = {
        NodeType.GROUP: (loaders.group, Group.from_domain),
        NodeType.POST: (loaders.post, Post.from_view),
        NodeType.COMMENT: (loaders.comment, Comment.from_view),
        NodeType.KEYWORD: (loaders.keyword, Keyword.from_view),
        NodeType.TASK: (loaders.task, Task.from_domain),
    }
    loader, convert = loaders_by_kind[kind]
    found = await loader.load(pk)
    return convert(found) if found is not None else None


@strawberry.field(
    description="Any object by its global id (Relay's refetch); null when there is none. "
    "API tokens need an admin token, as `apiTokens` does."
)
async def node(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global id (an object's `id`).")]
) -> Node | None:
    return await load_node(info, id, field="id")


@strawberry.field(
    description=f"Objects by their global ids, in the order given; null for each one that names nothing "
    f"(at most {MAX_FILTER_IDS} ids)."
)
def nodes(
    info: Info,
    ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global ids (objects' `id`).")],
) -> list[Node | None]:
    if len(ids) > MAX_FILTER_IDS:
        raise InvalidInput(f"At most {MAX_FILTER_IDS} ids in `ids`", field="ids")
    # Awaitables, one per id: GraphQL resolves them together (the loaders batch their reads),
    # and an id that fails fails alone, at its own position.
    return [load_node(info, i, field="ids") for i in ids]  # type: ignore[misc]
