"""Background tasks: the ``Task`` type with its progress, the ``tasks`` and ``task`` queries, and
the mutations that start them (``startParse``, ``startAnalyze``, ``startExport``) or cancel one.
How a task runs, leases and retries lives in ``domain.tasks``; live updates in
``subscriptions.py``."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from domain import analyze as analyze_cases
from domain import export as export_cases
from domain import models, progress
from domain import tasks as task_cases
from domain.models import TaskKind as DomainTaskKind
from domain.models import TaskState as DomainTaskState
from domain.ports import CsvDelimiter as DomainCsvDelimiter
from domain.ports import ExportFormat as DomainExportFormat
from domain.queries import TaskFilter
from graphql_api.auth import IsOperator
from graphql_api.comments import to_comment_filter
from graphql_api.context import Info
from graphql_api.errors import UserError, user_errors_in
from graphql_api.exports import ExportResult, StartExportInput
from graphql_api.groups import Group, load_group
from graphql_api.ids import NodeType, filter_ids, find_id, parse_id
from graphql_api.relay import After, Before, Connection, First, Last, Node, connection, window

TaskId = Annotated[
    strawberry.ID, strawberry.argument(description="Id of the task (its global id, or its row id).")
]


@strawberry.enum(description="What a background task does.")
class TaskKind(enum.Enum):
    PARSE = strawberry.enum_value("PARSE", description="Collect a community's posts, comments and replies from VK.")
    ANALYZE = strawberry.enum_value(
        "ANALYZE", description="Match stored comments against the keywords again (no VK calls)."
    )
    EXPORT = strawberry.enum_value("EXPORT", description="Write filtered comments to a downloadable file.")
    INDEX_RULES = strawberry.enum_value(
        "INDEX_RULES", description="Store the comments saved rules match, for the rules whose matches are not stored "
        "yet (started when a rule, or a keyword or rule it names, changes)."
    )


@strawberry.enum(description="Where a task is in its life. SUCCEEDED, FAILED and CANCELLED are final.")
class TaskState(enum.Enum):
    QUEUED = strawberry.enum_value("QUEUED", description="Stored and waiting for a worker.")
    RUNNING = strawberry.enum_value("RUNNING", description="A worker is running it; `progress` moves.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Finished; see `result`.")
    FAILED = strawberry.enum_value("FAILED", description="Stopped by an error; see `error`.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="Cancelled by a user before it finished.")


@strawberry.enum(
    description="What a task's progress message says, for a client that words it in its own language "
    "(`Progress.messageArgs` holds its numbers and names; `Progress.message` is the English sentence)."
)
class ProgressMessageCode(enum.Enum):
    READING_WALL = strawberry.enum_value(
        "READING_WALL", description="A parse lists the community's posts. No arguments."
    )
    POSTS_TO_READ = strawberry.enum_value(
        "POSTS_TO_READ", description="Posts listed: `posts` in all, `toRead` whose comments are read."
    )
    POSTS_READ = strawberry.enum_value(
        "POSTS_READ", description="`done` of `total` posts read, `comments` comments stored so far."
    )
    COMMENTS_CHECKED = strawberry.enum_value(
        "COMMENTS_CHECKED", description="An analyze checked `done` of `total` comments; `matched` of them matched "
        "(absent before the first batch)."
    )
    ROWS_WRITTEN = strawberry.enum_value("ROWS_WRITTEN", description="An export wrote `done` of `total` rows.")
    FINISHING_FILE = strawberry.enum_value("FINISHING_FILE", description="An export closes its file. No arguments.")
    FILE_WRITTEN = strawberry.enum_value(
        "FILE_WRITTEN", description="An export wrote `rows` comments to `file`, of `size` (e.g. \"1.2 MB\")."
    )
    RETRYING = strawberry.enum_value(
        "RETRYING", description="A dependency failed (`error`, in English); the task runs again from what is stored."
    )
    WAITING_FOR_VK = strawberry.enum_value(
        "WAITING_FOR_VK", description="Every VK token rests (`reason`: QUOTA, its daily quota, or CAPTCHA) until "
        "`until` (UTC, \"HH:MM\" today or \"YYYY-MM-DD HH:MM\"; `Task.waitingUntil` is exact): the task waits, QUEUED."
    )


@strawberry.type(description="How far a task has got.")
class Progress:
    done: int = strawberry.field(description="Units of work done (posts, comments, rows: see `message`).")
    total: int | None = strawberry.field(description="Units of work in all, when known.")
    message: str = strawberry.field(description="What the task is doing now, for people (in English).")
    message_code: ProgressMessageCode | None = strawberry.field(
        description="What `message` says, as a code to word in another language; null for a message without one."
    )
    message_args: JSON | None = strawberry.field(
        description="The numbers and names `message` holds, by name (see `messageCode`); null with no code."
    )

    @classmethod
    def from_domain(cls, p: models.Progress) -> Progress:
        said = progress.read(p.message)
        return cls(
            done=p.done, total=p.total, message=p.message,
            message_code=ProgressMessageCode[said.code.value] if said else None,
            message_args=JSON(dict(said.args)) if said else None,
        )  # fmt: skip


@strawberry.type(description="A background job (parse, analyze, export) and its durable record.")
class Task(Node):
    NODE_TYPE = NodeType.TASK
    kind: TaskKind = strawberry.field(description="What the task does.")
    state: TaskState = strawberry.field(description="Where the task is in its life.")
    priority: int = strawberry.field(description="Queue priority (1–10, higher runs first).")
    progress: Progress = strawberry.field(description="How far it has got.")
    attempts: int = strawberry.field(description="How many times a worker has started it (more than 1 after a retry).")
    cancel_requested: bool = strawberry.field(
        description="A cancel was asked for; a running task stops at its next step."
    )
    created_at: datetime | None = strawberry.field(description="When it was queued.")
    started_at: datetime | None = strawberry.field(description="When a worker first started it.")
    finished_at: datetime | None = strawberry.field(description="When it reached a final state.")
    updated_at: datetime | None = strawberry.field(
        description="When the task (state or progress) last changed; subscribers can measure delivery delay."
    )
    error: str | None = strawberry.field(description="Why it failed (state FAILED).")
    result: JSON | None = strawberry.field(
        description="What it produced (state SUCCEEDED); the shape depends on `kind`."
    )
    params: JSON = strawberry.field(description="The options it was started with.")
    stalled_at: datetime | None = strawberry.field(
        description="When the running task was last found stuck (no progress for the stall timeout) and handed "
        "to another runner; null again once its progress moves."
    )
    stalls: int = strawberry.field(description="How many times it was found stuck; at 3 it ends FAILED.")
    waiting_until: datetime | None = strawberry.field(
        description="While every VK token rests (daily quota, captcha), a running task waits instead of failing: "
        "it is QUEUED with this time, when the first token comes back and it resumes by itself (its progress "
        "message says why). Null unless waiting."
    )
    group_id: strawberry.Private[int | None]

    @strawberry.field(description="The community a PARSE task collects; null for other kinds.")
    def group(self, info: Info) -> Group | None:
        return load_group(info, self.group_id)  # type: ignore[return-value]

    @strawberry.field(
        description="What a SUCCEEDED EXPORT task wrote, with a short-lived download link; null for other tasks."
    )
    def export(self, info: Info) -> ExportResult | None:
        if self.kind is not TaskKind.EXPORT or self.state is not TaskState.SUCCEEDED:
            return None
        return ExportResult.of(self.result, info)

    @classmethod
    def from_domain(cls, t: models.Task) -> Task:
        return cls(
            **cls.ids(t.id),
            kind=TaskKind(t.kind.value),
            state=TaskState(t.state.value),
            priority=t.priority,
            progress=Progress.from_domain(t.progress),
            attempts=t.attempts,
            cancel_requested=t.cancel_requested,
            created_at=t.created_at,
            started_at=t.started_at,
            finished_at=t.finished_at,
            updated_at=t.updated_at,
            error=t.error,
            result=JSON(t.result) if t.result is not None else None,
            params=JSON(t.params or {}),
            stalled_at=t.stalled_at,
            stalls=t.stalls,
            waiting_until=t.waiting_until if t.state is models.TaskState.QUEUED else None,
            group_id=t.group_id,
        )


TaskConnection = Connection[Task]


# --- inputs and payloads --------------------------------------------------------------------


@strawberry.input(name="TaskFilter", description="Which tasks to list. Every given condition must hold.")
class TaskFilterInput:
    kinds: list[TaskKind] | None = strawberry.field(default=None, description="Only tasks of these kinds.")
    states: list[TaskState] | None = strawberry.field(default=None, description="Only tasks in these states.")
    group_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only tasks of these communities (Group ids; at most 1000)."
    )
    updated_since: datetime | None = strawberry.field(
        default=None,
        description="Only tasks whose state or progress changed at or after this time: what a client "
        "missed while it was disconnected.",
    )


@strawberry.input(description="What to collect.")
class StartParseInput:
    group_ids: list[strawberry.ID] = strawberry.field(description="Communities to collect (Group ids); one task each.")
    max_posts: int | None = strawberry.field(
        default=None, description="Read at most this many of the newest posts (default: the community's setting)."
    )
    since: datetime | None = strawberry.field(
        default=None, description="Read posts back to this date (default: the community's setting)."
    )
    priority: int = strawberry.field(default=5, description="Queue priority (1–10, higher runs first).")
    full: bool = strawberry.field(
        default=False, description="Re-read every post's comments, not only those of posts that changed."
    )


@strawberry.input(description="What to match again.")
class StartAnalyzeInput:
    group_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only comments of these communities (Group ids); default: all."
    )
    keyword_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Only these keywords' matches are redone (Keyword ids); default: all keywords, "
        "which also drops matches of inactive keywords.",
    )
    priority: int = strawberry.field(default=5, description="Queue priority (1–10, higher runs first).")


@strawberry.type(description="Result of startParse.")
class StartParsePayload:
    tasks: list[Task] = strawberry.field(
        description="One PARSE task per community; a community already being collected gets its running task."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was started; empty on success.")


@strawberry.type(description="Result of cancelTask.")
class TaskPayload:
    task: Task | None = strawberry.field(description="The task as it is now.")
    errors: list[UserError] = strawberry.field(description="Why it failed; empty on success.")


# --- queries --------------------------------------------------------------------------------


def to_task_filter(flt: TaskFilterInput | None) -> TaskFilter:
    if flt is None:
        return TaskFilter()
    return TaskFilter(
        kinds=tuple(dict.fromkeys(DomainTaskKind[k.name] for k in flt.kinds)) if flt.kinds is not None else None,
        states=tuple(dict.fromkeys(DomainTaskState[s.name] for s in flt.states)) if flt.states is not None else None,
        group_ids=filter_ids(flt.group_ids, NodeType.GROUP, field="groupIds"),
        updated_since=flt.updated_since,
    )


@strawberry.field(description="Background tasks, newest first.")
async def tasks(
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
async def task(info: Info, id: TaskId) -> Task | None:
    task_id = find_id(id, NodeType.TASK)
    if task_id is None:
        return None
    found = await info.context.loaders(info).task.load(task_id)
    return Task.from_domain(found) if found is not None else None


# --- mutations ------------------------------------------------------------------------------


@strawberry.mutation(
    description="Collect communities' posts and comments in the background: one PARSE task each. "
    "A community already being collected returns its queued or running task instead of a second one.",
    permission_classes=[IsOperator],
)
@user_errors_in(StartParsePayload, tasks=[])
async def start_parse(
    info: Info, input: Annotated[StartParseInput, strawberry.argument(description="What to collect.")]
) -> StartParsePayload:
    started = await task_cases.start_parse(
        info.context.adapters,
        [parse_id(g, NodeType.GROUP, field="groupIds") for g in input.group_ids],
        max_posts=input.max_posts,
        since=input.since,
        priority=input.priority,
        full=input.full,
    )
    return StartParsePayload(tasks=[Task.from_domain(t) for t in started], errors=[])


@strawberry.mutation(
    description="Cancel a task: a queued one at once, a running one at its next step.",
    permission_classes=[IsOperator],
)
@user_errors_in(TaskPayload, task=None)
async def cancel_task(info: Info, id: TaskId) -> TaskPayload:
    cancelled = await task_cases.cancel_task(info.context.adapters, parse_id(id, NodeType.TASK))
    return TaskPayload(task=Task.from_domain(cancelled), errors=[])


@strawberry.mutation(
    description="Match stored comments against the keywords again, in the background (an ANALYZE task; "
    "no VK calls). Run it after adding or changing keywords.",
    permission_classes=[IsOperator],
)
@user_errors_in(TaskPayload, task=None)
async def start_analyze(
    info: Info,
    input: Annotated[
        StartAnalyzeInput | None, strawberry.argument(description="What to match again; default: everything.")
    ] = None,
) -> TaskPayload:
    input = input or StartAnalyzeInput()
    started = await analyze_cases.start_analyze(
        info.context.adapters,
        group_ids=[parse_id(g, NodeType.GROUP, field="groupIds") for g in input.group_ids]
        if input.group_ids is not None
        else None,
        keyword_ids=[parse_id(k, NodeType.KEYWORD, field="keywordIds") for k in input.keyword_ids]
        if input.keyword_ids is not None
        else None,
        priority=input.priority,
    )
    return TaskPayload(task=Task.from_domain(started), errors=[])


@strawberry.mutation(
    description="Write the filtered comments to a file in the background (an EXPORT task). When it succeeds, "
    "the task's `export` has the file's name, size and a short-lived download link that needs no token. "
    "Files expire.",
    permission_classes=[IsOperator],
)
@user_errors_in(TaskPayload, task=None)
async def start_export(
    info: Info, input: Annotated[StartExportInput, strawberry.argument(description="What to export.")]
) -> TaskPayload:
    flt = to_comment_filter(input.filter)
    await info.context.read_model.compiled(flt)  # a query naming nothing fails here, not in the task
    started = await export_cases.start_export(
        info.context.adapters,
        flt,
        DomainExportFormat[input.format.name],
        time_zone_name=input.time_zone,
        delimiter=DomainCsvDelimiter[input.delimiter.name] if input.delimiter else None,
        priority=input.priority,
    )
    return TaskPayload(task=Task.from_domain(started), errors=[])
