"""The schema: queries read through the ReadModel and dataloaders, mutations call use cases.

Resolvers stay thin. A mutation turns a ``DomainError`` into ``UserError``s of its payload; a
query lets it surface as a GraphQL error carrying the error's code (see ``errors.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import strawberry
from strawberry.schema.config import StrawberryConfig

from domain import analyze as analyze_cases
from domain import export as export_cases
from domain import groups as group_cases
from domain import keywords as keyword_cases
from domain import review as review_cases
from domain import tasks as task_cases
from domain.errors import DomainError, InvalidInput, NotFound, Unavailable
from domain.ports import CsvDelimiter, EventsMissed
from domain.models import TaskKind as DomainTaskKind
from domain.models import TaskState as DomainTaskState
from domain.queries import MAX_FILTER_IDS, MAX_PAGE, TaskFilter
from graphql_api import api_tokens as token_api
from graphql_api.auth import IsAdmin, IsOperator, IsViewer
from graphql_api.context import Info, OperationLoaders
from graphql_api.codes import ErrorCode, code_of
from graphql_api.errors import CodedErrors, Schema
from graphql_api.executor import ApiExecutor
from graphql_api.ids import NodeType, decode_id, filter_ids, find_id, global_id, parse_id
from graphql_api.fanout import MAX_SHARED_EVENTS, ByIdentity, share
from graphql_api.limits import limit_extensions
from graphql_api.observability import OperationObserver
from graphql_api.reads import (
    DEFAULT_PAGE,
    by_id,
    comments_connection,
    connection,
    groups_connection,
    keywords_connection,
    to_comment_filter,
    window,
)
from graphql_api.scalars import SCALARS
from graphql_api.stats import Stats, VkBudget, VkToken, resolve_stats, resolve_vk_budget, resolve_vk_tokens
from graphql_api.types import (
    AddGroupPayload,
    AddGroupResult,
    AddGroupsPayload,
    Comment,
    CommentConnection,
    CommentFilterInput,
    CommentOrderInput,
    Group,
    GroupConnection,
    GroupPayload,
    Keyword,
    KeywordConnection,
    Node,
    Post,
    KeywordFilterInput,
    KeywordInput,
    KeywordPayload,
    AddKeywordResult,
    AddKeywordsPayload,
    RemoveKeywordPayload,
    StartAnalyzeInput,
    StartExportInput,
    UpdateKeywordInput,
    RemoveGroupPayload,
    SetCommentStatePayload,
    StartParseInput,
    StartParsePayload,
    Task,
    TaskConnection,
    TaskFilterInput,
    TaskPayload,
    UpdateGroupInput,
    UserError,
    prefetch_comment_relations,
)

MAX_DEPTH = 12
MAX_BULK_REFS = 500
# While a subscriber waits for events, the task is also re-read this often, so a state
# published before the subscription was live (or events the bus dropped) cannot be missed for long.
RECHECK_SECONDS = 5.0


# --- arguments ------------------------------------------------------------------------------

First = Annotated[
    int | None,
    strawberry.argument(description=f"How many items to return from the start (1–100; {DEFAULT_PAGE} when `last` is not given)."),
]
After = Annotated[
    str | None, strawberry.argument(description="Return the items after this cursor (a previous page's `pageInfo.endCursor`).")
]
Last = Annotated[
    int | None, strawberry.argument(description="How many items to return from the end (1–100), instead of `first`.")
]
Before = Annotated[
    str | None,
    strawberry.argument(description="Return the items before this cursor (a later page's `pageInfo.startCursor`)."),
]


def Id(what: str):  # noqa: N802 - reads like a type in signatures
    return Annotated[strawberry.ID, strawberry.argument(description=f"Id of the {what} (its global id, or its row id).")]


GroupId, TaskId, CommentId = Id("community"), Id("task"), Id("comment")
KeywordId = Id("keyword")


# --- helpers --------------------------------------------------------------------------------


def user_errors(error: DomainError) -> list[UserError]:
    """A mutation's expected failure, for its payload. An outage is not one: nothing was done,
    so it surfaces as a GraphQL error with code SERVICE_UNAVAILABLE (HTTP 503), which GraphQL
    clients' retry logic recognises."""
    if isinstance(error, Unavailable):
        raise error
    return [UserError(code=code_of(error), message=error.message, field=error.field)]


def to_task_filter(flt: TaskFilterInput | None) -> TaskFilter:
    if flt is None:
        return TaskFilter()
    return TaskFilter(
        kinds=tuple(dict.fromkeys(DomainTaskKind(k.value) for k in flt.kinds)) if flt.kinds is not None else None,
        states=tuple(dict.fromkeys(DomainTaskState(s.value) for s in flt.states)) if flt.states is not None else None,
        group_ids=filter_ids(flt.group_ids, NodeType.GROUP, field="groupIds"),
        updated_since=flt.updated_since,
    )


# --- nodes ----------------------------------------------------------------------------------


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
    loaders = info.context.loaders(info)
    loader, convert = {
        NodeType.GROUP: (loaders.group, Group.from_domain),
        NodeType.POST: (loaders.post, Post.from_view),
        NodeType.COMMENT: (loaders.comment, Comment.from_view),
        NodeType.KEYWORD: (loaders.keyword, Keyword.from_domain),
        NodeType.TASK: (loaders.task, Task.from_domain),
    }[kind]
    found = await loader.load(pk)
    return convert(found) if found is not None else None


# --- queries --------------------------------------------------------------------------------


@strawberry.type(description="Everything that can be read.")
class Query:
    @strawberry.field(
        description="Any object by its global id (Relay's refetch); null when there is none. "
        "API tokens need an admin token, as `apiTokens` does."
    )
    async def node(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global id (an object's `id`).")]
    ) -> Node | None:
        return await load_node(info, id, field="id")

    @strawberry.field(
        description=f"Objects by their global ids, in the order given; null for each one that names nothing "
        f"(at most {MAX_FILTER_IDS} ids)."
    )
    def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global ids (objects' `id`).")],
    ) -> list[Node | None]:
        if len(ids) > MAX_FILTER_IDS:
            raise InvalidInput(f"At most {MAX_FILTER_IDS} ids in `ids`", field="ids")
        # Awaitables, one per id: GraphQL resolves them together (the loaders batch their reads),
        # and an id that fails fails alone, at its own position.
        return [load_node(info, i, field="ids") for i in ids]  # type: ignore[misc]

    @strawberry.field(description="Tracked communities, in the order they were added.")
    async def groups(
        self,
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
    async def group(self, info: Info, id: GroupId) -> Group | None:
        return await by_id(id, NodeType.GROUP, info.context.loaders(info).group.load, Group.from_domain)

    @strawberry.field(description="Collected comments, filtered and sorted (newest first by default).")
    async def comments(
        self,
        info: Info,
        filter: Annotated[CommentFilterInput | None, strawberry.argument(description="Which comments.")] = None,
        order_by: Annotated[CommentOrderInput | None, strawberry.argument(description="Sort order.")] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> CommentConnection:
        page, found = await comments_connection(info.context.read_model, filter, order_by, first, after, last, before)
        await prefetch_comment_relations(info, [view for _, view in page.edges], "edges", "node")
        return found

    @strawberry.field(description="One comment by its id; null when there is none.")
    async def comment(self, info: Info, id: CommentId) -> Comment | None:
        return await by_id(id, NodeType.COMMENT, info.context.loaders(info).comment.load, Comment.from_view)

    @strawberry.field(description="Background tasks, newest first.")
    async def tasks(
        self,
        info: Info,
        filter: Annotated[TaskFilterInput | None, strawberry.argument(description="Which tasks.")] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> TaskConnection:
        read_model = info.context.read_model
        flt = to_task_filter(filter)
        page = await read_model.tasks_page(flt, **window(first, after, last, before))
        return connection(page, Task.from_domain, lambda: read_model.tasks_count(flt))

    @strawberry.field(description="One task by its id; null when there is none.")
    async def task(self, info: Info, id: TaskId) -> Task | None:
        task_id = find_id(id, NodeType.TASK)
        if task_id is None:
            return None
        task = await info.context.loaders(info).task.load(task_id)
        return Task.from_domain(task) if task is not None else None

    @strawberry.field(description="Keywords, in the order they were added.")
    async def keywords(
        self,
        info: Info,
        filter: Annotated[KeywordFilterInput | None, strawberry.argument(description="Which keywords.")] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> KeywordConnection:
        return await keywords_connection(info.context.read_model, filter, first, after, last, before)

    @strawberry.field(description="One keyword by its id; null when there is none.")
    async def keyword(self, info: Info, id: KeywordId) -> Keyword | None:
        return await by_id(id, NodeType.KEYWORD, info.context.loaders(info).keyword.load, Keyword.from_domain)

    stats: Stats = strawberry.field(
        resolver=resolve_stats,
        description="Statistics: totals, per community, top keywords and authors, comments and matches per day.",
    )
    vk_tokens: list[VkToken] = strawberry.field(
        resolver=resolve_vk_tokens,
        description="The VK token pool's state (fingerprints, never the tokens). Admins only.",
        permission_classes=[IsAdmin],
    )
    vk_budget: VkBudget = strawberry.field(
        resolver=resolve_vk_budget,
        description="The monitoring schedule's projected VK calls a day against what the token pool may call "
        "(token counts only, never which token).",
    )
    api_tokens: list[token_api.ApiToken] = strawberry.field(
        resolver=token_api.resolve_api_tokens,
        description="Every API token, revoked ones included (never a secret). Admins only.",
        permission_classes=[IsAdmin],
    )


# --- mutations ------------------------------------------------------------------------------


def _group_changes(input: UpdateGroupInput) -> group_cases.GroupChanges:
    keep = group_cases.UNSET
    given = lambda value: keep if value is strawberry.UNSET else value  # noqa: E731
    monitoring = input.monitoring if input.monitoring not in (strawberry.UNSET, None) else None
    return group_cases.GroupChanges(
        active=given(input.active),
        max_posts=given(input.max_posts),
        since=given(input.since),
        monitor_enabled=given(monitoring.enabled) if monitoring else keep,
        monitor_interval_minutes=given(monitoring.interval_minutes) if monitoring else keep,
        monitor_priority=given(monitoring.priority) if monitoring else keep,
    )


def _keyword_changes(input: UpdateKeywordInput) -> keyword_cases.KeywordChanges:
    given = lambda value: keyword_cases.UNSET if value is strawberry.UNSET else value  # noqa: E731
    return keyword_cases.KeywordChanges(
        word=given(input.word),
        category=given(input.category),
        active=given(input.active),
        case_sensitive=given(input.case_sensitive),
        whole_word=given(input.whole_word),
        morphology=given(input.morphology),
    )


operator_only = [IsOperator]


@strawberry.type(description="Everything that changes something. Needs an operator or admin token.")
class Mutation:
    create_api_token: token_api.CreateApiTokenPayload = strawberry.mutation(
        resolver=token_api.create_api_token,
        description="Create an API token with a role; its secret is in the payload, once. Admins only.",
        permission_classes=[IsAdmin],
    )
    revoke_api_token: token_api.RevokeApiTokenPayload = strawberry.mutation(
        resolver=token_api.revoke_api_token,
        description="Revoke an API token: its next request is refused. Admins only.",
        permission_classes=[IsAdmin],
    )

    @strawberry.mutation(
        description="Track a community, given by id, screen name or VK link "
        "(`123`, `club123`, `public123`, `durov`, `https://vk.com/name`). "
        "Adding one that is already tracked refreshes it.",
        permission_classes=operator_only,
    )
    async def add_group(
        self, info: Info, ref: Annotated[str, strawberry.argument(description="Id, screen name or VK link.")]
    ) -> AddGroupPayload:
        adapters = info.context.adapters
        try:
            group = await group_cases.add_group(adapters.uow_factory, adapters.vk, ref)
        except DomainError as e:
            return AddGroupPayload(group=None, errors=user_errors(e))
        return AddGroupPayload(group=Group.from_domain(group), errors=[])

    @strawberry.mutation(
        description="Track several communities at once (e.g. pasted lines); one result per reference, in order. "
        "Blank references are skipped.",
        permission_classes=operator_only,
    )
    async def add_groups(
        self,
        info: Info,
        refs: Annotated[list[str], strawberry.argument(description="Ids, screen names or VK links, one per item.")],
    ) -> AddGroupsPayload:
        refs = [r for r in refs if r.strip()]
        if len(refs) > MAX_BULK_REFS:
            error = UserError(code=ErrorCode.BAD_USER_INPUT, message=f"At most {MAX_BULK_REFS} references at once", field="refs")
            return AddGroupsPayload(results=[], groups=[], errors=[error])
        adapters = info.context.adapters

        async def add_one(ref: str) -> AddGroupResult:
            try:
                group = await group_cases.add_group(adapters.uow_factory, adapters.vk, ref)
            except DomainError as e:
                return AddGroupResult(ref=ref, group=None, errors=user_errors(e))
            return AddGroupResult(ref=ref, group=Group.from_domain(group), errors=[])

        # One at a time: the same community pasted twice must not race into two inserts.
        results = [await add_one(ref) for ref in refs]
        return AddGroupsPayload(results=results, groups=[r.group for r in results if r.group is not None], errors=[])

    @strawberry.mutation(
        description="Change a community's collection and monitoring settings.", permission_classes=operator_only
    )
    async def update_group(
        self,
        info: Info,
        id: GroupId,
        input: Annotated[UpdateGroupInput, strawberry.argument(description="The settings to change.")],
    ) -> GroupPayload:
        try:
            group = await group_cases.update_group(info.context.adapters, parse_id(id, NodeType.GROUP), _group_changes(input))
        except DomainError as e:
            return GroupPayload(group=None, errors=user_errors(e))
        return GroupPayload(group=Group.from_domain(group), errors=[])

    @strawberry.mutation(
        description="Stop tracking a community and delete what was collected from it.", permission_classes=operator_only
    )
    async def remove_group(self, info: Info, id: GroupId) -> RemoveGroupPayload:
        try:
            group_id = parse_id(id, NodeType.GROUP)
            await group_cases.remove_group(info.context.adapters, group_id)
        except DomainError as e:
            return RemoveGroupPayload(removed_group_id=None, errors=user_errors(e))
        return RemoveGroupPayload(removed_group_id=global_id(NodeType.GROUP, group_id), errors=[])

    @strawberry.mutation(
        description="Read a community's name, members, photo and status from VK again.", permission_classes=operator_only
    )
    async def refresh_group(self, info: Info, id: GroupId) -> GroupPayload:
        adapters = info.context.adapters
        try:
            group = await group_cases.refresh_group(adapters.uow_factory, adapters.vk, parse_id(id, NodeType.GROUP))
        except DomainError as e:
            return GroupPayload(group=None, errors=user_errors(e))
        return GroupPayload(group=Group.from_domain(group), errors=[])

    @strawberry.mutation(
        description="Collect communities' posts and comments in the background: one PARSE task each. "
        "A community already being collected returns its queued or running task instead of a second one.",
        permission_classes=operator_only,
    )
    async def start_parse(
        self, info: Info, input: Annotated[StartParseInput, strawberry.argument(description="What to collect.")]
    ) -> StartParsePayload:
        try:
            tasks = await task_cases.start_parse(
                info.context.adapters,
                [parse_id(g, NodeType.GROUP, field="groupIds") for g in input.group_ids],
                max_posts=input.max_posts,
                since=input.since,
                priority=input.priority,
                full=input.full,
            )
        except DomainError as e:
            return StartParsePayload(tasks=[], errors=user_errors(e))
        return StartParsePayload(tasks=[Task.from_domain(t) for t in tasks], errors=[])

    @strawberry.mutation(
        description="Cancel a task: a queued one at once, a running one at its next step.",
        permission_classes=operator_only,
    )
    async def cancel_task(self, info: Info, id: TaskId) -> TaskPayload:
        try:
            task = await task_cases.cancel_task(info.context.adapters, parse_id(id, NodeType.TASK))
        except DomainError as e:
            return TaskPayload(task=None, errors=user_errors(e))
        return TaskPayload(task=Task.from_domain(task), errors=[])

    @strawberry.mutation(
        description="Add keywords in bulk (e.g. an imported list); one result per item, in order. "
        "Duplicates (case-insensitive, ё = е) of stored keywords or of earlier items are reported, not added. "
        "Run startAnalyze to match already stored comments.",
        permission_classes=operator_only,
    )
    async def add_keywords(
        self,
        info: Info,
        input: Annotated[
            list[KeywordInput],
            strawberry.argument(description=f"The keywords (at most {keyword_cases.MAX_BULK_KEYWORDS})."),
        ],
    ) -> AddKeywordsPayload:
        items = [
            keyword_cases.KeywordInput(
                word=k.word, category=k.category, active=k.active, case_sensitive=k.case_sensitive,
                whole_word=k.whole_word, morphology=k.morphology,
            )
            for k in input
        ]
        try:
            outcomes = await keyword_cases.add_keywords(info.context.adapters, items)
        except DomainError as e:
            return AddKeywordsPayload(results=[], keywords=[], errors=user_errors(e))
        results = [
            AddKeywordResult(
                word=o.word,
                keyword=Keyword.from_domain(o.keyword) if o.keyword is not None else None,
                errors=user_errors(o.error) if o.error is not None else [],
            )
            for o in outcomes
        ]
        added = [r.keyword for r, o in zip(results, outcomes) if o.added and r.keyword is not None]
        return AddKeywordsPayload(results=results, keywords=added, errors=[])

    @strawberry.mutation(
        description="Change a keyword. Stored matches change only when startAnalyze runs "
        "(pass the keyword's id in `keywordIds`).",
        permission_classes=operator_only,
    )
    async def update_keyword(
        self,
        info: Info,
        id: KeywordId,
        input: Annotated[UpdateKeywordInput, strawberry.argument(description="The fields to change.")],
    ) -> KeywordPayload:
        try:
            keyword_id = parse_id(id, NodeType.KEYWORD)
            keyword = await keyword_cases.update_keyword(info.context.adapters, keyword_id, _keyword_changes(input))
        except DomainError as e:
            return KeywordPayload(keyword=None, errors=user_errors(e))
        return KeywordPayload(keyword=Keyword.from_domain(keyword), errors=[])

    @strawberry.mutation(
        description="Delete a keyword and all its matches; comments' match counts follow at once.",
        permission_classes=operator_only,
    )
    async def remove_keyword(self, info: Info, id: KeywordId) -> RemoveKeywordPayload:
        try:
            keyword_id = parse_id(id, NodeType.KEYWORD)
            await keyword_cases.remove_keyword(info.context.adapters, keyword_id)
        except DomainError as e:
            return RemoveKeywordPayload(removed_keyword_id=None, errors=user_errors(e))
        return RemoveKeywordPayload(removed_keyword_id=global_id(NodeType.KEYWORD, keyword_id), errors=[])

    @strawberry.mutation(
        description="Match stored comments against the keywords again, in the background (an ANALYZE task; "
        "no VK calls). Run it after adding or changing keywords.",
        permission_classes=operator_only,
    )
    async def start_analyze(
        self,
        info: Info,
        input: Annotated[
            StartAnalyzeInput | None, strawberry.argument(description="What to match again; default: everything.")
        ] = None,
    ) -> TaskPayload:
        input = input or StartAnalyzeInput()
        try:
            task = await analyze_cases.start_analyze(
                info.context.adapters,
                group_ids=[parse_id(g, NodeType.GROUP, field="groupIds") for g in input.group_ids]
                if input.group_ids is not None
                else None,
                keyword_ids=[parse_id(k, NodeType.KEYWORD, field="keywordIds") for k in input.keyword_ids]
                if input.keyword_ids is not None
                else None,
                priority=input.priority,
            )
        except DomainError as e:
            return TaskPayload(task=None, errors=user_errors(e))
        return TaskPayload(task=Task.from_domain(task), errors=[])

    @strawberry.mutation(
        description="Write the filtered comments to a file in the background (an EXPORT task). When it succeeds, "
        "the task's `export` has the file's name, size and a short-lived download link that needs no token. "
        "Files expire.",
        permission_classes=operator_only,
    )
    async def start_export(
        self, info: Info, input: Annotated[StartExportInput, strawberry.argument(description="What to export.")]
    ) -> TaskPayload:
        try:
            task = await export_cases.start_export(
                info.context.adapters,
                to_comment_filter(input.filter),
                input.format.value,
                time_zone_name=input.time_zone,
                delimiter=CsvDelimiter[input.delimiter.name] if input.delimiter else None,
                priority=input.priority,
            )
        except DomainError as e:
            return TaskPayload(task=None, errors=user_errors(e))
        return TaskPayload(task=Task.from_domain(task), errors=[])

    @strawberry.mutation(
        description="Mark comments viewed and/or archived (or not); omitted flags stay as they are.",
        permission_classes=operator_only,
    )
    async def set_comment_state(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Ids of the comments (at most 1000).")],
        viewed: Annotated[bool | None, strawberry.argument(description="Mark viewed (true) or not viewed (false).")] = None,
        archived: Annotated[
            bool | None, strawberry.argument(description="Mark archived (true) or not archived (false).")
        ] = None,
    ) -> SetCommentStatePayload:
        try:
            comment_ids = [parse_id(i, NodeType.COMMENT, field="ids") for i in ids]
            changed = await review_cases.set_comment_state(
                info.context.adapters, comment_ids, viewed=viewed, archived=archived
            )
        except DomainError as e:
            return SetCommentStatePayload(comments=[], errors=user_errors(e))
        # Read back after the write, through a fresh query (the loader may hold the old state).
        views = await info.context.read_model.comments_by_ids(changed)
        return SetCommentStatePayload(comments=[Comment.from_view(v) for v in views if v is not None], errors=[])


# --- subscriptions --------------------------------------------------------------------------


class _EventStream:
    """Events of one channel, read with a timeout. The bus registers the subscriber when
    ``subscribe()`` returns; ``ready()`` waits for a cross-process bus (Redis) to confirm."""

    def __init__(self, subscription) -> None:
        self._subscription = subscription
        self._ended = False

    async def ready(self) -> bool:
        return await self._subscription.ready()

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` (always, once the bus ended the stream,
        which it does to a subscriber that fell too far behind)."""
        if self._ended:
            await asyncio.sleep(timeout)
            return None
        try:
            # Safe to cancel: the subscriber's queue keeps whatever arrives meanwhile. (A timeout
            # scope, not wait_for: no task per event, which counts with a thousand subscribers.)
            async with asyncio.timeout(timeout):
                return await anext(self._subscription)
        except (TimeoutError, EventsMissed):  # either way: the caller re-reads the stored state
            return None
        except StopAsyncIteration:
            self._ended = True
            return None

    async def aclose(self) -> None:
        await self._subscription.aclose()


_STATE_ORDER = {DomainTaskState.QUEUED: 0, DomainTaskState.RUNNING: 1}
# event -> (domain task, Task)
_decoded_events: ByIdentity[tuple[Any, Task]] = ByIdentity(MAX_SHARED_EVENTS)


def _decoded(event: dict[str, Any]):
    """An event reaches every subscriber of its task, and subscribers that fell behind read
    older ones meanwhile: decode each event once, into one ``Task`` all of them share."""
    decoded = _decoded_events.get(event)
    if decoded is None:
        task = task_cases.task_from_event(event)
        decoded = _decoded_events.put(event, (task, share(Task.from_domain(task))))
    return decoded


async def _with_gaps(events) -> AsyncIterator[dict[str, Any] | None]:
    """A subscription's events, with None where the bus may have lost some (``EventsMissed``)."""
    while True:
        try:
            event = await anext(events)
        except StopAsyncIteration:
            return
        except EventsMissed:
            event = None
        yield event


CATCH_UP_MARGIN = timedelta(seconds=5)  # processes' clocks differ: resend a little, miss nothing
CATCH_UP_LIMIT = 1000  # changed tasks sent after a gap; older ones stay a `tasks` query away


async def _tasks_changed_since(read_model, since: datetime) -> list:
    """Tasks changed at or after ``since``, oldest change first."""
    found: list = []
    after = None
    while len(found) < CATCH_UP_LIMIT:
        page = await read_model.tasks_page(TaskFilter(updated_since=since), first=MAX_PAGE, after=after)
        found += [task for _, task in page.edges]
        if not page.has_next_page:
            break
        after = page.end_cursor
    return sorted(found, key=lambda t: (t.updated_at or since, t.id))


def _progress_key(task) -> tuple[int, int, int]:
    """Orders snapshots of one task: a retry or a resume after a wait for VK starts a new run,
    states only move forward within one."""
    return task.attempts + task.waits, _STATE_ORDER.get(task.state, 2), task.progress.done


class _ClosingStream:
    """A subscription's items that close ``stream`` when they are closed, even if they never
    started (a generator that has not started skips its ``finally``)."""

    def __init__(self, items: AsyncGenerator[Task, None], stream: _EventStream) -> None:
        self._items, self._stream = items, stream

    def __aiter__(self) -> _ClosingStream:
        return self

    async def __anext__(self) -> Task:
        return await anext(self._items)

    async def aclose(self) -> None:
        try:
            await self._items.aclose()
        finally:
            await self._stream.aclose()


async def _task_progress(
    info: Info, task_id: int, channel: str, stream: _EventStream, live: bool, current
) -> AsyncGenerator[Task, None]:
    """``taskProgress`` from the task's ``current`` state, read after ``stream`` subscribed to
    its channel (``live``: confirmed by the bus), until a final state.

    Subscribed before the current state is read: no gap. Progress is stored before it is
    published, so the read holds everything published before the subscription was live, and
    everything after it arrives through the stream, in order."""
    adapters, read_model = info.context.adapters, info.context.read_model
    try:
        yield Task.from_domain(current)
        # Without a live subscription, the bus's snapshot is the freshest state there is.
        # (With one, jumping to the snapshot would skip the events queued before it.)
        last = None if live else await adapters.events.last(channel)
        if last is not None:
            published = task_cases.task_from_event(last)
            if _progress_key(published) > _progress_key(current):
                current = published
                yield Task.from_domain(current)
        last_seen = task_cases.task_event(current)
        while not current.state.terminal:
            event = await stream.next(RECHECK_SECONDS)
            if event is None:
                fresh = (await read_model.tasks_by_ids([task_id]))[0]
                if fresh is None:  # removed meanwhile
                    return
                snapshot = task_cases.task_event(fresh)
                item = None
            else:
                fresh, item = _decoded(event)
                snapshot = event
            if _progress_key(fresh) < _progress_key(current):
                continue  # older than what was already sent: progress never goes back
            if snapshot != last_seen:
                current, last_seen = fresh, snapshot
                yield item or Task.from_domain(current)
    finally:
        await stream.aclose()


@strawberry.type(description="Live updates over WebSocket (graphql-transport-ws).")
class Subscription:
    @strawberry.subscription(
        description="A task now and on every change; completes after it reaches a final state. "
        "An id that names no task is an error (code NOT_FOUND), sent at once.",
        permission_classes=[IsViewer],
    )
    async def task_progress(self, info: Info, id: TaskId) -> AsyncGenerator[Task, None]:
        # The task is read before the stream starts, so an unknown id is refused as the
        # subscription is made (graphql-transport-ws: an `error` message with code NOT_FOUND),
        # never a stream that just ends. Subscribed before the read: no gap (see _task_progress).
        task_id = parse_id(id, NodeType.TASK)
        adapters = info.context.adapters
        channel = task_cases.task_channel(task_id)
        stream = _EventStream(adapters.events.subscribe(channel))
        try:
            live = await stream.ready()
            current = (await info.context.read_model.tasks_by_ids([task_id]))[0]
            if current is None:
                raise NotFound(f"Task '{id}' not found", field="id")
        except BaseException:
            await stream.aclose()
            raise
        return _ClosingStream(_task_progress(info, task_id, channel, stream, live, current), stream)

    @strawberry.subscription(
        description="Every change of every task, live. A client that falls far behind is dropped "
        "(the subscription completes) rather than slowing everyone down.",
        permission_classes=[IsViewer],
    )
    async def task_events(self, info: Info) -> AsyncGenerator[Task, None]:
        adapters, read_model = info.context.adapters, info.context.read_model
        events = adapters.events.subscribe(task_cases.TASKS_CHANNEL)
        seen_until = adapters.clock.now()  # changes up to about here have been sent
        try:
            async for event in _with_gaps(events):
                if event is None:
                    # The bus lost Redis for a while: send what changed meanwhile, from the database.
                    since = seen_until - CATCH_UP_MARGIN
                    for task in await _tasks_changed_since(read_model, since):
                        seen_until = max(seen_until, task.updated_at or seen_until)
                        yield Task.from_domain(task)
                    continue
                task, item = _decoded(event)
                seen_until = max(seen_until, task.updated_at or seen_until)
                yield item
        finally:
            with contextlib.suppress(RuntimeError):
                await events.aclose()

    @strawberry.subscription(
        description="Comments as they get keyword matches, live: new comments of a parse and comments "
        "matched again by an analyze. Only those passing `filter` are sent: the filter means what it means in "
        "`comments` (ids in it that name nothing match nothing).",
        permission_classes=[IsViewer],
    )
    async def comment_matched(
        self,
        info: Info,
        filter: Annotated[CommentFilterInput | None, strawberry.argument(description="Which comments.")] = None,
    ) -> AsyncGenerator[Comment, None]:
        flt = to_comment_filter(filter)
        read_model = info.context.read_model
        events = info.context.adapters.events.subscribe(analyze_cases.COMMENTS_MATCHED_CHANNEL)
        try:
            async for event in _with_gaps(events):
                if event is None:
                    # Matches are not kept as a feed, so a gap cannot be replayed: say so, and
                    # the client subscribes again and queries comments to catch up.
                    raise Unavailable(
                        "The live feed was interrupted (Redis was unavailable); matches made meanwhile "
                        "were not sent. Subscribe again, and query `comments` to catch up.",
                        dependency="redis",
                    )
                ids = [int(i) for i in event.get("commentIds") or ()]
                for start in range(0, len(ids), MAX_PAGE):
                    chunk = ids[start : start + MAX_PAGE]
                    views, matches = await asyncio.gather(
                        read_model.comments_by_ids(chunk), read_model.matches_by_comment_ids(chunk)
                    )
                    # A long-lived operation: drop what the loaders cached for earlier events.
                    for loader in vars(info.context.loaders(info)).values():
                        loader.clear_all()
                    for view, found in zip(views, matches):
                        if view is not None and flt.admits(view, found):
                            yield Comment.from_view(view)
        finally:
            with contextlib.suppress(RuntimeError):
                await events.aclose()


def build_schema(*, introspection: bool = True) -> Schema:
    extensions: list = [
        OperationObserver,
        *limit_extensions(max_depth=MAX_DEPTH),
        OperationLoaders,
        CodedErrors,
    ]
    if not introspection:
        from strawberry.extensions import DisableIntrospection

        extensions.append(DisableIntrospection)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=ApiExecutor,
        config=StrawberryConfig(scalar_map=SCALARS),
    )


schema = build_schema()


if __name__ == "__main__":  # python -m graphql_api.schema > schema.graphql
    from strawberry.printer import print_schema

    print(print_schema(schema))
