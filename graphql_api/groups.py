"""Communities: the ``Group`` type, the ``groups`` and ``group`` queries, and the mutations that
add, change, refresh and remove them. The rules live in ``domain.groups``."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Self

import orjson
import strawberry

from domain import declaration, models
from domain import groups as group_cases
from domain.errors import DomainError
from domain.queries import CommentFilter, Projection, ReadModel
from graphql_api.auth import IsOperator
from graphql_api.codes import ErrorCode
from graphql_api.context import Info
from graphql_api.declared import Declared, computed, declared
from graphql_api.errors import UserError, user_errors, user_errors_in
from graphql_api.ids import NodeType, global_id, parse_id
from graphql_api.relay import After, Before, Connection, First, Last, Node, by_id, connection, window

MAX_BULK_REFS = 500

GroupId = Annotated[
    strawberry.ID, strawberry.argument(description="Id of the community (its global id, or its row id).")
]


@strawberry.type(description="When and how often a community is collected automatically.")
class Monitoring:
    enabled: bool = strawberry.field(description="Whether the scheduler collects this community by itself.")
    interval_minutes: int = strawberry.field(description="Minutes between automatic runs (1–1440).")
    priority: int = strawberry.field(description="Queue priority of automatic runs (1–10, higher runs first).")
    next_run_at: datetime | None = strawberry.field(description="When the next automatic run is due.")
    last_run_at: datetime | None = strawberry.field(description="When the last run (of any kind) finished.")
    last_success_at: datetime | None = strawberry.field(description="When the last successful run finished.")
    last_error: str | None = strawberry.field(description="Why the last run failed; null after a success.")


@strawberry.type(description="A VK community (group, public page or event) whose comments are collected.")
@declared(declaration.GROUP)  # the fields are spelled out for Monitoring's place; the rest: domain/declaration.py
class Group(Node, Declared):
    NODE_TYPE = NodeType.GROUP
    vk_id: int = strawberry.field(description="VK's id of the community (positive).")
    screen_name: str = strawberry.field(description="Short address, as in vk.com/<screenName>.")
    name: str = strawberry.field(description="Display name.")
    is_closed: bool = strawberry.field(description="Whether the community is closed or private on VK.")
    members_count: int | None = strawberry.field(description="Members, as of the last refresh.")
    photo_url: str | None = strawberry.field(description="Avatar image URL.")
    description: str | None = strawberry.field(description="The community's description on VK.")
    deactivated: str | None = strawberry.field(
        description="Why VK blocked the community (`banned`, `deleted`), if it did."
    )
    active: bool = strawberry.field(description="Inactive communities are kept but never collected.")
    max_posts: int | None = strawberry.field(description="How many of the newest posts a parse reads (null: all).")
    since: datetime | None = strawberry.field(description="A parse reads posts back to this date (null: no limit).")
    monitoring: Monitoring = strawberry.field(description="Automatic collection settings and state.")
    created_at: datetime | None = strawberry.field(description="When the community was added.")
    updated_at: datetime | None = strawberry.field(description="When this record last changed.")

    url = computed(declaration.GROUP, "url")  # placed here: before commentsCount, as the schema had it

    @strawberry.field(description="Comments collected from this community (counted only when asked for).")
    async def comments_count(self, info: Info) -> int:
        return await info.context.read_model.comments_count(CommentFilter(group_ids=(self.pk,)))

    @classmethod
    def from_domain(cls, g: models.Group) -> Self:
        return cls(
            **cls.ids(g.id),
            vk_id=g.vk_id,
            screen_name=g.screen_name,
            name=g.name,
            is_closed=g.is_closed,
            members_count=g.members_count,
            photo_url=g.photo_url,
            description=g.description,
            deactivated=g.deactivated,
            active=g.active,
            max_posts=g.max_posts,
            since=g.since,
            monitoring=Monitoring(
                enabled=g.monitor_enabled,
                interval_minutes=g.monitor_interval_minutes,
                priority=g.monitor_priority,
                next_run_at=g.next_run_at,
                last_run_at=g.last_run_at,
                last_success_at=g.last_success_at,
                last_error=g.last_error,
            ),
            created_at=g.created_at,
            updated_at=g.updated_at,
        )

    @classmethod
    def from_view(cls, view: Any) -> Self:
        return cls.from_domain(view)  # a community's monitoring is an object of its own, made here


GroupConnection = Connection[Group]


def _group(group: models.Group | None) -> Group | None:
    return Group.from_domain(group) if group is not None else None


def load_group(info: Info, group_id: int | None) -> Group | Awaitable[Group | None] | None:
    """The group now when the operation has loaded it already, else an awaitable of it."""
    if group_id is None:
        return None
    return info.context.loaders(info).group.now_or_later(group_id, _group)


# --- inputs and payloads --------------------------------------------------------------------


@strawberry.input(description="Automatic collection settings; omitted fields stay as they are.")
class MonitoringInput:
    enabled: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Collect the community automatically."
    )
    interval_minutes: int | None = strawberry.field(
        default=strawberry.UNSET, description="Minutes between runs (1–1440)."
    )
    priority: int | None = strawberry.field(default=strawberry.UNSET, description="Queue priority of the runs (1–10).")


@strawberry.input(description="Changes to a community's settings; omitted fields stay as they are, null clears.")
class UpdateGroupInput:
    active: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Whether the community is collected at all."
    )
    max_posts: int | None = strawberry.field(
        default=strawberry.UNSET, description="How many of the newest posts a parse reads; null: all."
    )
    since: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="A parse reads posts back to this date; null: no limit."
    )
    monitoring: MonitoringInput | None = strawberry.field(
        default=strawberry.UNSET, description="Automatic collection settings."
    )


@strawberry.type(description="Result of addGroup.")
class AddGroupPayload:
    group: Group | None = strawberry.field(
        description="The community, added or (if it was already tracked) refreshed."
    )
    errors: list[UserError] = strawberry.field(description="Why it could not be added; empty on success.")


@strawberry.type(description="The outcome for one line of addGroups.")
class AddGroupResult:
    ref: str = strawberry.field(description="The reference as given.")
    group: Group | None = strawberry.field(description="The community, when this line succeeded.")
    errors: list[UserError] = strawberry.field(description="Why this line failed; empty on success.")


@strawberry.type(description="Result of addGroups: one result per given reference, in order.")
class AddGroupsPayload:
    results: list[AddGroupResult] = strawberry.field(description="Per-reference outcomes, in the order given.")
    groups: list[Group] = strawberry.field(description="Every community that was added or refreshed.")
    errors: list[UserError] = strawberry.field(
        description="Errors about the request as a whole (per-line errors are in `results`)."
    )


@strawberry.type(description="Result of updateGroup, refreshGroup.")
class GroupPayload:
    group: Group | None = strawberry.field(description="The community as it is now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


@strawberry.type(description="Result of removeGroup.")
class RemoveGroupPayload:
    removed_group_id: strawberry.ID | None = strawberry.field(description="Id of the removed community.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


# --- queries --------------------------------------------------------------------------------


async def groups_connection(
    read_model: ReadModel, first: int | None = None, after: str | None = None, last: int | None = None,
    before: str | None = None, active: bool | None = None, projection: Projection | None = None,
) -> GroupConnection:
    """The connection of a groups page; with ``projection``, its nodes as the read model wrote
    them (``ReadModel.groups_page_projected``), JSON that goes into the response as it is."""
    paging, count = window(first, after, last, before), partial(read_model.groups_count, active=active)
    if projection is not None:
        written = await read_model.groups_page_projected(projection, **paging, active=active)
        return connection(written, orjson.Fragment, count)
    page = await read_model.groups_page(**paging, active=active)
    return connection(page, Group.from_domain, count)


@strawberry.field(description="Tracked communities, in the order they were added.")
async def groups(
    info: Info,
    first: First = None,
    after: After = None,
    last: Last = None,
    before: Before = None,
    active: Annotated[
        bool | None, strawberry.argument(description="Only active (true) or inactive (false) communities.")
    ] = None,
) -> GroupConnection:
    return await groups_connection(info.context.read_model, first, after, last, before, active)


@strawberry.field(description="One community by its id; null when there is none.")
async def group(info: Info, id: GroupId) -> Group | None:
    return await by_id(id, NodeType.GROUP, info.context.loaders(info).group.load, Group.from_domain)


# --- mutations ------------------------------------------------------------------------------


def _group_changes(input: UpdateGroupInput) -> group_cases.GroupChanges:
    keep = models.UNSET

    def given(value: Any) -> Any:
        return keep if value is strawberry.UNSET else value

    monitoring = input.monitoring if input.monitoring not in (strawberry.UNSET, None) else None
    return group_cases.GroupChanges(
        active=given(input.active),
        max_posts=given(input.max_posts),
        since=given(input.since),
        monitor_enabled=given(monitoring.enabled) if monitoring else keep,
        monitor_interval_minutes=given(monitoring.interval_minutes) if monitoring else keep,
        monitor_priority=given(monitoring.priority) if monitoring else keep,
    )


@strawberry.mutation(
    description="Track a community, given by id, screen name or VK link "
    "(`123`, `club123`, `public123`, `durov`, `https://vk.com/name`). "
    "Adding one that is already tracked refreshes it.",
    permission_classes=[IsOperator],
)
@user_errors_in(AddGroupPayload, group=None)
async def add_group(
    info: Info, ref: Annotated[str, strawberry.argument(description="Id, screen name or VK link.")]
) -> AddGroupPayload:
    adapters = info.context.adapters
    group = await group_cases.add_group(adapters.uow_factory, adapters.vk, ref)
    return AddGroupPayload(group=Group.from_domain(group), errors=[])


@strawberry.mutation(
    description="Track several communities at once (e.g. pasted lines); one result per reference, in order. "
    "Blank references are skipped.",
    permission_classes=[IsOperator],
)
@user_errors_in(AddGroupsPayload, results=[], groups=[])
async def add_groups(
    info: Info,
    refs: Annotated[list[str], strawberry.argument(description="Ids, screen names or VK links, one per item.")],
) -> AddGroupsPayload:
    refs = [r for r in refs if r.strip()]
    if len(refs) > MAX_BULK_REFS:
        error = UserError(
            code=ErrorCode.BAD_USER_INPUT, message=f"At most {MAX_BULK_REFS} references at once", field="refs"
        )
        return AddGroupsPayload(results=[], groups=[], errors=[error])
    adapters = info.context.adapters

    async def add_one(ref: str) -> AddGroupResult:
        try:
            group = await group_cases.add_group(adapters.uow_factory, adapters.vk, ref)
        except DomainError as e:  # this line's failure; the others go on
            return AddGroupResult(ref=ref, group=None, errors=user_errors(e))
        return AddGroupResult(ref=ref, group=Group.from_domain(group), errors=[])

    # One at a time: the same community pasted twice must not race into two inserts.
    results = [await add_one(ref) for ref in refs]
    return AddGroupsPayload(results=results, groups=[r.group for r in results if r.group is not None], errors=[])


@strawberry.mutation(
    description="Change a community's collection and monitoring settings.", permission_classes=[IsOperator]
)
@user_errors_in(GroupPayload, group=None)
async def update_group(
    info: Info,
    id: GroupId,
    input: Annotated[UpdateGroupInput, strawberry.argument(description="The settings to change.")],
) -> GroupPayload:
    group = await group_cases.update_group(info.context.adapters, parse_id(id, NodeType.GROUP), _group_changes(input))
    return GroupPayload(group=Group.from_domain(group), errors=[])


@strawberry.mutation(
    description="Stop tracking a community and delete what was collected from it.", permission_classes=[IsOperator]
)
@user_errors_in(RemoveGroupPayload, removed_group_id=None)
async def remove_group(info: Info, id: GroupId) -> RemoveGroupPayload:
    group_id = parse_id(id, NodeType.GROUP)
    await group_cases.remove_group(info.context.adapters, group_id)
    return RemoveGroupPayload(removed_group_id=global_id(NodeType.GROUP, group_id), errors=[])


@strawberry.mutation(
    description="Read a community's name, members, photo and status from VK again.", permission_classes=[IsOperator]
)
@user_errors_in(GroupPayload, group=None)
async def refresh_group(info: Info, id: GroupId) -> GroupPayload:
    adapters = info.context.adapters
    group = await group_cases.refresh_group(adapters.uow_factory, adapters.vk, parse_id(id, NodeType.GROUP))
    return GroupPayload(group=Group.from_domain(group), errors=[])
