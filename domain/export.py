"""How an export works: the comments a ``CommentFilter`` selects, streamed into a file.

Rows are read in batches by comment id (a keyset: never OFFSET, never the whole result in
memory) and handed to a format writer batch by batch, with progress after each. The file is
written under a temporary name and published only when complete, so a download never sees half
a file; a cancelled or failed export leaves nothing behind. The task's result is
``{"url": "/exports/<file>", "rows": N, "format": ..., "file": ..., "fileName": ..., "bytes": ...,
"timeZone": ..., "delimiter": ...}`` (``file`` is the stored name, ``fileName`` the one a
browser saves it as; ``delimiter`` for CSV only), and its last progress message says what was
written; files expire after a configured time.

The rows are exactly those the ``comments`` query returns for the same filter (the same SQL
conditions), so an export's row count equals that query's ``totalCount``.

Times: every format writes them in one time zone, the export's option or the configured one
(Europe/Moscow unless set): XLSX as real spreadsheet dates, whose header names the zone since a
spreadsheet's dates carry none; CSV and JSON Lines as ISO 8601 with the zone's offset. What a
row holds and the file ports are in ``domain.ports`` (``ExportRow``, ``ExportStore``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidInput
from domain.models import CommentStatus, Task, TaskKind
from domain.ports import (
    EXPORT_COLUMNS,
    Adapters,
    CsvDelimiter,
    ExportFormat,
    ExportOptions,
    ProgressCallback,
)
from domain.progress import Say
from domain.queries import CommentFilter
from domain.tasks import register_handler, start_task

EXPORT_BATCH = 1000  # rows per read and write round
MAX_TIME_ZONE_NAME = 64  # the longest IANA name is 32 characters

_TITLES = {
    "commentId": "Comment ID", "commentVkId": "Comment VK ID", "commentUrl": "Comment link",
    "publishedAt": "Published", "text": "Text", "likes": "Likes", "deleted": "Deleted",
    "deletedAt": "Deleted at", "editedAt": "Edited at",
    "replyToVkId": "Reply to (VK ID)", "threadVkId": "Thread (VK ID)", "matchesCount": "Matches",
    "keywords": "Keywords", "authorId": "Author VK ID", "authorName": "Author", "authorUrl": "Author link",
    "groupId": "Community ID", "groupName": "Community", "groupUrl": "Community link",
    "postVkId": "Post VK ID", "postUrl": "Post link", "ownerId": "Wall owner ID",
    "viewed": "Viewed", "archived": "Archived", "status": "Status", "assignee": "Assignee", "tags": "Tags",
    "note": "Note",
}  # fmt: skip


TIME_COLUMNS = frozenset({"publishedAt", "deletedAt", "editedAt"})


def column_titles(zone: ZoneInfo) -> tuple[str, ...]:
    """Headers for people (XLSX), in ``EXPORT_COLUMNS`` order. A spreadsheet's dates carry no
    zone, so the time's header names it: "Published (Europe/Moscow)"."""
    return tuple(
        f"{_TITLES[name]} ({zone.key})" if name in TIME_COLUMNS else _TITLES[name] for name in EXPORT_COLUMNS
    )


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name`` (``Europe/Moscow``, ``Asia/Yekaterinburg``, ``UTC``)."""
    try:
        if not name or len(name) > MAX_TIME_ZONE_NAME:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):  # ZoneInfoNotFoundError is a KeyError
        raise InvalidInput(
            f"Unknown time zone {name[:MAX_TIME_ZONE_NAME]!r}: use an IANA name such as Europe/Moscow or UTC",
            field="timeZone",
        ) from None


# --- filters as task params (JSON) ----------------------------------------------------------

_ID_LISTS = {"groupIds": "group_ids", "postIds": "post_ids", "keywordIds": "keyword_ids", "authorIds": "author_ids"}
_TEXT_LISTS = ("statuses", "assignees", "tags")  # the review workflow's: the same name in params
_FLAGS = {"matched": "matched", "viewed": "viewed", "archived": "archived", "deleted": "deleted", "edited": "edited"}


def filter_to_params(flt: CommentFilter) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, name in _ID_LISTS.items():
        if (value := getattr(flt, name)) is not None:
            params[key] = list(value)
    for key, name in _FLAGS.items():
        if (value := getattr(flt, name)) is not None:
            params[key] = value
    if flt.text is not None:
        params["text"] = flt.text
    if flt.query is not None:
        params["query"] = flt.query
    for key in ("since", "until"):
        if (value := getattr(flt, key)) is not None:
            params[key] = value.isoformat()
    for key in _TEXT_LISTS:
        if (value := getattr(flt, key)) is not None:
            params[key] = [str(v) for v in value]
    return params


def filter_from_params(params: dict[str, Any]) -> CommentFilter:
    values: dict[str, Any] = {}
    for key, name in _ID_LISTS.items():
        if params.get(key) is not None:
            values[name] = tuple(params[key])
    for key, name in _FLAGS.items():
        if params.get(key) is not None:
            values[name] = params[key]
    if params.get("text") is not None:
        values["text"] = params["text"]
    if params.get("query") is not None:
        values["query"] = params["query"]
    for key in ("since", "until"):
        if params.get(key) is not None:
            values[key] = datetime.fromisoformat(params[key])
    for key in _TEXT_LISTS:
        if params.get(key) is not None:
            values[key] = tuple(CommentStatus(v) for v in params[key]) if key == "statuses" else tuple(params[key])
    return CommentFilter(**values)


# --- use case and job -----------------------------------------------------------------------


async def start_export(
    adapters: Adapters,
    flt: CommentFilter,
    fmt: ExportFormat | str,
    *,
    time_zone_name: str | None = None,
    delimiter: CsvDelimiter | None = None,
    priority: int = 5,
) -> Task:
    """Queue an EXPORT task. Times are written in ``time_zone_name`` (default: the configured
    zone); ``delimiter`` is for CSV only."""
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        raise InvalidInput(f"Unknown export format {fmt!r}", field="format") from None
    zone = time_zone(time_zone_name if time_zone_name is not None else adapters.export_time_zone)
    if delimiter is not None and fmt is not ExportFormat.CSV:
        raise InvalidInput(f"A delimiter is for CSV exports, not {fmt.value}", field="delimiter")
    options = ExportOptions(fmt, zone, delimiter or CsvDelimiter.COMMA)
    params = {**options_to_params(options), "filter": filter_to_params(flt)}
    return await start_task(adapters, TaskKind.EXPORT, params, priority=priority)


def options_to_params(options: ExportOptions) -> dict[str, Any]:
    params: dict[str, Any] = {"format": options.format.value, "timeZone": options.time_zone.key}
    if options.format is ExportFormat.CSV:
        params["delimiter"] = options.delimiter.name
    return params


def options_from_params(params: dict[str, Any], *, default_time_zone: str) -> ExportOptions:
    """The options a task was started with (tasks started before an option existed get its default)."""
    return ExportOptions(
        format=ExportFormat(params.get("format", ExportFormat.CSV)),
        time_zone=time_zone(params.get("timeZone") or default_time_zone),
        delimiter=CsvDelimiter[params.get("delimiter") or CsvDelimiter.COMMA.name],
    )


async def run_export(adapters: Adapters, task: Task, report: ProgressCallback) -> dict[str, Any]:
    store = adapters.exports
    if store is None:
        raise InvalidInput("Exports are not configured")
    options = options_from_params(task.params, default_time_zone=adapters.export_time_zone)
    flt = filter_from_params(task.params.get("filter") or {})
    await asyncio.to_thread(store.purge_expired)
    total = await store.count(flt)
    await report(0, total, Say.rows_written(0, total))
    file = await asyncio.to_thread(store.create, options)
    done = 0
    after_id = 0
    try:
        while True:
            rows = await store.rows(flt, after_id=after_id, limit=EXPORT_BATCH)
            if not rows:
                break
            await asyncio.to_thread(file.write, rows)
            done += len(rows)
            after_id = rows[-1].comment_id
            total = max(total, done)  # comments stored since the count are exported too
            await report(done, total, Say.rows_written(done, total))
        await report(done, done, Say.finishing_file())
        size = await asyncio.to_thread(file.finish)
        # The last report can still be a cancel: the except below removes the published file.
        await report(done, done, written_message(done, file.download_name, size))
    except BaseException:  # failed or cancelled (TaskCancelled, an aborted job): no file left
        await asyncio.to_thread(file.discard)
        raise
    return {
        "url": f"/exports/{file.name}", "rows": done, "format": options.format.value, "file": file.name,
        "fileName": file.download_name, "bytes": size, **options_to_params(options),
    }  # fmt: skip


def written_message(rows: int, file_name: str, size: int) -> Say:
    """What a finished export says it did: "12,345 comments written to <file> (1.2 MB)"."""
    return Say.file_written(rows, file_name, human_size(size))


def human_size(size: int) -> str:
    """Bytes for people, in decimal units as file managers show them: 812 bytes, 1.2 MB."""
    if size < 1000:
        return f"{size} byte{'' if size == 1 else 's'}"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 999.95:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} TB"


register_handler(TaskKind.EXPORT, run_export)
